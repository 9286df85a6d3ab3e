//! fstore's semantic core: everything that decides a feature's value, implemented once and
//! called by the batch engine, the streaming joiner and online serving alike.
//!
//! - [`types`] and [`codec`]: fstore's types, values and the compact binary value codec;
//! - [`json`]: the JSON row encoding of streams and pushes (one decoder, its fast path inside);
//! - [`rows`]: values to and from Arrow columns;
//! - [`encoding`]: how a model receives each input (dense, categorical, text, sequence);
//! - [`expr`] and [`functions`]: the one expression compiler and fstore's SQL functions;
//! - [`semantics`]: the contract itself — the tie order, the as-of rule (pick, expiry,
//!   lookback, retention), window folds and aggregates.
//!
//! It depends on no other fstore crate; the registry's model builds on its types.

pub mod codec;
pub mod encoding;
pub mod error;
pub mod expr;
pub mod functions;
pub mod json;
pub mod rows;
pub mod semantics;
pub mod splitmix;
pub mod types;
pub mod xorshift;

pub use error::{Error, ErrorKind, Result};
pub use types::DataType;

/// DataFusion as fstore uses it (the SQL parser included), re-exported so every crate
/// builds against the same version.
pub use datafusion;
