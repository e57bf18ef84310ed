//! A request to route, as the domain sees it, and the limits every edge holds it to: the JSON lines
//! of `callrouter explain` and the gRPC `RouteCallRequest` both convert into [`RouteRequest`] and
//! pass [`check_request`], so a request refused at one edge is refused at the other, with the same
//! field named.

use serde::Serialize;

use super::address::AddressInput;

/// Longest accepted value of a short text field (ids, numbers, address parts).
pub const MAX_FIELD_LEN: usize = 256;
/// Longest accepted free-text description.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// A request to route, as the domain sees it (converted from the API or the CLI at the edge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRequest {
    pub call_id: String,
    pub caller_number: String,
    pub dialed_number: String,
    pub tenant_reference: String,
    pub address: AddressInput,
    pub issue_type: String,
    pub description: String,
}

/// A request field that is not acceptable, named as in the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Checks the size and presence of request fields (the same limits at every edge).
pub fn check_request(request: &RouteRequest) -> Result<(), FieldError> {
    let fields = [
        ("call_id", &request.call_id),
        ("caller_number", &request.caller_number),
        ("dialed_number", &request.dialed_number),
        ("tenant_reference", &request.tenant_reference),
        ("issue_type", &request.issue_type),
        ("address.street_number", &request.address.street_number),
        ("address.street", &request.address.street),
        ("address.postcode", &request.address.postcode),
        ("address.city", &request.address.city),
        ("address.free_text", &request.address.free_text),
    ];
    for (name, value) in fields {
        if value.len() > MAX_FIELD_LEN {
            return Err(FieldError::new(
                name,
                format!(
                    "is {} bytes long, at most {MAX_FIELD_LEN} are accepted",
                    value.len()
                ),
            ));
        }
    }
    if request.description.len() > MAX_DESCRIPTION_LEN {
        return Err(FieldError::new(
            "description",
            format!(
                "is {} bytes long, at most {MAX_DESCRIPTION_LEN} are accepted",
                request.description.len()
            ),
        ));
    }
    if request.issue_type.trim().is_empty() {
        return Err(FieldError::new("issue_type", "is required"));
    }
    Ok(())
}

/// A required, bounded identifier or text field, trimmed.
pub fn required_text(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(FieldError::new(
            field,
            format!(
                "is {} bytes long, at most {MAX_FIELD_LEN} are accepted",
                value.len()
            ),
        ));
    }
    Ok(value.to_owned())
}
