//! The one table from application errors to gRPC statuses. A bad field is `INVALID_ARGUMENT`
//! naming the field in a `BadRequest` detail; a refusal `PERMISSION_DENIED`; a ticket the caller may
//! not know of `NOT_FOUND`; a stale or foreign hold `FAILED_PRECONDITION`; a store that does not
//! answer `UNAVAILABLE` or `DEADLINE_EXCEEDED`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::AppError;
use crate::routing::request::FieldError;
use crate::store::StoreError;

/// `INVALID_ARGUMENT` naming the field, with a `BadRequest` detail.
pub fn field_status(error: FieldError) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{}: {}", error.field, error.message),
        ErrorDetails::with_bad_request_violation(error.field, error.message),
    )
}

impl From<FieldError> for Status {
    fn from(error: FieldError) -> Status {
        field_status(error)
    }
}

impl From<AppError> for Status {
    fn from(error: AppError) -> Status {
        match error {
            AppError::Unauthenticated(why) => Status::unauthenticated(why),
            AppError::Refused(refusal) => Status::permission_denied(refusal.to_string()),
            AppError::Field(field) => field_status(field),
            AppError::NotFound => Status::not_found("no such ticket"),
            e @ AppError::ConfigRefused(_) => Status::failed_precondition(e.to_string()),
            AppError::Store(store) => store_status(store),
        }
    }
}

fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::NotFound(_) => Status::not_found("no such ticket"),
        StoreError::NotHolder(_) => Status::failed_precondition(
            "the ticket is not held by you under this lease token (released, expired or claimed by someone else)",
        ),
        e @ StoreError::WrongState { .. } => Status::failed_precondition(e.to_string()),
        StoreError::Invalid(message) => Status::invalid_argument(message),
        StoreError::Unavailable(_) => Status::unavailable("the queue store is unavailable"),
        StoreError::Timeout | StoreError::TooLate => {
            Status::deadline_exceeded("the queue store did not answer in time")
        }
        StoreError::Corrupt(_) => Status::internal("the queue store answered unexpectedly"),
        e @ StoreError::Unconfirmed { .. } => Status::unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::policy::Refusal;
    use crate::store::{Action, TicketState};

    #[test]
    fn each_error_has_its_code() {
        let cases = [
            (
                AppError::Unauthenticated("unknown token"),
                Code::Unauthenticated,
            ),
            (
                AppError::Refused(Refusal::NothingToOversee),
                Code::PermissionDenied,
            ),
            (
                AppError::Field(FieldError::new("call_id", "is required")),
                Code::InvalidArgument,
            ),
            (AppError::NotFound, Code::NotFound),
            (
                AppError::Store(StoreError::NotHolder("t".into())),
                Code::FailedPrecondition,
            ),
            (
                AppError::Store(StoreError::WrongState {
                    ticket_id: "t".into(),
                    state: TicketState::Completed,
                    action: Action::Accept,
                }),
                Code::FailedPrecondition,
            ),
            (
                AppError::Store(StoreError::Unavailable("down".into())),
                Code::Unavailable,
            ),
            (AppError::Store(StoreError::Timeout), Code::DeadlineExceeded),
            (
                AppError::Store(StoreError::Corrupt("?".into())),
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error.clone()).code(), code, "{error:?}");
        }
        let status = Status::from(AppError::Field(FieldError::new("call_id", "is required")));
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("details").field_violations;
        assert_eq!(violations[0].field, "call_id");
    }
}
