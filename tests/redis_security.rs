//! Redis as production runs it: the ACL of `deploy/redis/users.acl.example` (which every Redis
//! test runs under) grants the service's user its commands on its keys and nothing else, and
//! nobody gets in without a password; `rediss://` with the CA of Redis's certificate and a client
//! certificate, for the store and for the binary.

mod support {
    pub mod binary;
    pub mod certs;
    pub mod ports;
    pub mod redis_server;
}

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use callrouter::routing::partition::Partition;
use callrouter::routing::urgency::Urgency;
use callrouter::store::redis::{RedisStore, RedisTls};
use callrouter::store::{NewTicket, StoreError, StoreSettings, TicketStore};
use support::binary::{free_port, until_ready};
use support::certs::{Authority, PemDir};
use support::redis_server::{CALLROUTER_PASSWORD, RedisServer, ServerTls};

fn ticket(call_id: &str) -> NewTicket {
    let partition = Partition::of_cooperator(Some("lb-habitat"));
    NewTicket {
        call_id: call_id.to_owned(),
        escalation_team: partition.supervisor_team(),
        partition,
        cooperator_id: Some("lb-habitat".to_owned()),
        team_id: "lb.tech".to_owned(),
        urgency: Urgency::U2,
        issue_type: "technical.plumbing.leak".to_owned(),
        building_id: None,
        address: None,
        incident_id: None,
        sla_due_at: 0,
        details: String::new(),
        within: Duration::from_secs(60),
    }
}

#[test]
fn the_service_user_runs_its_commands_on_its_keys_and_nothing_else() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let service = Some(("callrouter", CALLROUTER_PASSWORD));
    assert_eq!(
        server.command_as(service, &["SET", "callrouter:x", "1"]),
        "OK"
    );
    assert_eq!(server.command_as(service, &["GET", "callrouter:x"]), "1");
    for forbidden in [
        &["FLUSHALL"][..],
        &["KEYS", "*"],
        &["CONFIG", "GET", "*"],
        &["SCAN", "0"],
        &["CLIENT", "LIST"],
        &["ACL", "LIST"],
        &["SHUTDOWN", "NOSAVE"],
        &["SUBSCRIBE", "anything"],
        &["SET", "other:x", "1"],
        &["GET", "other:x"],
        &["EVAL", "return redis.call('SET', 'other:x', '1')", "0"],
        &["EVAL", "return redis.call('FLUSHALL')", "0"],
    ] {
        let answer = server.command_as(service, forbidden);
        // Redis words a refusal inside a script its own way.
        assert!(
            answer.contains("NOPERM") || answer.contains("The user executing the script can't"),
            "{forbidden:?} as the service: {answer}"
        );
    }
    let nobody = server.command_as(None, &["GET", "callrouter:x"]);
    assert!(nobody.contains("NOAUTH"), "without a password: {nobody}");
    for user in ["default", "callrouter", "admin"] {
        // redis-cli reports the failed AUTH on stderr and runs the command unauthenticated.
        let guessed = server.command_as(Some((user, "guess")), &["PING"]);
        assert!(
            guessed.contains("NOAUTH"),
            "{user} with a guessed password: {guessed}"
        );
    }
    assert_eq!(
        server.command(&["DBSIZE"]),
        "1",
        "the admin sees everything"
    );
}

#[tokio::test]
async fn a_store_outside_its_namespace_is_refused_by_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let settings = StoreSettings {
        namespace: "elsewhere".to_owned(),
        ..StoreSettings::default()
    };
    let store = RedisStore::connect(&server.url(), settings).expect("connect");
    match store.create(ticket("call-1")).await {
        Err(StoreError::Unavailable(why)) => {
            assert!(why.to_uppercase().contains("NOPERM"), "{why}")
        }
        other => panic!("keys outside callrouter:* must be refused, got {other:?}"),
    }
    assert_eq!(server.command(&["DBSIZE"]), "0");
}

/// Certificates for a TLS Redis: a CA for the server, another for clients, in PEM files.
struct Pki {
    dir: PemDir,
    server_ca: Authority,
    clients: Authority,
}

impl Pki {
    fn new(name: &str) -> Pki {
        Pki {
            dir: PemDir::new(name),
            server_ca: Authority::new("redis CA"),
            clients: Authority::new("redis clients CA"),
        }
    }

    fn server(&self) -> ServerTls {
        let leaf = self.server_ca.server();
        ServerTls {
            cert: self.dir.write("redis.pem", &leaf.cert),
            key: self.dir.write("redis-key.pem", &leaf.key),
            client_ca: self.dir.write("clients.pem", &self.clients.pem),
        }
    }

    /// The store's certificates: the server's CA, and a client certificate when `identified`.
    fn store_tls(&self, identified: bool) -> RedisTls {
        let leaf = self.clients.client("callrouter");
        RedisTls {
            ca: Some(self.server_ca.pem.clone().into_bytes()),
            client: identified.then(|| (leaf.cert.into_bytes(), leaf.key.into_bytes())),
        }
    }
}

fn quick() -> StoreSettings {
    StoreSettings {
        operation_timeout: Duration::from_millis(1500),
        ..StoreSettings::default()
    }
}

#[tokio::test]
async fn the_store_speaks_tls_to_redis_with_its_ca_and_client_certificate() {
    let pki = Pki::new("redis-store");
    let Some(server) = RedisServer::start_tls(pki.server()) else {
        return;
    };
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    let store: Arc<dyn TicketStore> =
        Arc::new(RedisStore::connect_with(&url, &pki.store_tls(true), quick()).expect("connect"));
    let created = store
        .create(ticket("tls-1"))
        .await
        .expect("created over TLS");
    let found = store
        .get(&created.ticket.ticket_id)
        .await
        .expect("read over TLS")
        .expect("the ticket");
    assert_eq!(found.call_id, "tls-1");

    let anonymous =
        RedisStore::connect_with(&url, &pki.store_tls(false), quick()).expect("connect");
    assert!(
        anonymous.create(ticket("tls-2")).await.is_err(),
        "Redis requires a client certificate"
    );
    let system_roots = RedisStore::connect(&url, quick()).expect("connect");
    assert!(
        system_roots.create(ticket("tls-3")).await.is_err(),
        "a certificate of a private CA is not trusted without --redis-ca"
    );
    let clear = format!(
        "redis://callrouter:{CALLROUTER_PASSWORD}@127.0.0.1:{}/",
        server.port
    );
    match RedisStore::connect_with(&clear, &pki.store_tls(true), quick()) {
        Err(StoreError::Invalid(why)) => assert!(why.contains("rediss://"), "{why}"),
        Err(other) => panic!("expected a refused configuration, got {other:?}"),
        Ok(_) => panic!("certificates with a clear-text URL must be refused"),
    }
}

#[test]
fn the_binary_reaches_redis_over_tls_with_the_files_it_is_given() {
    let pki = Pki::new("redis-binary");
    let Some(server) = RedisServer::start_tls(pki.server()) else {
        return;
    };
    let client = pki.clients.client("callrouter");
    let admin = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args(["serve", "--dev", "--grpc-addr", "127.0.0.1:0"])
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--redis-url")
        .arg(server.url())
        .arg("--redis-ca")
        .arg(pki.dir.write("ca.pem", &pki.server_ca.pem))
        .arg("--redis-cert")
        .arg(pki.dir.write("client.pem", &client.cert))
        .arg("--redis-key")
        .arg(pki.dir.write("client-key.pem", &client.key))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let ready = until_ready(&mut child, admin, Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ready, Ok(()), "/readyz: ready once Redis answers over TLS");
}
