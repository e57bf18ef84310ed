//! The `explain` dry-run command and the registry generator, run as a user runs them.

use std::io::Write;
use std::process::{Command, Stdio};

fn explain(args: &[&str], input: impl AsRef<[u8]>) -> (bool, Vec<serde_json::Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .arg("explain")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run callrouter explain");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_ref())
        .expect("write requests");
    let out = child.wait_with_output().expect("explain finishes");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_prints_one_decision_per_request_with_the_contract_names() {
    let input = concat!(
        r#"{"call_id":"c1","address":{"free_text":"12 bd St-Michel 72000 Le Mans"},"issue_type":"technical.plumbing.leak","received_at":"2026-11-27T10:00:00+01:00"}"#,
        "\n\n",
        r#"{"call_id":"c2","address":{"street_number":"12","street":"boulevard saint michel","postcode":"72000"},"issue_type":"emergency.gas_smell"}"#,
        "\n",
    );
    let (ok, lines, stderr) = explain(&["--at", "2026-11-29T03:00:00+01:00"], input);
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), 2, "blank lines are skipped");
    for key in [
        "cooperator_id",
        "team_id",
        "urgency",
        "rule_id",
        "transfer_to",
        "reasons",
        "incident_id",
        "address_match",
    ] {
        assert!(lines[0].get(key).is_some(), "decision has {key}");
    }
    let matched = &lines[0]["address_match"];
    for key in [
        "building_id",
        "level",
        "confidence",
        "normalized",
        "candidates",
    ] {
        assert!(matched.get(key).is_some(), "address_match has {key}");
    }
    assert_eq!(matched["level"], "BUILDING");
    assert_eq!(
        matched["normalized"],
        "12 boulevard saint michel 72000 le mans"
    );
    assert_eq!(lines[0]["cooperator_id"], "mancelle-habitation");
    // --at (a Sunday night) wins over received_at (a Friday morning): closed.
    assert_eq!(lines[0]["urgency"], "U2");
    assert_eq!(lines[1]["urgency"], "U1");
    assert_eq!(lines[1]["transfer_to"], "+33 2 61 91 00 44");
    assert_eq!(lines[1]["rule_id"], "u1-closed-on-call");
}

#[test]
fn received_at_is_used_without_at() {
    let input = r#"{"call_id":"c1","address":{"free_text":"12 bd St-Michel 72000 Le Mans"},"issue_type":"emergency.gas_smell","received_at":"2026-11-27T10:00:00+01:00"}"#;
    let (ok, lines, stderr) = explain(&[], input);
    assert!(ok, "{stderr}");
    assert_eq!(
        lines[0]["rule_id"], "u1-open-technical",
        "Friday 10:00 is open"
    );
    assert_eq!(lines[0]["transfer_to"], serde_json::Value::Null);
}

#[test]
fn bad_lines_give_an_error_naming_the_field_and_the_others_are_decided() {
    let long = "x".repeat(300);
    let input = [
        r#"{"call_id":"c1","issue_type":"technical.unicorn"}"#.to_owned(),
        "this is not json".to_owned(),
        r#"{"call_id":"c3","issue_type":"other","received_at":"yesterday"}"#.to_owned(),
        format!(r#"{{"call_id":"{long}","issue_type":"other"}}"#),
        r#"{"call_id":"c5","issue_type":"other","adress":{}}"#.to_owned(),
        r#"{"call_id":"c6"}"#.to_owned(),
        r#"{"call_id":"c7","address":{"city":"Tours"},"issue_type":"other"}"#.to_owned(),
    ]
    .join("\n");
    let (ok, lines, stderr) = explain(&["--at", "2026-11-27T10:00:00+01:00"], &input);
    assert!(!ok, "a run with failed lines exits non-zero");
    assert!(
        stderr.contains("6 request(s) could not be routed"),
        "{stderr}"
    );
    assert_eq!(lines.len(), 7, "one output line per request line");
    let expected = [
        (1, Some("issue_type"), "technical.unicorn"),
        (2, None, "not a request object"),
        (3, Some("received_at"), "RFC 3339"),
        (4, Some("call_id"), "at most 256"),
        (5, None, "unknown field `adress`"),
        (6, Some("issue_type"), "is required"),
    ];
    for (i, (line, field, words)) in expected.into_iter().enumerate() {
        let error = &lines[i]["error"];
        assert_eq!(error["line"], line);
        match field {
            Some(f) => assert_eq!(error["field"], f, "line {line}"),
            None => assert_eq!(error["field"], serde_json::Value::Null, "line {line}"),
        }
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(words), "line {line}: {message}");
    }
    assert_eq!(lines[6]["cooperator_id"], "touraine-logement");
}

#[test]
fn lines_that_are_not_text_or_too_long_give_an_error_and_the_others_are_decided() {
    let good = r#"{"call_id":"c","address":{"city":"Tours"},"issue_type":"other"}"#;
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"call_id\":\"\xff\xfe\"}\n");
    input.extend_from_slice(format!("{good}\r\n").as_bytes());
    input.extend_from_slice(&vec![b'x'; 70_000]);
    input.extend_from_slice(b"\n");
    input.extend_from_slice(good.as_bytes());
    let (ok, lines, _) = explain(&["--at", "2026-11-27T10:00:00+01:00"], &input);
    assert!(!ok, "a run with failed lines exits non-zero");
    assert_eq!(lines.len(), 4, "one output line per request line");
    assert_eq!(lines[0]["error"]["line"], 1);
    let message = lines[0]["error"]["message"].as_str().expect("message");
    assert!(message.contains("not UTF-8"), "{message}");
    assert_eq!(
        lines[1]["cooperator_id"], "touraine-logement",
        "CRLF ends a line"
    );
    assert_eq!(lines[2]["error"]["line"], 3);
    let message = lines[2]["error"]["message"].as_str().expect("message");
    assert!(message.contains("longer than 65536 bytes"), "{message}");
    assert_eq!(lines[3]["cooperator_id"], "touraine-logement");
}

#[test]
fn explain_refuses_a_bad_at_and_a_missing_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args(["explain", "--at", "tomorrow"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an RFC 3339 time"));
    let out = Command::new(env!("CARGO_BIN_EXE_callrouter"))
        .args(["explain", "/nonexistent/requests.jsonl"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn the_generator_reproduces_the_shipped_registry_byte_for_byte() {
    let out_dir = std::env::temp_dir().join(format!("callrouter-gen-{}", std::process::id()));
    let made = callrouter::datagen::generate("config/callrouter.toml".as_ref(), 2024, 1, &out_dir)
        .expect("generate");
    for file in ["buildings.csv", "tenants.csv"] {
        let shipped = std::fs::read(format!("data/{file}")).expect("shipped file");
        let generated = std::fs::read(out_dir.join(file)).expect("generated file");
        assert!(
            shipped == generated,
            "data/{file} differs from what the generator makes"
        );
    }
    assert!((1900..=2200).contains(&made.buildings), "{made:?}");
    assert!((28_000..=32_000).contains(&made.dwellings), "{made:?}");
    let _ = std::fs::remove_dir_all(&out_dir);
}
