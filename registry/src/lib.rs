//! The fstore registry: the model every other crate speaks (entities, sources, feature groups,
//! sample specs, model bindings), its versioned storage with compatibility rules, the Arrow
//! schemas of everything that has rows, the online value codec, and the shared expression
//! compiler and functions that batch, streaming and online evaluation all use.
//!
//! This crate is the base of the workspace: it depends on no other fstore crate.

pub mod aggregate;
pub mod codec;
pub mod compiled;
pub mod error;
pub mod export;
pub mod expr;
pub mod functions;
pub mod json;
pub mod model;
pub mod order;
pub mod plan;
pub mod rows;
pub mod sample_file;
pub mod schema;
pub mod store;
pub mod types;
pub mod window;
pub mod xorshift;

pub use error::{Error, Result};
pub use model::*;
pub use store::{Applied, Registry, Snapshot};
pub use types::DataType;

/// DataFusion as fstore uses it (the SQL parser included), re-exported so every crate
/// builds against the same version.
pub use datafusion;
