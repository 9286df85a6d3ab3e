//! Rows held column by column: a feature group's rows in memory (each key's rows point into
//! them), or the label events waiting for the frontier.
//!
//! Rows arrive a step at a time as Arrow arrays (a group's evaluated features, a step's
//! events) and are kept as they came, as **segments**: no row is copied into a per-row value
//! on the way in. Reading rows back for samples is a gather over the segments
//! ([`arrow::compute::interleave`]), column by column. Rows loaded from the state store are
//! appended to builders and become a segment of their own when [`RowArena::seal`]ed.
//!
//! Segments are never changed; rows die when keys drop them (garbage collection, emitted
//! events). [`RowArena::compact`] copies the live rows into one new segment once most rows
//! held are dead, and says where each went.

use arrow::array::{Array, ArrayRef, AsArray, new_empty_array, new_null_array};
use arrow::compute::interleave;
use fstore_core::codec::Value;
use fstore_core::rows::{ColumnBuilder, value_at};
use fstore_registry::DataType;

use crate::Error;

/// Where a row is: its segment and its row in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowAt {
    pub seg: u32,
    pub row: u32,
}

/// Byte strings of rows (tie-order bytes, message keys), each possibly absent, in one buffer.
#[derive(Debug, Default, Clone)]
pub struct ByteRows {
    bytes: Vec<u8>,
    /// Per row, where its bytes end, with [`ByteRows::ABSENT`] set for no bytes.
    ends: Vec<u32>,
}

impl ByteRows {
    const ABSENT: u32 = 1 << 31;

    pub fn push(&mut self, b: Option<&[u8]>) -> Result<(), Error> {
        if let Some(b) = b {
            self.bytes.extend_from_slice(b);
        }
        let end = u32::try_from(self.bytes.len())
            .ok()
            .filter(|&e| e < Self::ABSENT)
            .ok_or_else(|| Error::Internal("a segment's bytes exceed 2 GiB".into()))?;
        self.ends
            .push(if b.is_some() { end } else { end | Self::ABSENT });
        Ok(())
    }

