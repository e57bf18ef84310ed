//! Interoperability with a client not written in Rust: `tests/interop/client.py` (Python grpcio)
//! compiles the project's `.proto` at run time and talks to a real server. Without Python's
//! grpcio the test fails when `CI` is set (`.ci/run` installs it) and is skipped otherwise.

mod support {
    pub mod api;
    pub mod app;
    pub mod ports;
    pub mod redis_server;
}

use std::process::Command;

use support::api::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_grpcio_client_routes_and_completes_a_call() {
    if !support::api::python_grpc_ready() {
        return;
    }
    let server = TestServer::start().await;
    let f = support::api::tours_building();
    let address = format!("{} {} {} {}", f[3], f[4], f[5], f[7]);
    let addr = server.addr;
    let telephony = server.tokens["telephony-ivr"].clone();
    let agent = server.tokens["tl-agent-1"].clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("tests/interop/client.py")
            .arg(addr.to_string())
            .arg("proto")
            .env("CALLROUTER_TELEPHONY_TOKEN", telephony)
            .env("CALLROUTER_AGENT_TOKEN", agent)
            .env("CALLROUTER_ADDRESS", address)
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("interop: 18 passed, 0 failed"), "{stdout}");
    server.stop().await;
}
