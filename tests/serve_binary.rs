//! The `callrouter serve` binary as an operator runs it: defaults from a fresh clone, readiness
//! over HTTP, reload on SIGHUP, a clean stop on SIGTERM, and a refused broken configuration.

mod support {
    pub mod binary;
    pub mod ports;
}

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::binary::{free_port, http_get, until_ready};

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `callrouter serve --dev` on the in-memory store (logging at INFO to `log`), once ready.
fn serve_dev(grpc: u16, admin: u16, log: Stdio) -> Child {
    serve_dev_with(grpc, admin, log, &[])
}

/// [`serve_dev`] with more arguments.
fn serve_dev_with(grpc: u16, admin: u16, log: Stdio, more: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args([
            "serve",
            "--dev",
            "--grpc-addr",
            &format!("127.0.0.1:{grpc}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(more)
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start callrouter serve");
    until_ready(&mut child, admin, Duration::from_secs(20)).unwrap_or_else(|why| panic!("{why}"));
    child
}

#[test]
fn serve_starts_reloads_and_stops_on_signals() {
    let (grpc, admin) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!("callrouter-serve-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut child = serve_dev(grpc, admin, Stdio::from(log_file));
    let health = http_get(admin, "/healthz").expect("healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    assert!(
        http_get(admin, "/nothing")
            .expect("404")
            .starts_with("HTTP/1.1 404")
    );

    let metrics = http_get(admin, "/metrics").expect("metrics");
    assert!(
        metrics.contains("callrouter_config_generation 1\n"),
        "{metrics}"
    );
    signal(&child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("configuration reloaded") && l.contains("SIGHUP"))
    {
        assert!(Instant::now() < deadline, "no reload logged after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGHUP takes the one reload path: the generation and the reload counter follow.
    let metrics = http_get(admin, "/metrics").expect("metrics");
    assert!(
        metrics.contains("callrouter_config_generation 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callrouter_config_reloads_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}");
    let output = std::fs::read_to_string(&log).expect("log");
    assert!(
        output.contains("in-memory — not durable"),
        "the in-memory store is announced:\n{output}"
    );
    assert!(
        !output.contains('\u{1b}'),
        "logs written to a file carry no terminal colour codes:\n{output}"
    );
    assert!(
        output.contains("SIGTERM received") && output.contains("stopped"),
        "{output}"
    );
    assert!(
        !output.contains("forced stop"),
        "nothing was in flight: {output}"
    );
    let _ = std::fs::remove_file(&log);
}

#[test]
fn serve_refuses_unreadable_secrets_and_bad_addresses() {
    let out = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args([
            "serve",
            "--secrets",
            "/nonexistent/secrets.toml",
            "--grpc-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env_remove("REDIS_URL")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/secrets.toml: cannot read")
    );
    let bad_addr = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args(["serve", "--grpc-addr", "not-an-address"])
        .output()
        .expect("run");
    assert!(!bad_addr.status.success());
    assert!(String::from_utf8_lossy(&bad_addr.stderr).contains("--grpc-addr"));
}

/// The runtime's threads of a process (its workers, and the threads it runs blocking work on).
fn runtime_threads(child: &Child) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .expect("the process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[test]
fn serve_runs_its_rpcs_on_as_many_threads_as_it_is_given() {
    let stderr = refused(&["--dev", "--worker-threads", "0"]);
    assert!(stderr.contains("--worker-threads"), "{stderr}");
    let mut counted = Vec::new();
    for more in [
        &["--worker-threads", "1"][..],
        &["--worker-threads", "4"][..],
    ] {
        let (grpc, admin) = (free_port(), free_port());
        let mut child = serve_dev_with(grpc, admin, Stdio::null(), more);
        counted.push(runtime_threads(&child));
        signal(&child, "TERM");
        let status = wait_exit(&mut child, Duration::from_secs(15));
        assert!(status.success(), "{more:?}: {status}");
    }
    // Both start the same way, so they run the same blocking work: the workers make the difference.
    assert_eq!(
        counted[1],
        counted[0] + 3,
        "one worker, then four: {counted:?}"
    );
}

/// Runs `callrouter serve` with these arguments, expecting it to refuse to start: its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .arg("serve")
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("CALLROUTER_SECRETS")
        .env_remove("CALLROUTER_DEV")
        .output()
        .expect("run");
    assert!(!out.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_fails_closed_without_real_secrets() {
    let grpc = format!("127.0.0.1:{}", free_port());
    let stderr = refused(&["--grpc-addr", &grpc]);
    assert!(stderr.contains("no secrets file"), "{stderr}");
    let stderr = refused(&["--secrets", "config/dev-secrets.toml", "--grpc-addr", &grpc]);
    assert!(
        stderr.contains("published development tokens") && stderr.contains("--dev"),
        "{stderr}"
    );
    for exposed in ["0.0.0.0", "192.0.2.10"] {
        let grpc = format!("{exposed}:{}", free_port());
        let stderr = refused(&["--dev", "--grpc-addr", &grpc]);
        assert!(stderr.contains("loopback addresses only"), "{stderr}");
    }
    let admin = format!("0.0.0.0:{}", free_port());
    let stderr = refused(&["--dev", "--grpc-addr", &grpc, "--admin-addr", &admin]);
    assert!(stderr.contains("loopback addresses only"), "{stderr}");
}

#[test]
fn serve_refuses_a_redis_mode_given_by_halves() {
    for (args, says) in [
        (
            vec!["--dev", "--redis-sentinel", "127.0.0.1:26379"],
            "--redis-sentinel needs --redis-sentinel-master",
        ),
        (
            vec!["--dev", "--redis-sentinel-master", "callrouter"],
            "--redis-sentinel-master needs --redis-sentinel",
        ),
        (
            vec![
                "--dev",
                "--redis-sentinel",
                "nowhere",
                "--redis-sentinel-master",
                "m",
            ],
            "host:port",
        ),
        (
            vec!["--dev", "--redis-wait-replicas", "1"],
            "--redis-wait-replicas needs Redis",
        ),
    ] {
        let stderr = refused(&args);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The number just before `marker` in a line of the load generator's.
fn count_before(line: &str, marker: &str) -> u64 {
    let (head, _) = line
        .split_once(marker)
        .unwrap_or_else(|| panic!("no '{marker}' in '{line}'"));
    let digits = head.rsplit(|c: char| !c.is_ascii_digit()).next();
    digits
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no number before '{marker}' in '{line}'"))
}

/// `callrouter load` against a served binary (in-memory store): the open loop sends exactly its
/// rate for its seconds, a phase of a given number of calls sends exactly those, the closed loop
/// and the agents' phase run without failures, refused calls are counted as failures, and the
/// server's own figures are read from its admin listener.
#[test]
fn the_load_generator_drives_a_served_binary() {
    let (grpc, admin) = (free_port(), free_port());
    let mut child = serve_dev(grpc, admin, Stdio::null());
    let load = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_callrouter"))
            .args(["load", "--target", &format!("http://127.0.0.1:{grpc}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(args)
            .output()
            .expect("run callrouter load");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let open = load(&["--rate", "200", "--seconds", "2", "--route-only"]);
    assert!(
        open.contains("RouteCall: 400 calls in ") && open.contains(", 400 queued, 0 failed"),
        "{open}"
    );
    assert!(open.contains("(open loop at 200/s)"), "{open}");
    let counted = load(&["--calls", "150", "--seconds", "30", "--route-only"]);
    assert!(
        counted.contains("RouteCall: 150 calls in ") && counted.contains(", 150 queued, 0 failed"),
        "{counted}"
    );
    assert!(open.contains("µs of CPU per RouteCall"), "{open}");
    let pid = child.id().to_string();
    let closed = load(&["--concurrency", "4", "--seconds", "1", "--server-pid", &pid]);
    assert!(closed.contains("µs of CPU per RouteCall"), "{closed}");
    // The threads' waits are read from /proc only.
    assert!(
        closed.contains(" waits (voluntary context switches) per RouteCall"),
        "{closed}"
    );
    assert!(!open.contains(" waits "), "{open}");
    // Its own CPU and the machine's, from /proc, whatever it is told.
    assert!(closed.contains("  load generator: "), "{closed}");
    assert!(
        closed.contains(" cores): ") && closed.contains(" % of it idle, "),
        "{closed}"
    );
    let line = |prefix: &str| {
        closed
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' line: {closed}"))
            .to_owned()
    };
    let routed = line("RouteCall: ");
    let cycles = line("claim -> complete: ");
    assert!(
        routed.ends_with(", 0 failed") && !routed.starts_with("RouteCall: 0 "),
        "{routed}"
    );
    assert!(
        cycles.ends_with(", 0 failed") && !cycles.starts_with("claim -> complete: 0 "),
        "{cycles}"
    );
    // The agents (the first four of the development tokens) work the queued tickets of their
    // teams, each at most once.
    assert!(
        count_before(&cycles, " cycles in ") <= 400 + count_before(&routed, " queued, "),
        "{closed}"
    );
    assert!(
        cycles.contains("each completion claims the next"),
        "{cycles}"
    );
    // A refused call (an unknown token: the answer is headers alone, its status in them) is
    // counted as a failure.
    let tokens = std::env::temp_dir().join(format!("callrouter-tokens-{}.toml", child.id()));
    let dev = std::fs::read_to_string("config/dev-tokens.toml").expect("dev tokens");
    std::fs::write(&tokens, dev.replace("dev-telephony-", "unknown-telephony-")).expect("write");
    let tokens_arg = tokens.to_str().expect("a UTF-8 path");
    let refused = load(&[
        "--rate",
        "100",
        "--seconds",
        "1",
        "--route-only",
        "--tokens",
        tokens_arg,
    ]);
    let _ = std::fs::remove_file(&tokens);
    assert!(
        refused.contains("RouteCall: 0 calls in ") && refused.contains(", 0 queued, 100 failed"),
        "{refused}"
    );
    let separate = load(&["--concurrency", "2", "--seconds", "1", "--separate-claims"]);
    let line = |prefix: &str| {
        separate
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' line: {separate}"))
            .to_owned()
    };
    let cycles = line("claim -> complete: ");
    assert!(
        cycles.contains("two calls a cycle")
            && cycles.ends_with(", 0 failed")
            && count_before(&cycles, " cycles in ") > 0,
        "{separate}"
    );
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}
