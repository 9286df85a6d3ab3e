//! fstore's streaming joiner: consumes the sources' Kafka topics, keeps per-key feature
//! history and window state in RocksDB, and emits each label event's sample once the
//! watermark passes its event time — the same samples the batch engine makes.

pub mod error;

pub use error::Error;
