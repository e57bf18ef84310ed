//! The fuzz harness of the request path (`fuzz/request_path.rs`) run in the test suite: on seeds
//! that must be decided (its own, and `fuzz/seeds/`, the fuzzer's starting corpus), and on every input the fuzzer ever found a problem with
//! (`fuzz/regressions/`), which must now pass through without a panic.

#[path = "../fuzz/request_path.rs"]
mod request_path;

use callrouter::api::pb;
use prost::Message;

fn tours_leak() -> pb::RouteCallRequest {
    let text = std::fs::read_to_string("data/buildings.csv").expect("registry");
    let row = text
        .lines()
        .find(|l| l.contains(",touraine-logement,tl-tours,"))
        .expect("a building in Tours");
    let f: Vec<&str> = row.split(',').collect();
    pb::RouteCallRequest {
        call_id: "fuzz-seed".to_owned(),
        address: Some(pb::Address {
            free_text: format!("{} {} {} {}", f[3], f[4], f[5], f[7]),
            ..Default::default()
        }),
        issue_type: "technical.plumbing.leak".to_owned(),
        ..Default::default()
    }
}

#[test]
fn valid_requests_through_either_edge_are_decided() {
    let mut grpc = vec![0u8];
    grpc.extend(tours_leak().encode_to_vec());
    assert_eq!(request_path::exercise(&grpc), 1);
    let lines = concat!(
        "\x01",
        r#"{"call_id":"a","address":{"city":"Tours"},"issue_type":"other"}"#,
        "\n",
        r#"{"call_id":"b","issue_type":"technical.plumbing.leak"}"#,
        "\n"
    );
    assert_eq!(request_path::exercise(lines.as_bytes()), 2);
}

#[test]
fn every_seed_of_the_fuzzer_is_decided() {
    let mut seeds = 0;
    for entry in std::fs::read_dir("fuzz/seeds").expect("fuzz/seeds") {
        let path = entry.expect("entry").path();
        let input = std::fs::read(&path).expect("read");
        assert_eq!(request_path::exercise(&input), 1, "{}", path.display());
        seeds += 1;
    }
    assert!(seeds >= 20, "the seeds are where the test looks");
}

#[test]
fn every_input_the_fuzzer_found_passes_through() {
    let mut found = 0;
    for entry in std::fs::read_dir("fuzz/regressions").expect("fuzz/regressions") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let input = std::fs::read(&path).expect("read");
        request_path::exercise(&input);
        found += 1;
    }
    println!("fuzz regressions replayed: {found}");
    assert!(found >= 1, "the regressions are where the test looks");
}
