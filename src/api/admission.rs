//! Admission: who gets in, before any shared capacity is taken. A call of the contract is
//! authenticated first (an unknown caller never holds a permit), then takes a permit from the
//! instance's in-flight budget and one from its principal's, so that one caller — with or without a
//! token — cannot take capacity from the others. A server stream also holds a stream permit, of the
//! instance and of its principal, for as long as it is open. Health and reflection need no token and
//! have a budget of their own, so health keeps answering whatever the contract calls do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::app::principal::{Principal, Role};
use crate::app::{App, AppError};

/// How many calls and streams may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls of the contract in flight, for the whole instance.
    pub in_flight: usize,
    /// Calls of the contract in flight, for one principal.
    pub in_flight_per_principal: usize,
    /// Open `WatchTickets` streams, for the whole instance.
    pub streams: usize,
    /// Open `WatchTickets` streams, for one principal.
    pub streams_per_principal: usize,
}

/// Health and reflection calls in flight, and their open streams: budgets of their own.
const OPEN_IN_FLIGHT: usize = 64;
const OPEN_STREAMS: usize = 256;

/// The server streams of the served services.
const STREAMS: [&str; 4] = [
    "/callrouter.v1.AgentDesk/WatchTickets",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Whether a path is health or reflection, which anyone may call.
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// What an admitted call holds: its principal (none for open calls), the permits it gives back
/// when it answers, and those its stream gives back when it ends.
pub struct Admitted {
    pub principal: Option<Principal>,
    pub call: Vec<OwnedSemaphorePermit>,
    pub stream: Vec<OwnedSemaphorePermit>,
}

/// One principal's budgets: calls in flight, open streams.
type Budgets = (Arc<Semaphore>, Arc<Semaphore>);

/// The admission state of one server.
#[derive(Clone)]
pub struct Admission {
    app: App,
    limits: Limits,
    /// Mutual TLS: the telephony platform must come with a verified client certificate.
    telephony_certificate: bool,
    in_flight: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    open_in_flight: Arc<Semaphore>,
    open_streams: Arc<Semaphore>,
    /// Per principal (by agent id): its in-flight and stream budgets. Principals come from the
    /// secrets file, so this map is bounded by it.
    principals: Arc<Mutex<HashMap<String, Budgets>>>,
}

impl Admission {
    pub fn new(app: App, limits: Limits, telephony_certificate: bool) -> Admission {
        Admission {
            telephony_certificate,
            in_flight: Arc::new(Semaphore::new(limits.in_flight.max(1))),
            streams: Arc::new(Semaphore::new(limits.streams.max(1))),
            open_in_flight: Arc::new(Semaphore::new(OPEN_IN_FLIGHT)),
            open_streams: Arc::new(Semaphore::new(OPEN_STREAMS)),
            principals: Arc::default(),
            app,
            limits,
        }
    }

    /// Admits a call to `path` with this `authorization` value on a connection with or without a
    /// verified client certificate, or refuses it at once.
    pub fn admit(
        &self,
        path: &str,
        authorization: Option<&str>,
        client_certificate: bool,
    ) -> Result<Admitted, Status> {
        let streaming = STREAMS.contains(&path);
        if is_open(path) {
            let call = vec![take(&self.open_in_flight, "calls in flight")?];
            let stream = if streaming {
                vec![take(&self.open_streams, "open streams")?]
            } else {
                Vec::new()
            };
            return Ok(Admitted {
                principal: None,
                call,
                stream,
            });
        }
        let token = match authorization {
            None => None,
            Some(value) => Some(bearer_token(value).ok_or(AppError::Unauthenticated(
                "authorization must be 'Bearer <token>'",
            ))?),
        };
        let principal = self.app.authenticate(token)?;
        if self.telephony_certificate && principal.role == Role::Telephony && !client_certificate {
            return Err(AppError::Unauthenticated(
                "the telephony platform connects with its client certificate (mutual TLS)",
            )
            .into());
        }
        let (own_calls, own_streams) = self.budgets_of(&principal);
        let call = vec![
            take(&own_calls, "of your calls in flight")?,
            take(&self.in_flight, "calls in flight")?,
        ];
        let stream = if streaming {
            vec![
                take(&own_streams, "of your open streams")?,
                take(&self.streams, "open streams")?,
            ]
        } else {
            Vec::new()
        };
        Ok(Admitted {
            principal: Some(principal),
            call,
            stream,
        })
    }

    fn budgets_of(&self, principal: &Principal) -> Budgets {
        let mut budgets = self
            .principals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        budgets
            .entry(principal.agent_id.clone())
            .or_insert_with(|| {
                (
                    Arc::new(Semaphore::new(self.limits.in_flight_per_principal.max(1))),
                    Arc::new(Semaphore::new(self.limits.streams_per_principal.max(1))),
                )
            })
            .clone()
    }
}

/// A permit, or the refusal that says which budget is spent: `UNAVAILABLE` for calls in flight
/// (retry shortly), `RESOURCE_EXHAUSTED` for streams (close one first).
fn take(budget: &Arc<Semaphore>, what: &str) -> Result<OwnedSemaphorePermit, Status> {
    budget.clone().try_acquire_owned().map_err(|_| {
        if what.contains("streams") {
            Status::resource_exhausted(format!("too many {what}: close one first"))
        } else {
            Status::unavailable(format!("server overloaded: too many {what}, retry shortly"))
        }
    })
}

/// The token of an `authorization` value: the scheme is `Bearer`, in any case (as HTTP has it).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn a_spent_budget_says_which() {
        let budget = Arc::new(Semaphore::new(1));
        let _held = take(&budget, "calls in flight").expect("one");
        assert_eq!(
            take(&budget, "calls in flight")
                .map(drop)
                .map_err(|s| s.code()),
            Err(tonic::Code::Unavailable)
        );
        let streams = Arc::new(Semaphore::new(0));
        assert_eq!(
            take(&streams, "open streams")
                .map(drop)
                .map_err(|s| s.code()),
            Err(tonic::Code::ResourceExhausted)
        );
    }
}
