//! The gRPC edge: the contract of `proto/callrouter/v1/callrouter.proto` as thin adapters over the
//! application's use-cases. Each method authenticates the bearer token, converts the request
//! ([`convert`]), calls the use-case and converts the answer; [`status`] is the one place where
//! application errors become gRPC codes. [`server`] serves them with health, reflection and the
//! middleware of [`layer`], and the agent desk's page ([`console`]) in front of them.

/// Code generated from the proto files.
pub mod pb {
    tonic::include_proto!("callrouter.v1");

    /// Encoded descriptors of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/callrouter_descriptor.bin"));
}

pub mod admission;
pub mod console;
pub mod convert;
pub mod desk;
pub mod gather;
pub mod layer;
pub mod listener;
pub mod operations;
pub mod routing;
pub mod server;
pub mod status;

use tonic::{Request, Status};

use crate::app::principal::Principal;
use crate::app::{App, AppError};

/// The principal of a request: the one the admission layer authenticated, or, for a request that
/// did not pass through it, the one of its `authorization: Bearer <token>` metadata.
pub fn authenticate<T>(app: &App, request: &Request<T>) -> Result<Principal, Status> {
    if let Some(principal) = request.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    let token = match request.metadata().get("authorization") {
        None => None,
        Some(header) => Some(
            header
                .to_str()
                .ok()
                .and_then(admission::bearer_token)
                .ok_or(AppError::Unauthenticated(
                    "authorization must be 'Bearer <token>'",
                ))?,
        ),
    };
    Ok(app.authenticate(token)?)
}