    /// Row `i`'s bytes.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        if end & Self::ABSENT != 0 {
            return None;
        }
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] & !Self::ABSENT);
        Some(&self.bytes[start as usize..end as usize])
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Rows as they came: one array per column, and per row optional bytes (tie order, message
/// key).
#[derive(Debug, Clone)]
pub struct Segment {
    pub columns: Vec<ArrayRef>,
    pub bytes: ByteRows,
}

impl Segment {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Rows of one shape (column types) in segments.
pub struct RowArena {
    types: Vec<DataType>,
    arrow_types: Vec<arrow::datatypes::DataType>,
    segments: Vec<Segment>,
    /// One NULL per column: what a gather gives for no row.
    nulls: Vec<ArrayRef>,
    /// Rows loaded since the last seal: they become the next segment.
    loading: Vec<ColumnBuilder>,
    loading_bytes: ByteRows,
    /// Rows in every segment, live or dead.
    held: usize,
}

impl RowArena {
    pub fn new(types: Vec<DataType>) -> Self {
        let arrow_types: Vec<_> = types.iter().map(DataType::to_arrow).collect();
        RowArena {
            nulls: arrow_types.iter().map(|t| new_null_array(t, 1)).collect(),
            loading: types.iter().map(|t| ColumnBuilder::new(t, 0)).collect(),
            loading_bytes: ByteRows::default(),
            arrow_types,
            types,
            segments: Vec::new(),
            held: 0,
        }
    }

    /// Rows held (live or dead).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Adds a segment of rows (columns of this arena's types, cast to them if another Arrow
    /// type); returns its number.
    pub fn push(&mut self, columns: Vec<ArrayRef>, bytes: ByteRows) -> Result<u32, Error> {
        let rows = bytes.len();
        if columns.len() != self.types.len() || columns.iter().any(|c| c.len() != rows) {
            return Err(Error::Internal(format!(
                "a segment of {} columns ({:?} rows) for {} columns of {rows} rows",
                columns.len(),
                columns.iter().map(|c| c.len()).collect::<Vec<_>>(),
                self.types.len()
            )));
        }
        let columns = columns
            .into_iter()
            .zip(&self.arrow_types)
            .map(|(c, t)| {
                if c.data_type() == t {
                    Ok(c)
                } else {
                    arrow::compute::cast(&c, t).map_err(|e| {
                        Error::Internal(format!("state column of type {}: {e}", c.data_type()))
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !self.loading_bytes.is_empty() {
            return Err(Error::Internal(
                "rows added while loaded rows are not sealed".into(),
            ));
        }
        let seg = u32::try_from(self.segments.len())
            .map_err(|_| Error::Internal("too many segments".into()))?;
        self.held += rows;
        self.segments.push(Segment { columns, bytes });
        Ok(seg)
    }

    /// Appends a row loaded from the store; it can be read once [`RowArena::seal`]ed.
    pub fn load(&mut self, values: &[Value], bytes: Option<&[u8]>) -> Result<RowAt, Error> {
        if values.len() != self.loading.len() {
            return Err(Error::State(format!(
                "a stored row of {} values for {} columns",
                values.len(),
                self.loading.len()
            )));
        }
        if let Some((v, b)) = values.iter().zip(&self.loading).find(|(v, b)| !b.fits(v)) {
            return Err(Error::State(format!(
                "a stored value {v:?} does not fit its column ({b:?})",
                b = b.len()
            )));
        }
        for (b, v) in self.loading.iter_mut().zip(values) {
            b.append(v)?;
        }
        self.loading_bytes.push(bytes)?;
        Ok(RowAt {
            seg: self.segments.len() as u32,
            row: (self.loading_bytes.len() - 1) as u32,
        })
    }

    /// Makes the rows loaded since the last seal a segment.
    pub fn seal(&mut self) -> Result<(), Error> {
        if self.loading_bytes.is_empty() {
            return Ok(());
        }
        let columns = self
            .loading
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = std::mem::take(&mut self.loading_bytes);
        self.push(columns, bytes).map(|_| ())
    }

    fn segment(&self, at: RowAt) -> Result<&Segment, Error> {
        self.segments
            .get(at.seg as usize)
            .filter(|s| (at.row as usize) < s.len())
            .ok_or_else(|| Error::Internal(format!("no row at {at:?}")))
    }

    /// A row's bytes.
    pub fn bytes(&self, at: RowAt) -> Option<&[u8]> {
        self.segments
            .get(at.seg as usize)
            .and_then(|s| s.bytes.get(at.row as usize))
    }

    /// One value.
    pub fn value(&self, at: RowAt, column: usize) -> Result<Value, Error> {
        let s = self.segment(at)?;
        Ok(value_at(&s.columns[column], at.row as usize)?)
    }

    /// A row's values.
    pub fn values(&self, at: RowAt) -> Result<Vec<Value>, Error> {
        let s = self.segment(at)?;
        s.columns
            .iter()
            .map(|c| value_at(c, at.row as usize).map_err(Error::from))
            .collect()
    }

    /// A BOOLEAN column's value, NULL as false.
    pub fn flag(&self, at: RowAt, column: usize) -> Result<bool, Error> {
        let s = self.segment(at)?;
        let b = s.columns[column]
            .as_boolean_opt()
            .ok_or_else(|| Error::Internal("a filter column is not BOOLEAN".into()))?;
        let r = at.row as usize;
        Ok(b.is_valid(r) && b.value(r))
    }

    /// Every column of the rows `at` (NULL for `None`), in that order.
    pub fn gather(&self, at: &[Option<RowAt>]) -> Result<Vec<ArrayRef>, Error> {
        let runs = runs(at);
        if let Some(runs) = &runs
            && runs.len() * 16 <= at.len().max(16)
        {
            // Rows in long runs (events queued in the order they came): slices of their
            // segments, without a gather.
            for &(first, len) in runs {
                self.segment(RowAt {
                    seg: first.seg,
                    row: first.row + len - 1,
                })?;
            }
            return (0..self.types.len())
                .map(|c| {
                    let parts: Vec<ArrayRef> = runs
                        .iter()
                        .map(|&(first, len)| {
                            self.segments[first.seg as usize].columns[c]
                                .slice(first.row as usize, len as usize)
                        })
                        .collect();
                    match parts.as_slice() {
                        [] => Ok(new_empty_array(&self.arrow_types[c])),
                        [one] => Ok(one.clone()),
                        _ => {
                            let refs: Vec<&dyn Array> = parts.iter().map(|p| p.as_ref()).collect();
                            arrow::compute::concat(&refs)
                                .map_err(|e| Error::Internal(format!("gather: {e}")))
                        }
                    }
                })
                .collect();
        }
        let none = self.segments.len();
        let mut indices = Vec::with_capacity(at.len());
        for a in at {
            indices.push(match a {
                Some(a) => {
                    self.segment(*a)?;
                    (a.seg as usize, a.row as usize)
                }
                None => (none, 0),
            });
        }
        (0..self.types.len())
            .map(|c| {
                let mut arrays: Vec<&dyn Array> = Vec::with_capacity(none + 1);
                arrays.extend(self.segments.iter().map(|s| s.columns[c].as_ref()));
                arrays.push(self.nulls[c].as_ref());
                interleave(&arrays, &indices).map_err(|e| Error::Internal(format!("gather: {e}")))
            })
            .collect()
    }

    /// Copies the rows `live` into one segment that replaces all others (in `live`'s order)
    /// and returns where each went.
    pub fn compact(&mut self, live: &[RowAt]) -> Result<Vec<RowAt>, Error> {
        self.seal()?;
        let at: Vec<Option<RowAt>> = live.iter().copied().map(Some).collect();
        let columns = self.gather(&at)?;
        let mut bytes = ByteRows::default();
        for a in live {
            bytes.push(self.bytes(*a))?;
        }
        self.segments.clear();
        self.held = 0;
        self.push(columns, bytes)?;
        Ok((0..live.len() as u32)
            .map(|row| RowAt { seg: 0, row })
            .collect())
    }

    /// Drops every row.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.held = 0;
        for b in &mut self.loading {
            let _ = b.finish();
        }
        self.loading_bytes = ByteRows::default();
    }

    /// Whether compacting is worth it: more than `min_rows` held, most of them dead.
    pub fn mostly_dead(&self, live: usize, min_rows: usize) -> bool {
        self.held > min_rows && self.held > 2 * live
    }
}

/// `at` as runs of consecutive rows of one segment (first row, length); `None` if a row is
/// missing.
fn runs(at: &[Option<RowAt>]) -> Option<Vec<(RowAt, u32)>> {
    let mut runs: Vec<(RowAt, u32)> = Vec::new();
    for a in at {
        let a = (*a)?;
        match runs.last_mut() {
            Some((first, len)) if first.seg == a.seg && first.row + *len == a.row => *len += 1,
            _ => runs.push((a, 1)),
        }
    }
    Some(runs)
}

/// A segment's bytes of many rows from an iterator.
pub fn byte_rows<'a>(rows: impl IntoIterator<Item = Option<&'a [u8]>>) -> Result<ByteRows, Error> {
    let mut out = ByteRows::default();
    for r in rows {
        out.push(r)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn byte_rows_hold_absent_and_empty_rows() {
        let rows: Vec<Option<&[u8]>> = vec![
            None,
            Some(b"ab"),
            Some(b""),
            None,
            None,
            Some(b"c"),
            Some(b"de"),
        ];
        let b = byte_rows(rows.iter().copied()).unwrap();
        assert_eq!(b.len(), rows.len());
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(b.get(i), *r, "row {i}");
        }
        assert_eq!(b.get(rows.len()), None);
    }

    #[test]
    fn rows_gather_across_segments_loads_and_compaction() {
        let mut a = RowArena::new(vec![DataType::Int64, DataType::String]);
        let s0 = a
            .push(
                vec![
                    Arc::new(Int64Array::from(vec![Some(1), None])),
                    Arc::new(StringArray::from(vec!["a", "b"])),
                ],
                byte_rows([Some(&b"t0"[..]), None]).unwrap(),
            )
            .unwrap();
        let loaded = a
            .load(&[Value::Int64(7), Value::String("x".into())], Some(b"t2"))
            .unwrap();
        a.seal().unwrap();
        assert_eq!(loaded, RowAt { seg: 1, row: 0 });
        let at = [
            Some(loaded),
            None,
            Some(RowAt { seg: s0, row: 1 }),
            Some(RowAt { seg: s0, row: 0 }),
        ];
        let [ints, strs] = <[ArrayRef; 2]>::try_from(a.gather(&at).unwrap()).unwrap();
        let ints = ints.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            ints.iter().collect::<Vec<_>>(),
            [Some(7), None, None, Some(1)]
        );
        assert_eq!(
            strs.as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("x"), None, Some("b"), Some("a")]
        );
        assert_eq!(a.bytes(loaded), Some(&b"t2"[..]));
        // Rows in runs (the same segment, one after another) come out as through a gather.
        for at in [
            vec![
                Some(RowAt { seg: 0, row: 0 }),
                Some(RowAt { seg: 0, row: 1 }),
            ],
            vec![Some(RowAt { seg: 0, row: 1 })],
            vec![
                Some(RowAt { seg: 0, row: 1 }),
                Some(loaded),
                Some(RowAt { seg: 0, row: 0 }),
                Some(RowAt { seg: 0, row: 1 }),
            ],
        ] {
            for c in 0..2 {
                let got = a.gather(&at).unwrap()[c].clone();
                let want: Vec<Value> = at
                    .iter()
                    .map(|r| a.values(r.unwrap()).unwrap()[c].clone())
                    .collect();
                let got: Vec<Value> = (0..got.len()).map(|i| value_at(&got, i).unwrap()).collect();
                assert_eq!(got, want, "{at:?}");
            }
        }
        assert!(
            a.gather(&[
                Some(RowAt { seg: 0, row: 1 }),
                Some(RowAt { seg: 0, row: 2 })
            ])
            .is_err()
        );
        // Long runs of a larger segment: slices put together.
        let big = a
            .push(
                vec![
                    Arc::new(Int64Array::from((0..64).collect::<Vec<i64>>())),
                    Arc::new(StringArray::from(
                        (0..64).map(|i| format!("s{i}")).collect::<Vec<_>>(),
                    )),
                ],
                byte_rows((0..64).map(|_| None)).unwrap(),
            )
            .unwrap();
        let at: Vec<Option<RowAt>> = (0..32)
            .map(|row| RowAt { seg: big, row })
            .chain([RowAt { seg: 0, row: 0 }, RowAt { seg: 0, row: 1 }])
            .chain((40..64).map(|row| RowAt { seg: big, row }))
            .map(Some)
            .collect();
        assert_eq!(runs(&at).unwrap().len(), 3);
        let [ints, strs] = <[ArrayRef; 2]>::try_from(a.gather(&at).unwrap()).unwrap();
        for (i, r) in at.iter().enumerate() {
            let want = a.values(r.unwrap()).unwrap();
            assert_eq!(value_at(&ints, i).unwrap(), want[0]);
            assert_eq!(value_at(&strs, i).unwrap(), want[1]);
        }
        assert_eq!(a.values(RowAt { seg: 0, row: 1 }).unwrap()[0], Value::Null);
        assert!(a.gather(&[Some(RowAt { seg: 0, row: 2 })]).is_err());
        assert!(
            a.load(&[Value::String("x".into()), Value::Null], None)
                .is_err()
        );
        assert_eq!(a.gather(&[]).unwrap()[1].len(), 0);
        let moved = a.compact(&[RowAt { seg: 0, row: 0 }, loaded]).unwrap();
        assert_eq!(a.held(), 2);
        assert_eq!(a.values(moved[1]).unwrap()[1], Value::String("x".into()));
        assert_eq!(a.bytes(moved[0]), Some(&b"t0"[..]));
        assert_eq!(a.bytes(moved[1]), Some(&b"t2"[..]));
    }
}
