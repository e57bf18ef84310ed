//! `callrouter load`: a load generator for a running server. It drives `RouteCall` as the
//! telephony platform with requests built from the registry (tenant references, structured and
//! free-text addresses), then claim → complete cycles as the cooperators' agents, and prints
//! throughput and latency percentiles.
//!
//! At a fixed `--rate` the load is open-loop: each call has a scheduled start and its latency is
//! counted from then, so a slow server cannot hide its queueing (no coordinated omission); a thread
//! of its own sends each call on time, with the operating system's timers. Without
//! a rate, `--concurrency` callers send as fast as the server answers. With `--redis-url` the
//! generator also reads Redis's command counters and CPU time and prints round trips, Redis time
//! and Redis CPU per call; with `--admin` (or, finer, `--server-pid`) it reads the server's
//! process metrics and prints its CPU time per call and its resident memory. Where `/proc` is
//! there, it prints its own CPU per call and the machine's (in all, idle, on interrupts): on
//! shared cores, a call's throughput is bounded by all it costs the machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Args;
use tonic::codegen::http::{self, HeaderMap, HeaderValue, Method, Uri, header, uri::Authority};
use tonic::{Code, Status};

use crate::api::pb;
use crate::registry;

/// Options of `callrouter load`.
#[derive(Debug, Clone, Args)]
pub struct LoadOptions {
    /// Server address, `http://host:port` (plain HTTP/2).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// Development tokens (plain) with their principals.
    #[arg(long, default_value = "config/dev-tokens.toml")]
    pub tokens: PathBuf,
    /// Building registry the requests are drawn from.
    #[arg(long, default_value = "data/buildings.csv")]
    pub buildings: PathBuf,
    /// Tenant registry the requests are drawn from.
    #[arg(long, default_value = "data/tenants.csv")]
    pub tenants: PathBuf,
    /// RouteCall phase length (seconds).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// RouteCall phase length in calls, when --seconds has not ended it first (0: no limit), for
    /// figures after a given number of calls (resident memory after a million).
    #[arg(long, default_value_t = 0)]
    pub calls: u64,
    /// RouteCall calls per second (open loop); 0: as fast as possible with --concurrency callers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent callers (closed loop), and concurrent agents for claim → complete.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// Threads that send the calls. One by default: on a machine the load generator shares with
    /// the server and Redis, a second thread costs more in wake-ups than it adds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// HTTP/2 connections to spread the calls over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: u64,
    /// Skip the claim → complete phase.
    #[arg(long)]
    pub route_only: bool,
    /// Claim → complete cycles as two calls each (ClaimNextTicket, then CompleteTicket), instead
    /// of completing each ticket with the next claim (ClaimNextTicket with `complete`).
    #[arg(long)]
    pub separate_claims: bool,
    /// Redis of the server, to count round trips, Redis time and Redis CPU per call (read-only:
    /// INFO commandstats and INFO cpu).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The server's admin listener (host:port), to read its CPU time and memory from
    /// `/metrics` (`process_cpu_seconds_total`, `process_resident_memory_bytes`). That counter
    /// moves in whole seconds: over short runs, prefer `--server-pid`.
    #[arg(long)]
    pub admin: Option<String>,
    /// The server's process id, when it runs on this machine: its CPU time (to the clock tick)
    /// and memory are read from `/proc` instead of `/metrics`.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

struct Tokens {
    telephony: String,
    agents: Vec<String>,
}

fn read_tokens(path: &PathBuf) -> Result<Tokens, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries = value
        .get("tokens")
        .and_then(|t| t.as_array())
        .ok_or("no [[tokens]]")?;
    let field = |t: &toml::Value, k: &str| {
        t.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let telephony = entries
        .iter()
        .find(|t| field(t, "role") == "telephony")
        .map(|t| field(t, "token"))
        .ok_or("no telephony token")?;
    let agents = entries
        .iter()
        .filter(|t| field(t, "role") == "agent" && field(t, "cooperator") != "platform")
        .map(|t| field(t, "token"))
        .collect();
    Ok(Tokens { telephony, agents })
}

/// Requests drawn from the registry, read with the registry loader: a third by tenant reference,
/// the rest by structured address or free text, alternately.
fn requests(options: &LoadOptions) -> Result<Vec<pb::RouteCallRequest>, String> {
    let problems = |p: Vec<crate::diagnostics::Problem>| {
        p.first().map(ToString::to_string).unwrap_or_default()
    };
    let buildings = registry::load_buildings(&options.buildings).map_err(problems)?;
    let tenants = registry::load_tenants(&options.tenants).map_err(problems)?;
    let issue = |i: usize| ISSUES[i % ISSUES.len()].to_owned();
    let by_address = buildings.iter().enumerate().map(|(i, row)| {
        let b = &row.value;
        let address = if i % 2 == 0 {
            pb::Address {
                street_number: b.street_number.clone(),
                street: b.street_name.clone(),
                postcode: b.postcode.clone(),
                ..Default::default()
            }
        } else {
            pb::Address {
                free_text: format!(
                    "{} {} {} {}",
                    b.street_number, b.street_name, b.postcode, b.city
                ),
                ..Default::default()
            }
        };
        pb::RouteCallRequest {
            address: Some(address),
            issue_type: issue(i),
            ..Default::default()
        }
    });
    let by_reference =
        tenants
            .iter()
            .step_by(15)
            .enumerate()
            .map(|(i, row)| pb::RouteCallRequest {
                tenant_reference: row.value.reference.clone(),
                issue_type: issue(i),
                ..Default::default()
            });
    let out: Vec<pb::RouteCallRequest> = by_address.chain(by_reference).collect();
    if out.is_empty() {
        return Err("no requests could be built from the registries".to_owned());
    }
    Ok(out)
}

/// The issues calls are about, in turn.
const ISSUES: [&str; 6] = [
    "technical.plumbing.leak",
    "technical.heating.no_heat",
    "administrative.rent.payment",
    "technical.lift.breakdown",
    "social.neighbour_dispute",
    "emergency.gas_smell",
];

fn percentiles(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "no samples".to_owned();
    }
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    format!(
        "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// What Redis has done for scripts, from an `INFO commandstats` reply: round trips (each
/// `EVALSHA`, `EVAL`, or `SCRIPT LOAD` after a script cache flush) and the microseconds spent
/// running them (`EVALSHA` and `EVAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptStats {
    pub calls: u64,
    pub usec: u64,
}

/// A field (`calls`, `usec`) of a `cmdstat_…` line.
fn stat_field(line: &str, field: &str) -> Option<u64> {
    line.split_once(':')?
        .1
        .split(',')
        .find_map(|kv| kv.strip_prefix(field)?.strip_prefix('='))?
        .parse()
        .ok()
}

pub fn script_stats_in(commandstats: &str) -> ScriptStats {
    let mut stats = ScriptStats::default();
    for line in commandstats.lines() {
        let run = line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:");
        if run || line.starts_with("cmdstat_script|load:") {
            stats.calls += stat_field(line, "calls").unwrap_or(0);
        }
        if run {
            stats.usec += stat_field(line, "usec").unwrap_or(0);
        }
    }
    stats
}

/// The number on the first line of `text` that is `name`, `separator`, then the number (a line of
/// an `INFO` reply, of a Prometheus exposition).
fn named_value(text: &str, name: &str, separator: char) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(separator)?
            .trim()
            .parse()
            .ok()
    })
}

