//! The as-of join as a DataFusion operator, streaming in bounded memory.
//!
//! [`AsOfJoinExec`] takes two single-partition inputs: label events sorted by the join's event
//! keys and the group's source rows sorted by the group's keys (both ascending, NULL first).
//! It declares both as required orderings and a single partition per input, so DataFusion's
//! (and Ballista's) sort and distribution enforcement keep or add the sorts under it; the
//! sorts are DataFusion's, which spill to disk under the session's memory pool. It cuts the
//! events into chunks that hold every event of their keys, takes the source rows of those keys
//! from the other input, and joins each chunk with [`join_group`] — the same per-key logic
//! (TTL, ties, windows) whatever the chunking. Memory is one chunk of events plus the source
//! rows of its keys.
//!
//! Output: the events in input order (so their ordering holds) with the join's feature columns
//! appended. Counts are the operator's metrics (`EXPLAIN ANALYZE` shows them):
//! `output_rows`, `events_without_row`, `events_expired` and `rows_without_key_or_time`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use arrow_row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::arrow::compute::SortOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use fstore_registry::compiled::CompiledJoin;
use futures::StreamExt;

use crate::join::{JoinStats, join_group};

/// Events per chunk, in session batches; a chunk grows past it only to hold every event of
/// its last key.
const CHUNK_BATCHES: usize = 4;

/// Joins sorted events to a group's sorted source rows, chunk by chunk.
#[derive(Debug)]
pub struct AsOfJoinExec {
    events: Arc<dyn ExecutionPlan>,
    rows: Arc<dyn ExecutionPlan>,
    join: CompiledJoin,
    ts_column: usize,
    schema: SchemaRef,
    row_time: bool,
    metrics: ExecutionPlanMetricsSet,
    cache: Arc<PlanProperties>,
}

/// The ascending, NULL-first order of `columns` of `schema`: what both inputs must have.
pub fn key_ordering(schema: &SchemaRef, columns: &[usize]) -> Option<LexOrdering> {
    LexOrdering::new(columns.iter().map(|&i| {
        PhysicalSortExpr::new(
            Arc::new(Column::new(schema.field(i).name(), i)),
            SortOptions {
                descending: false,
                nulls_first: true,
            },
        )
    }))
}

const NO_ROW: &str = "events_without_row";
const EXPIRED: &str = "events_expired";
const SKIPPED: &str = "rows_without_key_or_time";

impl AsOfJoinExec {
    /// `schema` is the events' schema followed by the join's feature columns; `ts_column` the
    /// events' event-time column.
    pub fn new(
        events: Arc<dyn ExecutionPlan>,
        rows: Arc<dyn ExecutionPlan>,
        join: CompiledJoin,
        ts_column: usize,
        schema: SchemaRef,
    ) -> Self {
        // The output keeps the events' order: their key ordering holds on the same columns.
        let orderings = key_ordering(&schema, &join.event_keys);
        let cache = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(schema.clone(), orderings),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        AsOfJoinExec {
            events,
            rows,
            join,
            ts_column,
            schema,
            row_time: false,
            metrics: ExecutionPlanMetricsSet::new(),
            cache,
        }
    }

    /// Also appends, last, the event time of the row each event got (row groups only; the
    /// schema must have the column).
    pub fn with_row_time(mut self) -> Self {
        self.row_time = true;
        self
    }

    /// The join's counts so far (final once the output has ended), from its metrics.
    pub fn stats(&self) -> JoinStats {
        let m = self.metrics.clone_inner();
        let count = |name: &str| m.sum_by_name(name).map_or(0, |v| v.as_usize() as u64);
        JoinStats {
            alias: self.join.join.alias.clone(),
            no_row: count(NO_ROW),
            expired: count(EXPIRED),
            skipped_rows: count(SKIPPED),
        }
    }

    /// Events joined so far.
    pub fn output_rows(&self) -> u64 {
        self.metrics.clone_inner().output_rows().unwrap_or(0) as u64
    }

    /// Every as-of join in `plan`, outermost first.
    pub fn find_all(plan: &Arc<dyn ExecutionPlan>) -> Vec<&AsOfJoinExec> {
        let mut out = Vec::new();
        if let Some(j) = plan.downcast_ref::<AsOfJoinExec>() {
            out.push(j);
        }
        for c in plan.children() {
            out.extend(Self::find_all(c));
        }
        out
    }
}

