//! Rows from JSON: a row's text scanned once into its columns' values, kept as values
//! ([`decode_row`]) or appended straight to column builders ([`RowDecoder`]).

use serde_json::Value as Json;

use super::JsonError;
use super::scan::{Aside, Cell, NotJson, ROW_DEPTH, Scan, short};
use crate::codec::Value;
use crate::rows::{ColumnBuilder, ValueRef};
use crate::types::{Column, DataType};

/// Decodes a JSON object into values in schema order (missing keys are NULL).
pub fn decode_row(columns: &[Column], bytes: &[u8]) -> Result<Vec<Value>, JsonError> {
    let mut row = Row::new(columns.len());
    let text = row.read(columns, bytes)?;
    Ok(row.into_values(text))
}

/// Decodes one value of a type, as a row's column decodes it.
pub fn from_json(t: &DataType, j: &Json) -> Result<Value, String> {
    let text = j.to_string();
    let mut aside = Aside::default();
    let mut cell = Cell::Null;
    // Written by serde_json, so JSON at any depth.
    match Scan::new(&text, usize::MAX, &mut aside).value(t, &mut cell) {
        Ok(()) => match cell {
            Cell::Unfit(k) => Err(std::mem::take(&mut aside.unfit[k])),
            c => Ok(c.take(&text, &mut aside)),
        },
        Err(NotJson) => Err(format!("not JSON: {text}")),
    }
}

/// Decodes JSON rows of one source straight into column builders.
///
/// A row's text is scanned once: scalars are read in place (strings as ranges of the text)
/// and appended without building values; only strings with escapes and lists are built.
/// Values and errors are those of [`decode_row`]: both are this scan.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    columns: Vec<Column>,
    row: Row,
}

impl RowDecoder {
    pub fn new(columns: &[Column]) -> Self {
        RowDecoder {
            columns: columns.to_vec(),
            row: Row::new(columns.len()),
        }
    }

    /// Decodes a row and appends its values, one per builder (in column order); a row that
    /// does not decode appends nothing.
    pub fn decode_into(
        &mut self,
        bytes: &[u8],
        builders: &mut [ColumnBuilder],
    ) -> Result<(), JsonError> {
        if builders.len() != self.columns.len() {
            return Err(JsonError(format!(
                "{} builders for {} columns",
                builders.len(),
                self.columns.len()
            )));
        }
        let text = self.row.read(&self.columns, bytes)?;
        let row = &self.row;
        for ((c, b), &cell) in self.columns.iter().zip(&*builders).zip(&row.cells) {
            // A builder of the column's own type takes every value the scan gives the column.
            if b.dtype() == &c.dtype {
                continue;
            }
            let v = cell.value(text, &row.aside);
            if !b.fits(&v) {
                return Err(JsonError(format!(
                    "column \"{}\": value {v:?} does not fit type {}",
                    c.name, c.dtype
                )));
            }
        }
        for (b, &cell) in builders.iter_mut().zip(&row.cells) {
            let appended = match cell {
                Cell::Built(k) => b.append(&row.aside.values[k]),
                c => b.append_ref(c.get(text).unwrap_or(ValueRef::Null)),
            };
            appended.map_err(|e| JsonError(e.to_string()))?;
        }
        Ok(())
    }

    /// Scans a flat row: `Some` when every member's value is a scalar read in place that
    /// fits its column (no escapes in strings, no container inside the object).
    #[cfg(test)]
    pub(super) fn scan(&mut self, text: &str) -> Option<()> {
        self.row.scan(&self.columns, text, 1).ok()?;
        let in_place = |c: &Cell| !matches!(c, Cell::Built(_) | Cell::Unfit(_));
        self.row.cells.iter().all(in_place).then_some(())
    }
}

/// One row's values as scanned, a cell per column.
#[derive(Debug, Clone)]
struct Row {
    cells: Vec<Cell>,
    aside: Aside,
}

/// Why a row's text was refused before its columns were looked at.
enum Refused {
    NotJson,
    /// JSON, but not an object.
    NotObject,
}

impl Row {
    fn new(columns: usize) -> Self {
        Row {
            cells: vec![Cell::Null; columns],
            aside: Aside::default(),
        }
    }

    /// Scans a row (the last of duplicate keys winning): its text, or why it does not decode.
    /// The text must be JSON before a column's error counts, and of those the first column's
    /// (in schema order) is told.
    fn read<'t>(&mut self, columns: &[Column], bytes: &'t [u8]) -> Result<&'t str, JsonError> {
        // JSON outside strings is ASCII, and its strings are UTF-8.
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(not_json(bytes));
        };
        match self.scan(columns, text, ROW_DEPTH) {
            Ok(()) => {}
            Err(Refused::NotJson) => return Err(not_json(bytes)),
            Err(Refused::NotObject) => {
                return Err(JsonError(format!(
                    "expected a JSON object, got {}",
                    short(text)
                )));
            }
        }
        // Each value that did not fit left its reason, even if a later key replaced it.
        if self.aside.unfit.is_empty() {
            return Ok(text);
        }
        for (c, &cell) in columns.iter().zip(&self.cells) {
            if let Cell::Unfit(k) = cell {
                let why = &self.aside.unfit[k];
                return Err(JsonError(format!("column \"{}\": {why}", c.name)));
            }
        }
        Ok(text)
    }

    /// The members of a row's object: a key's value is read by its column's type if the key
    /// is a column, checked as JSON and dropped if not.
    fn scan(&mut self, columns: &[Column], text: &str, limit: usize) -> Result<(), Refused> {
        self.cells.fill(Cell::Null);
        self.aside.clear();
        let cells = &mut self.cells;
        let mut p = Scan::new(text, limit, &mut self.aside);
        p.ws();
        if p.peek() != Some(b'{') {
            p.skip()
                .and_then(|()| p.end())
                .map_err(|NotJson| Refused::NotJson)?;
            return Err(Refused::NotObject);
        }
        // Rows usually list their fields in column order: the next column is tried first.
        let mut next = 0;
        p.object(|p, key| {
            let at = match columns.get(next) {
                Some(c) if c.name.as_bytes() == key => Some(next),
                _ => columns.iter().position(|c| c.name.as_bytes() == key),
            };
            next = at.map_or(0, |i| i + 1);
            match at {
                Some(i) => p.value(&columns[i].dtype, &mut cells[i])?,
                None => p.skip()?,
            }
            Ok(())
        })
        .and_then(|()| p.end())
        .map_err(|NotJson| Refused::NotJson)
    }

    fn into_values(mut self, text: &str) -> Vec<Value> {
        let cells = std::mem::take(&mut self.cells);
        cells
            .into_iter()
            .map(|c| c.take(text, &mut self.aside))
            .collect()
    }
}

/// Why a text is not JSON, as serde_json says it.
fn not_json(bytes: &[u8]) -> JsonError {
    match serde_json::from_slice::<Json>(bytes) {
        Err(e) => JsonError(format!("not JSON: {e}")),
        Ok(_) => JsonError("not JSON".into()),
    }
}