/// The CPU seconds of a Redis server, from an `INFO cpu` reply: its process (every thread), and
/// the children it has forked and reaped (append-only file rewrites, snapshots). A child still
/// running counts once it has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RedisCpu {
    pub process: f64,
    pub children: f64,
}

pub fn redis_cpu_in(info: &str) -> Option<RedisCpu> {
    let value = |name: &str| named_value(info, name, ':');
    Some(RedisCpu {
        process: value("used_cpu_sys")? + value("used_cpu_user")?,
        children: value("used_cpu_sys_children")? + value("used_cpu_user_children")?,
    })
}

/// What Redis has done: for scripts (`INFO commandstats`), and its CPU time (`INFO cpu`).
async fn redis_stats(url: &str) -> Result<(ScriptStats, Option<RedisCpu>), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let scripts = script_stats_in(&info(&mut conn, "commandstats").await?);
    let cpu = redis_cpu_in(&info(&mut conn, "cpu").await?);
    Ok((scripts, cpu))
}

async fn info(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> Result<String, String> {
    redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())
}

/// The machine's CPU time, in clock ticks summed over its cores, from the first line of
/// `/proc/stat`: all of it (user to steal), idle (idle and waiting for I/O), and spent on
/// interrupts (for a run on loopback, mostly the network's), with the number of cores.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineTimes {
    pub total: f64,
    pub idle: f64,
    pub interrupts: f64,
    pub cores: usize,
}

