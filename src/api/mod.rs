//! The gRPC edge: the contract of `proto/callrouter/v1/callrouter.proto` as thin adapters over the
//! application's use-cases. Each method authenticates the bearer token, converts the request
//! ([`convert`]), calls the use-case and converts the answer; [`status`] is the one place where
//! application errors become gRPC codes. [`server`] serves them with health, reflection and the
//! middleware of [`layer`].

/// Code generated from the proto files.
pub mod pb {
    tonic::include_proto!("callrouter.v1");

    /// Encoded descriptors of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/callrouter_descriptor.bin"));
}

pub mod convert;
pub mod desk;
pub mod layer;
pub mod operations;
pub mod routing;
pub mod server;
pub mod status;

use tonic::{Request, Status};

use crate::app::principal::Principal;
use crate::app::{App, AppError};

/// The token of an `authorization` value: the scheme is `Bearer`, in any case (as HTTP has it).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The principal of a request's `authorization: Bearer <token>` metadata.
pub fn authenticate<T>(app: &App, request: &Request<T>) -> Result<Principal, Status> {
    let token = match request.metadata().get("authorization") {
        None => None,
        Some(header) => Some(header.to_str().ok().and_then(bearer_token).ok_or(
            AppError::Unauthenticated("authorization must be 'Bearer <token>'"),
        )?),
    };
    Ok(app.authenticate(token)?)
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
}
