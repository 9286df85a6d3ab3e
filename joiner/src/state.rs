//! One key's rows of one feature group, as the joiner keeps them: in the order of
//! [`fstore_core::semantics::order`] (event time, then tie order), each marked late or not, its
//! values and tie bytes in the group's [`RowArena`].
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

use fstore_core::codec::Codec;
use fstore_core::semantics::asof::{AsOf, AsOfRule};
use fstore_core::semantics::window::WindowRows;
use fstore_registry::compiled::CompiledWindow;

use crate::Error;
use crate::arena::{RowArena, RowAt};

const STATE_VERSION: u8 = 1;

/// One row of a key: its event time, whether it came late, and where its values and tie
/// bytes are in the group's [`RowArena`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRow {
    pub ts: i64,
    /// Arrived behind the frontier: online only.
    pub late: bool,
    /// A row group's features, or a window group's inputs and filter results (per feature:
    /// the input if any, then the filter result as BOOLEAN if any); the bytes are the tie
    /// order's ([`fstore_core::semantics::order::TieOrder`]).
    pub at: RowAt,
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
    /// counts, so their order does not matter). `arena` holds the rows' tie bytes.
    /// Returns where it went.
    pub fn insert(&mut self, arena: &RowArena, row: StateRow) -> usize {
        let tie = arena.bytes(row.at).unwrap_or_default();
        let after = |r: &StateRow| {
            r.ts < row.ts || (r.ts == row.ts && arena.bytes(r.at).unwrap_or_default() <= tie)
        };
        // Rows mostly come in order: after the last one.
        let at = match self.rows.last() {
            Some(last) if !after(last) => self.rows.partition_point(after),
            _ => self.rows.len(),
        };
        self.rows.insert(at, row);
        at
    }

    /// The row an event at `t` joins under a row group's `rule`: of the on-time rows at or
    /// before `t`, the last.
    pub fn as_of(&self, t: i64, rule: AsOfRule) -> AsOf<&StateRow> {
        let upto = self.rows.partition_point(|r| r.ts <= t);
        let candidate = self.rows[..upto].iter().rev().find(|r| !r.late);
        rule.pick(t, candidate.map(|r| (r.ts, r)))
    }

    /// The latest row, late or not: the key's online value.
    pub fn latest(&self) -> Option<&StateRow> {
        self.rows.last()
    }

    /// The rows as window aggregates fold them: on-time rows only, or all (online).
    pub fn window_rows(
        &self,
        arena: &RowArena,
        features: &[CompiledWindow],
        with_late: bool,
    ) -> Result<WindowRows, Error> {
        let mut out = WindowRows::empty(features);
        for r in self.rows.iter().filter(|r| with_late || !r.late) {
            let end = out.len();
            put_window_row(&mut out, arena, features, end, r)?;
        }
        Ok(out)
    }

    /// Brings `window`, this key's on-time rows as [`KeyRows::window_rows`] gave them before
    /// the row at `at` was inserted, up to date with it.
    pub fn insert_window_row(
        &self,
        arena: &RowArena,
        features: &[CompiledWindow],
        window: &mut WindowRows,
        at: usize,
    ) -> Result<(), Error> {
        let row = &self.rows[at];
        if row.late {
            return Ok(());
        }
        let pos = if at + 1 == self.rows.len() {
            window.len()
        } else {
            self.rows[..at].iter().filter(|r| !r.late).count()
        };
        put_window_row(window, arena, features, pos, row)
    }

    /// Drops the rows no event at or after `frontier` can reach under `rule` (see the module
    /// docs).
    pub fn collect(&mut self, frontier: i64, rule: AsOfRule) {
        match rule {
            AsOfRule::Latest { .. } => {
                let before = self.rows.partition_point(|r| r.ts < frontier);
                let candidate = self.rows[..before].iter().rposition(|r| !r.late);
                let mut i = 0;
                self.rows.retain(|r| {
                    let keep =
                        i >= before || (Some(i) == candidate && !rule.expired(frontier, r.ts));
                    i += 1;
                    keep
                });
            }
            AsOfRule::Window { .. } => {
                let cut = self.rows.partition_point(|r| rule.expired(frontier, r.ts));
                self.rows.drain(..cut);
            }
        }
    }

    /// The stored form; `arena` holds the rows' values.
    pub fn encode(&self, arena: &RowArena, codec: &Codec) -> Result<Vec<u8>, Error> {
        let mut out = vec![STATE_VERSION];
        put_len(&mut out, self.rows.len());
        for r in &self.rows {
            out.extend_from_slice(&r.ts.to_le_bytes());
            out.push(u8::from(r.late));
            let tie = arena.bytes(r.at).unwrap_or_default();
            put_len(&mut out, tie.len());
            out.extend_from_slice(tie);
            let v = codec.encode(r.ts, &arena.values(r.at)?)?;
            put_len(&mut out, v.len());
            out.extend_from_slice(&v);
        }
        Ok(out)
    }

    /// The rows of a stored form with their event times and late flags alone, for decisions
    /// on those (garbage collection): each row's `at` is its number in the stored form (in
    /// segment 0), for [`KeyRows::encode_kept`].
    pub fn decode_times(bytes: &[u8]) -> Result<Self, Error> {
        Ok(KeyRows {
            rows: stored_rows(bytes)?
                .into_iter()
                .enumerate()
                .map(|(i, (ts, late, _))| StateRow {
                    ts,
                    late,
                    at: RowAt {
                        seg: 0,
                        row: i as u32,
                    },
                })
                .collect(),
        })
    }

    /// The stored form of the rows of `stored` that these rows (from
    /// [`KeyRows::decode_times`] of it) kept, copied as stored.
    pub fn encode_kept(&self, stored: &[u8]) -> Result<Vec<u8>, Error> {
        let all = stored_rows(stored)?;
        let mut out = vec![STATE_VERSION];
        put_len(&mut out, self.rows.len());
        for r in &self.rows {
            let (_, _, span) = all
                .get(r.at.row as usize)
                .ok_or_else(|| Error::Internal("a kept row the stored form lacks".into()))?;
            out.extend_from_slice(&stored[span.clone()]);
        }
        Ok(out)
    }

    /// Reads the stored form, loading the rows' values into `arena` (readable once it is
    /// sealed); damage is an error, never a panic.
    pub fn decode(codec: &Codec, bytes: &[u8], arena: &mut RowArena) -> Result<Self, Error> {
        let mut rows = Vec::new();
        for_each_stored_row(bytes, |row| {
            let values = codec.decode(row.values)?;
            let at = arena.load(&values.values, Some(row.tie))?;
            rows.push(StateRow {
                ts: row.ts,
                late: row.late,
                at,
            });
            Ok(())
        })?;
        Ok(KeyRows { rows })
    }
}

