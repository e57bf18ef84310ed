//! Routing over the shipped demo deployment: addresses written as callers write them, same-name
//! and shared communes, on-call cover, and the decision's explanation.

use std::sync::OnceLock;

use callrouter::config;
use callrouter::routing::address::{AddressInput, MatchLevel};
use callrouter::routing::places::Building;
use callrouter::routing::request::RouteRequest;
use callrouter::routing::urgency::Urgency;
use callrouter::routing::{Router, TRIAGE_RULE};
use chrono::{DateTime, TimeZone, Utc};

fn demo() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| match config::load(config::DEMO_CONFIG.as_ref()) {
        Ok(router) => router,
        Err(e) => panic!("the demo configuration must load:\n{e}"),
    })
}

fn paris(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

/// Friday 27 November 2026, 10:00 — every cooperator is open.
fn open_time() -> DateTime<Utc> {
    paris(2026, 11, 27, 10, 0)
}

fn free_text(text: &str) -> AddressInput {
    AddressInput {
        free_text: text.to_owned(),
        ..AddressInput::default()
    }
}

fn request(issue: &str, address: AddressInput) -> RouteRequest {
    RouteRequest {
        call_id: "call-1".to_owned(),
        address,
        issue_type: issue.to_owned(),
        ..RouteRequest::default()
    }
}

fn strip_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'à' | 'â' | 'ä' => "a".to_owned(),
            'ç' => "c".to_owned(),
            'é' | 'è' | 'ê' | 'ë' => "e".to_owned(),
            'É' | 'È' | 'Ê' => "E".to_owned(),
            'î' | 'ï' => "i".to_owned(),
            'ô' | 'ö' => "o".to_owned(),
            'ù' | 'û' | 'ü' => "u".to_owned(),
            'œ' => "oe".to_owned(),
            'Œ' => "OE".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

/// Street words as callers shorten them.
fn abbreviate(street: &str) -> String {
    const SHORT: &[(&str, &str)] = &[
        ("Rue ", "r. "),
        ("Boulevard ", "bd "),
        ("Avenue ", "av. "),
        ("Place ", "pl. "),
        ("Impasse ", "imp. "),
        ("Route ", "rte "),
        ("Allée ", "all. "),
        ("Chemin ", "che "),
        ("Faubourg ", "fg "),
        ("Square ", "sq "),
        ("Résidence ", "rés. "),
        ("Saint-", "St-"),
        ("Sainte-", "Ste-"),
        ("Général-", "Gal "),
        ("Maréchal-", "Mal "),
        ("Docteur-", "Dr "),
        ("Président-", "Pdt "),
    ];
    let mut out = street.to_owned();
    for (long, short) in SHORT {
        out = out.replace(long, short);
    }
    out
}

/// A one-letter typo in the longest word of the street name: substitution, deletion or swap.
fn typo(street: &str, seed: usize) -> String {
    let words: Vec<&str> = street.split([' ', '-', '\'']).collect();
    let Some(longest) = words
        .iter()
        .filter(|w| w.chars().count() >= 6 && w.is_ascii())
        .max_by_key(|w| w.len())
    else {
        return street.to_owned();
    };
    let mut letters: Vec<char> = longest.chars().collect();
    let at = 1 + seed % (letters.len() - 2);
    match seed % 3 {
        0 => letters[at] = if letters[at] == 'x' { 'z' } else { 'x' },
        1 => {
            letters.remove(at);
        }
        _ => letters.swap(at, at + 1),
    }
    let changed: String = letters.into_iter().collect();
    street.replacen(longest, &changed, 1)
}

/// Five caller-style spellings of a building's address.
fn spellings(b: &Building, i: usize) -> Vec<(&'static str, AddressInput)> {
    let glued_number = b.street_number.replace(' ', "");
    let postcode_or_commune = if i % 2 == 0 {
        b.postcode.clone()
    } else {
        b.city.clone()
    };
    vec![
        (
            "abbreviated",
            free_text(&format!(
                "{glued_number} {}, {} {}",
                abbreviate(&b.street_name),
                b.postcode,
                b.city
            )),
        ),
        (
            "upper case without accents",
            AddressInput {
                street_number: b.street_number.to_uppercase(),
                street: strip_accents(&b.street_name).to_uppercase(),
                postcode: b.postcode.clone(),
                city: strip_accents(&b.city).to_uppercase(),
                free_text: String::new(),
            },
        ),
        (
            "postcode or commune only",
            free_text(&format!(
                "{} {} {postcode_or_commune}",
                b.street_number,
                strip_accents(&b.street_name).to_lowercase()
            )),
        ),
        (
            "extra words",
            free_text(&format!(
                "logement au {} {} {} {} France",
                b.street_number, b.street_name, b.postcode, b.city
            )),
        ),
        (
            "one-letter typo",
            AddressInput {
                street_number: b.street_number.clone(),
                street: typo(&b.street_name, i),
                postcode: b.postcode.clone(),
                city: b.city.clone(),
                free_text: String::new(),
            },
        ),
    ]
}

#[test]
fn registry_addresses_are_found_as_callers_write_them() {
    let router = demo();
    let mut tried = 0usize;
    let mut failures = Vec::new();
    for (i, rb) in router.buildings.iter().enumerate() {
        for (style, input) in spellings(&rb.building, i) {
            tried += 1;
            let found = router.match_address(&input);
            if found.level != MatchLevel::Building
                || found.building_id.as_deref() != Some(&rb.building.id)
            {
                failures.push(format!(
                    "{style}: {input:?} → {:?} {:?}",
                    found.level, found.building_id
                ));
            }
        }
    }
    let rate = 1.0 - failures.len() as f64 / tried as f64;
    println!(
        "{tried} spellings, {} not found at BUILDING level ({:.2} % found)",
        failures.len(),
        rate * 100.0
    );
    for f in failures.iter().take(20) {
        println!("  {f}");
    }
    assert!(
        tried >= 5 * 2000,
        "every building is tried in five spellings"
    );
    assert!(
        rate >= 0.99,
        "{:.3} % found, at least 99 % required",
        rate * 100.0
    );
}

#[test]
fn wrong_buildings_are_never_returned_for_exact_addresses() {
    let router = demo();
    for rb in &router.buildings {
        let b = &rb.building;
        let found = router.match_address(&AddressInput {
            street_number: b.street_number.clone(),
            street: b.street_name.clone(),
            postcode: b.postcode.clone(),
            city: b.city.clone(),
            free_text: String::new(),
        });
        assert_eq!(found.building_id.as_deref(), Some(b.id.as_str()), "{b:?}");
        assert_eq!(found.level, MatchLevel::Building);
        assert!(
            found.confidence >= 0.99,
            "exact address, confidence {}",
            found.confidence
        );
    }
}

#[test]
fn an_unknown_house_number_on_a_known_street_is_street_level() {
    let router = demo();
    let b = &router.buildings[0].building;
    let found = router.match_address(&AddressInput {
        street_number: "987".to_owned(),
        street: b.street_name.clone(),
        postcode: b.postcode.clone(),
        city: b.city.clone(),
        free_text: String::new(),
    });
    assert_eq!(found.level, MatchLevel::Street);
    assert_eq!(
        found.building_id, None,
        "no guess at a neighbouring building"
    );
    assert!(!found.candidates.is_empty());
    assert!(found.candidates.iter().all(|c| c.building_id.is_some()));
}

#[test]
fn same_name_communes_are_told_apart_by_postcode() {
    let router = demo();
    // (name, [(INSEE, postcode)]) from the reference data's list of traps.
    let pairs = [
        ("Plouhinec", [("29197", "29780"), ("56169", "56680")]),
        ("Changé", [("53054", "53810"), ("72058", "72560")]),
        ("Le Faouët", [("22057", "22290"), ("56057", "56320")]),
        ("Saint-Aignan", [("56203", "56480"), ("72265", "72110")]),
        (
            "La Chapelle-Neuve",
            [("22037", "22160"), ("56039", "56500")],
        ),
    ];
    for (name, communes) in pairs {
        for (insee, postcode) in communes {
            let found = router.match_address(&AddressInput {
                postcode: postcode.to_owned(),
                city: name.to_owned(),
                ..AddressInput::default()
            });
            assert_eq!(found.level, MatchLevel::Commune, "{name} {postcode}");
            assert_eq!(
                found.insee_code.as_deref(),
                Some(insee),
                "{name} {postcode}"
            );
        }
        let alone = router.match_address(&AddressInput {
            city: name.to_owned(),
            ..AddressInput::default()
        });
        assert_eq!(
            alone.insee_code, None,
            "{name} alone names no single commune"
        );
        let codes: Vec<&str> = alone
            .candidates
            .iter()
            .map(|c| c.insee_code.as_str())
            .collect();
        for (insee, _) in communes {
            assert!(
                codes.contains(&insee),
                "{name}: candidate {insee} in {codes:?}"
            );
        }
    }
}

#[test]
fn a_name_alone_never_picks_a_cooperator_between_same_name_communes() {
    let router = demo();
    // Changé (Mayenne, 53054) is in Méduane Habitat's territory; Changé (Sarthe, 72058) is in
    // no cooperator's territory. The name alone must not pick Méduane Habitat.
    let decision = router
        .decide(
            &request("technical.other", free_text("Changé")),
            open_time(),
        )
        .expect("decides");
    assert_eq!(decision.cooperator_id, None);
    assert_eq!(decision.rule_id, TRIAGE_RULE);
    assert_eq!(decision.address_match.candidates.len(), 2);
    let mayenne = router
        .decide(
            &request("technical.other", free_text("53810 Changé")),
            open_time(),
        )
        .expect("decides");
    assert_eq!(mayenne.cooperator_id.as_deref(), Some("meduane-habitat"));
    let sarthe = router
        .decide(
            &request("technical.other", free_text("Changé 72560")),
            open_time(),
        )
        .expect("decides");
    assert_eq!(sarthe.address_match.insee_code.as_deref(), Some("72058"));
    assert_eq!(
        sarthe.cooperator_id, None,
        "no cooperator serves Changé (Sarthe)"
    );
}

#[test]
fn a_shared_commune_without_a_building_never_picks_a_cooperator() {
    let router = demo();
    for (insee, city, postcode) in [
        ("22070", "Guingamp", "22200"),
        ("22278", "Saint-Brieuc", "22000"),
    ] {
        let mut serving = router.cooperators_of_commune(insee);
        serving.sort_unstable();
        assert_eq!(
            serving,
            ["armorique-habitat", "guingamp-habitat"],
            "{city} is shared"
        );
        for address in [
            free_text(city),
            free_text(&format!("{postcode} {city}")),
            free_text(&format!("rue qui n'existe pas {postcode} {city}")),
        ] {
            for _ in 0..3 {
                let decision = router
                    .decide(
                        &request("technical.plumbing.leak", address.clone()),
                        open_time(),
                    )
                    .expect("decides");
                assert_eq!(decision.cooperator_id, None, "{address:?}");
                assert_eq!(decision.team_id, "platform.triage");
            }
        }
    }
    // A street of Guingamp holding buildings of both cooperators, without a house number.
    let shared_street = router
        .buildings
        .iter()
        .filter(|b| b.building.insee_code == "22070")
        .find(|b| {
            router.buildings.iter().any(|o| {
                o.building.insee_code == "22070"
                    && o.building.street_name == b.building.street_name
                    && o.cooperator != b.cooperator
            })
        })
        .expect("the demo registry has a street of Guingamp shared by two cooperators");
    let decision = router
        .decide(
            &request(
                "technical.plumbing.leak",
                free_text(&format!(
                    "{} 22200 Guingamp",
                    shared_street.building.street_name
                )),
            ),
            open_time(),
        )
        .expect("decides");
    assert_eq!(decision.address_match.level, MatchLevel::Street);
    assert_eq!(decision.cooperator_id, None);
    assert_eq!(decision.team_id, "platform.triage");
}

#[test]
fn a_commune_served_by_one_cooperator_is_enough() {
    let router = demo();
    let decision = router
        .decide(
            &request("administrative.lease", free_text("37390 Notre-Dame-d'Oé")),
            open_time(),
        )
        .expect("decides");
    assert_eq!(decision.address_match.level, MatchLevel::Commune);
    assert_eq!(decision.cooperator_id.as_deref(), Some("touraine-logement"));
    assert_eq!(decision.team_id, "touraine-logement.front-desk");
}

#[test]
fn old_names_of_merged_communes_lead_to_the_current_commune() {
    let router = demo();
    // Binic merged into Binic-Étables-sur-Mer (22055); Le Ponthou into Plouigneau (29199).
    for (old, current) in [
        ("Binic", "22055"),
        ("Le Ponthou", "29199"),
        ("Ruillé-le-Gravelais", "53137"),
    ] {
        let found = router.match_address(&free_text(old));
        assert_eq!(found.insee_code.as_deref(), Some(current), "{old}");
    }
}

#[test]
fn every_cooperator_answers_u1_out_of_hours_with_its_on_call_number() {
    let router = demo();
    let closed_times = [
        ("Sunday night", paris(2026, 11, 29, 3, 0)),
        ("weekday evening", paris(2026, 11, 26, 21, 30)),
        ("Armistice, a Wednesday morning", paris(2026, 11, 11, 10, 0)),
        ("Christmas", paris(2026, 12, 25, 11, 0)),
    ];
    for coop in &router.cooperators {
        let building = router
            .buildings
            .iter()
            .find(|b| router.cooperators[b.cooperator as usize].id == coop.id)
            .expect("every cooperator has buildings");
        for issue in ["emergency.gas_smell", "emergency.fire", "emergency.flood"] {
            for (when, at) in closed_times {
                let mut req = request(issue, AddressInput::default());
                req.address.street_number = building.building.street_number.clone();
                req.address.street = building.building.street_name.clone();
                req.address.postcode = building.building.postcode.clone();
                let decision = router.decide(&req, at).expect("decides");
                assert_eq!(decision.cooperator_id.as_deref(), Some(coop.id.as_str()));
                assert_eq!(decision.urgency, Urgency::U1);
                assert_eq!(
                    decision.transfer_to.as_deref(),
                    Some(coop.on_call.as_str()),
                    "{} {issue} {when}",
                    coop.id
                );
                assert_eq!(decision.rule_id, "u1-closed-on-call");
            }
            let open = router
                .decide(
                    &request(
                        issue,
                        AddressInput {
                            street_number: building.building.street_number.clone(),
                            street: building.building.street_name.clone(),
                            postcode: building.building.postcode.clone(),
                            ..AddressInput::default()
                        },
                    ),
                    open_time(),
                )
                .expect("decides");
            assert_eq!(open.transfer_to, None, "{} is open: no transfer", coop.id);
        }
    }
}

#[test]
fn tenant_reference_then_phone_locate_the_home() {
    let router = demo();
    let rb = &router.buildings[10];
    let tenants = std::fs::read_to_string("data/tenants.csv").expect("tenants");
    let row = tenants
        .lines()
        .find(|l| l.ends_with(&format!(",{}", rb.building.id)))
        .expect("a tenant of the building");
    let fields: Vec<&str> = row.split(',').collect();
    let mut req = request("technical.plumbing.leak", AddressInput::default());
    req.tenant_reference = fields[0].to_owned();
    let by_reference = router.decide(&req, open_time()).expect("decides");
    assert_eq!(
        by_reference.address_match.building_id.as_deref(),
        Some(rb.building.id.as_str())
    );
    assert!(by_reference.reasons[0].contains("tenant reference"));

    let mut req = request("technical.plumbing.leak", AddressInput::default());
    // The same number written the national way.
    req.caller_number = fields[1].replacen("+33", "0", 1);
    let by_phone = router.decide(&req, open_time()).expect("decides");
    assert_eq!(
        by_phone.address_match.building_id.as_deref(),
        Some(rb.building.id.as_str())
    );
    assert!(by_phone.reasons[0].contains("caller phone"));
    assert!(
        by_phone
            .reasons
            .iter()
            .all(|r| !r.contains(&req.caller_number) && !r.contains(fields[1])),
        "reasons never repeat the phone number"
    );

    let mut req = request("technical.plumbing.leak", AddressInput::default());
    req.tenant_reference = "XX-NOT-A-TENANT".to_owned();
    let unknown = router.decide(&req, open_time()).expect("decides");
    assert_eq!(unknown.team_id, "platform.triage");
    assert_eq!(unknown.address_match.level, MatchLevel::None);
}

#[test]
fn building_wide_issues_carry_an_incident_key() {
    let router = demo();
    let with_lift = router
        .buildings
        .iter()
        .find(|b| b.building.has_lift)
        .expect("a building with a lift");
    let mut req = request("technical.lift.breakdown", AddressInput::default());
    req.address.street_number = with_lift.building.street_number.clone();
    req.address.street = with_lift.building.street_name.clone();
    req.address.postcode = with_lift.building.postcode.clone();
    let decision = router.decide(&req, open_time()).expect("decides");
    assert_eq!(
        decision.incident_id,
        Some(format!("{}/lift", with_lift.building.id))
    );
    assert_eq!(decision.team_id, "contractor.lifts");

    let individual = router
        .buildings
        .iter()
        .find(|b| b.building.heating == callrouter::routing::places::Heating::Individual)
        .expect("individual heating");
    let collective = router
        .buildings
        .iter()
        .find(|b| b.building.heating == callrouter::routing::places::Heating::Collective)
        .expect("collective heating");
    for (rb, grouped) in [(individual, false), (collective, true)] {
        let mut req = request("technical.heating.no_heat", AddressInput::default());
        req.address.street_number = rb.building.street_number.clone();
        req.address.street = rb.building.street_name.clone();
        req.address.postcode = rb.building.postcode.clone();
        let decision = router.decide(&req, open_time()).expect("decides");
        assert_eq!(
            decision.incident_id.is_some(),
            grouped,
            "{:?}",
            rb.building.heating
        );
        // A building without heating is U1 (rule collective-heating-out); one flat is U2.
        let expected = if grouped { Urgency::U1 } else { Urgency::U2 };
        assert_eq!(decision.urgency, expected);
        if grouped {
            assert!(
                decision
                    .reasons
                    .iter()
                    .any(|r| r.contains("collective-heating-out"))
            );
        }
    }
}

#[test]
fn shared_contractors_and_teams_by_issue() {
    let router = demo();
    let rb = router
        .buildings
        .iter()
        .find(|b| router.cooperators[b.cooperator as usize].id == "touraine-logement")
        .expect("a Touraine Logement building");
    let address = AddressInput {
        street_number: rb.building.street_number.clone(),
        street: rb.building.street_name.clone(),
        postcode: rb.building.postcode.clone(),
        ..AddressInput::default()
    };
    let sector = &router.sectors[rb.sector as usize].id;
    let expectations = [
        (
            "technical.fire_safety",
            "contractor.fire-safety".to_owned(),
            "fire-safety",
        ),
        (
            "technical.roof.leak",
            "contractor.roofs".to_owned(),
            "roof-leak",
        ),
        (
            "information.asbestos",
            "contractor.asbestos-info".to_owned(),
            "asbestos-information",
        ),
        (
            "technical.plumbing.leak",
            format!("touraine-logement.technical.{sector}"),
            "technical",
        ),
        (
            "administrative.rent.payment",
            "touraine-logement.rent".to_owned(),
            "rent",
        ),
        (
            "administrative.rent.charges",
            "touraine-logement.front-desk".to_owned(),
            "touraine-charges-front-desk",
        ),
        (
            "administrative.lease",
            "touraine-logement.front-desk".to_owned(),
            "administrative",
        ),
        (
            "social.neighbour_dispute",
            "touraine-logement.social".to_owned(),
            "social",
        ),
        (
            "other",
            "touraine-logement.front-desk".to_owned(),
            "default:touraine-logement",
        ),
    ];
    for (issue, team, rule) in expectations {
        let decision = router
            .decide(&request(issue, address.clone()), open_time())
            .expect("decides");
        assert_eq!(decision.team_id, team, "{issue}");
        assert_eq!(decision.rule_id, rule, "{issue}");
        assert_eq!(decision.cooperator_id.as_deref(), Some("touraine-logement"));
        assert!(
            decision.reasons.len() >= 3,
            "the decision explains itself: {:?}",
            decision.reasons
        );
    }
    // Heating calls on a public holiday go to the on-call line (rule heating-on-holidays).
    let decision = router
        .decide(
            &request("technical.heating.no_hot_water", address),
            paris(2026, 12, 25, 11, 0),
        )
        .expect("decides");
    assert!(decision.rule_id == "heating-on-holidays" || decision.rule_id == "u1-closed-on-call");
    assert!(decision.transfer_to.is_some());
}

#[test]
fn unknown_issue_types_are_refused() {
    let err = demo()
        .decide(
            &request("technical.unicorn", free_text("Tours")),
            open_time(),
        )
        .expect_err("unknown issue type");
    assert!(err.to_string().contains("technical.unicorn"));
}

#[test]
fn unlocated_emergencies_out_of_hours_go_to_the_platform_on_call() {
    let router = demo();
    let decision = router
        .decide(
            &request("emergency.gas_smell", AddressInput::default()),
            paris(2026, 11, 29, 3, 0),
        )
        .expect("decides");
    assert_eq!(decision.team_id, "platform.triage");
    assert_eq!(
        decision.transfer_to.as_deref(),
        Some(router.platform.on_call.as_str())
    );
    let in_hours = router
        .decide(
            &request("emergency.gas_smell", AddressInput::default()),
            open_time(),
        )
        .expect("decides");
    assert_eq!(in_hours.transfer_to, None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any combination of case, accents, abbreviations, glued suffixes, punctuation and
        /// postcode-or-commune finds the same building.
        #[test]
        fn any_combination_of_caller_habits_finds_the_building(
            pick in any::<prop::sample::Index>(),
            upper in any::<bool>(),
            no_accents in any::<bool>(),
            short in any::<bool>(),
            glue in any::<bool>(),
            commas in any::<bool>(),
            place in 0..3usize,
        ) {
            let router = demo();
            let rb = &router.buildings[pick.index(router.buildings.len())];
            let b = &rb.building;
            let number = if glue { b.street_number.replace(' ', "") } else { b.street_number.clone() };
            let mut street = if short { abbreviate(&b.street_name) } else { b.street_name.clone() };
            let mut city = b.city.clone();
            if no_accents {
                street = strip_accents(&street);
                city = strip_accents(&city);
            }
            let sep = if commas { ", " } else { " " };
            let place = match place {
                0 => format!("{}{sep}{city}", b.postcode),
                1 => b.postcode.clone(),
                _ => city,
            };
            let mut text = format!("{number} {street}{sep}{place}");
            if upper {
                text = text.to_uppercase();
            }
            let found = router.match_address(&free_text(&text));
            // Postcode-only and commune-only may be ambiguous between communes sharing a postcode
            // or a name when the same street and number exist in both: then no guess is allowed.
            if found.level == MatchLevel::Building {
                prop_assert_eq!(found.building_id.as_deref(), Some(b.id.as_str()), "{}", text);
            } else {
                prop_assert!(found.candidates.len() > 1 || found.insee_code.is_none(), "{} → {:?}", text, found);
                prop_assert!(found.candidates.iter().any(|c| c.building_id.as_deref() == Some(b.id.as_str())) || found.level < MatchLevel::Street, "{}", text);
            }
        }
    }
}

/// A date inside a street's name is the name's, wherever the house number stands: before the
/// street, after it, or not at all.
#[test]
fn numbers_inside_street_names_are_not_house_numbers() {
    let router = demo();
    let building = |text: &str| {
        router
            .decide(
                &request("technical.plumbing.leak", free_text(text)),
                open_time(),
            )
            .expect("decided")
            .address_match
    };
    for text in [
        "2 Rue du 8-Mai-1945 22000 SAINT-BRIEUC",
        "Rue du 8-Mai-1945, 2, 22000 SAINT-BRIEUC",
        "rue du 8 mai 1945 2 22000 saint brieuc",
    ] {
        let found = building(text);
        assert_eq!(
            (found.level, found.building_id.as_deref()),
            (MatchLevel::Building, Some("AH-00169")),
            "{text}"
        );
    }
    let street_only = building("Rue du 8-Mai-1945 22000 Saint-Brieuc");
    assert_eq!(
        street_only.level,
        MatchLevel::Street,
        "no house number given"
    );
}

/// Abbreviations as a rule, not a list: a caller's word matches a street's word when it is a prefix
/// of it ("Rep", "Fon") or its letters in order from the same first letter ("Ml", "Mln", "Std",
/// "Chps").
#[test]
fn abbreviated_street_words_find_the_building() {
    let router = demo();
    for (text, building) in [
        ("33 Av de la Fon 22200 Guingamp", "AH-00006"),
        ("6 Imp de la Rep 22000 Saint-Brieuc", "AH-00150"),
        ("30 Rue du Ml Joffre 22000 Saint-Brieuc", "AH-00163"),
        ("29 Imp Jean Mln 22290 Lanleff", "GH-00085"),
        ("23 Res du Std 22000 Saint-Brieuc", "AH-00143"),
        ("10 ter Rte de St Martin des Chps 22960 Pledran", "AH-00062"),
    ] {
        let found = router
            .decide(
                &request("technical.plumbing.leak", free_text(text)),
                open_time(),
            )
            .expect("decided")
            .address_match;
        assert_eq!(
            (found.level, found.building_id.as_deref()),
            (MatchLevel::Building, Some(building)),
            "{text}"
        );
    }
}
