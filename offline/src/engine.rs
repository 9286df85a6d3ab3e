//! A sample job as one DataFusion physical plan:
//!
//! ```text
//! Sort(event time, event columns)            -- deterministic output order
//!   AsOfJoin(join n)
//!     Sort(events by join n's keys)
//!       …
//!         AsOfJoin(join 1)
//!           Sort(events by join 1's keys)    -- events with time in [start, end)
//!             ParquetScan(events)
//!           Sort(group rows by key)
//!             ParquetScan(group source)      -- rows in [start - lookback, end)
//!           …
//! ```
//!
//! Every sort is DataFusion's: under the session's memory pool it spills sorted runs to disk
//! and merges them, so a job's memory is bounded by the pool plus one chunk per join.
//! Transforms are applied to the sorted base rows as they stream out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Int64Type, Schema};
use datafusion::arrow::compute::SortOptions;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr, expressions::Column};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, execute_stream};
use datafusion::prelude::{SessionContext, ident, lit};
use fstore_core::semantics::asof::AsOfRule;
use fstore_registry::compiled::{CompiledGroupKind, CompiledSpec};
use futures::{Stream, TryStreamExt};

use crate::Error;
use crate::asof::AsOfJoinExec;
use crate::error::internal;
use crate::join::JoinStats;
use crate::read::source_frame;

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

/// A planned sample job: run it with [`SampleJob::execute`], then read [`SampleJob::stats`].
pub struct SampleJob {
    spec: Arc<CompiledSpec>,
    plan: Arc<dyn ExecutionPlan>,
    events_read: u64,
    events_without_time: u64,
    /// Events in range: the samples the job will produce.
    pub events: u64,
    samples: Arc<AtomicU64>,
}

/// Sorts `plan` by `columns` (ascending, NULL first) on `partitions` threads, merged into one
/// sorted partition. The sort spills to disk when the memory pool refuses it memory.
fn sorted(
    plan: Arc<dyn ExecutionPlan>,
    columns: &[usize],
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>, Error> {
    let schema = plan.schema();
    let ordering = LexOrdering::new(columns.iter().map(|&i| {
        PhysicalSortExpr::new(
            Arc::new(Column::new(schema.field(i).name(), i)),
            SortOptions {
                descending: false,
                nulls_first: true,
            },
        )
    }))
    .ok_or_else(|| internal("sort without columns"))?;
    let spread: Arc<dyn ExecutionPlan> = Arc::new(RepartitionExec::try_new(
        plan,
        Partitioning::RoundRobinBatch(partitions.max(1)),
    )?);
    let sort = Arc::new(SortExec::new(ordering.clone(), spread).with_preserve_partitioning(true));
    Ok(Arc::new(SortPreservingMergeExec::new(ordering, sort)))
}

/// Plans a sample job for a compiled spec; `locations` gives each source's Parquet location.
/// Rows come out ordered by event time, then by the event's columns.
pub async fn plan(
    ctx: &SessionContext,
    spec: &CompiledSpec,
    locations: &HashMap<String, PathBuf>,
    range: Range,
) -> Result<SampleJob, Error> {
    let location = |name: &str| {
        locations.get(name).cloned().ok_or_else(|| Error::Input(format!("no location for source \"{name}\": declare BATCH PARQUET or pass --source {name}=PATH")))
    };
    let partitions = ctx.copied_config().target_partitions();
    // Events in [start, end); rows without an event time are counted, not sampled.
    let events = source_frame(
        ctx,
        &spec.source,
        &location(&spec.source.name)?,
        (range.start, range.end),
    )
    .await?;
    let counts = events
        .clone()
        .aggregate(
            vec![],
            vec![
                count(lit(1)).alias("rows"),
                count(ident(&spec.source.event_time)).alias("timed"),
            ],
        )?
        .collect()
        .await?;
    let counts = concat_batches(&counts[0].schema(), &counts).map_err(internal)?;
    let (rows, timed) = (
        counts.column(0).as_primitive::<Int64Type>().value(0) as u64,
        counts.column(1).as_primitive::<Int64Type>().value(0) as u64,
    );
    let events = events.filter(ident(&spec.source.event_time).is_not_null())?;
    let mut plan = events.create_physical_plan().await?;

    let n_event = spec.source_schema.fields().len();
    let mut width = n_event;
    for join in &spec.joins {
        // A group's rows in [horizon(start), end): the as-of rule's lookback (the TTL,
        // unbounded without one, or the longest window).
        let rule = join.group.rule();
        let lower = range.start.and_then(|s| rule.horizon(s));
        let src = &join.group.source;
        let rows = source_frame(ctx, src, &location(&src.name)?, (lower, range.end))
            .await?
            .create_physical_plan()
            .await?;
        let rows = sorted(rows, &join.group.key_columns, partitions)?;
        let events = sorted(plan, &join.event_keys, partitions)?;
        width += join.group.features().len();
        let schema = Arc::new(Schema::new(spec.base_schema.fields()[..width].to_vec()));
        plan = Arc::new(AsOfJoinExec::new(
            events,
            rows,
            join.clone(),
            spec.ts_column,
            schema,
        ));
    }
    // Deterministic order whatever the file order: event time, then every event column.
    let order: Vec<usize> = std::iter::once(spec.ts_column).chain(0..n_event).collect();
    let plan = sorted(plan, &order, partitions)?;
    Ok(SampleJob {
        spec: Arc::new(spec.clone()),
        plan,
        events_read: rows,
        events_without_time: rows - timed,
        events: timed,
        samples: Arc::new(AtomicU64::new(0)),
    })
}

impl SampleJob {
    /// Units of work in the whole job, for progress: each event passes every join, then out.
    pub fn total_work(&self) -> u64 {
        self.events * (AsOfJoinExec::find_all(&self.plan).len() as u64 + 1)
    }

    /// Units of work done so far, read from the running plan's metrics: events through each
    /// join, then samples out.
    pub fn progress(&self) -> impl Fn() -> u64 + Send + 'static {
        let (plan, samples) = (self.plan.clone(), self.samples.clone());
        move || {
            AsOfJoinExec::find_all(&plan)
                .iter()
                .map(|j| j.output_rows())
                .sum::<u64>()
                + samples.load(AtomicOrdering::Relaxed)
        }
    }

    /// Runs the job: the samples, in order, as they are computed.
    pub fn execute(
        &self,
        ctx: &SessionContext,
    ) -> Result<impl Stream<Item = Result<RecordBatch, Error>> + Send + 'static, Error> {
        let stream = execute_stream(self.plan.clone(), ctx.task_ctx())?;
        let spec = self.spec.clone();
        let samples = self.samples.clone();
        Ok(stream.map_err(Error::from).and_then(move |base| {
            let out = spec.project(&base).map_err(Error::from);
            if let Ok(b) = &out {
                samples.fetch_add(b.num_rows() as u64, AtomicOrdering::Relaxed);
            }
            futures::future::ready(out)
        }))
    }

    /// Counts so far (final once the stream has ended).
    pub fn stats(&self) -> SampleStats {
        SampleStats {
            events_read: self.events_read,
            events_without_time: self.events_without_time,
            samples: self.samples.load(AtomicOrdering::Relaxed),
            // Outermost first: the last join of the spec is the plan's outermost.
            joins: AsOfJoinExec::find_all(&self.plan)
                .into_iter()
                .rev()
                .map(AsOfJoinExec::stats)
                .collect(),
        }
    }

    /// The physical plan, for `EXPLAIN`-style display.
    pub fn physical_plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }
}

