//! `check-config` on broken configurations: each kind of mistake is refused with a message that
//! names the file and the line, and the shipped configuration passes.

mod support {
    pub mod scratch;
}

use std::path::Path;
use std::process::Command;

use callrouter::config;

use support::scratch::Scratch;

fn assert_reported(problems: &[String], location: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.contains(location) && p.contains(words)),
        "expected a problem at {location} mentioning {words:?}, got:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_shipped_configuration_passes() {
    let router =
        config::load(Path::new(config::DEMO_CONFIG)).expect("the demo deployment is valid");
    assert_eq!(router.cooperators.len(), 6);
    assert!(router.buildings.len() >= 1900);
}

#[test]
fn an_unknown_team_is_named_with_its_line() {
    let s = Scratch::new("unknown-team");
    s.replace(
        "config/rules.toml",
        "team = \"contractor.roofs\"",
        "team = \"contractor.roofz\"",
    );
    let line = s.line_of("config/rules.toml", "contractor.roofz");
    assert_reported(
        &s.problems(),
        &format!("rules.toml:{line}:"),
        "unknown team 'contractor.roofz'",
    );
}

#[test]
fn an_unknown_cooperator_in_a_rule_is_named() {
    let s = Scratch::new("unknown-cooperator");
    s.replace(
        "config/rules.toml",
        "cooperators = [\"touraine-logement\"]",
        "cooperators = [\"touraine-habitat\"]",
    );
    let line = s.line_of("config/rules.toml", "touraine-habitat");
    assert_reported(
        &s.problems(),
        &format!("rules.toml:{line}:"),
        "unknown cooperator 'touraine-habitat'",
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let s = Scratch::new("duplicate");
    s.append(
        "config/rules.toml",
        "\n[[rules]]\nid = \"technical\"\ndescription = \"again\"\ncooperators = [\"lb-habitat\"]\nissue = [\"other\"]\nteam_of = \"front_desk\"\n",
    );
    let problems = s.problems();
    assert!(
        problems.iter().any(|p| p.contains("rules.toml:")
            && p.contains("duplicate rule id 'technical' (first defined at line")),
        "{problems:?}"
    );
}

#[test]
fn a_rule_hidden_by_an_earlier_rule_is_refused() {
    let s = Scratch::new("unreachable");
    s.append(
        "config/rules.toml",
        "\n[[rules]]\nid = \"plumbing-too-late\"\ndescription = \"never reached\"\nissue = [\"technical.plumbing\"]\nteam = \"contractor.roofs\"\n",
    );
    let line = s.line_of("config/rules.toml", "plumbing-too-late");
    assert_reported(
        &s.problems(),
        &format!("rules.toml:{line}:"),
        "rule plumbing-too-late can never match: rule technical",
    );
}

#[test]
fn a_cooperator_without_u1_cover_when_closed_is_refused() {
    let s = Scratch::new("no-u1-cover");
    // Send U1 requests to the on-call line only for five cooperators, by listing them.
    s.replace(
        "config/rules.toml",
        "urgency = [\"U1\"]\ntime = \"closed\"\non_call = true",
        "cooperators = [\"armorique-habitat\", \"guingamp-habitat\", \"lb-habitat\", \"mancelle-habitation\", \"meduane-habitat\"]\nurgency = [\"U1\"]\ntime = \"closed\"\non_call = true",
    );
    let line = s.line_of("config/rules.toml", "u1-open-technical");
    let problems = s.problems();
    assert_reported(
        &problems,
        &format!("rules.toml:{line}:"),
        "touraine-logement has no U1 cover when closed",
    );
    assert_reported(&problems, "rules.toml", "emergency.gas_smell");
    assert!(
        problems
            .iter()
            .all(|p| !p.contains("armorique-habitat has no U1 cover")),
        "only the uncovered cooperator is reported: {problems:?}"
    );
}

#[test]
fn a_building_whose_postcode_is_not_its_communes_is_refused() {
    let s = Scratch::new("postcode");
    let text = std::fs::read_to_string(s.dir.join("data/buildings.csv")).expect("read");
    let row = text
        .lines()
        .find(|l| l.contains(",37261,Tours,"))
        .expect("a building in Tours");
    let broken = row
        .replacen(",37000,", ",72000,", 1)
        .replacen(",37100,", ",72000,", 1)
        .replacen(",37200,", ",72000,", 1);
    s.replace("data/buildings.csv", row, &broken);
    let line = s.line_of("data/buildings.csv", &broken);
    assert_reported(
        &s.problems(),
        &format!("buildings.csv:{line}:"),
        "postcode 72000 does not belong to commune 37261",
    );
}

#[test]
fn malformed_csv_rows_are_refused_with_their_line() {
    let s = Scratch::new("csv");
    let text = std::fs::read_to_string(s.dir.join("data/buildings.csv")).expect("read");
    let third = text.lines().nth(3).expect("a row");
    let short = third.split(',').take(5).collect::<Vec<_>>().join(",");
    s.replace("data/buildings.csv", third, &short);
    let fourth = text.lines().nth(4).expect("a row");
    let fields: Vec<&str> = fourth.split(',').collect();
    let bad_count = format!(
        "{},{},{},lots,{}",
        fields[..8].join(","),
        "",
        "",
        fields[10]
    );
    s.replace(
        "data/buildings.csv",
        fourth,
        &bad_count.replacen(",,,lots", ",lots,true", 1),
    );
    let problems = s.problems();
    assert_reported(
        &problems,
        "buildings.csv:4:",
        "row has 5 fields, expected at least 11",
    );
    assert_reported(
        &problems,
        "buildings.csv:5:",
        "dwellings must be a whole number",
    );
}

#[test]
fn toml_syntax_and_unknown_keys_are_refused_with_their_line() {
    let s = Scratch::new("syntax");
    s.replace(
        "config/rules.toml",
        "id = \"social\"",
        "id = \"social\"\nurgence = [\"U1\"]",
    );
    let line = s.line_of("config/rules.toml", "urgence");
    assert_reported(
        &s.problems(),
        &format!("rules.toml:{line}:"),
        "unknown field `urgence`",
    );

    let s = Scratch::new("syntax2");
    s.replace(
        "config/callrouter.toml",
        "name = \"Méduane Habitat\"",
        "name = \"Méduane Habitat",
    );
    let line = s.line_of("config/callrouter.toml", "name = \"Méduane Habitat");
    assert_reported(&s.problems(), &format!("callrouter.toml:{line}:"), "");
}

#[test]
fn bad_opening_hours_and_unknown_territories_are_refused() {
    let s = Scratch::new("hours");
    s.replace(
        "config/callrouter.toml",
        "hours = [\"mon-fri 08:45-12:15 13:30-17:15\"]",
        "hours = [\"mon-fri 08:45-12:15 13:30-27:15\"]",
    );
    s.replace(
        "config/callrouter.toml",
        "epci = [\"200083392\"]",
        "epci = [\"200083393\"]",
    );
    let problems = s.problems();
    let hours_line = s.line_of("config/callrouter.toml", "27:15");
    assert_reported(
        &problems,
        &format!("callrouter.toml:{hours_line}:"),
        "'27:15' is not a time of day",
    );
    let epci_line = s.line_of("config/callrouter.toml", "200083393");
    assert_reported(
        &problems,
        &format!("callrouter.toml:{epci_line}:"),
        "unknown EPCI '200083393'",
    );
}

#[test]
fn a_missing_team_of_kind_is_refused() {
    let s = Scratch::new("team-of");
    s.replace(
        "config/callrouter.toml",
        "id = \"lb-habitat.social\"\nname = \"Groupe LB Habitat — Gestion sociale\"\nkind = \"social\"",
        "id = \"lb-habitat.social\"\nname = \"Groupe LB Habitat — Gestion sociale\"\nkind = \"rent\"",
    );
    let line = s.line_of("config/rules.toml", "id = \"social\"");
    assert_reported(
        &s.problems(),
        &format!("rules.toml:{line}:"),
        "sends to the social team, but lb-habitat has none",
    );
}

#[test]
fn check_config_exits_non_zero_with_the_problem_on_stderr() {
    let ok = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .arg("check-config")
        .output()
        .expect("run callrouter");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok"));

    let s = Scratch::new("cli");
    s.replace(
        "config/rules.toml",
        "team = \"contractor.roofs\"",
        "team = \"contractor.roofz\"",
    );
    let failed = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args(["check-config", "--config"])
        .arg(s.main())
        .output()
        .expect("run callrouter");
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("rules.toml:") && stderr.contains("contractor.roofz"),
        "{stderr}"
    );

    let missing = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args(["check-config", "--config", "/nonexistent/callrouter.toml"])
        .output()
        .expect("run callrouter");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