pub fn machine_times_in(stat: &str) -> Option<MachineTimes> {
    let mut lines = stat.lines();
    let ticks: Vec<f64> = lines
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else {
        return None;
    };
    Some(MachineTimes {
        total: user + nice + system + idle + iowait + irq + softirq + steal,
        idle: idle + iowait,
        interrupts: irq + softirq,
        cores: lines.take_while(|l| l.starts_with("cpu")).count(),
    })
}

/// The server's CPU seconds and resident bytes (from a Prometheus exposition, or `/proc`), and,
/// from `/proc` only, how many times its threads went to sleep waiting (voluntary context
/// switches): at low rates each wake-up costs more CPU than the call's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub waits: Option<u64>,
}

pub fn process_stats_in(exposition: &str) -> Option<ProcessStats> {
    let value = |name: &str| named_value(exposition, name, ' ');
    Some(ProcessStats {
        cpu_seconds: value("process_cpu_seconds_total")?,
        resident_bytes: value("process_resident_memory_bytes")?,
        waits: None,
    })
}

/// Clock ticks per second of the CPU times `/proc` gives: Linux's fixed `USER_HZ`.
const TICKS_PER_SECOND: f64 = 100.0;

/// A process's CPU time and resident memory from `/proc/<pid>/stat` and `/proc/<pid>/status`
/// (CPU time in clock ticks, [`TICKS_PER_SECOND`]), and its threads' waits from
/// `/proc/<pid>/task/*/status` (a thread that has ended takes its count with it).
fn proc_stats(pid: u32) -> Result<ProcessStats, String> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(|e| format!("cannot read /proc/{pid}/{file}: {e}"))
    };
    let stats = proc_stats_in(&read("stat")?, &read("status")?)
        .ok_or_else(|| format!("/proc/{pid} has no CPU time or resident memory"))?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("cannot read /proc/{pid}/task: {e}"))?;
    let waits = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .filter_map(|status| voluntary_switches_in(&status))
        .sum();
    Ok(ProcessStats {
        waits: Some(waits),
        ..stats
    })
}

/// A thread's voluntary context switches, from its `status`.
pub fn voluntary_switches_in(status: &str) -> Option<u64> {
    named_value(status, "voluntary_ctxt_switches", ':').map(|n| n as u64)
}

pub fn proc_stats_in(stat: &str, status: &str) -> Option<ProcessStats> {
    // The fields after the command name (which may hold spaces), from the third (state) on:
    // utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    let rss_kib = status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<f64>()
            .ok()
    })?;
    Some(ProcessStats {
        cpu_seconds: (ticks(14)? + ticks(15)?) / TICKS_PER_SECOND,
        resident_bytes: rss_kib * 1024.0,
        waits: None,
    })
}

/// `GET /metrics` on the admin listener (HTTP/1.0: the body, unchunked).
async fn process_stats(admin: &str) -> Result<ProcessStats, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .map_err(|e| format!("cannot reach the admin listener {admin}: {e}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    process_stats_in(&response)
        .ok_or_else(|| format!("{admin}/metrics has no process_cpu_seconds_total"))
}

/// Writes a line of figures to standard output; a closed output (`| head -1`) ends the run with
/// an error instead of a panic.
fn say(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| format!("cannot write the figures: {e}"))
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "a token is not ASCII".to_owned())
}

/// Runs the load and prints the figures.
pub async fn run(options: LoadOptions) -> Result<(), String> {
    let tokens = read_tokens(&options.tokens)?;
    let requests = Arc::new(requests(&options)?);
    let mut connections = Vec::new();
    for _ in 0..options.connections {
        connections.push(Caller::connect(&options.target).await?);
    }
    let load = Load {
        options,
        connections,
        tokens,
    };
    load.route_calls(requests).await?;
    if !load.options.route_only {
        load.claim_and_complete().await?;
    }
    Ok(())
}