/// Computes all samples of a compiled spec into one batch (tests and small jobs; `fstore
/// sample` streams them to Parquet instead).
pub async fn sample(
    ctx: &SessionContext,
    spec: &CompiledSpec,
    locations: &HashMap<String, PathBuf>,
    range: Range,
) -> Result<(RecordBatch, SampleStats), Error> {
    let job = plan(ctx, spec, locations, range).await?;
    let batches: Vec<RecordBatch> = job.execute(ctx)?.try_collect().await?;
    let out = concat_batches(&spec.output_schema, &batches).map_err(internal)?;
    Ok((out, job.stats()))
}

/// A planned materialization: each key's as-of row of one row group at a time.
pub struct GroupValuesJob {
    pub plan: Arc<AsOfJoinExec>,
}

impl GroupValuesJob {
    /// The join's counts (source rows without key or time among them).
    pub fn stats(&self) -> JoinStats {
        self.plan.stats()
    }

    /// Keys joined so far, read from the running plan's metrics.
    pub fn progress(&self) -> impl Fn() -> u64 + Send + 'static {
        let plan = self.plan.clone();
        move || plan.output_rows()
    }

    /// Runs the plan: batches of keys, the as-of time, features and row time.
    pub fn execute(
        &self,
        ctx: &SessionContext,
    ) -> Result<impl Stream<Item = Result<RecordBatch, Error>> + Send + 'static, Error> {
        let plan: Arc<dyn ExecutionPlan> = self.plan.clone();
        Ok(execute_stream(plan, ctx.task_ctx())?.map_err(Error::from))
    }
}

