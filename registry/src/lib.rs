//! The fstore registry: the model every other crate speaks (entities, sources, feature groups,
//! sample specs, model bindings), its versioned immutable snapshots, the compatibility rules
//! between versions, the Arrow schemas of everything that has rows, the compiled form of groups
//! and specs that every engine runs, and the sample files' layout.
//!
//! Types, values, the codec, expressions and the semantic rules live in [`fstore_core`]; the
//! model builds on its types.

pub mod compat;
pub mod compiled;
pub mod error;
pub mod model;
pub mod sample_file;
pub mod schema;
pub mod snapshot;

pub use error::{Error, Result};
pub use fstore_core::{DataType, datafusion};
pub use model::*;
pub use snapshot::{Applied, Registry, Snapshot};