/// A load run: its options, its connections and the tokens it calls with.
struct Load {
    options: LoadOptions,
    connections: Vec<Caller>,
    tokens: Tokens,
}

/// What Redis (scripts, CPU), the server (its process), the load generator itself (CPU seconds)
/// and the machine had spent at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    redis: Option<ScriptStats>,
    redis_cpu: Option<RedisCpu>,
    server: Option<ProcessStats>,
    own: Option<f64>,
    machine: Option<MachineTimes>,
}

/// What one worker measured: latencies, and its successes and failures.
type Tally = (Vec<Duration>, u64, u64);

impl Load {
    fn connection(&self, worker: u64) -> Caller {
        self.connections[(worker % self.options.connections) as usize].clone()
    }

    /// What Redis and the server have spent so far, as far as the run can read it.
    async fn spent(&self) -> Result<Spent, String> {
        let (redis, redis_cpu) = match &self.options.redis_url {
            Some(url) => {
                let (scripts, cpu) = redis_stats(url).await?;
                (Some(scripts), cpu)
            }
            None => (None, None),
        };
        let server = match (self.options.server_pid, &self.options.admin) {
            (Some(pid), _) => Some(proc_stats(pid)?),
            (None, Some(admin)) => Some(process_stats(admin).await?),
            (None, None) => None,
        };
        // Where /proc is not there to read, neither figure is printed.
        let own = proc_stats(std::process::id()).ok().map(|s| s.cpu_seconds);
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| machine_times_in(&stat));
        Ok(Spent {
            redis,
            redis_cpu,
            server,
            own,
            machine,
        })
    }

    /// Prints what each operation cost Redis and the server since `before`.
    async fn print_costs(&self, before: Spent, per: &str, operations: u64) -> Result<(), String> {
        let after = self.spent().await?;
        let n = operations.max(1) as f64;
        if let (Some(before), Some(after)) = (before.redis, after.redis) {
            let calls = after.calls - before.calls;
            say(format_args!(
                "  Redis: {:.2} round trips per {per}, {:.1} µs of Redis time per script call, {:.1} µs per {per}",
                calls as f64 / n,
                (after.usec - before.usec) as f64 / calls.max(1) as f64,
                (after.usec - before.usec) as f64 / n
            ))?;
        }
        if let (Some(before), Some(after)) = (before.server, after.server) {
            let waits = match (before.waits, after.waits) {
                (Some(before), Some(after)) => format!(
                    ", {:.2} waits (voluntary context switches) per {per}",
                    after.saturating_sub(before) as f64 / n
                ),
                _ => String::new(),
            };
            say(format_args!(
                "  server: {:.1} µs of CPU per {per}{waits}, {:.1} MiB resident",
                (after.cpu_seconds - before.cpu_seconds) * 1e6 / n,
                after.resident_bytes / (1024.0 * 1024.0)
            ))?;
        }
        if let (Some(before), Some(after)) = (before.redis_cpu, after.redis_cpu) {
            say(format_args!(
                "  Redis CPU: {:.1} µs per {per} (its process), {:.1} µs per {per} (its children that ended meanwhile: append-only file rewrites, snapshots)",
                (after.process - before.process) * 1e6 / n,
                (after.children - before.children) * 1e6 / n
            ))?;
        }
        if let (Some(before), Some(after)) = (before.own, after.own) {
            say(format_args!(
                "  load generator: {:.1} µs of CPU per {per}",
                (after - before) * 1e6 / n
            ))?;
        }
        if let (Some(before), Some(after)) = (before.machine, after.machine) {
            let total = (after.total - before.total).max(1.0);
            let idle = after.idle - before.idle;
            say(format_args!(
                "  machine ({} cores): {:.1} µs of CPU per {per} in all, {:.1} % of it idle, {:.1} % on interrupts",
                after.cores,
                (total - idle) * 1e6 / TICKS_PER_SECOND / n,
                idle * 100.0 / total,
                (after.interrupts - before.interrupts) * 100.0 / total
            ))?;
        }
        Ok(())
    }

    /// The `RouteCall` phase: closed loop, or open loop at `--rate` (latency from the scheduled
    /// start, so a slow server cannot hide its queueing).
    async fn route_calls(&self, requests: Arc<Vec<pb::RouteCallRequest>>) -> Result<(), String> {
        let options = &self.options;
        let telephony = bearer(&self.tokens.telephony)?;
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let before = self.spent().await?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(options.seconds);
        let limit = if options.calls > 0 {
            options.calls
        } else {
            u64::MAX
        };
        let call = move |n: u64| {
            let mut message = requests[(n as usize) % requests.len()].clone();
            message.call_id = format!("load-{run_id}-{n}");
            message
        };
        let tasks = if options.rate > 0 {
            // Open loop: one thread sends each call at its time (the operating system's timers,
            // finer than the runtime's millisecond), each call a task of its own.
            let every = Duration::from_secs_f64(1.0 / options.rate as f64);
            let runtime = tokio::runtime::Handle::current();
            let connections = self.connections.clone();
            tokio::task::spawn_blocking(move || {
                let mut tasks = Vec::new();
                for n in 0..limit {
                    let scheduled = started + every.mul_f64(n as f64);
                    if scheduled >= deadline {
                        break;
                    }
                    std::thread::sleep(scheduled.saturating_duration_since(Instant::now()));
                    let client = connections[(n % connections.len() as u64) as usize].clone();
                    let token = telephony.clone();
                    let message = call(n);
                    tasks.push(
                        runtime.spawn(async move {
                            route_one(&client, message, token, scheduled).await
                        }),
                    );
                }
                tasks
            })
            .await
            .map_err(|e| e.to_string())?
        } else {
            let call = Arc::new(call);
            let counter = Arc::new(AtomicU64::new(0));
            (0..options.concurrency)
                .map(|w| {
                    let client = self.connection(w);
                    let (counter, call, token) = (counter.clone(), call.clone(), telephony.clone());
                    tokio::spawn(async move {
                        let mut total: Tally = (Vec::new(), 0, 0);
                        loop {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            let scheduled = Instant::now();
                            if n >= limit || scheduled >= deadline {
                                break;
                            }
                            let (latency, queued, failed) =
                                route_one(&client, call(n), token.clone(), scheduled).await;
                            total.0.extend(latency);
                            total.1 += queued;
                            total.2 += failed;
                        }
                        total
                    })
                })
                .collect()
        };
        let (latencies, queued, failed) = gather(tasks).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let calls = latencies.len() as u64;
        say(format_args!(
            "RouteCall: {calls} calls in {elapsed:.1} s = {:.0} calls/s ({}), {queued} queued, {failed} failed",
            calls as f64 / elapsed,
            if options.rate > 0 {
                format!("open loop at {}/s", options.rate)
            } else {
                format!("closed loop, {} callers", options.concurrency)
            }
        ))?;
        say(format_args!("  latency: {}", percentiles(latencies)))?;
        self.print_costs(before, "RouteCall", calls + failed).await
    }

    /// The claim → complete phase: each agent claims and completes until its queues are empty.
    async fn claim_and_complete(&self) -> Result<(), String> {
        let before = self.spent().await?;
        let started = Instant::now();
        let agents = &self.tokens.agents;
        let mut tasks = Vec::new();
        for w in 0..self.options.concurrency {
            let token = bearer(&agents[(w as usize) % agents.len().max(1)])?;
            let desk = self.connection(w);
            let separate = self.options.separate_claims;
            tasks.push(tokio::spawn(work_tickets(desk, token, separate)));
        }
        let (cycles, _, failed) = gather(tasks).await?;
        let elapsed = started.elapsed().as_secs_f64();
        say(format_args!(
            "claim -> complete: {} cycles in {elapsed:.1} s = {:.0} cycles/s ({} agents, {}), {failed} failed",
            cycles.len(),
            cycles.len() as f64 / elapsed,
            self.options.concurrency,
            if self.options.separate_claims {
                "two calls a cycle"
            } else {
                "each completion claims the next"
            }
        ))?;
        say(format_args!(
            "  cycle latency: {}",
            percentiles(cycles.clone())
        ))?;
        self.print_costs(before, "cycle", cycles.len() as u64).await
    }
}

