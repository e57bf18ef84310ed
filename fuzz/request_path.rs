//! The request path under arbitrary bytes, shared by the fuzz target and the regression test:
//! the first byte chooses the edge. Even: the bytes after it are a `RouteCallRequest` in protobuf,
//! as gRPC receives it (decoding, `received_at`, conversion and validation, decision with address
//! normalisation and matching). Odd: they are lines of `callrouter explain` (JSON, UTF-8, line
//! length, the same validation and decision). Nothing may panic, and what either edge accepts
//! must be decided.

use std::path::Path;
use std::sync::OnceLock;

use callrouter::api::{convert, pb};
use callrouter::routing::Router;
use prost::Message;

/// The demo deployment, loaded once.
pub fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        // The project's root: this crate's, or the one above the fuzz crate's.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = if here.ends_with("fuzz") {
            here.parent().expect("the project")
        } else {
            here
        };
        let config = root.join("config/callrouter.toml");
        callrouter::config::load(&config).expect("the demo configuration loads")
    })
}

/// Runs one input through the path it selects: how many requests were decided.
pub fn exercise(data: &[u8]) -> usize {
    let Some((&selector, rest)) = data.split_first() else {
        return 0;
    };
    if selector % 2 == 0 {
        through_grpc(rest)
    } else {
        through_explain(rest)
    }
}

fn through_grpc(body: &[u8]) -> usize {
    let Ok(request) = pb::RouteCallRequest::decode(body) else {
        return 0;
    };
    let Ok(at) = convert::received_at(&request) else {
        return 0;
    };
    let Ok(domain) = convert::route_request(request) else {
        return 0;
    };
    match router().decide(&domain, at) {
        Ok(decision) => {
            let answer = convert::decision_to_pb(decision).encode_to_vec();
            assert!(!answer.is_empty(), "a decision names at least its team");
            1
        }
        Err(_) => 0,
    }
}

fn through_explain(lines: &[u8]) -> usize {
    let mut output = Vec::new();
    let summary = callrouter::explain::explain_lines(
        router(),
        lines,
        &mut output,
        callrouter::explain::DecisionTime::FromRequest,
    )
    .expect("writing to memory cannot fail");
    let written = output.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        written,
        summary.decided + summary.failed,
        "one output line per request line"
    );
    summary.decided
}
