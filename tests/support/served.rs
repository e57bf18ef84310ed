//! `callrouter serve --dev` as a process, over a `redis-server` of its own, on ports kept across
//! restarts (a browser page reconnects to the same origin), with a tonic client that routes calls
//! as the telephony platform does. For the browser tests and the desk's benchmark.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use callrouter::api::pb::call_routing_client::CallRoutingClient;
use callrouter::api::pb::{Address, RouteCallRequest};

use super::app::{dev_tokens, tours_building};
use super::binary::{free_port, until_ready};
use super::redis_server::RedisServer;

/// `callrouter serve --dev` over a Redis of its own, on ports kept across restarts.
pub struct Served {
    pub redis: RedisServer,
    pub grpc: u16,
    admin: u16,
    child: Option<Child>,
    runtime: tokio::runtime::Runtime,
    /// One channel for every call routed, connected on first use and again after a restart, so
    /// that a routed call's time is the call's, not a connection's.
    channel: tonic::transport::Channel,
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl Served {
    /// Starts Redis and the server; `None` (outside CI) when Redis cannot run here.
    pub fn start() -> Option<Served> {
        let redis = RedisServer::start()?;
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let grpc = free_port();
        let channel = {
            let _inside = runtime.enter();
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
                .expect("address")
                .connect_lazy()
        };
        let bearer = format!("Bearer {}", dev_tokens()["telephony-ivr"])
            .parse()
            .expect("header");
        let mut served = Served {
            redis,
            grpc,
            admin: free_port(),
            child: None,
            runtime,
            channel,
            bearer,
        };
        served.launch();
        Some(served)
    }

    /// Starts the server (again, after [`Served::stop`]) on its ports, and waits until it is ready.
    pub fn launch(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callrouter"))
            .args(["serve", "--dev"])
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", self.grpc))
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{}", self.admin))
            .arg("--redis-url")
            .arg(self.redis.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("callrouter serve starts");
        until_ready(&mut child, self.admin, Duration::from_secs(20))
            .unwrap_or_else(|why| panic!("{why}"));
        self.child = Some(child);
    }

    /// Stops the server with SIGTERM, as an orchestrator does.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// The desk's page, with `query` (`?lease=5`, say).
    pub fn url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/{query}", self.grpc)
    }

    /// Routes a call through gRPC as the telephony platform does; answers its ticket id.
    pub fn route(&self, call_id: &str, issue_type: &str) -> String {
        let building = tours_building();
        let request = RouteCallRequest {
            call_id: call_id.to_owned(),
            caller_number: "+33 2 47 00 00 00".to_owned(),
            address: Some(Address {
                street_number: building[3].clone(),
                street: building[4].clone(),
                postcode: building[5].clone(),
                ..Default::default()
            }),
            issue_type: issue_type.to_owned(),
            description: "Appel de test".to_owned(),
            ..Default::default()
        };
        let bearer = self.bearer.clone();
        let mut client = CallRoutingClient::with_interceptor(
            self.channel.clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", bearer.clone());
                Ok(r)
            },
        );
        self.runtime.block_on(async move {
            let response = client
                .route_call(request)
                .await
                .expect("RouteCall")
                .into_inner();
            assert!(response.queued, "{response:?}");
            response.ticket.expect("a ticket").ticket_id
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
