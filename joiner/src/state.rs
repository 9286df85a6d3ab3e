//! One key's rows of one feature group, as the joiner keeps them: in the order of
//! [`fstore_registry::order`] (event time, then tie order), each marked late or not.
//!
//! Samples see only rows that were not late; the online store sees them all (the joiner
//! writes a key's online value before it collects the key's garbage). Garbage collection
//! keeps what an event at or after the frontier can still need, so state is bounded by the
//! TTL or the longest window plus the lateness:
//! - a row group: every row at or after the frontier, and the last on-time row before it
//!   (the as-of candidate) unless the TTL has already expired it for every such event;
//! - a window group: the rows of the longest window before the frontier.
//!
//! A key left without rows is deleted.
//!
//! Stored form (RocksDB value): a version byte, the row count (LEB128), then per row its event
//! time (i64 LE), a late flag, the tie bytes (LEB128 length + bytes) and its values in the
//! group's state codec (LEB128 length + bytes).

use fstore_registry::codec::{Codec, Value};
use fstore_registry::compiled::CompiledWindow;
use fstore_registry::order::expired;
use fstore_registry::window::WindowRows;

use crate::Error;

const STATE_VERSION: u8 = 1;

/// One row of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub ts: i64,
    /// Tie-order bytes ([`fstore_registry::order::TieOrder::keys`]).
    pub tie: Vec<u8>,
    /// Arrived behind the frontier: online only.
    pub late: bool,
    /// A row group's features, or a window group's inputs and filter results (per feature:
    /// the input if any, then the filter result as BOOLEAN if any).
    pub values: Vec<Value>,
}

/// What the as-of rule gives an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AsOf<'a> {
    NoRow,
    Expired,
    Found(&'a StateRow),
}

/// A key's rows in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRows {
    pub rows: Vec<StateRow>,
}

impl KeyRows {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Inserts a row in order; after rows that compare equal (identical in every value that
    /// counts, so their order does not matter).
    /// Returns where it went.
    pub fn insert(&mut self, row: StateRow) -> usize {
        let after = |r: &StateRow| (r.ts, r.tie.as_slice()) <= (row.ts, row.tie.as_slice());
        // Rows mostly come in order: after the last one.
        let at = match self.rows.last() {
            Some(last) if !after(last) => self.rows.partition_point(after),
            _ => self.rows.len(),
        };
        self.rows.insert(at, row);
        at
    }

    /// The row an event at `t` joins: the last on-time row at or before `t`, unless the TTL
    /// has expired it.
    pub fn as_of(&self, t: i64, ttl_us: Option<i64>) -> AsOf<'_> {
        let upto = self.rows.partition_point(|r| r.ts <= t);
        match self.rows[..upto].iter().rev().find(|r| !r.late) {
            None => AsOf::NoRow,
            Some(r) if expired(t, r.ts, ttl_us) => AsOf::Expired,
            Some(r) => AsOf::Found(r),
        }
    }

    /// The latest row, late or not: the key's online value.
    pub fn latest(&self) -> Option<&StateRow> {
        self.rows.last()
    }

    /// The rows as window aggregates fold them: on-time rows only, or all (online).
    pub fn window_rows(&self, features: &[CompiledWindow], with_late: bool) -> WindowRows {
        let mut out = WindowRows::empty(features);
        for r in self.rows.iter().filter(|r| with_late || !r.late) {
            let end = out.len();
            put_window_row(&mut out, features, end, r);
        }
        out
    }

    /// Brings `window`, this key's on-time rows as [`KeyRows::window_rows`] gave them before
    /// the row at `at` was inserted, up to date with it.
    pub fn insert_window_row(
        &self,
        features: &[CompiledWindow],
        window: &mut WindowRows,
        at: usize,
    ) {
        let row = &self.rows[at];
        if row.late {
            return;
        }
        let pos = if at + 1 == self.rows.len() {
            window.len()
        } else {
            self.rows[..at].iter().filter(|r| !r.late).count()
        };
        put_window_row(window, features, pos, row);
    }

    /// Drops a row group's rows no event at or after `frontier` can join (see the module docs).
    pub fn collect_row_group(&mut self, frontier: i64, ttl_us: Option<i64>) {
        let before = self.rows.partition_point(|r| r.ts < frontier);
        let candidate = self.rows[..before].iter().rposition(|r| !r.late);
        let mut i = 0;
        self.rows.retain(|r| {
            let keep = i >= before || (Some(i) == candidate && !expired(frontier, r.ts, ttl_us));
            i += 1;
            keep
        });
    }