/// What the load generator reads of the answers, as a client may: only the fields it uses (prost
/// skips the others unread). It shares the machine with the server, so its CPU goes to calls rather
/// than to decoding decisions and tickets it would drop; the server's work is the same.
mod answers {
    /// Of `RouteCallResponse`: whether the call was queued.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Routed {
        #[prost(bool, tag = "4")]
        pub queued: bool,
    }

    /// Of `ClaimNextTicketResponse`: the ticket held, if any, and the one completed first.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Claimed {
        #[prost(message, optional, tag = "1")]
        pub ticket: Option<Held>,
        #[prost(message, optional, tag = "2")]
        pub completed: Option<Held>,
    }

    /// Of a `Ticket`: what its holder sends back.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Held {
        #[prost(string, tag = "1")]
        pub ticket_id: String,
        #[prost(uint64, tag = "13")]
        pub lease_token: u64,
    }
}

/// A gRPC client of the service's methods on one HTTP/2 connection, that decodes only
/// [`answers`]. It speaks HTTP/2 itself and sends a call's headers, message and end of stream in
/// one write, as grpc-go and grpcio send a unary call. tonic's client sends the headers first and
/// the message once the connection has opened the stream: two writes per call, and at low rates
/// two wake-ups of the server, a cost of the client that real ones do not impose.
#[derive(Clone)]
struct Caller {
    send: h2::client::SendRequest<Bytes>,
    authority: Authority,
}