/// Plans the as-of value of every key of a row group at `as_of` (inclusive), as the as-of join
/// gives it to an event at `as_of`: batches of the key columns, the features, then the event
/// time of the row (NULL where the key's row expired). Keys are those with a row in
/// `[as_of - TTL, as_of]`.
pub async fn plan_group_values(
    ctx: &SessionContext,
    group: &Arc<fstore_registry::compiled::CompiledGroup>,
    location: &std::path::Path,
    as_of: i64,
) -> Result<GroupValuesJob, Error> {
    use datafusion::common::ScalarValue;
    use fstore_registry::model::Join;
    let CompiledGroupKind::Row { .. } = &group.kind else {
        return Err(Error::Input(format!(
            "feature group \"{}\" aggregates windows: its online values are kept by the streaming joiner, not materialized",
            group.group.name
        )));
    };
    let partitions = ctx.copied_config().target_partitions();
    let lower = group.rule().horizon(as_of);
    let rows = source_frame(
        ctx,
        &group.source,
        location,
        (lower, Some(as_of.saturating_add(1))),
    )
    .await?;
    // The spine: each key once, as an event at `as_of`.
    let key_names: Vec<String> = group
        .key_columns
        .iter()
        .map(|&i| group.source_schema.field(i).name().clone())
        .collect();
    let ts = ScalarValue::TimestampMicrosecond(Some(as_of), Some(fstore_core::types::UTC.into()));
    let mut spine_cols: Vec<datafusion::prelude::Expr> = key_names.iter().map(ident).collect();
    spine_cols.push(lit(ts).alias("__as_of"));
    let spine = rows
        .clone()
        .select(key_names.iter().map(ident).collect::<Vec<_>>())?
        .distinct()?
        .select(spine_cols)?;
    let spine = spine.create_physical_plan().await?;
    let k = key_names.len();
    let join = fstore_registry::compiled::CompiledJoin {
        join: Join {
            group: group.group.name.clone(),
            alias: group.group.name.clone(),
            keys: key_names.clone(),
        },
        event_keys: (0..k).collect(),
        group: group.clone(),
    };
    let mut fields: Vec<arrow::datatypes::FieldRef> = spine.schema().fields()[..k].to_vec();
    fields.push(spine.schema().fields()[k].clone());
    for (name, dtype) in group.features() {
        fields.push(Arc::new(arrow::datatypes::Field::new(
            name,
            dtype.to_arrow(),
            true,
        )));
    }
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "__row_time",
        fstore_registry::DataType::Timestamp.to_arrow(),
        true,
    )));
    let rows = sorted(
        rows.create_physical_plan().await?,
        &group.key_columns,
        partitions,
    )?;
    let spine = sorted(spine, &(0..k).collect::<Vec<_>>(), partitions)?;
    let plan = Arc::new(
        AsOfJoinExec::new(spine, rows, join, k, Arc::new(Schema::new(fields))).with_row_time(),
    );
    Ok(GroupValuesJob { plan })
}

/// Each key's rows of a window group that requests at or after `as_of` can see (event time in
/// `[as_of - longest window, as_of]`), in fold order: what the online store keeps for the
/// group. Streams chunks of (key values, rows).
pub async fn window_states(
    ctx: &SessionContext,
    group: &Arc<fstore_registry::compiled::CompiledGroup>,
    location: &std::path::Path,
    as_of: i64,
) -> Result<
    impl Stream<
        Item = Result<
            Vec<(
                Vec<fstore_core::codec::Value>,
                fstore_core::semantics::window::WindowRows,
            )>,
            Error,
        >,
    > + Send
    + 'static,
    Error,
> {
    use arrow_row::{RowConverter, SortField};
    let CompiledGroupKind::Window { features } = &group.kind else {
        return Err(Error::Input(format!(
            "feature group \"{}\" is not a window group",
            group.group.name
        )));
    };
    let partitions = ctx.copied_config().target_partitions();
    let rows = source_frame(
        ctx,
        &group.source,
        location,
        (
            AsOfRule::windows(features).horizon(as_of),
            Some(as_of.saturating_add(1)),
        ),
    )
    .await?
    .create_physical_plan()
    .await?;
    let rows = sorted(rows, &group.key_columns, partitions)?;
    let fields = || {
        group
            .key_columns
            .iter()
            .map(|&i| SortField::new(group.source_schema.field(i).data_type().clone()))
            .collect::<Vec<_>>()
    };
    let chunks = crate::asof::KeyChunks::new(
        execute_stream(rows, ctx.task_ctx())?,
        RowConverter::new(fields()).map_err(internal)?,
        group.key_columns.clone(),
        ctx.copied_config().batch_size() * 4,
    );
    let conv = RowConverter::new(fields()).map_err(internal)?;
    let state = (chunks, conv, group.clone(), features.clone());
    Ok(futures::stream::try_unfold(
        state,
        |(mut chunks, conv, g, features)| async move {
            let Some((chunk, _)) = chunks.next().await? else {
                return Ok(None);
            };
            let mut skipped = 0;
            let keyed = crate::join::window_source(&chunk, &g, &features, &conv, &mut skipped)?;
            let mut out = Vec::with_capacity(keyed.keys());
            for k in 0..keyed.keys() {
                let r = keyed.first_row(k);
                let key = g
                    .key_columns
                    .iter()
                    .map(|&c| fstore_core::rows::value_at(chunk.column(c), r))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push((key, keyed.rows(k)?));
            }
            Ok(Some((out, (chunks, conv, g, features))))
        },
    ))
}