    /// Drops a window group's rows before the longest window of `frontier`.
    pub fn collect_window_group(&mut self, frontier: i64, longest_us: i64) {
        let cut = self
            .rows
            .partition_point(|r| r.ts < frontier.saturating_sub(longest_us));
        self.rows.drain(..cut);
    }

    /// The stored form.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, Error> {
        let mut out = vec![STATE_VERSION];
        put_len(&mut out, self.rows.len());
        for r in &self.rows {
            out.extend_from_slice(&r.ts.to_le_bytes());
            out.push(u8::from(r.late));
            put_len(&mut out, r.tie.len());
            out.extend_from_slice(&r.tie);
            let v = codec.encode(r.ts, &r.values)?;
            put_len(&mut out, v.len());
            out.extend_from_slice(&v);
        }
        Ok(out)
    }

    /// Reads the stored form; damage is an error, never a panic.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Cursor { buf: bytes, pos: 0 };
        let version = r.u8()?;
        if version != STATE_VERSION {
            return Err(Error::State(format!(
                "key state version {version}, expected {STATE_VERSION}"
            )));
        }
        let n = r.length()?;
        let mut rows = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let ts = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
            let late = r.u8()? != 0;
            let tie_len = r.length()?;
            let tie = r.take(tie_len)?.to_vec();
            let v_len = r.length()?;
            let row = codec.decode(r.take(v_len)?)?;
            rows.push(StateRow {
                ts,
                tie,
                late,
                values: row.values,
            });
        }
        if r.pos != bytes.len() {
            return Err(Error::State("trailing bytes after key state".into()));
        }
        Ok(KeyRows { rows })
    }
}

/// Puts a row's window inputs and filter results at `pos` of `out` (per feature: the input
/// if any, then the filter result if any, as [`StateRow::values`] holds them).
fn put_window_row(out: &mut WindowRows, features: &[CompiledWindow], pos: usize, r: &StateRow) {
    out.ts.insert(pos, r.ts);
    let mut v = r.values.iter();
    for (fi, f) in features.iter().enumerate() {
        if f.input.is_some()
            && let Some(inputs) = &mut out.inputs[fi]
        {
            inputs.insert(pos, v.next().cloned().unwrap_or(Value::Null));
        }
        if f.filter.is_some()
            && let Some(passes) = &mut out.passes[fi]
        {
            passes.insert(pos, matches!(v.next(), Some(Value::Boolean(true))));
        }
    }
}

