//! The JSON row encoding of stream bindings: one JSON object per row, keyed by column name.
//!
//! | type | JSON |
//! | --- | --- |
//! | BOOLEAN | `true` / `false` |
//! | INT64 | an integer (all 64 bits; never through a double) |
//! | DOUBLE | a number; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings (as protobuf's JSON mapping); `-0.0` keeps its sign |
//! | STRING | a string |
//! | TIMESTAMP | an RFC 3339 string (`2024-01-07T02:19:39.533398Z`, any offset, at most microsecond precision) or integer epoch microseconds |
//! | LIST<T> | an array of T |
//!
//! `null` or a missing key is NULL. Keys that are not columns are ignored. The encoder writes
//! timestamps as RFC 3339 with six fractional digits and `Z`.
//!
//! There is one decoder: `scan` reads a row's text once, checks that it is JSON as serde_json
//! reads it, and decodes each column's value by the column's type, holding the rules of the
//! table above. [`decode_row`], [`RowDecoder`] and [`from_json`] all go through it; `encode`
//! writes rows and `time` reads and writes timestamps.

mod decode;
mod encode;
mod scan;
mod time;

pub use decode::{RowDecoder, decode_row, from_json};
pub use encode::{encode_row, to_json};
pub use time::{format_timestamp, parse_timestamp};

/// Why a JSON row does not decode: the column and the reason, for dead-letter records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

#[cfg(test)]
mod tests;
