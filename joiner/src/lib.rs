//! fstore's streaming joiner: consumes a sample spec's sources from Kafka, keeps per-key
//! feature history and window state in RocksDB, and emits each label event's sample once the
//! watermark passes its event time — the same samples the batch engine makes, computed by the
//! same compiled spec (as-of rule and tie order from [`fstore_core::semantics::order`], window folds
//! from [`fstore_core::semantics::window`], transforms from [`fstore_registry::compiled`]).
//!
//! - [`watermark`]: watermarks, the frontier and lateness, as plain decisions;
//! - [`arena`]: rows held column by column (group state, queued events), gathered for samples;
//! - [`state`]: one key's rows, the as-of pick, window rows, garbage collection;
//! - [`store`]: the RocksDB layout and the checkpoint committed with the offsets;
//! - [`kafka`]: clients, end offsets, delivery with offsets, reading back message ids;
//! - [`pipeline`]: the reader and sample writer threads the loop hands work to;
//! - [`io`]: the seam between the loop and Kafka (steps in, messages out), with in-memory
//!   stand-ins for unit tests;
//! - [`job`]: the loop that ties them together, exactly once across crashes.
//!
//! Scale-out: instances split the partitions of the label events' topic (`--instance I/N`:
//! instance I reads partitions p with p mod N = I). Feature sources partitioned like the events
//! (same partition count, keyed by the same entity with the same partitioner, e.g. the events'
//! user_id and the user_profile topic) are split the same way; sources keyed otherwise (item
//! stats for user-keyed events) are read whole by every instance (`--broadcast SOURCE`). Each
//! instance keeps its own state folder and checkpoints; their outputs together are the
//! samples of all events. `fstore join --threads T` runs T such instances in one process (one
//! [`Joiner`] per thread, [`Summary::merge`] adding them up).

pub mod arena;
pub mod config;
pub mod deadletter;
pub mod error;
pub mod io;
pub mod job;
pub mod kafka;
pub mod keys;
pub mod pending;
pub mod pipeline;
pub mod state;
pub mod store;
pub mod watermark;

pub use config::{Instance, JoinConfig, SinkTarget};
pub use error::Error;
pub use job::{Joiner, OnlineUpdate, OnlineValue, OnlineWriter, Summary};
