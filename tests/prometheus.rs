//! The metrics as an operator's monitoring reads them: a real Prometheus (Debian's `prometheus`,
//! scraping every second, with `deploy/prometheus/alerts.yml`) over two callrouter instances that
//! share one Redis, the Redis exporter (`prometheus-redis-exporter`) and Alertmanager
//! (`prometheus-alertmanager`, with `deploy/alertmanager/alertmanager.yml`).
//!
//! - the store-wide figures count once: sums over instances equal what the store holds, before and
//!   after the instance exporting them stops;
//! - every dashboard query and every alert expression evaluates, and every rule loads healthy;
//! - the Redis alerts' series exist on the real exporter;
//! - a refused reload fires its alert, which reaches Alertmanager on the operations route.

mod support {
    pub mod api;
    pub mod app;
    pub mod binary;
    pub mod ports;
    pub mod redis_server;
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callrouter::api::pb;
use callrouter::routing::partition::QueueRef;
use callrouter::store::redis::RedisStore;
use callrouter::store::{Presence, StoreSettings, TicketStore};
use serde_json::Value;
use support::api::{TestServer, leak_call};
use support::app::demo_copy;
use support::binary::free_port;
use support::redis_server::{EXPORTER_PASSWORD, RedisServer};

/// A monitoring program CI installs; outside CI its absence skips the test.
fn installed(program: &str, package: &str) -> bool {
    if Command::new(program).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is missing (apt-get install {package})"
    );
    eprintln!("SKIPPED: {program} is missing (apt-get install {package})");
    false
}

/// A child process killed when the test ends.
struct Process(Child);

impl Process {
    fn spawn(program: &str, args: &[String]) -> Process {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        Process(child)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of `GET path` on a loopback port, as HTTP/1.0 (no chunked encoding to undo).
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_owned()))
}

