//! fstore's online side: the key layout, the `OnlineStore` backends (Redis, embedded RocksDB)
//! and the gRPC services.
//!
//! One key per (group, entity key): `{namespace}:{group}:{group version}:{key}`, whose value is
//! the registry's codec ([`fstore_core::codec`]) — schema fingerprint, event time, features.

pub mod error;
pub mod keys;
pub mod layout;
pub mod metrics;
pub mod resp;
pub mod serve;
pub mod status;
pub mod store;

pub use error::Error;
pub use resp::Fetched;
pub use store::OnlineStore;
