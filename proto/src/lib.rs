//! The fstore gRPC contract: the `.proto` files under `proto/` (package `fstore.v1`) and the
//! Rust code tonic generates from them. Any language can generate a client from the same files.

/// Generated messages and services of package `fstore.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("fstore.v1");

    /// The encoded file descriptor set of package `fstore.v1`, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fstore_descriptor");
}