/// One row of a stored form, borrowed from it.
struct StoredRow<'a> {
    ts: i64,
    late: bool,
    tie: &'a [u8],
    values: &'a [u8],
    /// Where the row's whole record is in the stored form.
    span: std::ops::Range<usize>,
}

/// Calls `f` with each row of a stored form, in order; damage is an error, never a panic.
fn for_each_stored_row<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(StoredRow<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut r = Cursor { buf: bytes, pos: 0 };
    let version = r.u8()?;
    if version != STATE_VERSION {
        return Err(Error::State(format!(
            "key state version {version}, expected {STATE_VERSION}"
        )));
    }
    let n = r.length()?;
    for _ in 0..n {
        let from = r.pos;
        let ts = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let late = r.u8()? != 0;
        let tie_len = r.length()?;
        let tie = r.take(tie_len)?;
        let v_len = r.length()?;
        let values = r.take(v_len)?;
        f(StoredRow {
            ts,
            late,
            tie,
            values,
            span: from..r.pos,
        })?;
    }
    if r.pos != bytes.len() {
        return Err(Error::State("trailing bytes after key state".into()));
    }
    Ok(())
}

/// Each row of a stored form: its event time, late flag, and where its record is.
fn stored_rows(bytes: &[u8]) -> Result<Vec<(i64, bool, std::ops::Range<usize>)>, Error> {
    let mut rows = Vec::new();
    for_each_stored_row(bytes, |row| {
        rows.push((row.ts, row.late, row.span));
        Ok(())
    })?;
    Ok(rows)
}

