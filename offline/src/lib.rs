//! fstore's batch engine on DataFusion: reads sources from Parquet, joins label events as of
//! their event time to feature groups (TTL, ties) by sort-merge, computes exact sliding
//! windows and the spec's transforms through the registry's compiled spec (the same one the
//! joiner and online serving use), and returns samples in a deterministic order.

pub mod asof;
pub mod engine;
pub mod error;
pub mod join;
pub mod read;

pub use engine::{Range, SampleJob, SampleStats, plan, sample};
pub use error::Error;
