//! The operations artefacts in `deploy/` agree with the service: the Grafana dashboard parses and
//! every metric its panels and the alert rules query is one the service exports; promtool accepts
//! the alert rules and the Prometheus configuration.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use callrouter::metrics::{Catalogue, Metrics, QueueFigures, RoutedCall, StoreFigures, rpc_labels};
use callrouter::routing::partition::{Partition, QueueRef};
use callrouter::routing::urgency::Urgency;
use callrouter::store::{Presence, StoreError};

/// Every sample name the service exposes once each metric has seen one event.
fn exported() -> BTreeSet<String> {
    let m = Metrics::new();
    let tl = Partition::parse("touraine-logement");
    let rent = QueueRef::new("touraine-logement", "touraine-logement.rent");
    m.prime(&Catalogue {
        partitions: vec![tl.clone(), Partition::Platform],
        queues: vec![rent.clone()],
        categories: vec!["administrative".to_owned()],
    });
    let route = rpc_labels("/callrouter.v1.CallRouting/RouteCall");
    m.rpc_started(&route);
    m.rpc_handled(&route, tonic::Code::Ok, Duration::from_millis(1), 1, 1);
    m.routed(&RoutedCall {
        partition: &tl,
        team: "touraine-logement.rent",
        category: "administrative",
        urgency: Urgency::U1,
        on_call: true,
        outcome: "queued",
        level: "BUILDING",
        decision: Duration::from_micros(2),
    });
    m.claimed(&rent, Urgency::U2, 1000, true);
    m.completed(&rent, Urgency::U2, 2000, true);
    m.abandoned(&rent, Urgency::U2, Some(3000));
    m.released(&rent);
    m.transferred(&rent, &Partition::Platform);
    m.reaped(&tl, 1, 1);
    m.watch_streams(1);
    let figures = StoreFigures {
        queues: vec![QueueFigures {
            queue: rent.clone(),
            urgency: Urgency::U2,
            depth: 1,
            oldest_wait: Some(Duration::from_secs(1)),
            near_due: 1,
            overdue: 0,
        }],
        held: vec![(rent.clone(), 1, 0)],
        move_backlog: vec![(tl.clone(), 0)],
        agents: vec![(tl.clone(), Presence::Available, 1)],
        team_agents: vec![(rent.clone(), Presence::Available, 1)],
    };
    m.store_wide_holder(true);
    m.store_wide(&figures, 1.0);
    m.presence_time(&figures.team_agents, Duration::from_secs(1));
    m.store_operation(
        "create",
        Duration::from_millis(1),
        Some(&StoreError::Timeout),
    );
    m.store_up(true);
    m.config(1, "0123456789abcdef");
    m.opening(&[(tl, true)]);
    m.reload(true);
    m.encode()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

/// The metric names a query mentions: ours (`callrouter_…`) and the conventional ones we export
/// (`grpc_server_…`, `process_…`).
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = query.as_bytes();
    for prefix in ["callrouter_", "grpc_server_", "process_"] {
        let mut i = 0;
        while let Some(at) = query[i..].find(prefix) {
            let start = i + at;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = query[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(query.len(), |n| start + n);
            if boundary {
                names.push(query[start..end].to_owned());
            }
            i = end;
        }
    }
    names
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    let exported = exported();
    let text =
        std::fs::read_to_string("deploy/grafana/dashboards/callrouter.json").expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(
        panels.len() >= 10,
        "a dashboard with queues, waits, service level, calls, errors, latencies"
    );
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty(),
            "panel {} queries something",
            panel["title"]
        );
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "panel {}: {expr} names no callrouter metric",
                panel["title"]
            );
            for name in names {
                assert!(
                    exported.contains(&name),
                    "panel {}: {name} is not exported (have {exported:?})",
                    panel["title"]
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 16);
}

#[test]
fn every_alert_names_an_exported_metric() {
    let exported = exported();
    let rules = std::fs::read_to_string("deploy/prometheus/alerts.yml").expect("alerts");
    let names = metric_names(&rules);
    assert!(names.len() >= 6);
    for name in names {
        assert!(
            exported.contains(&name),
            "alerts.yml: {name} is not exported"
        );
    }
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    for alert in [
        "CallrouterU1NearDue",
        "CallrouterTicketsOverdue",
        "CallrouterRedisUnreachable",
        "CallrouterDegradedRouting",
        "CallrouterErrorRate",
        "CallrouterNoAgentAvailable",
        "CallrouterInstanceDown",
        "CallrouterReloadRefused",
        "CallrouterConfigMismatch",
        "CallrouterEscalations",
        "RedisMemoryHigh",
        "RedisRejectsWrites",
        "RedisReplicationBroken",
    ] {
        assert!(alerts.contains(&alert), "{alert} is defined");
    }
    for alert in alerts {
        let anchor = rules
            .split(&format!("alert: {alert}"))
            .nth(1)
            .and_then(|rest| rest.split("runbook: docs/operations.md#").nth(1))
            .and_then(|rest| rest.lines().next())
            .expect("every alert names its runbook entry");
        let runbook = std::fs::read_to_string("docs/operations.md").expect("runbook");
        let heading = anchor.replace('-', " ");
        assert!(
            runbook.lines().any(
                |l| l.starts_with("### ") && l[4..].to_lowercase().replace('-', " ") == heading
            ),
            "docs/operations.md has a '### …' entry for #{anchor}"
        );
    }
}

