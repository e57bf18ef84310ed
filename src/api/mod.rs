//! The gRPC service: the contract of `proto/callrouter/v1/callrouter.proto` around the routing
//! core and the queue store.

/// Code generated from the proto files.
pub mod pb {
    tonic::include_proto!("callrouter.v1");

    /// Encoded descriptors of the contract, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/callrouter_descriptor.bin"));
}

pub mod auth;
pub mod convert;
pub mod server;
pub mod service;
