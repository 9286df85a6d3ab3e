//! A sample job: read the spec's sources, join, project, order deterministically.

use std::collections::HashMap;
use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use arrow_row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;
use fstore_registry::compiled::{CompiledGroupKind, CompiledSpec};

use crate::Error;
use crate::error::internal;
use crate::join::{JoinStats, join_group};
use crate::read::read_source;

/// Which events to sample: event time in `[start, end)`, microseconds; open ends by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// What a job read and produced.
#[derive(Debug, Clone, Default)]
pub struct SampleStats {
    pub events_read: u64,
    pub events_without_time: u64,
    pub samples: u64,
    pub joins: Vec<JoinStats>,
}

/// Computes the samples of a compiled spec; `locations` gives each source's Parquet location.
/// Rows come out ordered by event time, then by the event's columns.
pub async fn sample(
    ctx: &SessionContext,
    spec: &CompiledSpec,
    locations: &HashMap<String, PathBuf>,
    range: Range,
) -> Result<(RecordBatch, SampleStats), Error> {
    let location = |name: &str| {
        locations.get(name).cloned().ok_or_else(|| Error::Input(format!("no location for source \"{name}\": declare BATCH PARQUET or pass --source {name}=PATH")))
    };
    // Each source is read once, with the union of the time bounds its uses need: events in
    // [start, end); a group's rows in [start - lookback, end), the lookback being its TTL
    // (unbounded without one) or its longest window.
    let mut bounds: HashMap<String, (Option<i64>, Option<i64>)> = HashMap::new();
    let mut need = |name: &str, lower: Option<i64>| {
        let b = bounds.entry(name.to_string()).or_insert((lower, range.end));
        b.0 = match (b.0, lower) {
            (Some(a), Some(c)) => Some(a.min(c)),
            _ => None,
        };
    };
    need(&spec.source.name, range.start);
    for join in &spec.joins {
        let lookback = match &join.group.kind {
            CompiledGroupKind::Row { ttl_us, .. } => *ttl_us,
            CompiledGroupKind::Window { features } => features.iter().map(|f| f.window_us).max(),
        };
        let lower = range.start.zip(lookback).map(|(s, l)| s.saturating_sub(l));
        need(&join.group.source.name, lower);
    }
    let mut cache: HashMap<String, Vec<RecordBatch>> = HashMap::new();
    let events_raw = read_source(
        ctx,
        &spec.source,
        &location(&spec.source.name)?,
        bounds[&spec.source.name],
    )
    .await?;
    cache.insert(spec.source.name.clone(), events_raw.clone());
    let events = concat_batches(&spec.source_schema, &events_raw).map_err(internal)?;
    let mut stats = SampleStats {
        events_read: events.num_rows() as u64,
        ..Default::default()
    };
    let ts = events
        .column(spec.ts_column)
        .as_primitive::<TimestampMicrosecondType>();
    let keep: BooleanArray = ts
        .iter()
        .map(|t| {
            Some(t.is_some_and(|t| {
                range.start.is_none_or(|s| t >= s) && range.end.is_none_or(|e| t < e)
            }))
        })
        .collect();
    stats.events_without_time = ts.null_count() as u64;
    let events = filter_record_batch(&events, &keep).map_err(internal)?;

    let mut columns: Vec<ArrayRef> = events.columns().to_vec();
    for join in &spec.joins {
        let src = &join.group.source;
        if !cache.contains_key(&src.name) {
            let rows = read_source(ctx, src, &location(&src.name)?, bounds[&src.name]).await?;
            cache.insert(src.name.clone(), rows);
        }
        let (cols, js) = join_group(&events, spec.ts_column, join, &cache[&src.name])?;
        columns.extend(cols);
        stats.joins.push(js);
    }
    let base = RecordBatch::try_new(spec.base_schema.clone(), columns).map_err(internal)?;
    let out = spec.project(&base)?;
    // Deterministic order whatever the file order: event time, then every event column.
    let mut sort_cols: Vec<ArrayRef> = vec![events.column(spec.ts_column).clone()];
    sort_cols.extend(events.columns().iter().cloned());
    let conv = RowConverter::new(
        sort_cols
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .map_err(internal)?;
    let rows = conv.convert_columns(&sort_cols).map_err(internal)?;
    let mut order: Vec<u32> = (0..out.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    let out = take_record_batch(&out, &arrow::array::UInt32Array::from(order)).map_err(internal)?;
    stats.samples = out.num_rows() as u64;
    Ok((out, stats))
}
