//! The JSON form of routing requests and decisions used by `callrouter explain`: one request per
//! input line (fields named as `RouteCallRequest`), one decision per output line (fields named as
//! `RoutingDecision`).
//!
//! A line that cannot be routed yields an error object on its output line instead
//! (`{"error":{"line":3,"field":"issue_type","message":"…"}}`), so output lines stay aligned with
//! input lines and one bad request does not stop the others.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::routing::address::AddressInput;
use crate::routing::request::{FieldError, RouteRequest, check_request};
use crate::routing::{RouteError, Router};

/// An address as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AddressJson {
    pub street_number: String,
    pub street: String,
    pub postcode: String,
    pub city: String,
    pub free_text: String,
}

/// A routing request as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteCallRequestJson {
    pub call_id: String,
    pub caller_number: String,
    pub dialed_number: String,
    pub tenant_reference: String,
    pub address: Option<AddressJson>,
    pub issue_type: String,
    pub description: String,
    pub received_at: Option<String>,
}

impl RouteCallRequestJson {
    /// Converts to the domain request and the time it was received, if given.
    pub fn into_domain(self) -> Result<(RouteRequest, Option<DateTime<Utc>>), FieldError> {
        let received_at = match self.received_at.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|e| {
                        FieldError::new(
                            "received_at",
                            format!("'{text}' is not an RFC 3339 time: {e}"),
                        )
                    })?
                    .with_timezone(&Utc),
            ),
        };
        let address = self.address.unwrap_or_default();
        let request = RouteRequest {
            call_id: self.call_id,
            caller_number: self.caller_number,
            dialed_number: self.dialed_number,
            tenant_reference: self.tenant_reference,
            address: AddressInput {
                street_number: address.street_number,
                street: address.street,
                postcode: address.postcode,
                city: address.city,
                free_text: address.free_text,
            },
            issue_type: self.issue_type,
            description: self.description,
        };
        check_request(&request)?;
        Ok((request, received_at))
    }
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    line: usize,
    field: Option<&'a str>,
    message: &'a str,
}

/// Counts of one `explain` run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExplainSummary {
    pub decided: usize,
    pub failed: usize,
}

/// Which moment a request is decided at.
#[derive(Debug, Clone, Copy)]
pub enum DecisionTime {
    /// This moment, whatever the request says (`--at`).
    Fixed(DateTime<Utc>),
    /// The request's `received_at`, else now.
    FromRequest,
}

/// Reads requests line by line and writes one decision (or error) per non-empty line.
pub fn explain_lines(
    router: &Router,
    input: impl BufRead,
    mut output: impl Write,
    time: DecisionTime,
) -> std::io::Result<ExplainSummary> {
    let mut summary = ExplainSummary::default();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let number = i + 1;
        let outcome = serde_json::from_str::<RouteCallRequestJson>(&line)
            .map_err(|e| FieldError::new("", format!("not a request object: {e}")))
            .and_then(RouteCallRequestJson::into_domain)
            .and_then(|(request, received_at)| {
                let at = match time {
                    DecisionTime::Fixed(at) => at,
                    DecisionTime::FromRequest => received_at.unwrap_or_else(Utc::now),
                };
                router.decide(&request, at).map_err(|e| match e {
                    RouteError::UnknownIssueType(_) => FieldError::new("issue_type", e.to_string()),
                })
            });
        match outcome {
            Ok(decision) => {
                serde_json::to_writer(&mut output, &decision)?;
                summary.decided += 1;
            }
            Err(e) => {
                let body = ErrorLine {
                    error: ErrorBody {
                        line: number,
                        field: (!e.field.is_empty()).then_some(e.field.as_str()),
                        message: &e.message,
                    },
                };
                serde_json::to_writer(&mut output, &body)?;
                summary.failed += 1;
            }
        }
        output.write_all(b"\n")?;
    }
    output.flush()?;
    Ok(summary)
}