/// LEB128.
pub fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads what the state encodings write.
pub struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Error::State("truncated state value".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn length(&mut self) -> Result<usize, Error> {
        let mut n: usize = 0;
        for i in 0..10 {
            let b = self.u8()?;
            n |= usize::from(b & 0x7f)
                .checked_shl(7 * i)
                .ok_or_else(|| Error::State("length overflows".into()))?;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Error::State("length overflows".into()))
    }

    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_registry::DataType;

    fn row(ts: i64, tie: u8, late: bool, v: i64) -> StateRow {
        StateRow {
            ts,
            tie: vec![tie],
            late,
            values: vec![Value::Int64(v)],
        }
    }

    fn rows(list: &[StateRow]) -> KeyRows {
        let mut k = KeyRows::default();
        for r in list {
            k.insert(r.clone());
        }
        k
    }

    #[test]
    fn window_rows_kept_up_to_date_equal_window_rows_rebuilt() {
        use datafusion::physical_expr::expressions::Column;
        use fstore_registry::compiled::CompiledExpr;
        use fstore_registry::model::Aggregate;
        let expr = |name: &str, i: usize, dtype: DataType| CompiledExpr {
            name: name.into(),
            dtype,
            expr: std::sync::Arc::new(Column::new(name, i)),
        };
        let window =
            |agg, input: Option<CompiledExpr>, filter: Option<CompiledExpr>| CompiledWindow {
                name: "f".into(),
                agg,
                window_us: 100,
                dtype: DataType::Int64,
                input,
                filter,
            };
        // COUNT(*) FILTER, SUM(x), LAST(x) FILTER: values are [passes, x, x, passes].
        let features = [
            window(
                Aggregate::Count,
                None,
                Some(expr("p", 0, DataType::Boolean)),
            ),
            window(Aggregate::Sum, Some(expr("x", 1, DataType::Int64)), None),
            window(
                Aggregate::Last,
                Some(expr("x", 1, DataType::Int64)),
                Some(expr("p", 0, DataType::Boolean)),
            ),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut k = KeyRows::default();
            let mut w = k.window_rows(&features, false);
            for _ in 0..next(20) {
                let pass = Value::Boolean(next(2) == 0);
                let x = if next(5) == 0 {
                    Value::Null
                } else {
                    Value::Int64(next(100) as i64)
                };
                let at = k.insert(StateRow {
                    ts: next(8) as i64,
                    tie: vec![next(3) as u8],
                    late: next(4) == 0,
                    values: vec![pass.clone(), x.clone(), x, pass],
                });
                k.insert_window_row(&features, &mut w, at);
                assert_eq!(w, k.window_rows(&features, false));
                let times: Vec<(i64, &[u8])> =
                    k.rows.iter().map(|r| (r.ts, r.tie.as_slice())).collect();
                assert!(times.is_sorted(), "{times:?}");
            }
        }
    }

    fn value(a: AsOf<'_>) -> Option<i64> {
        match a {
            AsOf::Found(r) => match r.values[0] {
                Value::Int64(v) => Some(v),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn inserts_keep_event_time_then_tie_order() {
        let k = rows(&[
            row(20, 1, false, 1),
            row(10, 9, false, 2),
            row(20, 0, false, 3),
            row(20, 1, false, 4),
        ]);
        let order: Vec<i64> = k
            .rows
            .iter()
            .map(|r| value(AsOf::Found(r)).unwrap())
            .collect();
        assert_eq!(order, [2, 3, 1, 4]);
    }

    #[test]
    fn as_of_is_inclusive_picks_the_greatest_tie_and_skips_late_rows() {
        let k = rows(&[
            row(10, 0, false, 1),
            row(20, 5, false, 2),
            row(20, 7, false, 3),
            row(25, 0, true, 4),
            row(30, 0, false, 5),
        ]);
        assert_eq!(k.as_of(9, None), AsOf::NoRow);
        assert_eq!(value(k.as_of(10, None)), Some(1));
        assert_eq!(value(k.as_of(20, None)), Some(3));
        assert_eq!(
            value(k.as_of(29, None)),
            Some(3),
            "the late row is not joined"
        );
        assert_eq!(value(k.as_of(30, Some(0))), Some(5));
        assert_eq!(k.as_of(31, Some(0)), AsOf::Expired);
        assert_eq!(value(k.as_of(30, Some(10))), Some(5));
        assert_eq!(value(k.latest().map(AsOf::Found).unwrap()), Some(5));
    }

    #[test]
    fn collection_keeps_what_later_events_need() {
        let mut k = rows(&[
            row(10, 0, false, 1),
            row(20, 0, false, 2),
            row(25, 0, true, 3),
            row(40, 0, false, 4),
        ]);
        let before = k.clone();
        k.collect_row_group(30, None);
        for t in 30..50 {
            assert_eq!(k.as_of(t, None), before.as_of(t, None), "t = {t}");
        }
        assert_eq!(k.rows.len(), 2);
        // A candidate the TTL has expired for every later event goes too.
        let mut k = before.clone();
        k.collect_row_group(46, Some(5));
        assert!(k.is_empty());
        for t in 46..60 {
            assert_eq!(before.as_of(t, Some(5)), AsOf::Expired);
        }
        let mut k = before.clone();
        k.collect_row_group(45, Some(5));
        assert_eq!(k.rows.len(), 1, "exactly TTL old still joins");

        let mut w = before.clone();
        w.collect_window_group(30, 10);
        assert_eq!(
            w.rows.iter().map(|r| r.ts).collect::<Vec<_>>(),
            [20, 25, 40]
        );
        w.collect_window_group(1_000, 10);
        assert!(w.is_empty());
    }

    #[test]
    fn the_stored_form_round_trips_and_damage_is_an_error() {
        let codec = Codec::new("0123456789abcdef", vec![DataType::Int64]).unwrap();
        let k = rows(&[row(-5, 3, true, i64::MIN), row(7, 0, false, 42)]);
        let bytes = k.encode(&codec).unwrap();
        assert_eq!(KeyRows::decode(&codec, &bytes).unwrap(), k);
        for cut in 0..bytes.len() {
            assert!(KeyRows::decode(&codec, &bytes[..cut]).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(KeyRows::decode(&codec, &extra).is_err());
    }
}