impl DisplayAs for AsOfJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "AsOfJoinExec: join={} group={}",
            self.join.join.alias, self.join.group.group.name
        )
    }
}

impl ExecutionPlan for AsOfJoinExec {
    fn name(&self) -> &str {
        "AsOfJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition, Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let events = key_ordering(&self.events.schema(), &self.join.event_keys);
        let rows = key_ordering(&self.rows.schema(), &self.join.group.key_columns);
        vec![events.map(Into::into), rows.map(Into::into)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.events, &self.rows]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [events, rows]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("AsOfJoinExec has two children".into()))?;
        let mut exec = AsOfJoinExec::new(
            events,
            rows,
            self.join.clone(),
            self.ts_column,
            self.schema.clone(),
        );
        exec.row_time = self.row_time;
        Ok(Arc::new(exec))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "AsOfJoinExec has one partition, asked for {partition}"
            )));
        }
        let key_types: Vec<SortField> = self
            .join
            .group
            .key_columns
            .iter()
            .map(|&i| SortField::new(self.join.group.source_schema.field(i).data_type().clone()))
            .collect();
        let chunk_rows = context.session_config().batch_size() * CHUNK_BATCHES;
        let conv = RowConverter::new(key_types.clone())?;
        let state = Merge {
            events: KeyChunks::new(
                self.events.execute(0, context.clone())?,
                RowConverter::new(key_types)?,
                self.join.event_keys.clone(),
                chunk_rows,
            ),
            rows: self.rows.execute(0, context)?,
            rows_buf: None,
            rows_done: false,
            conv,
            join: self.join.clone(),
            ts_column: self.ts_column,
            schema: self.schema.clone(),
            counts: Counts {
                output: MetricBuilder::new(&self.metrics).output_rows(partition),
                no_row: MetricBuilder::new(&self.metrics).counter(NO_ROW, partition),
                expired: MetricBuilder::new(&self.metrics).counter(EXPIRED, partition),
                skipped: MetricBuilder::new(&self.metrics).counter(SKIPPED, partition),
            },
            row_time: self.row_time,
        };
        let stream = futures::stream::try_unfold(state, |mut s| async move {
            Ok(s.next_chunk().await?.map(|b| (b, s)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// The merge's state between chunks.
struct Merge {
    events: KeyChunks,
    rows: SendableRecordBatchStream,
    /// Source rows read but not yet given to a chunk (keys above the last chunk's).
    rows_buf: Option<RecordBatch>,
    rows_done: bool,
    conv: RowConverter,
    join: CompiledJoin,
    ts_column: usize,
    schema: SchemaRef,
    counts: Counts,
    row_time: bool,
}

/// The operator's counters, for one partition.
struct Counts {
    output: Count,
    no_row: Count,
    expired: Count,
    skipped: Count,
}

fn engine_err(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("as-of join: {e}"))
}

fn key_rows(conv: &RowConverter, batch: &RecordBatch, key_columns: &[usize]) -> DfResult<Rows> {
    let cols: Vec<ArrayRef> = key_columns
        .iter()
        .map(|&i| batch.column(i).clone())
        .collect();
    Ok(conv.convert_columns(&cols)?)
}

/// Checks, in debug builds, that `rows` ascend: the operator requires its inputs' ordering,
/// so DataFusion's sort enforcement guarantees it.
fn check_sorted(rows: &Rows, what: &str) -> DfResult<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    for i in 1..rows.num_rows() {
        if rows.row(i - 1) > rows.row(i) {
            return Err(engine_err(format!("{what} are not sorted by key")));
        }
    }
    Ok(())
}

/// Cuts a stream sorted by key into chunks of about `chunk_rows` rows that each hold every
/// row of their keys.
pub struct KeyChunks {
    stream: SendableRecordBatchStream,
    conv: RowConverter,
    key_columns: Vec<usize>,
    chunk_rows: usize,
    buf: Vec<RecordBatch>,
    done: bool,
}

impl KeyChunks {
    /// `conv` converts the `key_columns` of the stream's batches.
    pub fn new(
        stream: SendableRecordBatchStream,
        conv: RowConverter,
        key_columns: Vec<usize>,
        chunk_rows: usize,
    ) -> Self {
        KeyChunks {
            stream,
            conv,
            key_columns,
            chunk_rows: chunk_rows.max(1),
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next chunk and its last (greatest) key, or `None` at the end.
    pub async fn next(&mut self) -> DfResult<Option<(RecordBatch, OwnedRow)>> {
        loop {
            let buffered: usize = self.buf.iter().map(RecordBatch::num_rows).sum();
            if buffered >= self.chunk_rows || (self.done && buffered > 0) {
                let rows = concat_batches(&self.stream.schema(), &self.buf)?;
                let keys = key_rows(&self.conv, &rows, &self.key_columns)?;
                check_sorted(&keys, "rows")?;
                let n = rows.num_rows();
                // Cut before the last key's first row: that key may continue in the next
                // batch. At the end of the input everything goes.
                let cut = if self.done {
                    n
                } else {
                    let last = keys.row(n - 1);
                    (0..n)
                        .rev()
                        .take_while(|&i| keys.row(i) == last)
                        .last()
                        .unwrap_or(n)
                };
                if cut > 0 {
                    let last_key = keys.row(cut - 1).owned();
                    self.buf = if cut < n {
                        vec![rows.slice(cut, n - cut)]
                    } else {
                        Vec::new()
                    };
                    return Ok(Some((rows.slice(0, cut), last_key)));
                }
                // One key fills the whole buffer: keep reading.
                self.buf = vec![rows];
            }
            if self.done {
                return Ok(None);
            }
            match self.stream.next().await.transpose()? {
                Some(b) if b.num_rows() > 0 => self.buf.push(b),
                Some(_) => {}
                None => self.done = true,
            }
        }
    }
}

impl Merge {
    /// The next chunk of joined events, or `None` at the end.
    async fn next_chunk(&mut self) -> DfResult<Option<RecordBatch>> {
        let Some((chunk, last_key)) = self.events.next().await? else {
            self.drain_rows().await?;
            return Ok(None);
        };
        let rows = self.rows_up_to(&last_key).await?;
        let (cols, row_time, js) =
            join_group(&chunk, self.ts_column, &self.join, &[rows]).map_err(engine_err)?;
        self.counts.no_row.add(js.no_row as usize);
        self.counts.expired.add(js.expired as usize);
        self.counts.skipped.add(js.skipped_rows as usize);
        let mut columns = chunk.columns().to_vec();
        columns.extend(cols);
        if self.row_time {
            columns.push(row_time.ok_or_else(|| engine_err("a window group has no row time"))?);
        }
        self.counts.output.add(chunk.num_rows());
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }

    /// Source rows whose key is at most `last`, in key order.
    async fn rows_up_to(&mut self, last: &OwnedRow) -> DfResult<RecordBatch> {
        let schema = self.rows.schema();
        let key_columns = self.join.group.key_columns.clone();
        let mut buf: Vec<RecordBatch> = self.rows_buf.take().into_iter().collect();
        loop {
            // Enough once the last buffered row's key is above `last`.
            if let Some(b) = buf.last()
                && b.num_rows() > 0
            {
                let tail = b.slice(b.num_rows() - 1, 1);
                let k = key_rows(&self.conv, &tail, &key_columns)?;
                if k.row(0) > last.row() {
                    break;
                }
            }
            if self.rows_done {
                break;
            }
            match self.rows.next().await.transpose()? {
                Some(b) => buf.push(b),
                None => self.rows_done = true,
            }
        }
        let all = concat_batches(&schema, &buf)?;
        let keys = key_rows(&self.conv, &all, &key_columns)?;
        check_sorted(&keys, "source rows")?;
        let split = (0..all.num_rows())
            .find(|&i| keys.row(i) > last.row())
            .unwrap_or(all.num_rows());
        if split < all.num_rows() {
            self.rows_buf = Some(all.slice(split, all.num_rows() - split));
        }
        Ok(all.slice(0, split))
    }

    /// Counts the source rows no event reached that lack a key or an event time, so the
    /// summary counts every unusable row.
    async fn drain_rows(&mut self) -> DfResult<()> {
        let g = self.join.group.clone();
        let count = |b: &RecordBatch| {
            let ts = b
                .column(g.ts_column)
                .as_primitive::<TimestampMicrosecondType>();
            (0..b.num_rows())
                .filter(|&i| ts.is_null(i) || g.key_columns.iter().any(|&k| b.column(k).is_null(i)))
                .count() as u64
        };
        let mut skipped = self.rows_buf.take().map(|b| count(&b)).unwrap_or(0);
        while !self.rows_done {
            match self.rows.next().await.transpose()? {
                Some(b) => skipped += count(&b),
                None => self.rows_done = true,
            }
        }
        self.counts.skipped.add(skipped as usize);
        Ok(())
    }
}
