//! The `callrouter` command: parses arguments and hands over to the library.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use callrouter::config::{self, DEMO_CONFIG};
use callrouter::explain::{DecisionTime, explain_lines};

/// jemalloc: the request path allocates a lot of small, short-lived buffers, which it serves with
/// fewer instructions than the system allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "callrouter",
    version,
    about = "Routes tenant calls to the right landlord's team"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validates the configuration and registries without serving; exits non-zero on any problem.
    CheckConfig {
        /// Main configuration file.
        #[arg(long, env = "CALLROUTER_CONFIG", default_value = DEMO_CONFIG)]
        config: PathBuf,
    },
    /// Dry run: reads one request per line as JSON and prints one decision per line as JSON.
    Explain {
        /// Main configuration file.
        #[arg(long, env = "CALLROUTER_CONFIG", default_value = DEMO_CONFIG)]
        config: PathBuf,
        /// Decide every request at this time (RFC 3339). Default: each request's received_at, else now.
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
        /// File of requests; standard input when absent.
        input: Option<PathBuf>,
    },
    /// Writes caller spellings of every registry address as explain request lines (deterministic
    /// for a seed), each call_id naming the building and the kind of variation.
    Spellings {
        /// Main configuration file (its building registry is spelt).
        #[arg(long, env = "CALLROUTER_CONFIG", default_value = DEMO_CONFIG)]
        config: PathBuf,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Serves the gRPC API (CallRouting, AgentDesk, Operations, health, reflection) until SIGINT/SIGTERM.
    Serve(Box<callrouter::serve::ServeOptions>),
    /// Load generator: drives RouteCall and claim -> complete against a running server.
    Load(Box<callrouter::loadgen::LoadOptions>),
    /// Exits 0 when the admin listener says the service is ready (for container health checks).
    Healthcheck {
        /// Admin address of the service.
        #[arg(long, env = "CALLROUTER_ADMIN_ADDR", default_value = callrouter::serve::DEFAULT_ADMIN_ADDR)]
        admin_addr: std::net::SocketAddr,
    },
    /// Prints the SHA-256 of a bearer token, as the secrets file holds it.
    HashToken {
        /// The token (read from standard input when absent, to keep it out of shell history).
        token: Option<String>,
    },
    /// Prints a Redis script as the server loads it: the shared prelude cut down to what the script
    /// uses, then the script (to load it by hand, or to measure it with redis-benchmark).
    Script {
        /// The script's name (create, claim, accept, complete, …).
        name: String,
    },
    /// Generates the building and tenant registries (deterministic for a seed and scale).
    GenerateRegistry {
        /// Main configuration file (cooperators, territories, sectors).
        #[arg(long, default_value = DEMO_CONFIG)]
        config: PathBuf,
        /// Seed of the generator; the demo registry uses the default.
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// Size multiplier: 1 for the demo (~2,000 buildings), 10 or 100 for benchmarks.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
        scale: u16,
        /// Directory to write buildings.csv and tenants.csv into.
        #[arg(long, default_value = "data")]
        out: PathBuf,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("'{text}' is not an RFC 3339 time (e.g. 2026-11-27T10:30:00+01:00): {e}")
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(options) => serve(*options),
        Command::Healthcheck { admin_addr } => healthcheck(admin_addr),
        Command::Load(options) => load(*options),
        Command::HashToken { token } => {
            let token = match token {
                Some(token) => token,
                None => {
                    let mut line = String::new();
                    if let Err(e) = io::stdin().read_line(&mut line) {
                        eprintln!("cannot read the token: {e}");
                        return ExitCode::FAILURE;
                    }
                    line.trim().to_owned()
                }
            };
            println!("{}", callrouter::app::tokens::hash_token(&token));
            ExitCode::SUCCESS
        }
        Command::Script { name } => match callrouter::store::redis::prelude::script_text(&name) {
            Some(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                let known: Vec<&str> = callrouter::store::redis::prelude::SCRIPTS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect();
                eprintln!("no script '{name}'; the scripts are {}", known.join(", "));
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { config } => check_config(&config),
        Command::Spellings { config, seed } => spellings(&config, seed),
        Command::Explain { config, at, input } => explain(&config, at, input),
        Command::GenerateRegistry {
            config,
            seed,
            scale,
            out,
        } => match callrouter::datagen::generate(&config, seed, usize::from(scale), &out) {
            Ok(made) => {
                println!(
                    "wrote {} buildings ({} dwellings) and {} tenants to {}",
                    made.buildings,
                    made.dwellings,
                    made.tenants,
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(options: callrouter::serve::ServeOptions) -> ExitCode {
    let _flush_logs = callrouter::serve::init_logging(options.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = options.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    run_on(runtime, "serve", callrouter::serve::serve(options))
}

/// The load generator, on as many threads as its options give (one: a runtime on this thread).
fn load(options: callrouter::loadgen::LoadOptions) -> ExitCode {
    let runtime = match options.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        threads => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(threads as usize);
            runtime
        }
    };
    run_on(runtime, "load", callrouter::loadgen::run(options))
}

/// Runs an async command on a runtime built from `builder`.
fn run_on(
    mut builder: tokio::runtime::Builder,
    what: &str,
    command: impl std::future::Future<Output = Result<(), String>>,
) -> ExitCode {
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{what}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{what}: {e}");
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// GET /readyz on the admin listener: ready means HTTP 200 within two seconds.
fn healthcheck(admin: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let answer = std::net::TcpStream::connect_timeout(&admin, timeout).and_then(|mut stream| {
        stream.set_read_timeout(Some(timeout))?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    });
    match answer {
        Ok(response) if response.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("not ready: {}", response.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("no answer from {admin}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let started = Instant::now();
    match config::load(path) {
        Ok(router) => {
            println!(
                "{}: ok — {} cooperators, {} teams, {} issue types, {} rules, {} buildings, {} tenants (loaded in {} ms)",
                path.display(),
                router.cooperators.len(),
                router.teams.len(),
                router.issue_types.len(),
                router.rules.len(),
                router.buildings.len(),
                router.tenant_count(),
                started.elapsed().as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_problems(&e);
            eprintln!("{}: {} problem(s)", path.display(), e.problems.len());
            ExitCode::FAILURE
        }
    }
}

/// Prints configuration problems, the first hundred of them: past that, the rest is noise.
fn report_problems(error: &callrouter::diagnostics::ConfigError) {
    const SHOWN: usize = 100;
    for problem in error.problems.iter().take(SHOWN) {
        eprintln!("{problem}");
    }
    if error.problems.len() > SHOWN {
        eprintln!("… and {} more", error.problems.len() - SHOWN);
    }
}

fn spellings(path: &std::path::Path, seed: u64) -> ExitCode {
    let router = match config::load(path) {
        Ok(router) => router,
        Err(e) => {
            report_problems(&e);
            return ExitCode::FAILURE;
        }
    };
    let buildings: Vec<_> = router
        .buildings
        .iter()
        .map(|b| b.building.clone())
        .collect();
    match callrouter::spellings::write_requests(&buildings, seed, io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        // A reader that has seen enough ("| head") is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spellings: {e}");
            ExitCode::FAILURE
        }
    }
}

fn explain(path: &std::path::Path, at: Option<DateTime<Utc>>, input: Option<PathBuf>) -> ExitCode {
    let router = match config::load(path) {
        Ok(router) => router,
        Err(e) => {
            report_problems(&e);
            return ExitCode::FAILURE;
        }
    };
    let time = at.map_or(DecisionTime::FromRequest, DecisionTime::Fixed);
    let stdout = io::stdout().lock();
    let result = match input {
        Some(file) => match File::open(&file) {
            Ok(f) => explain_lines(&router, BufReader::new(f), stdout, time),
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                return ExitCode::FAILURE;
            }
        },
        None => explain_lines(&router, io::stdin().lock(), stdout, time),
    };
    // The process ends here: freeing the registry's indexes one allocation at a time would cost a
    // short run a tenth of its time for nothing.
    std::mem::forget(router);
    match result {
        Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!("{} request(s) could not be routed", summary.failed);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("explain: {e}");
            ExitCode::FAILURE
        }
    }
}
