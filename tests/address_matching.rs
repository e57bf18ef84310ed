//! Address matching as callers write addresses: every registry address in every kind of caller
//! variation (the seeded generator of `callrouter::spellings`), scored for buildings found, wrong
//! buildings and misses; the checked-in table of real-world hard cases; and properties over seeds.

mod support {
    pub mod scratch;
}

use std::collections::BTreeMap;
use std::sync::OnceLock;

use callrouter::config;
use callrouter::routing::Router;
use callrouter::routing::address::{AddressInput, MatchLevel};
use callrouter::routing::places::Building;
use callrouter::spellings::{self, Kind};

use support::scratch::Scratch;

fn demo() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| match config::load(config::DEMO_CONFIG.as_ref()) {
        Ok(router) => router,
        Err(e) => panic!("the demo configuration must load:\n{e}"),
    })
}

fn buildings(router: &Router) -> Vec<Building> {
    router
        .buildings
        .iter()
        .map(|b| b.building.clone())
        .collect()
}

/// What became of one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Found,
    WrongBuilding,
    Missed,
}

fn outcome(router: &Router, building: &Building, address: &AddressInput) -> Outcome {
    let found = router.match_address(address);
    match (found.level, found.building_id.as_deref()) {
        (MatchLevel::Building, Some(id)) if id == building.id => Outcome::Found,
        (MatchLevel::Building, _) => Outcome::WrongBuilding,
        _ => Outcome::Missed,
    }
}

/// Precision before recall: a wrong building sends a plumber to the wrong block, so spellings
/// routed to another building than the caller's stay at or under 0.05 %, counted apart from the
/// spellings that are not found at BUILDING level (which go to a person who asks).
#[test]
fn caller_spellings_find_the_building_and_almost_never_another() {
    let router = demo();
    let buildings = buildings(router);
    let all = spellings::spellings(&buildings, 1);
    let mut per_building = vec![0usize; buildings.len()];
    let mut by_kind: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    let mut wrong = Vec::new();
    for s in &all {
        per_building[s.building] += 1;
        let b = &buildings[s.building];
        let result = outcome(router, b, &s.address);
        let row = by_kind.entry(s.kind.as_str()).or_default();
        row[0] += 1;
        match result {
            Outcome::Found => row[1] += 1,
            Outcome::WrongBuilding => {
                row[2] += 1;
                wrong.push(format!(
                    "{} {:?} (building {})",
                    s.kind.as_str(),
                    s.address,
                    b.id
                ));
            }
            Outcome::Missed => row[3] += 1,
        }
    }
    println!("kind               spellings  building   wrong  missed");
    for (kind, [n, found, wrong, missed]) in &by_kind {
        let share = 100.0 * *found as f64 / *n as f64;
        println!("{kind:<18}{n:>10}{share:>9.2}%{wrong:>8}{missed:>8}");
    }
    let total = all.len();
    let found: usize = by_kind.values().map(|r| r[1]).sum();
    let found_share = found as f64 / total as f64;
    let wrong_share = wrong.len() as f64 / total as f64;
    println!(
        "{total} spellings: {:.2} % found at BUILDING, {:.3} % another building",
        found_share * 100.0,
        wrong_share * 100.0
    );
    for w in wrong.iter().take(20) {
        println!("  wrong: {w}");
    }
    assert!(by_kind.len() >= 8, "at least eight kinds of variation");
    assert!(
        per_building.iter().all(|&n| n >= 5),
        "every building in at least five spellings"
    );
    assert!(
        wrong_share <= 0.0005,
        "{:.3} % of spellings routed to another building, at most 0.05 % allowed",
        wrong_share * 100.0
    );
    assert!(
        found_share >= 0.995,
        "{:.2} % found at BUILDING, at least 99.5 % required",
        found_share * 100.0
    );
}

/// The demo deployment with the hard cases' buildings added to its registry: hamlets, Breton
/// names, a merged commune's old name, a date where the house number is the day.
fn with_hard_buildings() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let scratch = Scratch::new("hard-cases");
        scratch.append(
            "data/buildings.csv",
            &std::fs::read_to_string("tests/data/address_hard_buildings.csv")
                .expect("hard cases' buildings"),
        );
        config::load(&scratch.main()).unwrap_or_else(|e| panic!("hard-case registry:\n{e}"))
    })
}

/// Real-world hard cases, from `tests/data/address_hard_cases.csv`: each text gives the building
/// named, or the level (`STREET`, `COMMUNE`) when no building may be chosen.
#[test]
fn hard_cases_from_the_table() {
    let router = with_hard_buildings();
    let mut table = csv::Reader::from_path("tests/data/address_hard_cases.csv").expect("table");
    let mut kinds = BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for row in table.records() {
        let row = row.expect("a row of three fields");
        let (kind, text, expected) = (&row[0], &row[1], &row[2]);
        *kinds.entry(kind.to_owned()).or_default() += 1;
        let found = router.match_address(&AddressInput {
            free_text: text.to_owned(),
            ..AddressInput::default()
        });
        let got = match (found.level, found.building_id.as_deref()) {
            (MatchLevel::Building, Some(id)) => id.to_owned(),
            (level, _) => level.as_str().to_owned(),
        };
        if got != expected {
            failures.push(format!(
                "{kind}: {text:?} → {got}, expected {expected} ({found:?})"
            ));
        }
    }
    for kind in [
        "date in the name",
        "saint",
        "bis and ter",
        "lieu-dit",
        "breton",
        "merged commune",
    ] {
        assert!(kinds.get(kind).is_some_and(|&n| n >= 2), "cases of {kind}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Whatever the seed, no kind of variation of a registry address routes to another
        /// building than the one it spells (the registry holds the exact address).
        #[test]
        fn no_variation_routes_to_another_building(
            seed in any::<u64>(),
            pick in any::<prop::sample::Index>(),
        ) {
            let router = demo();
            let building = &router.buildings[pick.index(router.buildings.len())].building;
            let mut rng = callrouter::datagen::Rng::new(seed);
            for kind in Kind::ALL {
                if let Some(address) = spellings::spell(building, kind, &mut rng) {
                    prop_assert_ne!(
                        outcome(router, building, &address),
                        Outcome::WrongBuilding,
                        "{:?}: {:?}", kind, address
                    );
                }
            }
        }

        /// Every building is found from its canonical address, in fields or as one line.
        #[test]
        fn every_building_is_found_from_its_canonical_address(
            pick in any::<prop::sample::Index>(),
        ) {
            let router = with_hard_buildings();
            let b = &router.buildings[pick.index(router.buildings.len())].building;
            let fields = AddressInput {
                street_number: b.street_number.clone(),
                street: b.street_name.clone(),
                postcode: b.postcode.clone(),
                city: b.city.clone(),
                free_text: String::new(),
            };
            let line = AddressInput {
                free_text: format!("{} {} {} {}", b.street_number, b.street_name, b.postcode, b.city),
                ..AddressInput::default()
            };
            prop_assert_eq!(outcome(router, b, &fields), Outcome::Found, "{:?}", fields);
            prop_assert_eq!(outcome(router, b, &line), Outcome::Found, "{:?}", line);
        }
    }
}
