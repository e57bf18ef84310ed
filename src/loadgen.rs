//! `callrouter load`: a load generator for a running server. It drives `RouteCall` as the
//! telephony platform with requests built from the registry (tenant references, structured and
//! free-text addresses), then claim → complete cycles as the cooperators' agents, and prints
//! throughput and latency percentiles.
//!
//! At a fixed `--rate` the load is open-loop: each call has a scheduled start and its latency is
//! counted from then, so a slow server cannot hide its queueing (no coordinated omission). Without
//! a rate, `--concurrency` callers send as fast as the server answers. With `--redis-url` the
//! generator also reads Redis's command counters and prints round trips per call.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::api::pb;
use crate::api::pb::agent_desk_client::AgentDeskClient;
use crate::api::pb::call_routing_client::CallRoutingClient;
use crate::registry;

/// Options of `callrouter load`.
#[derive(Debug, Clone, Args)]
pub struct LoadOptions {
    /// Server address.
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
    /// RouteCall calls per second (open loop); 0: as fast as possible with --concurrency callers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent callers (closed loop), and concurrent agents for claim → complete.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// HTTP/2 connections to spread the calls over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub connections: u64,
    /// Skip the claim → complete phase.
    #[arg(long)]
    pub route_only: bool,
    /// Redis of the server, to count round trips per call (read-only: INFO commandstats).
    #[arg(long)]
    pub redis_url: Option<String>,
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

/// Requests Redis has served through scripts, from an `INFO commandstats` reply: each `EVALSHA`
/// (or `EVAL`, or `SCRIPT LOAD` after a script cache flush) is one round trip from a client.
pub fn script_calls_in(commandstats: &str) -> u64 {
    commandstats
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_evalsha:")
                || l.starts_with("cmdstat_eval:")
                || l.starts_with("cmdstat_script|load:")
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

async fn script_calls(url: &str) -> Result<u64, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(script_calls_in(&info))
}

fn bearer(token: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, String> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "a token is not ASCII".to_owned())
}

