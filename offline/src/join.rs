//! The as-of join and the sliding windows, by sort-merge: group rows sorted by (key, event
//! time, tie order), events sorted by (key, event time), then one forward pass.
//!
//! The tie order ([`fstore_core::semantics::order`]), the as-of rule
//! ([`fstore_core::semantics::asof`]) and the window fold are the core's, shared with the
//! joiner and online serving: for a row group the greatest row wins, windows fold in this order.

use std::cmp::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::TimestampMicrosecondType;
use arrow_row::{RowConverter, Rows, SortField};
use fstore_core::codec::Value;
use fstore_core::rows::{to_array, value_at};
use fstore_core::semantics::asof::AsOf;
use fstore_core::semantics::order::{TieOrder, row_tie_columns, window_tie_columns};
use fstore_core::semantics::window::WindowRows;
use fstore_registry::compiled::{CompiledGroup, CompiledGroupKind, CompiledJoin, CompiledWindow};

use crate::Error;
use crate::error::internal;

/// Per-join counts for the job summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinStats {
    pub alias: String,
    /// Events whose key had no row at or before their time (a NULL key has none).
    pub no_row: u64,
    /// Events whose latest row was older than the TTL.
    pub expired: u64,
    /// Source rows skipped for a NULL key or event time.
    pub skipped_rows: u64,
}

fn converter(columns: &[ArrayRef]) -> Result<RowConverter, Error> {
    RowConverter::new(
        columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .map_err(internal)
}

fn rows(conv: &RowConverter, columns: &[ArrayRef]) -> Result<Rows, Error> {
    conv.convert_columns(columns).map_err(internal)
}

fn ts_values(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect()
}

fn key_is_valid(keys: &[ArrayRef], i: usize) -> bool {
    keys.iter().all(|k| k.is_valid(i))
}

/// Sorted, keyed rows of one side of the join.
struct Side {
    keys: Rows,
    ts: Vec<i64>,
    /// Row indices in (key, ts, tie) order, NULL keys and times left out.
    order: Vec<u32>,
}

fn sorted_side(
    key_cols: &[ArrayRef],
    ts: &ArrayRef,
    key_conv: &RowConverter,
    tie: Option<&Rows>,
    skipped: &mut u64,
) -> Result<Side, Error> {
    let keys = rows(key_conv, key_cols)?;
    let ts_opt = ts_values(ts);
    let mut order: Vec<u32> = (0..ts_opt.len() as u32)
        .filter(|&i| {
            let ok = ts_opt[i as usize].is_some() && key_is_valid(key_cols, i as usize);
            if !ok {
                *skipped += 1;
            }
            ok
        })
        .collect();
    let ts: Vec<i64> = ts_opt.iter().map(|t| t.unwrap_or(i64::MIN)).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        keys.row(a)
            .cmp(&keys.row(b))
            .then(ts[a].cmp(&ts[b]))
            .then_with(|| match tie {
                Some(t) => t.row(a).cmp(&t.row(b)),
                None => Ordering::Equal,
            })
    });
    Ok(Side { keys, ts, order })
}

/// The feature columns of one join, aligned with `events`.
/// Sorts a group's source rows by (key, ts, tie order), the tie order given by `tie_cols`.
fn sorted_rows(
    src: &RecordBatch,
    g: &CompiledGroup,
    src_keys: &[ArrayRef],
    key_conv: &RowConverter,
    tie_cols: &[ArrayRef],
    skipped: &mut u64,
) -> Result<Side, Error> {
    let tie = TieOrder::rows(tie_cols)?;
    sorted_side(
        src_keys,
        src.column(g.ts_column),
        key_conv,
        tie.as_ref(),
        skipped,
    )
}