/// Puts a row's window inputs and filter results at `pos` of `out` (per feature: the input
/// if any, then the filter result if any, as the group's state columns hold them).
fn put_window_row(
    out: &mut WindowRows,
    arena: &RowArena,
    features: &[CompiledWindow],
    pos: usize,
    r: &StateRow,
) -> Result<(), Error> {
    out.ts.insert(pos, r.ts);
    let mut column = 0;
    for (fi, f) in features.iter().enumerate() {
        if f.input.is_some() {
            if let Some(inputs) = &mut out.inputs[fi] {
                inputs.insert(pos, arena.value(r.at, column)?);
            }
            column += 1;
        }
        if f.filter.is_some() {
            if let Some(passes) = &mut out.passes[fi] {
                passes.insert(pos, arena.flag(r.at, column)?);
            }
            column += 1;
        }
    }
    Ok(())
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
    use fstore_core::codec::Value;
    use fstore_registry::DataType;

    fn latest(ttl_us: Option<i64>) -> AsOfRule {
        AsOfRule::Latest { ttl_us }
    }

    /// An arena of one INT64 column, and rows added to it one at a time.
    struct Rows {
        arena: RowArena,
    }

    impl Rows {
        fn new(types: Vec<DataType>) -> Self {
            Rows {
                arena: RowArena::new(types),
            }
        }

        fn row(&mut self, ts: i64, tie: u8, late: bool, values: &[Value]) -> StateRow {
            let at = self.arena.load(values, Some(&[tie])).unwrap();
            self.arena.seal().unwrap();
            StateRow { ts, late, at }
        }

        fn keyed(&mut self, list: &[(i64, u8, bool, i64)]) -> KeyRows {
            let mut k = KeyRows::default();
            for &(ts, tie, late, v) in list {
                let r = self.row(ts, tie, late, &[Value::Int64(v)]);
                k.insert(&self.arena, r);
            }
            k
        }

        fn value(&self, a: AsOf<&StateRow>) -> Option<i64> {
            match a {
                AsOf::Found(r) => match self.arena.values(r.at).unwrap()[0] {
                    Value::Int64(v) => Some(v),
                    _ => None,
                },
                _ => None,
            }
        }
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
            encoding: fstore_core::encoding::Encoding::Dense,
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
        let mut rng = fstore_core::xorshift::XorShift::new(0x2545_f491_4f6c_dd1d_u64);
        let mut next = |n: u64| rng.below(n);
        let mut rows = Rows::new(vec![
            DataType::Boolean,
            DataType::Int64,
            DataType::Int64,
            DataType::Boolean,
        ]);
        for _ in 0..200 {
            let mut k = KeyRows::default();
            let mut w = k.window_rows(&rows.arena, &features, false).unwrap();
            for _ in 0..next(20) {
                let pass = Value::Boolean(next(2) == 0);
                let x = if next(5) == 0 {
                    Value::Null
                } else {
                    Value::Int64(next(100) as i64)
                };
                let r = rows.row(
                    next(8) as i64,
                    next(3) as u8,
                    next(4) == 0,
                    &[pass.clone(), x.clone(), x, pass],
                );
                let at = k.insert(&rows.arena, r);
                k.insert_window_row(&rows.arena, &features, &mut w, at)
                    .unwrap();
                assert_eq!(w, k.window_rows(&rows.arena, &features, false).unwrap());
                let times: Vec<(i64, &[u8])> = k
                    .rows
                    .iter()
                    .map(|r| (r.ts, rows.arena.bytes(r.at).unwrap()))
                    .collect();
                assert!(times.is_sorted(), "{times:?}");
            }
        }
    }

    #[test]
    fn inserts_keep_event_time_then_tie_order() {
        let mut rows = Rows::new(vec![DataType::Int64]);
        let k = rows.keyed(&[
            (20, 1, false, 1),
            (10, 9, false, 2),
            (20, 0, false, 3),
            (20, 1, false, 4),
        ]);
        let order: Vec<i64> = k
            .rows
            .iter()
            .map(|r| rows.value(AsOf::Found(r)).unwrap())
            .collect();
        assert_eq!(order, [2, 3, 1, 4]);
    }

    #[test]
    fn as_of_is_inclusive_picks_the_greatest_tie_and_skips_late_rows() {
        let mut rows = Rows::new(vec![DataType::Int64]);
        let k = rows.keyed(&[
            (10, 0, false, 1),
            (20, 5, false, 2),
            (20, 7, false, 3),
            (25, 0, true, 4),
            (30, 0, false, 5),
        ]);
        assert_eq!(k.as_of(9, latest(None)), AsOf::NoRow);
        assert_eq!(rows.value(k.as_of(10, latest(None))), Some(1));
        assert_eq!(rows.value(k.as_of(20, latest(None))), Some(3));
        assert_eq!(
            rows.value(k.as_of(29, latest(None))),
            Some(3),
            "the late row is not joined"
        );
        assert_eq!(rows.value(k.as_of(30, latest(Some(0)))), Some(5));
        assert_eq!(k.as_of(31, latest(Some(0))), AsOf::Expired);
        assert_eq!(rows.value(k.as_of(30, latest(Some(10)))), Some(5));
        assert_eq!(rows.value(k.latest().map(AsOf::Found).unwrap()), Some(5));
    }

    #[test]
    fn collection_keeps_what_later_events_need() {
        let mut rows = Rows::new(vec![DataType::Int64]);
        let mut k = rows.keyed(&[
            (10, 0, false, 1),
            (20, 0, false, 2),
            (25, 0, true, 3),
            (40, 0, false, 4),
        ]);
        let before = k.clone();
        k.collect(30, latest(None));
        for t in 30..50 {
            assert_eq!(
                k.as_of(t, latest(None)),
                before.as_of(t, latest(None)),
                "t = {t}"
            );
        }
        assert_eq!(k.rows.len(), 2);
        // A candidate the TTL has expired for every later event goes too.
        let mut k = before.clone();
        k.collect(46, latest(Some(5)));
        assert!(k.is_empty());
        for t in 46..60 {
            assert_eq!(before.as_of(t, latest(Some(5))), AsOf::Expired);
        }
        let mut k = before.clone();
        k.collect(45, latest(Some(5)));
        assert_eq!(k.rows.len(), 1, "exactly TTL old still joins");

        let mut w = before.clone();
        w.collect(30, AsOfRule::Window { longest_us: 10 });
        assert_eq!(
            w.rows.iter().map(|r| r.ts).collect::<Vec<_>>(),
            [20, 25, 40]
        );
        w.collect(1_000, AsOfRule::Window { longest_us: 10 });
        assert!(w.is_empty());
    }

    #[test]
    fn the_stored_form_round_trips_and_damage_is_an_error() {
        let codec = Codec::new("0123456789abcdef", vec![DataType::Int64]).unwrap();
        let mut rows = Rows::new(vec![DataType::Int64]);
        let k = rows.keyed(&[(-5, 3, true, i64::MIN), (7, 0, false, 42)]);
        let bytes = k.encode(&rows.arena, &codec).unwrap();
        let mut other = RowArena::new(vec![DataType::Int64]);
        let back = KeyRows::decode(&codec, &bytes, &mut other).unwrap();
        other.seal().unwrap();
        assert_eq!(back.encode(&other, &codec).unwrap(), bytes);
        let times: Vec<(i64, bool)> = back.rows.iter().map(|r| (r.ts, r.late)).collect();
        assert_eq!(times, [(-5, true), (7, false)]);
        for cut in 0..bytes.len() {
            let mut scratch = RowArena::new(vec![DataType::Int64]);
            assert!(KeyRows::decode(&codec, &bytes[..cut], &mut scratch).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        let mut scratch = RowArena::new(vec![DataType::Int64]);
        assert!(KeyRows::decode(&codec, &extra, &mut scratch).is_err());
    }
}
