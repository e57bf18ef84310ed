//! The JSON form of routing requests and decisions used by `callrouter explain`: one request per
//! input line (fields named as `RouteCallRequest`), one decision per output line (fields named as
//! `RoutingDecision`).
//!
//! A line that cannot be routed — not JSON, not UTF-8, longer than [`MAX_LINE_BYTES`], not a valid
//! request — yields an error object on its output line instead
//! (`{"error":{"line":3,"field":"issue_type","message":"…"}}`), so output lines stay aligned with
//! input lines and one bad request does not stop the others.

use std::io::{BufRead, Read, Write};

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

/// Longest request line read: far above any valid request (whose fields are bounded).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One input line: its text, or why it has none.
enum Line {
    Text(String),
    NotText(FieldError),
}

/// Reads the next line (without its end), at most [`MAX_LINE_BYTES`] of it kept; `None` at the
/// end of the input.
fn next_line(input: &mut impl BufRead) -> std::io::Result<Option<Line>> {
    let mut bytes = Vec::new();
    let read = input
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut bytes)?;
    if read == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    } else if bytes.len() > MAX_LINE_BYTES {
        // Skip the rest of the line without keeping it.
        loop {
            let buffer = input.fill_buf()?;
            let (used, ended) = match buffer.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffer.len(), buffer.is_empty()),
            };
            input.consume(used);
            if ended {
                break;
            }
        }
        let message = format!("longer than {MAX_LINE_BYTES} bytes");
        return Ok(Some(Line::NotText(FieldError::new("", message))));
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Ok(Some(match String::from_utf8(bytes) {
        Ok(text) => Line::Text(text),
        Err(e) => Line::NotText(FieldError::new(
            "",
            format!("not UTF-8 text: {}", e.utf8_error()),
        )),
    }))
}

/// Reads requests line by line and writes one decision (or error) per non-empty line.
pub fn explain_lines(
    router: &Router,
    mut input: impl BufRead,
    mut output: impl Write,
    time: DecisionTime,
) -> std::io::Result<ExplainSummary> {
    let mut summary = ExplainSummary::default();
    let mut number = 0;
    while let Some(line) = next_line(&mut input)? {
        number += 1;
        let text = match line {
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => Ok(text),
            Line::NotText(problem) => Err(problem),
        };
        let outcome = text
            .and_then(|line| {
                serde_json::from_str::<RouteCallRequestJson>(&line)
                    .map_err(|e| FieldError::new("", format!("not a request object: {e}")))
            })
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