impl Caller {
    /// Connects to `target` (`http://host:port`: the generator speaks plain HTTP/2).
    async fn connect(target: &str) -> Result<Caller, String> {
        let invalid = |why: &str| format!("--target {target}: {why}");
        let uri: Uri = target.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid(
                "the load generator speaks plain HTTP/2 (http://host:port)",
            ));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((host, authority.port_u16().unwrap_or(80)))
            .await
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        // A connection that breaks, or that the server closes, is not opened again: the calls on
        // it fail and are counted as failures, where a reconnecting client would hide them.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Caller { send, authority })
    }

    /// Calls `path` with `message` under `token` (an `authorization` value), and reads the answer
    /// as `A`.
    async fn call<Q: prost::Message, A: prost::Message + Default>(
        &self,
        path: &'static str,
        message: &Q,
        token: HeaderValue,
    ) -> Result<A, Status> {
        let unavailable = |e: h2::Error| Status::unavailable(e.to_string());
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut request = http::Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::AUTHORIZATION, token);
        let framed = framed(message)?;
        let mut send = self.send.clone().ready().await.map_err(unavailable)?;
        let (response, mut stream) = send.send_request(request, false).map_err(unavailable)?;
        stream.send_data(framed, true).map_err(unavailable)?;
        let (head, mut body) = response.await.map_err(unavailable)?.into_parts();
        if head.status != http::StatusCode::OK {
            return Err(Status::unknown(format!("HTTP status {}", head.status)));
        }
        // An answer of headers alone is a failure, its status in them.
        if let Some(outcome) = grpc_outcome(&head.headers) {
            outcome?;
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(unavailable)?;
        trailers
            .as_ref()
            .and_then(grpc_outcome)
            .unwrap_or_else(|| Err(Status::internal("an answer without grpc-status")))?;
        let message = unframed(&data)
            .ok_or_else(|| Status::internal("an answer that is not one uncompressed message"))?;
        A::decode(message).map_err(|e| Status::internal(e.to_string()))
    }
}

/// A message as gRPC sends it: a byte saying it is not compressed, its length, then itself.
fn framed(message: &impl prost::Message) -> Result<Bytes, Status> {
    let length = message.encoded_len();
    let mut framed = BytesMut::with_capacity(5 + length);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(length).map_err(|_| Status::internal("message too large"))?);
    message
        .encode(&mut framed)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(framed.freeze())
}

/// The message of an answer's data: one uncompressed message, whole, and nothing after it.
fn unframed(data: &[u8]) -> Option<&[u8]> {
    let (&[0, a, b, c, d], message) = data.split_first_chunk::<5>()? else {
        return None;
    };
    (message.len() == u32::from_be_bytes([a, b, c, d]) as usize).then_some(message)
}

