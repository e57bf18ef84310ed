//! Routing decision and registry load times, over the demo registry and over one ten times larger
//! (generated at bench time with the same generator, seed 2024, scale 10).
//!
//! Run: `cargo bench --bench routing`. Besides criterion's report, prints the median time of one
//! decision for each kind of request (target: under 5 µs).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callrouter::config;
use callrouter::routing::Router;
use callrouter::routing::address::AddressInput;
use callrouter::routing::request::RouteRequest;
use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

const ISSUES: &[&str] = &[
    "technical.plumbing.leak",
    "technical.heating.no_heat",
    "emergency.gas_smell",
    "administrative.rent.payment",
    "technical.lift.breakdown",
    "social.neighbour_dispute",
];

/// A deployment like the demo, whose registry is `scale` times larger, in a scratch directory.
fn scaled_deployment(scale: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("callrouter-bench-x{scale}"));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("scratch directory");
    callrouter::datagen::generate(Path::new(config::DEMO_CONFIG), 2024, scale, &data)
        .expect("generate registry");
    let here = std::env::current_dir().expect("current directory");
    let main = std::fs::read_to_string(config::DEMO_CONFIG)
        .expect("demo config")
        .replace(
            "\"issue-types.toml\"",
            &format!("{:?}", here.join("config/issue-types.toml")),
        )
        .replace(
            "\"rules.toml\"",
            &format!("{:?}", here.join("config/rules.toml")),
        )
        .replace(
            "\"../data/communes.json\"",
            &format!("{:?}", here.join("data/communes.json")),
        )
        .replace(
            "\"../data/epci.json\"",
            &format!("{:?}", here.join("data/epci.json")),
        )
        .replace(
            "\"../data/buildings.csv\"",
            &format!("{:?}", data.join("buildings.csv")),
        )
        .replace(
            "\"../data/tenants.csv\"",
            &format!("{:?}", data.join("tenants.csv")),
        );
    let path = dir.join("callrouter.toml");
    std::fs::write(&path, main).expect("write scaled config");
    path
}

/// Requests of three kinds over buildings spread through the registry.
fn requests(router: &Router, tenants_csv: &Path) -> Vec<(&'static str, Vec<RouteRequest>)> {
    let step = (router.buildings.len() / 500).max(1);
    let picked: Vec<_> = router.buildings.iter().step_by(step).take(500).collect();
    let tenants: Vec<(String, String)> = {
        let text = std::fs::read_to_string(tenants_csv).expect("tenants");
        text.lines()
            .skip(1)
            .step_by(60 * router.buildings.len() / 2000)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_owned(), f[2].to_owned())
            })
            .collect()
    };
    let issue = |i: usize| ISSUES[i % ISSUES.len()].to_owned();
    let by_reference = tenants
        .iter()
        .enumerate()
        .map(|(i, (reference, _))| RouteRequest {
            call_id: format!("ref-{i}"),
            tenant_reference: reference.clone(),
            issue_type: issue(i),
            ..RouteRequest::default()
        })
        .collect();
    let structured = picked
        .iter()
        .enumerate()
        .map(|(i, b)| RouteRequest {
            call_id: format!("st-{i}"),
            address: AddressInput {
                street_number: b.building.street_number.clone(),
                street: b.building.street_name.clone(),
                postcode: b.building.postcode.clone(),
                city: b.building.city.clone(),
                free_text: String::new(),
            },
            issue_type: issue(i),
            ..RouteRequest::default()
        })
        .collect();
    let free_text = picked
        .iter()
        .enumerate()
        .map(|(i, b)| RouteRequest {
            call_id: format!("ft-{i}"),
            address: AddressInput {
                free_text: format!(
                    "{} {} {} {}",
                    b.building.street_number,
                    b.building
                        .street_name
                        .replace("Rue ", "r. ")
                        .replace("Saint-", "St "),
                    b.building.postcode,
                    b.building.city.to_uppercase()
                ),
                ..AddressInput::default()
            },
            issue_type: issue(i),
            ..RouteRequest::default()
        })
        .collect();
    vec![
        ("tenant_reference", by_reference),
        ("structured_address", structured),
        ("free_text_address", free_text),
    ]
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .expect("valid time")
}

/// Median over batches of the mean time of one decision.
fn median_decision_time(router: &Router, requests: &[RouteRequest]) -> Duration {
    let mut batches: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            for r in requests {
                black_box(router.decide(black_box(r), at()).ok());
            }
            started.elapsed() / requests.len() as u32
        })
        .collect();
    batches.sort();
    batches[batches.len() / 2]
}

fn bench(c: &mut Criterion) {
    let x10 = scaled_deployment(10);
    let deployments = [
        (
            "demo",
            PathBuf::from(config::DEMO_CONFIG),
            PathBuf::from("data/tenants.csv"),
        ),
        (
            "x10",
            x10.clone(),
            x10.with_file_name("data").join("tenants.csv"),
        ),
    ];
    let mut summary = Vec::new();
    for (name, path, tenants_csv) in &deployments {
        let started = Instant::now();
        let router = config::load(path).expect("deployment loads");
        let load_time = started.elapsed();
        let mut load = c.benchmark_group(format!("load/{name}"));
        load.sample_size(10)
            .measurement_time(Duration::from_secs(8));
        load.bench_function("config_and_registries", |b| {
            b.iter(|| black_box(config::load(path).expect("loads")))
        });
        load.finish();

        let mut group = c.benchmark_group(format!("decide/{name}"));
        for (kind, reqs) in requests(&router, tenants_csv) {
            let mut i = 0;
            group.bench_function(kind, |b| {
                b.iter(|| {
                    i = (i + 1) % reqs.len();
                    black_box(router.decide(black_box(&reqs[i]), at()).ok())
                })
            });
            summary.push(format!(
                "{name:>4} {kind:<20} median {:>7.2} µs per decision",
                median_decision_time(&router, &reqs).as_secs_f64() * 1e6
            ));
        }
        group.finish();
        summary.push(format!(
            "{name:>4} registry: {} buildings, {} tenants, first load {:.0} ms",
            router.buildings.len(),
            router.tenant_count(),
            load_time.as_secs_f64() * 1e3
        ));
    }
    println!("\nrouting decision summary (target: median under 5 µs)");
    for line in summary {
        println!("  {line}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