/// Runs the load and prints the figures.
pub async fn run(options: LoadOptions) -> Result<(), String> {
    let tokens = read_tokens(&options.tokens)?;
    let requests = Arc::new(requests(&options)?);
    let mut channels = Vec::new();
    for _ in 0..options.connections {
        let channel = Channel::from_shared(options.target.clone())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", options.target))?;
        channels.push(channel);
    }
    let load = Load {
        options,
        channels,
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
    channels: Vec<Channel>,
    tokens: Tokens,
}

/// What one worker measured: latencies, and its successes and failures.
type Tally = (Vec<Duration>, u64, u64);

impl Load {
    fn channel(&self, worker: u64) -> Channel {
        self.channels[(worker % self.options.connections) as usize].clone()
    }

    /// Script calls Redis has served so far, when the run counts round trips.
    async fn redis_calls(&self) -> Result<Option<u64>, String> {
        match &self.options.redis_url {
            Some(url) => Ok(Some(script_calls(url).await?)),
            None => Ok(None),
        }
    }

    /// Prints Redis round trips per operation since `before`.
    async fn print_round_trips(
        &self,
        before: Option<u64>,
        per: &str,
        operations: u64,
    ) -> Result<(), String> {
        if let Some(before) = before
            && let Some(after) = self.redis_calls().await?
        {
            println!(
                "  Redis round trips per {per}: {:.2}",
                (after - before) as f64 / operations.max(1) as f64
            );
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
        let counter = Arc::new(AtomicU64::new(0));
        let before = self.redis_calls().await?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(options.seconds);
        let workers = if options.rate > 0 {
            options.concurrency.max(256)
        } else {
            options.concurrency
        };
        let interval =
            (options.rate > 0).then(|| Duration::from_secs_f64(1.0 / options.rate as f64));
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let mut client = CallRoutingClient::new(self.channel(w));
                let (requests, counter, telephony) =
                    (requests.clone(), counter.clone(), telephony.clone());
                tokio::spawn(async move {
                    let (mut latencies, mut queued, mut failed) = (Vec::new(), 0u64, 0u64);
                    loop {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let scheduled = match interval {
                            Some(every) => started + every * n as u32,
                            None => Instant::now(),
                        };
                        if scheduled >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(scheduled.into()).await;
                        let mut message = requests[(n as usize) % requests.len()].clone();
                        message.call_id = format!("load-{run_id}-{n}");
                        let mut request = tonic::Request::new(message);
                        request
                            .metadata_mut()
                            .insert("authorization", telephony.clone());
                        match client.route_call(request).await {
                            Ok(response) => {
                                latencies.push(scheduled.elapsed());
                                queued += u64::from(response.get_ref().queued);
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    (latencies, queued, failed)
                })
            })
            .collect();
        let (latencies, queued, failed) = gather(tasks).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let calls = latencies.len() as u64;
        println!(
            "RouteCall: {calls} calls in {elapsed:.1} s = {:.0} calls/s ({}), {queued} queued, {failed} failed",
            calls as f64 / elapsed,
            if options.rate > 0 {
                format!("open loop at {}/s", options.rate)
            } else {
                format!("closed loop, {} callers", options.concurrency)
            }
        );
        println!("  latency: {}", percentiles(latencies));
        self.print_round_trips(before, "RouteCall", calls + failed)
            .await
    }

    /// The claim → complete phase: each agent claims and completes until its queues are empty.
    async fn claim_and_complete(&self) -> Result<(), String> {
        let before = self.redis_calls().await?;
        let started = Instant::now();
        let agents = &self.tokens.agents;
        let mut tasks = Vec::new();
        for w in 0..self.options.concurrency {
            let token = bearer(&agents[(w as usize) % agents.len().max(1)])?;
            let desk = AgentDeskClient::new(self.channel(w));
            tasks.push(tokio::spawn(work_tickets(desk, token)));
        }
        let (cycles, _, failed) = gather(tasks).await?;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "claim -> complete: {} cycles in {elapsed:.1} s = {:.0} cycles/s ({} agents), {failed} failed",
            cycles.len(),
            cycles.len() as f64 / elapsed,
            self.options.concurrency
        );
        println!("  cycle latency: {}", percentiles(cycles.clone()));
        self.print_round_trips(before, "cycle", cycles.len() as u64)
            .await
    }
}

/// One agent claiming and completing until nothing is left: its cycle times and failures.
async fn work_tickets(
    mut desk: AgentDeskClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
) -> Tally {
    let (mut cycles, mut failed) = (Vec::new(), 0u64);
    loop {
        let began = Instant::now();
        let mut claim = tonic::Request::new(pb::ClaimNextTicketRequest {
            team_ids: vec![],
            lease_seconds: 60,
            ..Default::default()
        });
        claim.metadata_mut().insert("authorization", token.clone());
        let ticket = match desk.claim_next_ticket(claim).await {
            Ok(r) => match r.into_inner().ticket {
                Some(t) => t,
                None => break,
            },
            Err(_) => {
                failed += 1;
                break;
            }
        };
        let mut complete = tonic::Request::new(pb::CompleteTicketRequest {
            ticket_id: ticket.ticket_id,
            lease_token: ticket.lease_token,
            resolution: "load".to_owned(),
        });
        complete
            .metadata_mut()
            .insert("authorization", token.clone());
        match desk.complete_ticket(complete).await {
            Ok(_) => cycles.push(began.elapsed()),
            Err(_) => failed += 1,
        }
    }
    (cycles, 0, failed)
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
    fn script_calls_count_evalsha_eval_and_loads() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5\r\ncmdstat_eval:calls=2,usec=1\r\ncmdstat_script|load:calls=3,usec=1\r\ncmdstat_get:calls=99,usec=1\r\n";
        assert_eq!(super::script_calls_in(info), 15);
    }
}
