//! The application layer over the in-memory store, with no server and no process: the demo
//! configuration (loaded once per test binary), the development tokens, and a fresh store for
//! each test.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use callrouter::app::principal::Principal;
use callrouter::app::requests::HeldAction;
use callrouter::app::{App, AppSettings, Snapshot};
use callrouter::metrics::Metrics;
use callrouter::routing::address::AddressInput;
use callrouter::routing::request::RouteRequest;
use callrouter::store::memory::MemoryStore;
use callrouter::store::{StoreSettings, Ticket};

pub const DEMO_CONFIG: &str = "config/callrouter.toml";
pub const DEMO_SECRETS: &str = "config/dev-secrets.toml";
/// The technical team of the demo building in Tours.
pub const TL_TECH: &str = "touraine-logement.technical.tl-tours";

pub fn settings() -> AppSettings {
    AppSettings {
        default_lease: Duration::from_secs(60),
        development: true,
        ..AppSettings::new(PathBuf::from(DEMO_CONFIG), PathBuf::from(DEMO_SECRETS))
    }
}

/// The demo configuration, loaded once for the whole test binary.
pub fn demo_snapshot() -> Arc<Snapshot> {
    static SNAPSHOT: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAPSHOT
        .get_or_init(|| Arc::new(Snapshot::load(&settings(), 1).expect("the demo loads")))
        .clone()
}

/// An application over a fresh in-memory store, recording metrics.
pub fn demo_app() -> App {
    demo_app_with(StoreSettings::default())
}

pub fn demo_app_with(store: StoreSettings) -> App {
    App::new(
        demo_snapshot(),
        Arc::new(MemoryStore::new(store)),
        settings(),
        Arc::new(Metrics::new()),
    )
}

/// The development tokens, by agent id.
pub fn dev_tokens() -> HashMap<String, String> {
    let text = std::fs::read_to_string("config/dev-tokens.toml").expect("dev tokens");
    let value: toml::Value = toml::from_str(&text).expect("dev tokens parse");
    value["tokens"]
        .as_array()
        .expect("tokens array")
        .iter()
        .map(|t| {
            (
                t["agent_id"].as_str().expect("agent_id").to_owned(),
                t["token"].as_str().expect("token").to_owned(),
            )
        })
        .collect()
}

/// The principal of a development token, authenticated as the edge would.
pub fn principal(app: &App, agent_id: &str) -> Principal {
    let tokens = dev_tokens();
    let token = tokens
        .get(agent_id)
        .unwrap_or_else(|| panic!("no dev token for {agent_id}"));
    app.authenticate(Some(token))
        .expect("a dev token authenticates")
}

/// The fields of the first Touraine Logement building in Tours in the demo registry.
pub fn tours_building() -> Vec<String> {
    let text = std::fs::read_to_string("data/buildings.csv").expect("registry");
    let row = text
        .lines()
        .find(|l| l.contains(",touraine-logement,tl-tours,"))
        .expect("a building in Tours");
    row.split(',').map(str::to_owned).collect()
}

/// A call about a leak in the demo building in Tours.
pub fn leak(call_id: &str) -> RouteRequest {
    let f = tours_building();
    RouteRequest {
        call_id: call_id.to_owned(),
        address: AddressInput {
            street_number: f[3].clone(),
            street: f[4].clone(),
            postcode: f[5].clone(),
            ..AddressInput::default()
        },
        issue_type: "technical.plumbing.leak".to_owned(),
        ..RouteRequest::default()
    }
}

/// Routes a leak call as the telephony platform; its ticket, which must be queued.
pub async fn routed(app: &App, call_id: &str) -> Ticket {
    let telephony = principal(app, "telephony-ivr");
    let routed = app
        .route_call(&telephony, leak(call_id))
        .await
        .expect("route");
    routed.ticket.expect("queued")
}

/// The holder's action on a claimed ticket.
pub fn hold_of(ticket: &Ticket) -> HeldAction {
    HeldAction::new(&ticket.ticket_id, ticket.lease_token).expect("a held ticket")
}

/// A copy of the demo deployment (configuration and data) in a fresh temporary directory, to
/// change and reload; the path of its main file. The directory is named after `name`.
pub fn demo_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("callrouter-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["config", "data"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dirs");
    }
    for f in [
        "config/callrouter.toml",
        "config/issue-types.toml",
        "config/rules.toml",
        "config/dev-secrets.toml",
        "data/communes.json",
        "data/epci.json",
        "data/buildings.csv",
        "data/tenants.csv",
    ] {
        std::fs::copy(f, dir.join(f)).expect("copy");
    }
    dir.join("config/callrouter.toml")
}

/// An application over a fresh in-memory store, on the deployment whose main file is `config`.
pub fn app_on(config: &std::path::Path, store: StoreSettings) -> App {
    let settings = AppSettings {
        default_lease: Duration::from_secs(60),
        development: true,
        ..AppSettings::new(config.to_path_buf(), PathBuf::from(DEMO_SECRETS))
    };
    let snapshot = Snapshot::load(&settings, 1).expect("the copy loads");
    App::new(
        Arc::new(snapshot),
        Arc::new(MemoryStore::new(store)),
        settings,
        Arc::new(Metrics::new()),
    )
}

/// A seventh cooperator, as an operator adds one: its territory, one sector and its teams.
pub const NEW_COOPERATOR: &str = r#"
[[cooperators]]
id = "loire-habitat"
name = "Loire Habitat"
short_code = "LH"
hours = ["mon-fri 09:00-17:00"]
on_call = "+33 2 61 91 00 77"
default_team = "loire-habitat.front-desk"
territory = { communes = ["37261"] }

[[cooperators.sectors]]
id = "lh-tours"
name = "Tours"
communes = []
rest = true

[[teams]]
id = "loire-habitat.front-desk"
name = "Loire Habitat — Accueil"
kind = "front_desk"
cooperator = "loire-habitat"

[[teams]]
id = "loire-habitat.technical"
name = "Loire Habitat — Technique"
kind = "technical"
cooperator = "loire-habitat"
sector = "lh-tours"

[[teams]]
id = "loire-habitat.rent"
name = "Loire Habitat — Loyers"
kind = "rent"
cooperator = "loire-habitat"

[[teams]]
id = "loire-habitat.social"
name = "Loire Habitat — Social"
kind = "social"
cooperator = "loire-habitat"

[[teams]]
id = "loire-habitat.on-call"
name = "Loire Habitat — Astreinte"
kind = "on_call"
cooperator = "loire-habitat"

[[teams]]
id = "loire-habitat.supervisor"
name = "Loire Habitat — Encadrement"
kind = "supervisor"
cooperator = "loire-habitat"
"#;

/// The value of the sample of this name with exactly these labels, in any order.
pub fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    body.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, mut found) = match series.split_once('{') {
            Some((n, rest)) => (
                n,
                rest.trim_end_matches('}')
                    .split(',')
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            None => (series, Vec::new()),
        };
        found.sort();
        (series_name == name && found == wanted)
            .then(|| value.parse().ok())
            .flatten()
    })
}
