// What BullMQ costs per job, process by process, run as benches/cpu_split.sh runs it: 50 concurrent
// producers add N jobs (a priority each), then one worker of concurrency 100 processes them. Per
// phase: this process's CPU (node), Redis's (INFO cpu: its process, and its children that ended
// meanwhile) and the machine's (/proc/stat), per job. Env: REDIS_PORT, N (default 50000).
import { readFileSync } from 'node:fs';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const port = Number(process.env.REDIS_PORT);
const N = Number(process.env.N || 50000);
const connection = new IORedis({ port, maxRetriesPerRequest: null });
const queue = new Queue('bench', { connection });
await queue.obliterate({ force: true }).catch(() => {});

async function spent() {
  const info = await connection.info('cpu');
  const value = (name) => Number(info.match(new RegExp(`^${name}:([0-9.]+)`, 'm'))[1]);
  const stat = readFileSync('/proc/stat', 'utf8').split('\n');
  const ticks = stat[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const own = process.cpuUsage();
  return {
    at: performance.now(),
    node: (own.user + own.system) / 1e6,
    redis: value('used_cpu_sys') + value('used_cpu_user'),
    children: value('used_cpu_sys_children') + value('used_cpu_user_children'),
    cores: stat.filter((l) => /^cpu\d/.test(l)).length,
    total: ticks.reduce((a, b) => a + b, 0),
    idle: ticks[3] + ticks[4],
    interrupts: ticks[5] + ticks[6],
  };
}

function report(phase, before, after) {
  const per = (seconds) => (seconds * 1e6 / N).toFixed(1);
  const ms = after.at - before.at;
  const total = Math.max(after.total - before.total, 1);
  const idle = after.idle - before.idle;
  console.log(`${phase}: ${N} jobs in ${ms.toFixed(0)} ms = ${(N / (ms / 1000)).toFixed(0)} jobs/s`);
  console.log(`  node: ${per(after.node - before.node)} µs of CPU per job`);
  console.log(`  Redis CPU: ${per(after.redis - before.redis)} µs per job (its process), `
    + `${per(after.children - before.children)} µs per job (its children that ended meanwhile)`);
  console.log(`  machine (${after.cores} cores): ${((total - idle) * 1e4 / N).toFixed(1)} µs of CPU `
    + `per job in all, ${(idle * 100 / total).toFixed(1)} % of it idle, `
    + `${((after.interrupts - before.interrupts) * 100 / total).toFixed(1)} % on interrupts`);
}

const start = await spent();
let next = 0;
await Promise.all(Array.from({ length: 50 }, async () => {
  while (next < N) {
    const k = next++;
    await queue.add('t', { k }, { jobId: `t${k}`, priority: (k % 5) + 1 });
  }
}));
const added = await spent();
report('add (50 producers)', start, added);

let done = 0;
await new Promise((resolve) => {
  const worker = new Worker('bench', async () => {}, {
    connection: new IORedis({ port, maxRetriesPerRequest: null }),
    concurrency: 100,
  });
  worker.on('completed', () => {
    done += 1;
    if (done === N) {
      resolve();
      worker.close();
    }
  });
});
report('process (concurrency 100)', added, await spent());
await queue.close();
await connection.quit();
process.exit(0);
