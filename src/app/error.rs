//! The one error of the application layer. Every use-case fails with an [`AppError`]; the gRPC
//! edge turns it into a status in one place (`api::status`), so the same failure always gets the
//! same code whichever use-case met it.

use super::policy::Refusal;
use crate::diagnostics::ConfigError;
use crate::routing::RouteError;
use crate::routing::request::FieldError;
use crate::store::StoreError;

/// Why a use-case did not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    /// No token, a malformed one, or one the token table does not hold.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The policy refuses this caller (a hidden ticket is [`AppError::NotFound`] instead).
    #[error(transparent)]
    Refused(Refusal),
    /// A request field is not acceptable.
    #[error(transparent)]
    Field(FieldError),
    /// No such ticket, or one the caller may not know of.
    #[error("no such ticket")]
    NotFound,
    /// The queue store refused or failed.
    #[error(transparent)]
    Store(StoreError),
    /// A new configuration was refused; the one in force keeps serving.
    #[error("the new configuration is refused; the previous one keeps serving:\n{0}")]
    ConfigRefused(ConfigError),
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> AppError {
        match refusal {
            Refusal::Hidden => AppError::NotFound,
            other => AppError::Refused(other),
        }
    }
}

impl From<FieldError> for AppError {
    fn from(error: FieldError) -> AppError {
        AppError::Field(error)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        match error {
            StoreError::NotFound(_) => AppError::NotFound,
            other => AppError::Store(other),
        }
    }
}

impl From<RouteError> for AppError {
    fn from(error: RouteError) -> AppError {
        match error {
            RouteError::UnknownIssueType(_) => {
                AppError::Field(FieldError::new("issue_type", error.to_string()))
            }
        }
    }
}