/// `ts_column` is the events' event-time column; `source` the group source's rows.
/// Returns the feature columns aligned with `events`, then (for a row group) the event time
/// of the row each event got, NULL where it got none.
pub fn join_group(
    events: &RecordBatch,
    ts_column: usize,
    join: &CompiledJoin,
    source: &[RecordBatch],
) -> Result<(Vec<ArrayRef>, Option<ArrayRef>, JoinStats), Error> {
    let g: &CompiledGroup = &join.group;
    let mut stats = JoinStats {
        alias: join.join.alias.clone(),
        ..Default::default()
    };
    let src = concat_batches(&g.source_schema, source).map_err(internal)?;
    let src_keys: Vec<ArrayRef> = g
        .key_columns
        .iter()
        .map(|&i| src.column(i).clone())
        .collect();
    let ev_keys: Vec<ArrayRef> = join
        .event_keys
        .iter()
        .map(|&i| events.column(i).clone())
        .collect();
    let key_conv = converter(&src_keys)?;
    // Events with a NULL key are left out of the pass: they join nothing.
    let mut null_keys = 0;
    let ev = sorted_side(
        &ev_keys,
        events.column(ts_column),
        &key_conv,
        None,
        &mut null_keys,
    )?;
    match &g.kind {
        CompiledGroupKind::Row {
            tie_break,
            features,
            ..
        } => {
            let rule = g.rule();
            stats.no_row += null_keys;
            let values = features
                .iter()
                .map(|f| f.evaluate(&src))
                .collect::<Result<Vec<_>, _>>()?;
            let tie_break: Vec<ArrayRef> =
                tie_break.iter().map(|&i| src.column(i).clone()).collect();
            let tie_cols = row_tie_columns(&tie_break, &values);
            let side = sorted_rows(
                &src,
                g,
                &src_keys,
                &key_conv,
                &tie_cols,
                &mut stats.skipped_rows,
            )?;
            // One forward pass: for each event the last row with the same key and ts <= event ts.
            let mut pick: Vec<Option<u32>> = vec![None; events.num_rows()];
            let mut p = 0usize;
            for &e in &ev.order {
                let e = e as usize;
                let (ek, et) = (ev.keys.row(e), ev.ts[e]);
                while p < side.order.len() {
                    let r = side.order[p] as usize;
                    match side.keys.row(r).cmp(&ek) {
                        Ordering::Less => p += 1,
                        Ordering::Equal if side.ts[r] <= et => p += 1,
                        _ => break,
                    }
                }
                let cand = (p > 0)
                    .then(|| side.order[p - 1] as usize)
                    .filter(|&r| side.keys.row(r) == ek);
                match rule.pick(et, cand.map(|r| (side.ts[r], r))) {
                    AsOf::NoRow => stats.no_row += 1,
                    AsOf::Expired => stats.expired += 1,
                    AsOf::Found(r) => pick[e] = Some(r as u32),
                }
            }
            let idx = UInt32Array::from(pick);
            let cols = values
                .iter()
                .map(|v| take(v, &idx, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)?;
            let row_time = take(src.column(g.ts_column), &idx, None).map_err(internal)?;
            Ok((cols, Some(row_time), stats))
        }
        CompiledGroupKind::Window { features } => {
            let keyed = window_source(&src, g, features, &key_conv, &mut stats.skipped_rows)?;
            // Events outside the pass (NULL key) see an empty window.
            let empty = WindowRows::empty(features).fold(features, 0);
            let mut out: Vec<Vec<Value>> = empty
                .iter()
                .map(|v| vec![v.clone(); events.num_rows()])
                .collect();
            // Events and keys both ascend by key: walk them together, building each key's
            // rows once.
            let mut k = 0usize;
            let mut current: Option<(usize, WindowRows)> = None;
            for &e in &ev.order {
                let e = e as usize;
                let ek = ev.keys.row(e);
                while k < keyed.ranges.len() && keyed.side.keys.row(keyed.first_row(k)) < ek {
                    k += 1;
                }
                if k == keyed.ranges.len() || keyed.side.keys.row(keyed.first_row(k)) != ek {
                    continue;
                }
                if current.as_ref().is_none_or(|(ck, _)| *ck != k) {
                    current = Some((k, keyed.rows(k)?));
                }
                let rows = &current.as_ref().expect("set above").1;
                for (fi, v) in rows.fold(features, ev.ts[e]).into_iter().enumerate() {
                    out[fi][e] = v;
                }
            }
            let cols = features
                .iter()
                .zip(out)
                .map(|(f, vals)| to_array(&f.dtype, vals))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((cols, None, stats))
        }
    }
}

/// A window group's source rows grouped by key, in fold order.
pub struct KeyedWindowRows {
    side: Side,
    /// Per key, ascending: its range in `side.order`.
    ranges: Vec<(usize, usize)>,
    ts: Vec<i64>,
    inputs: Vec<Option<ArrayRef>>,
    filters: Vec<Option<ArrayRef>>,
}

impl KeyedWindowRows {
    /// A source row of key `k` (for its key values).
    pub fn first_row(&self, k: usize) -> usize {
        self.side.order[self.ranges[k].0] as usize
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.ranges.len()
    }

    /// Key `k`'s rows in fold order.
    pub fn rows(&self, k: usize) -> Result<WindowRows, Error> {
        let idx = &self.side.order[self.ranges[k].0..self.ranges[k].1];
        let inputs = self
            .inputs
            .iter()
            .map(|a| {
                a.as_ref()
                    .map(|a| idx.iter().map(|&r| value_at(a, r as usize)).collect())
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let passes = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref().map(|f| {
                    let b: &BooleanArray = f.as_boolean();
                    idx.iter()
                        .map(|&r| b.is_valid(r as usize) && b.value(r as usize))
                        .collect()
                })
            })
            .collect();
        Ok(WindowRows {
            ts: idx.iter().map(|&r| self.ts[r as usize]).collect(),
            inputs,
            passes,
        })
    }
}

/// Groups a window group's source rows by key in fold order (event time, then each
/// feature's input and filter result as the tie order).
pub fn window_source(
    src: &RecordBatch,
    g: &CompiledGroup,
    features: &[CompiledWindow],
    key_conv: &RowConverter,
    skipped: &mut u64,
) -> Result<KeyedWindowRows, Error> {
    let src_keys: Vec<ArrayRef> = g
        .key_columns
        .iter()
        .map(|&i| src.column(i).clone())
        .collect();
    let inputs = features
        .iter()
        .map(|f| f.input.as_ref().map(|i| i.evaluate(src)).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let filters = features
        .iter()
        .map(|f| f.filter.as_ref().map(|i| i.evaluate(src)).transpose())
        .collect::<Result<Vec<Option<ArrayRef>>, _>>()?;
    let tie_cols = window_tie_columns(&inputs, &filters);
    let side = sorted_rows(src, g, &src_keys, key_conv, &tie_cols, skipped)?;
    let mut ranges = Vec::new();
    let mut start = 0;
    for p in 1..=side.order.len() {
        if p == side.order.len()
            || side.keys.row(side.order[p] as usize) != side.keys.row(side.order[start] as usize)
        {
            ranges.push((start, p));
            start = p;
        }
    }
    let ts = side.ts.clone();
    Ok(KeyedWindowRows {
        side,
        ranges,
        ts,
        inputs,
        filters,
    })
}
