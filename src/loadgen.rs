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

/// Requests drawn from the registry: a third by tenant reference, a third by structured address,
/// a third by free text.
fn requests(options: &LoadOptions) -> Result<Vec<pb::RouteCallRequest>, String> {
    let buildings = std::fs::read_to_string(&options.buildings)
        .map_err(|e| format!("{}: {e}", options.buildings.display()))?;
    let tenants = std::fs::read_to_string(&options.tenants)
        .map_err(|e| format!("{}: {e}", options.tenants.display()))?;
    let issues = [
        "technical.plumbing.leak",
        "technical.heating.no_heat",
        "administrative.rent.payment",
        "technical.lift.breakdown",
        "social.neighbour_dispute",
        "emergency.gas_smell",
    ];
    let mut out = Vec::new();
    for (i, line) in buildings.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 8 {
            continue;
        }
        let issue = issues[i % issues.len()].to_owned();
        let address = if i % 2 == 0 {
            pb::Address {
                street_number: f[3].to_owned(),
                street: f[4].to_owned(),
                postcode: f[5].to_owned(),
                ..Default::default()
            }
        } else {
            pb::Address {
                free_text: format!("{} {} {} {}", f[3], f[4], f[5], f[7]),
                ..Default::default()
            }
        };
        out.push(pb::RouteCallRequest {
            address: Some(address),
            issue_type: issue,
            ..Default::default()
        });
    }
    for (i, line) in tenants.lines().skip(1).step_by(15).enumerate() {
        if let Some(reference) = line.split(',').next() {
            out.push(pb::RouteCallRequest {
                tenant_reference: reference.to_owned(),
                issue_type: issues[i % issues.len()].to_owned(),
                ..Default::default()
            });
        }
    }
    if out.is_empty() {
        return Err("no requests could be built from the registries".to_owned());
    }
    Ok(out)
}

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
    let telephony = bearer(&tokens.telephony)?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let counter = Arc::new(AtomicU64::new(0));
    let before = match &options.redis_url {
        Some(url) => Some(script_calls(url).await?),
        None => None,
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    let workers = if options.rate > 0 {
        options.concurrency.max(256)
    } else {
        options.concurrency
    };
    let interval = (options.rate > 0).then(|| Duration::from_secs_f64(1.0 / options.rate as f64));
    for w in 0..workers {
        let mut client =
            CallRoutingClient::new(channels[(w % options.connections) as usize].clone());
        let requests = requests.clone();
        let counter = counter.clone();
        let telephony = telephony.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut queued, mut failed) = (0u64, 0u64);
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
                        if response.get_ref().queued {
                            queued += 1;
                        }
                    }
                    Err(_) => failed += 1,
                }
            }
            (latencies, queued, failed)
        }));
    }
    let mut latencies = Vec::new();
    let (mut queued, mut failed) = (0, 0);
    for t in tasks {
        let (l, q, f) = t.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        queued += q;
        failed += f;
    }
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
    if let (Some(url), Some(before)) = (&options.redis_url, before) {
        let after = script_calls(url).await?;
        println!(
            "  Redis round trips per RouteCall: {:.2}",
            (after - before) as f64 / (calls + failed).max(1) as f64
        );
    }
    if options.route_only {
        return Ok(());
    }

    let before = match &options.redis_url {
        Some(url) => Some(script_calls(url).await?),
        None => None,
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..options.concurrency {
        let token = bearer(&tokens.agents[(w as usize) % tokens.agents.len().max(1)])?;
        let mut desk = AgentDeskClient::new(channels[(w % options.connections) as usize].clone());
        tasks.push(tokio::spawn(async move {
            let mut cycles = Vec::new();
            let mut failed = 0u64;
            loop {
                let began = Instant::now();
                let mut claim = tonic::Request::new(pb::ClaimNextTicketRequest {
                    team_ids: vec![],
                    lease_seconds: 60,
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
            (cycles, failed)
        }));
    }
    let mut cycles = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (c, f) = t.await.map_err(|e| e.to_string())?;
        cycles.extend(c);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "claim -> complete: {} cycles in {elapsed:.1} s = {:.0} cycles/s ({} agents), {failed} failed",
        cycles.len(),
        cycles.len() as f64 / elapsed,
        options.concurrency
    );
    println!("  cycle latency: {}", percentiles(cycles.clone()));
    if let (Some(url), Some(before)) = (&options.redis_url, before) {
        let after = script_calls(url).await?;
        println!(
            "  Redis round trips per cycle: {:.2}",
            (after - before) as f64 / cycles.len().max(1) as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn script_calls_count_evalsha_eval_and_loads() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5\r\ncmdstat_eval:calls=2,usec=1\r\ncmdstat_script|load:calls=3,usec=1\r\ncmdstat_get:calls=99,usec=1\r\n";
        assert_eq!(super::script_calls_in(info), 15);
    }
}
