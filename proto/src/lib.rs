//! The fstore gRPC contract: the `.proto` files under `proto/` (package `fstore.v1`) and the
//! Rust code tonic generates from them. Any language can generate a client from the same files.

/// Generated messages and services of package `fstore.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("fstore.v1");
}
