//! fstore's batch engine on DataFusion: reads sources from Parquet, joins label events as of
//! their event time to feature groups (TTL, ties), computes exact sliding windows and the
//! spec's transforms through the registry's shared expression compiler, and writes samples.

pub mod error;

pub use error::Error;
