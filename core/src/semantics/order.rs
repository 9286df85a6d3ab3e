//! The order of one key's rows, shared by every engine.
//!
//! Rows of one key are ordered by event time, then by their **tie order** when event times are
//! equal:
//! - a row group compares its `TIE BREAK` columns, then its feature values; the greatest row
//!   is the one an as-of join picks;
//! - a window group compares, feature by feature, the aggregate input and the FILTER result;
//!   windows fold their rows in this order.
//!
//! Values compare with NULL lowest, doubles in IEEE total order, strings by bytes: Arrow's row
//! format, whose encoded rows compare as plain bytes. The batch engine sorts whole columns by
//! these rows; the joiner keeps each row's bytes ([`TieOrder::keys`]) to place rows one at a
//! time. Both build the same columns here, so both get the same order.

use arrow::array::ArrayRef;
use arrow_row::{RowConverter, Rows, SortField};

use crate::{Error, Result};

/// The encoding of tie-order bytes that state stores keep: Arrow's row format of this arrow
/// major version. A store of another encoding must be rebuilt, not compared.
pub const TIE_ENCODING: &str = "arrow-row 59";

/// The tie-order columns of a row group's rows: `TIE BREAK` columns, then features.
pub fn row_tie_columns(tie_break: &[ArrayRef], features: &[ArrayRef]) -> Vec<ArrayRef> {
    tie_break.iter().chain(features).cloned().collect()
}

/// The tie-order columns of a window group's rows: per feature its input (if any), then its
/// FILTER result (if any).
pub fn window_tie_columns(
    inputs: &[Option<ArrayRef>],
    filters: &[Option<ArrayRef>],
) -> Vec<ArrayRef> {
    let mut out = Vec::new();
    for (i, f) in inputs.iter().zip(filters) {
        out.extend(i.iter().cloned());
        out.extend(f.iter().cloned());
    }
    out
}

/// Encodes tie-order columns as comparable rows.
pub struct TieOrder;

impl TieOrder {
    /// The rows of `columns` in tie order; `None` without columns (every row ties).
    pub fn rows(columns: &[ArrayRef]) -> Result<Option<Rows>> {
        if columns.is_empty() {
            return Ok(None);
        }
        let conv = RowConverter::new(
            columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )
        .map_err(|e| Error::Invalid(format!("tie order: {e}")))?;
        let rows = conv
            .convert_columns(columns)
            .map_err(|e| Error::Invalid(format!("tie order: {e}")))?;
        Ok(Some(rows))
    }

    /// Each row's tie-order bytes: comparing them as bytes is comparing the rows.
    pub fn keys(columns: &[ArrayRef], num_rows: usize) -> Result<Vec<Vec<u8>>> {
        Ok(match Self::rows(columns)? {
            None => vec![Vec::new(); num_rows],
            Some(rows) => rows.iter().map(|r| r.as_ref().to_vec()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn tie_bytes_order_like_the_rows() {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), None, Some(1), Some(1)])),
            Arc::new(Float64Array::from(vec![
                Some(-0.0),
                Some(5.0),
                Some(0.0),
                Some(f64::NAN),
            ])),
            Arc::new(StringArray::from(vec!["b", "a", "a", ""])),
        ];
        let keys = TieOrder::keys(&cols, 4).unwrap();
        // NULL first; then -0.0 < 0.0 < NaN on the second column.
        assert!(keys[1] < keys[0]);
        assert!(keys[0] < keys[2]);
        assert!(keys[2] < keys[3]);
        assert_eq!(TieOrder::keys(&[], 3).unwrap(), vec![Vec::<u8>::new(); 3]);
    }
}
