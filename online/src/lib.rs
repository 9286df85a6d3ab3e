//! fstore's online side: the key layout of DESIGN.md's "Online layout", and (as serving lands)
//! the `OnlineStore` backends (Redis, embedded RocksDB) and the gRPC service.
//!
//! One key per (group, entity key): `{namespace}:{group}:{group version}:{key}`, whose value is
//! the registry's codec ([`fstore_registry::codec`]) — schema fingerprint, event time, features.

pub mod error;
pub mod keys;
pub mod layout;
pub mod metrics;
pub mod resp;
pub mod serve;
pub mod store;

pub use error::Error;
pub use resp::Fetched;
pub use store::OnlineStore;