#[test]
fn promtool_accepts_the_rules_and_the_configuration() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool is missing (apt-get install prometheus)");
        return;
    }
    for args in [
        ["check", "rules", "deploy/prometheus/alerts.yml"],
        ["check", "config", "deploy/prometheus/prometheus.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A tool CI installs from Debian's packages; outside CI its absence skips the test.
fn tool(name: &str, package: &str) -> bool {
    if Command::new(name).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing (apt-get install {package})"
    );
    eprintln!("SKIPPED: {name} is missing (apt-get install {package})");
    false
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}:\n{text}");
    text
}

#[test]
fn every_alert_has_unit_tests_that_fire_it_and_keep_it_silent() {
    let rules = std::fs::read_to_string("deploy/prometheus/alerts.yml").expect("alerts");
    let tests = std::fs::read_to_string("deploy/prometheus/alerts.test.yml").expect("tests");
    let cases: Vec<(&str, bool)> = {
        let lines: Vec<&str> = tests.lines().collect();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let name = l.trim().strip_prefix("alertname: ")?;
                let fires = lines
                    .get(i + 1)
                    .is_some_and(|next| next.trim() == "exp_alerts:");
                Some((name, fires))
            })
            .collect()
    };
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    for alert in &alerts {
        assert!(
            cases.contains(&(alert, true)),
            "{alert}: no test where it fires"
        );
        assert!(
            cases.contains(&(alert, false)),
            "{alert}: no test where it stays silent"
        );
        let severity = rules
            .split(&format!("- alert: {alert}\n"))
            .nth(1)
            .and_then(|rest| rest.split("severity: ").nth(1))
            .and_then(|rest| rest.lines().next())
            .expect("a severity");
        assert!(
            ["page", "ticket"].contains(&severity),
            "{alert}: severity {severity} has no route"
        );
    }
    if tool("promtool", "prometheus") {
        let out = run(
            "promtool",
            &["test", "rules", "deploy/prometheus/alerts.test.yml"],
        );
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

#[test]
fn every_compose_dependency_is_a_service_and_the_instances_follow_sentinel() {
    let compose = std::fs::read_to_string("deploy/compose.yaml").expect("compose");
    let services: Vec<&str> = compose
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && !l.trim().starts_with('#'))
        .filter_map(|l| l.trim().split(':').next())
        .collect();
    let lines: Vec<&str> = compose.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "depends_on:" {
            continue;
        }
        for dependency in lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("      "))
            .filter(|l| !l.starts_with("       "))
        {
            let name = dependency.trim().trim_end_matches(':');
            assert!(
                services.contains(&name),
                "depends on {name}: no such service"
            );
        }
    }
    for service in [
        "redis-primary",
        "redis-replica-1",
        "redis-replica-2",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
    ] {
        assert!(services.contains(&service), "{service} in the stack");
    }
    assert!(
        compose.contains(
            "CALLROUTER_REDIS_SENTINEL: sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
        )
    );
    assert!(compose.contains("CALLROUTER_REDIS_SENTINEL_MASTER: callrouter"));
    assert!(compose.contains("CALLROUTER_REDIS_WAIT_REPLICAS: \"1\""));
    let sentinel = std::fs::read_to_string("deploy/redis/sentinel.conf").expect("sentinel");
    assert!(sentinel.contains("sentinel monitor callrouter redis-primary 6379 2"));
}