/// The outcome a call's `grpc-status` (and `grpc-message`) say, if `headers` hold one.
fn grpc_outcome(headers: &HeaderMap) -> Option<Result<(), Status>> {
    let code = crate::api::layer::code_of(headers.get("grpc-status")?)?;
    if code == Code::Ok {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    Some(Err(Status::new(code, message)))
}

/// One RouteCall: its latency from the time it was due (so that a late answer is counted from
/// then), and whether it was queued, or a failure.
async fn route_one(
    client: &Caller,
    request: pb::RouteCallRequest,
    token: HeaderValue,
    scheduled: Instant,
) -> Tally {
    let routed = client
        .call::<_, answers::Routed>("/callrouter.v1.CallRouting/RouteCall", &request, token)
        .await;
    match routed {
        Ok(routed) => (vec![scheduled.elapsed()], u64::from(routed.queued), 0),
        Err(_) => (Vec::new(), 0, 1),
    }
}

/// One agent claiming and completing until nothing is left: its cycle times and failures. Each
/// completion claims the next ticket in the same call (a desk's "done, next"), unless `separate`:
/// then a cycle is two calls, ClaimNextTicket then CompleteTicket.
async fn work_tickets(desk: Caller, token: HeaderValue, separate: bool) -> Tally {
    let (mut cycles, mut failed) = (Vec::new(), 0u64);
    let mut began = Instant::now();
    let mut held = match claim_next(&desk, &token, None).await {
        Ok(answers::Claimed { ticket, .. }) => ticket,
        Err(_) => return (cycles, 0, 1),
    };
    while let Some(ticket) = held {
        let done = pb::CompleteTicketRequest {
            ticket_id: ticket.ticket_id,
            lease_token: ticket.lease_token,
            resolution: "load".to_owned(),
        };
        // The answer to the cycle's last call: the ticket held next, if any.
        let next = if separate {
            let completed = desk
                .call::<_, answers::Held>(
                    "/callrouter.v1.AgentDesk/CompleteTicket",
                    &done,
                    token.clone(),
                )
                .await;
            match completed {
                Ok(_) => {
                    cycles.push(began.elapsed());
                    began = Instant::now();
                    claim_next(&desk, &token, None).await.map(|c| c.ticket)
                }
                Err(e) => Err(e),
            }
        } else {
            match claim_next(&desk, &token, Some(done)).await {
                Ok(answers::Claimed {
                    completed: Some(_),
                    ticket,
                }) => {
                    cycles.push(began.elapsed());
                    began = Instant::now();
                    Ok(ticket)
                }
                Ok(_) => Err(Status::internal("no completed ticket in the answer")),
                Err(e) => Err(e),
            }
        };
        held = next.unwrap_or_else(|_| {
            failed += 1;
            None
        });
    }
    (cycles, 0, failed)
}

/// A ClaimNextTicket over all the agent's teams, completing `done` first when given.
async fn claim_next(
    desk: &Caller,
    token: &HeaderValue,
    done: Option<pb::CompleteTicketRequest>,
) -> Result<answers::Claimed, Status> {
    let claim = pb::ClaimNextTicketRequest {
        team_ids: vec![],
        lease_seconds: 60,
        complete: done,
        ..Default::default()
    };
    desk.call(
        "/callrouter.v1.AgentDesk/ClaimNextTicket",
        &claim,
        token.clone(),
    )
    .await
}

/// The workers' tallies, summed.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Result<Tally, String> {
    let mut total: Tally = (Vec::new(), 0, 0);
    for t in tasks {
        let (latencies, ok, failed) = t.await.map_err(|e| e.to_string())?;
        total.0.extend(latencies);
        total.1 += ok;
        total.2 += failed;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn script_stats_count_round_trips_and_script_time() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=500,usec_per_call=50.00\r\ncmdstat_eval:calls=2,usec=10,usec_per_call=5.00\r\ncmdstat_script|load:calls=3,usec=1\r\ncmdstat_get:calls=99,usec=1\r\n";
        assert_eq!(
            super::script_stats_in(info),
            super::ScriptStats {
                calls: 15,
                usec: 510
            }
        );
    }

    #[test]
    fn redis_cpu_is_its_process_and_its_ended_children() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:0.125000\r\nused_cpu_user_children:0.500000\r\nused_cpu_sys_main_thread:1.400000\r\n";
        assert_eq!(
            super::redis_cpu_in(info),
            Some(super::RedisCpu {
                process: 3.75,
                children: 0.625
            })
        );
        assert_eq!(super::redis_cpu_in("# CPU\r\nused_cpu_sys:1.5\r\n"), None);
    }

    #[test]
    fn machine_times_sum_the_cores_and_count_them() {
        let stat = "cpu  100 5 40 800 10 1 9 2 0 0\ncpu0 50 2 20 400 5 1 4 1 0 0\ncpu1 50 3 20 400 5 0 5 1 0 0\nintr 12345\nctxt 999\n";
        assert_eq!(
            super::machine_times_in(stat),
            Some(super::MachineTimes {
                total: 967.0,
                idle: 810.0,
                interrupts: 10.0,
                cores: 2
            })
        );
        assert_eq!(super::machine_times_in("cpu  1 2 3\n"), None);
        assert_eq!(super::machine_times_in("intr 1\n"), None);
    }

    #[test]
    fn proc_stats_read_cpu_ticks_and_resident_memory() {
        let stat =
            "4242 (tokio rt (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        let status = "Name:\tcallrouter\nVmRSS:\t   30720 kB\nThreads:\t3\n";
        let stats = super::proc_stats_in(stat, status).expect("both");
        assert_eq!(stats.cpu_seconds, 3.25);
        assert_eq!(stats.resident_bytes, 31_457_280.0);
        assert!(super::proc_stats_in(stat, "Name:\tx\n").is_none());
        assert!(super::proc_stats_in("4242 (x) S 1", status).is_none());
    }

    #[test]
    fn a_threads_waits_are_its_voluntary_context_switches() {
        let status = "Name:\ttokio-rt-worker\nvoluntary_ctxt_switches:\t10954\nnonvoluntary_ctxt_switches:\t2318\n";
        assert_eq!(super::voluntary_switches_in(status), Some(10954));
        assert_eq!(super::voluntary_switches_in("Name:\tx\n"), None);
    }

    #[test]
    fn process_stats_read_cpu_and_memory_from_the_exposition() {
        let text = "HTTP/1.0 200 OK\r\n\r\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\nprocess_resident_memory_bytes 4.194304e+07\ngrpc_server_started_total 3\n";
        let stats = super::process_stats_in(text).expect("both");
        assert_eq!(stats.cpu_seconds, 12.5);
        assert_eq!(stats.resident_bytes, 41_943_040.0);
        assert!(super::process_stats_in("nothing here").is_none());
    }

    #[test]
    fn messages_are_framed_and_unframed_as_grpc_sends_them() {
        let message = super::pb::CompleteTicketRequest {
            ticket_id: "tl-1".to_owned(),
            lease_token: 7,
            resolution: "done".to_owned(),
        };
        let framed = super::framed(&message).expect("framed");
        assert_eq!(framed[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize,
            framed.len() - 5
        );
        let body = super::unframed(&framed).expect("one message");
        assert_eq!(
            <super::pb::CompleteTicketRequest as prost::Message>::decode(body).expect("decoded"),
            message
        );
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(super::unframed(&compressed), None);
        assert_eq!(
            super::unframed(&framed[..framed.len() - 1]),
            None,
            "cut short"
        );
        let mut longer = framed.to_vec();
        longer.push(0);
        assert_eq!(super::unframed(&longer), None, "more than one message");
        assert_eq!(super::unframed(&[0, 0, 0]), None);
        assert_eq!(
            super::unframed(&[0, 0, 0, 0, 0]),
            Some(&[][..]),
            "an empty message"
        );
    }

    #[test]
    fn the_outcome_of_a_call_is_read_from_its_grpc_status() {
        use super::{HeaderMap, HeaderValue, grpc_outcome};
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(grpc_outcome(&headers(&[("content-type", "application/grpc")])).is_none());
        assert!(matches!(
            grpc_outcome(&headers(&[("grpc-status", "0")])),
            Some(Ok(()))
        ));
        let refused = grpc_outcome(&headers(&[
            ("grpc-status", "16"),
            ("grpc-message", "no token"),
        ]))
        .expect("an outcome")
        .expect_err("a failure");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert_eq!(refused.message(), "no token");
        assert!(grpc_outcome(&headers(&[("grpc-status", "x")])).is_none());
    }
}