fn get_json(port: u16, path: &str) -> Value {
    let body = get(port, path).unwrap_or_else(|| panic!("GET {path} on :{port}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus of the test's own, on loopback.
struct Prometheus {
    port: u16,
    _process: Process,
}

impl Prometheus {
    fn start(dir: &Path, callrouter: &[SocketAddr], exporter: u16, alertmanager: u16) -> Self {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        let targets: Vec<String> = callrouter.iter().map(|a| format!("\"{a}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{alertmanager}\"]\n\
             scrape_configs:\n  - job_name: callrouter\n    static_configs:\n      - targets: [{targets}]\n\
             \x20 - job_name: redis\n    static_configs:\n      - targets: [\"127.0.0.1:{exporter}\"]\n",
            rules = rules.display(),
            targets = targets.join(", "),
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let port = free_port();
        let process = Process::spawn(
            "prometheus",
            &[
                format!("--config.file={}", file.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
        );
        let prometheus = Prometheus {
            port,
            _process: process,
        };
        eventually("Prometheus is ready", || get(port, "/-/ready").is_some());
        prometheus
    }

    /// The result of an instant query; panics when it does not evaluate.
    fn query(&self, expr: &str) -> Vec<Value> {
        let answer = get_json(self.port, &format!("/api/v1/query?query={}", encode(expr)));
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The single value of a query that aggregates to one number.
    fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        let first = result.first()?;
        first["value"][1].as_str()?.parse().ok()
    }
}

/// Waits up to 30 s for `check` to hold.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the store holds: waiting and reserved tickets, agents, available agents, and agents
/// counted once per team they serve.
async fn truth(url: &str, queues: &[QueueRef]) -> (u64, u64, usize, usize, usize) {
    let settings = StoreSettings {
        namespace: "callrouter:api".to_owned(),
        ..StoreSettings::default()
    };
    let store = RedisStore::connect(url, settings).expect("connect");
    let (stats, counts) = store.queue_stats(queues).await.expect("stats");
    let agents = store.agents().await.expect("agents");
    (
        stats.iter().map(|s| s.depth).sum(),
        counts.iter().map(|(_, c)| c.reserved).sum(),
        agents.len(),
        agents
            .iter()
            .filter(|a| a.presence == Presence::Available)
            .count(),
        agents.iter().map(|a| a.teams.len()).sum(),
    )
}

/// Every query of the dashboard, its variables at "All".
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string("deploy/grafana/dashboards/callrouter.json").expect("read");
    let dashboard: Value = serde_json::from_str(&text).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            queries.push(expr.replace("$cooperator", ".*").replace("$team", ".*"));
        }
    }
    queries
}

fn alert_expressions(prometheus: &Prometheus) -> Vec<(String, String, String)> {
    let rules = get_json(prometheus.port, "/api/v1/rules");
    let mut found = Vec::new();
    for group in rules["data"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            found.push((
                rule["name"].as_str().unwrap_or_default().to_owned(),
                rule["query"].as_str().unwrap_or_default().to_owned(),
                rule["health"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    found
}

async fn route(server: &TestServer, id: &str, issue: &str) {
    let mut request = leak_call(id);
    request.issue_type = issue.to_owned();
    let routed = server
        .routing(Some("telephony-ivr"))
        .route_call(request)
        .await
        .expect("routed")
        .into_inner();
    assert!(routed.queued, "{id} queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_counts_the_store_once_and_every_query_and_rule_evaluates() {
    for (program, package) in [
        ("prometheus", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("prometheus-redis-exporter", "prometheus-redis-exporter"),
    ] {
        if !installed(program, package) {
            return;
        }
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let redis_port = url.rsplit(':').next().map(|p| p.trim_end_matches('/'));
    let redis_port = redis_port.expect("a port").to_owned();
    let mut first = TestServer::over_redis(&url, redis).await;
    let config = demo_copy("prometheus");
    let second = first.another_instance_on(config.clone()).await;
    let dir: PathBuf = config
        .parent()
        .and_then(Path::parent)
        .expect("the copy's directory")
        .join("monitoring");
    std::fs::create_dir_all(&dir).expect("dir");

    let exporter = free_port();
    let _exporter = Process::spawn(
        "prometheus-redis-exporter",
        &[
            format!("-redis.addr=redis://127.0.0.1:{redis_port}"),
            "-redis.user=exporter".to_owned(),
            format!("-redis.password={EXPORTER_PASSWORD}"),
            format!("-web.listen-address=127.0.0.1:{exporter}"),
        ],
    );
    let alertmanager = free_port();
    let routes = std::fs::read_to_string("deploy/alertmanager/alertmanager.yml")
        .expect("alertmanager.yml")
        .replace(
            "http://alert-gateway:9095",
            &format!("http://127.0.0.1:{}", free_port()),
        );
    std::fs::write(dir.join("alertmanager.yml"), routes).expect("write");
    let _alertmanager = Process::spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("alertmanager").display()),
            format!("--web.listen-address=127.0.0.1:{alertmanager}"),
            "--cluster.listen-address=".to_owned(),
        ],
    );
    let prometheus = Prometheus::start(&dir, &[first.admin, second.admin], exporter, alertmanager);

    // A morning: calls through both instances, agents signing in, some tickets claimed.
    for n in 0..8 {
        route(&first, &format!("prom-a-{n}"), "technical.plumbing.leak").await;
        route(
            &second,
            &format!("prom-b-{n}"),
            "administrative.rent.payment",
        )
        .await;
    }
    route(&second, "prom-c-0", "social.neighbour_dispute").await;
    for (agent, presence, server) in [
        ("tl-agent-1", pb::Presence::Available, &first),
        ("gh-agent-1", pb::Presence::Available, &second),
        ("ah-agent-1", pb::Presence::Break, &second),
    ] {
        server
            .desk(Some(agent))
            .set_agent_status(pb::SetAgentStatusRequest {
                presence: presence as i32,
            })
            .await
            .expect("presence");
    }
    let mut desk = first.desk(Some("tl-agent-1"));
    for _ in 0..3 {
        support::api::claim(&mut desk, vec![]).await;
    }

    let queues = callrouter::config::load(&config)
        .expect("the demo loads")
        .all_queues();
    let (waiting, reserved, agents, available, team_agents) = truth(&url, &queues).await;
    assert_eq!((reserved, agents, available), (3, 3, 2));
    assert!(waiting >= 10, "{waiting} waiting");

    eventually("Prometheus sees the store and Redis", || {
        prometheus.value("sum(callrouter_queue_depth)") == Some(waiting as f64)
            && prometheus.value("sum(callrouter_agents)") == Some(agents as f64)
            && prometheus.value("redis_up") == Some(1.0)
    });
    for (expr, expected) in [
        ("sum(callrouter_queue_depth)", waiting as f64),
        (
            "sum(callrouter_queue_held_tickets{state=\"RESERVED\"})",
            reserved as f64,
        ),
        ("sum(callrouter_agents)", agents as f64),
        (
            "sum(callrouter_agents{presence=\"AVAILABLE\"})",
            available as f64,
        ),
        ("sum(callrouter_team_agents)", team_agents as f64),
        ("sum(callrouter_store_metrics_holder)", 1.0),
        ("count(callrouter_queue_depth)", (queues.len() * 3) as f64),
        ("count(count by (instance) (callrouter_queue_depth))", 1.0),
        // Events are counted by the instance that served them: sums are the platform's.
        (
            "sum(callrouter_calls_routed_total{outcome=\"queued\"})",
            17.0,
        ),
        (
            "sum(grpc_server_handled_total{job=\"callrouter\",grpc_method=\"RouteCall\",grpc_code=\"OK\"})",
            17.0,
        ),
        ("sum(callrouter_tickets_answered_total)", 3.0),
        ("count(count by (digest) (callrouter_config_info))", 1.0),
        ("count(up{job=\"callrouter\"} == 1)", 2.0),
        ("redis_up", 1.0),
    ] {
        // Each instance is scraped on its own schedule: the last calls show within a scrape.
        let deadline = Instant::now() + Duration::from_secs(10);
        while prometheus.value(expr) != Some(expected) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(prometheus.value(expr), Some(expected), "{expr}");
    }

    // Every dashboard query and every alert expression evaluates; every rule is healthy.
    for expr in dashboard_queries() {
        prometheus.query(&expr);
    }
    eventually("every rule evaluated", || {
        alert_expressions(&prometheus)
            .iter()
            .all(|(_, _, health)| health == "ok")
    });
    let rules = alert_expressions(&prometheus);
    assert!(rules.len() >= 18, "{} rules loaded", rules.len());
    println!(
        "{} dashboard queries and {} rules evaluate; store: {waiting} waiting, {reserved} reserved, {agents} agents — each counted once over two instances",
        dashboard_queries().len(),
        rules.len()
    );
    for (name, expr, _) in &rules {
        assert!(!expr.is_empty(), "{name}");
        prometheus.query(expr);
    }
    // The Redis alerts read series the real exporter writes.
    let admin = first.redis_mut();
    admin.command(&["SET", "callrouter:probe", "x"]);
    admin.command(&["LPUSH", "callrouter:probe", "y"]);
    eventually("the exporter counts Redis's errors", || {
        prometheus
            .value("sum(redis_errors_total{err=\"WRONGTYPE\"})")
            .is_some()
    });
    for series in [
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_connected_slaves",
        "redis_instance_info{role=\"master\"}",
    ] {
        assert!(!prometheus.query(series).is_empty(), "{series}");
    }

    // A refused reload fires its alert, which reaches Alertmanager on the operations route.
    std::fs::write(&config, "this is not TOML [").expect("break the configuration");
    second
        .ops(Some("ops-1"))
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .expect_err("refused");
    eventually("the alert reaches Alertmanager", || {
        let alerts = get(alertmanager, "/api/v2/alerts").unwrap_or_default();
        let alerts: Value = serde_json::from_str(&alerts).unwrap_or_default();
        alerts.as_array().into_iter().flatten().any(|a| {
            a["labels"]["alertname"] == "CallrouterReloadRefused"
                && a["receivers"][0]["name"] == "operations"
        })
    });

    // The instance exporting the store's figures stops: the other takes over, sums unchanged.
    let holder = prometheus.query("callrouter_store_metrics_holder == 1");
    let holder = holder[0]["metric"]["instance"].as_str().expect("instance");
    let redis = first.redis.take().expect("the first instance's Redis");
    let survivor = if holder == first.admin.to_string() {
        first.stop().await;
        second.admin
    } else {
        second.stop().await;
        first.admin
    };
    eventually("the other instance exports the store's figures", || {
        let now = prometheus.query("callrouter_store_metrics_holder == 1");
        now.len() == 1
            && now[0]["metric"]["instance"] == survivor.to_string()
            && prometheus.value("sum(callrouter_queue_depth)") == Some(waiting as f64)
            && prometheus.value("sum(callrouter_agents)") == Some(agents as f64)
    });
    drop(redis);
}