#[test]
fn alertmanager_routes_pages_to_the_on_call_and_tickets_to_operations() {
    if !tool("amtool", "prometheus-alertmanager") {
        return;
    }
    let config = "--config.file=deploy/alertmanager/alertmanager.yml";
    run(
        "amtool",
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
    for (severity, receiver) in [("page", "on-call"), ("ticket", "operations")] {
        let out = run(
            "amtool",
            &[
                "config",
                "routes",
                "test",
                config,
                &format!("severity={severity}"),
                "alertname=CallrouterTicketsOverdue",
                "cooperator=touraine-logement",
            ],
        );
        assert_eq!(out.lines().next(), Some(receiver), "{severity}: {out}");
    }
    let compose = std::fs::read_to_string("deploy/compose.yaml").expect("compose");
    let monitoring =
        std::fs::read_to_string("deploy/kubernetes/monitoring.yaml").expect("monitoring");
    for text in [&compose, &monitoring] {
        assert!(text.contains("alertmanager.yml"));
        assert!(text.contains("redis_exporter"));
        assert!(text.contains("REDIS_USER") && text.contains("exporter"));
    }
    let prometheus =
        std::fs::read_to_string("deploy/prometheus/prometheus.yml").expect("prometheus");
    assert!(prometheus.contains("alertmanager:9093"));
    assert!(prometheus.contains("redis-exporter:9121"));
}

/// Every file under a directory, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn no_deployment_artefact_ships_the_development_tokens() {
    let dev = std::fs::read_to_string("config/dev-tokens.toml").expect("dev tokens");
    let published: Vec<String> = dev
        .lines()
        .filter_map(|l| l.strip_prefix("token = \""))
        .map(|t| t.trim_end_matches('"').to_owned())
        .collect();
    assert_eq!(published.len(), 17, "the published tokens");
    let hashes: Vec<String> = published
        .iter()
        .map(|t| callrouter::app::tokens::hash_token(t))
        .collect();
    for file in files_under(std::path::Path::new("deploy")) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for secret in published.iter().chain(&hashes) {
            assert!(
                !text.contains(secret.as_str()),
                "{} ships a development token or its hash",
                file.display()
            );
        }
    }
    // The image is built from the repository root: its context leaves the development files out.
    let ignored = std::fs::read_to_string(".dockerignore").expect(".dockerignore");
    for dev_file in ["config/dev-tokens.toml", "config/dev-secrets.toml"] {
        assert!(
            ignored.lines().any(|l| l == dev_file),
            "{dev_file} in the image"
        );
    }
    // The compose stack needs real secrets and publishes its ports on loopback only.
    let compose = std::fs::read_to_string("deploy/compose.yaml").expect("compose");
    assert!(compose.contains("CALLROUTER_SECRETS:"));
    for line in compose
        .lines()
        .filter(|l| l.trim_start().starts_with("- \""))
    {
        if line.contains(':') && line.chars().filter(|c| *c == ':').count() >= 2 {
            assert!(
                line.contains("\"127.0.0.1:"),
                "published beyond loopback: {line}"
            );
        }
    }
}

#[test]
fn redis_users_agree_across_conf_compose_and_manifests() {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let users = read("deploy/redis/users.acl.example");
    let user = |name: &str| {
        users
            .lines()
            .find(|l| l.starts_with(&format!("user {name} ")))
            .unwrap_or_else(|| panic!("no user {name} in users.acl.example"))
            .to_owned()
    };
    let service = user("callrouter");
    assert!(
        service.contains(&format!(" ~{}:* ", callrouter::store::DEFAULT_NAMESPACE)),
        "the service's keys are its namespace's: {service}"
    );
    assert!(service.contains(" -@all "), "nothing but what is listed");
    assert!(
        user("default").contains(" off "),
        "nobody logs in as default"
    );
    let conf = read("deploy/redis/redis.conf");
    assert!(conf.contains("\naclfile /usr/local/etc/redis/users.acl\n"));
    assert!(!conf.contains("\nrequirepass"));
    let replica = read("deploy/redis/replica.conf");
    assert!(replica.contains("\nmasteruser replication\n"));
    user("replication");
    let sentinel = read("deploy/redis/sentinel.conf");
    assert!(sentinel.contains("\nsentinel auth-user callrouter sentinel\n"));
    user("sentinel");
    let compose = read("deploy/compose.yaml");
    assert!(compose.contains("./redis/users.acl:/usr/local/etc/redis/users.acl:ro"));
    for text in [&compose, &read("deploy/kubernetes/secret.yaml")] {
        let urls: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("REDIS_URL: "))
            .collect();
        assert!(!urls.is_empty());
        for url in urls {
            assert!(url.starts_with("redis://callrouter:"), "{url}");
        }
    }
    // The users file with real passwords never enters the repository or the image.
    assert!(
        read(".gitignore")
            .lines()
            .any(|l| l == "/deploy/redis/users.acl")
    );
    assert!(
        read(".dockerignore")
            .lines()
            .any(|l| l == "deploy/redis/users.acl")
    );
}

#[test]
fn only_the_monitoring_namespace_reaches_the_admin_port() {
    let policy = std::fs::read_to_string("deploy/kubernetes/networkpolicy.yaml").expect("policy");
    let rules: Vec<&str> = policy.split("\n    - ").skip(1).collect();
    let admin: Vec<&&str> = rules.iter().filter(|r| r.contains("port: admin")).collect();
    assert_eq!(admin.len(), 1, "one rule for the admin port");
    assert!(admin[0].contains("kubernetes.io/metadata.name: monitoring"));
    let open: Vec<&&str> = rules.iter().filter(|r| !r.contains("from:")).collect();
    assert!(
        open.iter().all(|r| !r.contains("port: admin")),
        "the admin port is never open to all"
    );
    let deployment =
        std::fs::read_to_string("deploy/kubernetes/deployment.yaml").expect("deployment");
    assert!(deployment.contains("name: admin") && deployment.contains("name: grpc"));
}
