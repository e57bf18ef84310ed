//! gRPC labels as go-grpc-prometheus writes them, so that stock dashboards and alerts read our
//! figures: `grpc_type` (unary, server_stream, bidi_stream), `grpc_service`, `grpc_method`, and
//! `grpc_code` in Go's spelling (`OK`, `Canceled`, …).
//!
//! Only the served contracts' (service, method) pairs are label values: any other path, a real
//! service with another's method included, is `other`, so no client can create series. Their
//! series are resolved once ([`series`]), so an RPC counts itself without hashing label values.

use std::time::Duration;

use prometheus::{Histogram, IntCounter};

use super::families::RpcFamilies;

/// The service, method and type labels of one RPC path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcLabels {
    pub kind: &'static str,
    pub service: &'static str,
    pub method: &'static str,
    /// Position among the served methods (their count for `other`): where its series are.
    pub at: usize,
}

impl RpcLabels {
    /// In the families' label order: type, service, method.
    pub fn values(&self) -> [&'static str; 3] {
        [self.kind, self.service, self.method]
    }

    /// Whether the method answers with a stream (its end is counted when the stream ends).
    pub fn is_stream(&self) -> bool {
        self.kind != UNARY
    }
}

const UNARY: &str = "unary";
const SERVER_STREAM: &str = "server_stream";
const BIDI_STREAM: &str = "bidi_stream";

/// The gRPC methods served, as (service, method, type).
const SERVED: [(&str, &str, &str); 19] = [
    ("callrouter.v1.CallRouting", "RouteCall", UNARY),
    ("callrouter.v1.CallRouting", "ExplainRoute", UNARY),
    ("callrouter.v1.CallRouting", "CancelCall", UNARY),
    ("callrouter.v1.AgentDesk", "ClaimNextTicket", UNARY),
    ("callrouter.v1.AgentDesk", "AcceptTicket", UNARY),
    ("callrouter.v1.AgentDesk", "CompleteTicket", UNARY),
    ("callrouter.v1.AgentDesk", "ReleaseTicket", UNARY),
    ("callrouter.v1.AgentDesk", "TransferTicket", UNARY),
    ("callrouter.v1.AgentDesk", "GetTicket", UNARY),
    ("callrouter.v1.AgentDesk", "ListTickets", UNARY),
    ("callrouter.v1.AgentDesk", "WatchTickets", SERVER_STREAM),
    ("callrouter.v1.AgentDesk", "SetAgentStatus", UNARY),
    ("callrouter.v1.Operations", "GetQueueStats", UNARY),
    ("callrouter.v1.Operations", "ListAgents", UNARY),
    ("callrouter.v1.Operations", "ReloadConfig", UNARY),
    ("grpc.health.v1.Health", "Check", UNARY),
    ("grpc.health.v1.Health", "Watch", SERVER_STREAM),
    (
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        BIDI_STREAM,
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        BIDI_STREAM,
    ),
];

/// Where paths outside the contracts are counted.
const OTHER: RpcLabels = RpcLabels {
    kind: UNARY,
    service: "other",
    method: "other",
    at: SERVED.len(),
};

/// The labels of a gRPC path: one of the served methods, else `other`.
pub fn rpc_labels(path: &str) -> RpcLabels {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    SERVED
        .iter()
        .position(|(s, m, _)| *s == service && *m == method)
        .map_or(OTHER, served)
}

fn served(at: usize) -> RpcLabels {
    let (service, method, kind) = SERVED[at];
    RpcLabels {
        kind,
        service,
        method,
        at,
    }
}

/// Every gRPC code, in order.
const CODES: [tonic::Code; 17] = [
    tonic::Code::Ok,
    tonic::Code::Cancelled,
    tonic::Code::Unknown,
    tonic::Code::InvalidArgument,
    tonic::Code::DeadlineExceeded,
    tonic::Code::NotFound,
    tonic::Code::AlreadyExists,
    tonic::Code::PermissionDenied,
    tonic::Code::ResourceExhausted,
    tonic::Code::FailedPrecondition,
    tonic::Code::Aborted,
    tonic::Code::OutOfRange,
    tonic::Code::Unimplemented,
    tonic::Code::Internal,
    tonic::Code::Unavailable,
    tonic::Code::DataLoss,
    tonic::Code::Unauthenticated,
];

/// A code as Go's `codes.Code.String()` spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Canceled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

/// The series of one served method (or `other`).
pub(super) struct RpcSeries {
    started: IntCounter,
    received: IntCounter,
    sent: IntCounter,
    handling: Histogram,
    /// By code, in the codes' numeric order.
    handled: Vec<IntCounter>,
}

impl RpcSeries {
    pub fn started(&self) {
        self.started.inc();
    }

    pub fn handled(&self, code: tonic::Code, elapsed: Duration, received: u64, sent: u64) {
        if let Some(counter) = self.handled.get(code as usize) {
            counter.inc();
        }
        self.handling.observe(elapsed.as_secs_f64());
        self.received.inc_by(received);
        self.sent.inc_by(sent);
    }
}

/// The series of every served method, then `other` (in [`RpcLabels::at`] order), with every code
/// of `handled`, created at zero as go-grpc-prometheus's `InitializeMetrics` does.
pub(super) fn series(rpc: &RpcFamilies) -> Vec<RpcSeries> {
    (0..SERVED.len())
        .map(served)
        .chain([OTHER])
        .map(|labels| {
            let values = labels.values();
            RpcSeries {
                started: rpc.started.with_label_values(&values),
                received: rpc.received.with_label_values(&values),
                sent: rpc.sent.with_label_values(&values),
                handling: rpc.handling.with_label_values(&values),
                handled: CODES
                    .iter()
                    .map(|&code| {
                        rpc.handled.with_label_values(&[
                            labels.kind,
                            labels.service,
                            labels.method,
                            code_name(code),
                        ])
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_contracts_do_not_make_labels() {
        let route = rpc_labels("/callrouter.v1.CallRouting/RouteCall");
        assert_eq!(
            (route.service, route.method, route.kind),
            ("callrouter.v1.CallRouting", "RouteCall", "unary")
        );
        assert_eq!(
            rpc_labels("/callrouter.v1.AgentDesk/WatchTickets").kind,
            "server_stream"
        );
        assert_eq!(
            rpc_labels("/grpc.health.v1.Health/Check").service,
            "grpc.health.v1.Health"
        );
        assert_eq!(rpc_labels("/evil.Service/+33612345678"), OTHER);
        assert_eq!(rpc_labels("garbage"), OTHER);
        // A real service with another service's method is no method of the contract.
        assert_eq!(rpc_labels("/grpc.health.v1.Health/RouteCall"), OTHER);
        assert_eq!(rpc_labels("/callrouter.v1.CallRouting/Check"), OTHER);
    }

    #[test]
    fn codes_are_spelled_as_go_spells_them() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
        let mut names: Vec<&str> = CODES.iter().map(|c| code_name(*c)).collect();
        names.dedup();
        assert_eq!(names.len(), 17);
        for (n, code) in CODES.iter().enumerate() {
            assert_eq!(*code as usize, n, "CODES in numeric order");
        }
    }
}
