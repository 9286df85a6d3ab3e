//! The join loop: read a step of messages, apply them to state, move the frontier, emit the
//! samples it passes, and every checkpoint interval commit state, offsets and output together.
//!
//! A step:
//! 1. **read** up to `max_batch` messages from the assigned partitions and **decode** each as
//!    its source's JSON row, straight into the source's columns (both on the
//!    [`crate::pipeline::Reader`]'s thread, a step ahead);
//! 2. **check** each row: undecodable rows, rows without an event time,
//!    feature rows without a key and rows behind the frontier go to the dead-letter topic
//!    with the reason and the original bytes (late feature rows still reach the online
//!    store);
//! 3. **apply** feature rows to their groups' key state (features, window inputs and filters,
//!    tie order: the registry's compiled group, the batch engine's code, evaluated over the
//!    step's columns); queue label events. The evaluated columns are kept as they are, in the
//!    group's [`RowArena`]; a key holds its rows' event times and places there. Queued events
//!    are kept the same way, in the events' arena;
//! 4. **advance** the frontier to the watermark and **emit** every queued event before it, in
//!    event-time order, through the registry's compiled spec (as-of with TTL, window folds,
//!    transforms): the events' columns and each join's feature columns are gathered from the
//!    arenas for a chunk of events at a time;
//! 5. at a **checkpoint**: write the online values of changed keys, collect the garbage of
//!    keys (those in memory, and a slice of the stored ones), finish the Parquet files of the
//!    samples since the last checkpoint (the [`crate::pipeline::SampleWriter`] encodes them on
//!    its own thread as samples are made, and publishes them when finished) or queue Kafka
//!    messages in the outbox, commit state + pending events + outbox + offsets + frontier in
//!    one synced RocksDB batch, then deliver the outbox and record where it landed; copy the
//!    live rows of arenas that mostly hold dead ones together. A joiner that stopped on an
//!    error refuses to go on; its state folder, opened again, resumes.
//!
//! After a crash the joiner resumes from the last checkpoint: Parquet files numbered past it
//! are deleted (they were never committed), outbox messages already in their topic (found by
//! their `fstore-id` header) are not sent again. The output is the same set as an
//! uninterrupted run's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use fstore_core::codec::{Codec, Value};
use fstore_core::json::{encode_row, format_timestamp};
use fstore_core::rows::{ColumnBuilder, value_at};
use fstore_core::semantics::order::{TieOrder, row_tie_columns, window_tie_columns};
use fstore_core::semantics::window::WindowRows;
use fstore_registry::DataType;
use fstore_registry::compiled::{
    CompiledExpr, CompiledGroup, CompiledGroupKind, CompiledSpec, plain_source_schema,
};
use fstore_registry::model::{Column, ColumnRole, Definitions, ObjectRef};
use fstore_registry::sample_file::{PartitionedWriter, sample_metadata};

use crate::Error;
use crate::arena::{ByteRows, RowArena, RowAt, byte_rows};
use crate::config::{JoinConfig, SinkTarget};
use crate::io::{Io, Outlet, StepSource};
use crate::kafka::Kafka;
use crate::keys::{AHEAD, KeyBytes, KeyTable, Slot};
use crate::pending::PendingEvents;
use crate::pipeline::{Chunk, MsgRef, SampleWriter, Step};
use fstore_core::semantics::asof::AsOf;

use crate::state::{KeyRows, StateRow};
use crate::store::{
    CF_EVENTS, CF_KEYS, CF_OUTBOX, Checkpoint, Counters, EventId, KeyColumns, OutMessage,
    PendingEvent, StateStore, entity_key_values, event_key, state_key,
};
use crate::watermark::{InputPartition, Watermarks};
use prefetch_index::prefetch_index;

mod apply;
mod cache;
mod checkpoint;
mod deadletter;
mod emit;
mod input;
mod open;
mod recover;

use cache::*;

/// Events emitted per projection batch: a step's worth, as a batch's fixed costs (gathers,
/// transforms, the writer's encoding) are paid per chunk.
const EMIT_CHUNK: usize = 8192;
/// Key states kept in memory between checkpoints before the cache is dropped.
const CACHE_KEYS: usize = 200_000;
/// Stored keys the garbage collector visits per checkpoint (keys not in memory).
const SWEEP_KEYS: usize = 20_000;
/// How long a bounded run, past the end offsets, waits for the consumer to deliver nothing
/// more (counted from its last message, while the loop may still be working on what came).
const END_QUIET: Duration = Duration::from_millis(600);
/// A bounded run whose consumer has delivered nothing for this long ends even short of a
/// reported end offset: the offsets left hold no records (transaction markers, removed by
/// retention).
const END_STALL: Duration = Duration::from_secs(10);

/// A group's value for the online store.
#[derive(Debug, Clone)]
pub enum OnlineValue {
    /// A row group's latest row.
    Row { ts: i64, values: Vec<Value> },
    /// A window group's rows within its longest window before the latest.
    Window(WindowRows),
}

/// One key's new online value.
#[derive(Debug, Clone)]
pub struct OnlineUpdate {
    pub key: Vec<Value>,
    pub value: OnlineValue,
}

/// Writes online values; the store keeps the newer of two values of a key.
pub trait OnlineWriter: Send {
    fn write(&mut self, group: &str, updates: Vec<OnlineUpdate>) -> Result<(), String>;
}

/// What a run did (cumulative over restarts of the same state folder).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub counters: Counters,
    pub frontier: i64,
    pub pending: usize,
    pub checkpoints: u64,
    /// Where this run's time went: reading, applying rows, emitting samples, checkpoints.
    pub phase_seconds: BTreeMap<String, f64>,
}

impl Summary {
    /// The summary of joiners that together make one job (threads or instances, each with its
    /// own share of the partitions): counts and times add up; the frontier is the lowest, as
    /// every sample before it is out.
    pub fn merge(summaries: &[Summary]) -> Summary {
        let mut out = Summary {
            frontier: summaries
                .iter()
                .map(|s| s.frontier)
                .min()
                .unwrap_or(i64::MIN),
            ..Summary::default()
        };
        for s in summaries {
            out.counters.add(&s.counters);
            out.pending += s.pending;
            out.checkpoints += s.checkpoints;
            for (p, t) in &s.phase_seconds {
                *out.phase_seconds.entry(p.clone()).or_default() += t;
            }
        }
        out
    }
}

struct SourceRt {
    name: String,
    topic: String,
    columns: Vec<Column>,
    schema: SchemaRef,
    ts_column: usize,
    is_event: bool,
    /// Indices into the joiner's groups fed by this source.
    groups: Vec<usize>,
}

struct GroupRt {
    compiled: Arc<CompiledGroup>,
    /// Encodes a [`StateRow`]'s values.
    codec: Codec,
}

impl GroupRt {
    fn name(&self) -> &str {
        &self.compiled.group.name
    }
}

struct JoinRt {
    alias: String,
    group: usize,
    event_keys: Vec<usize>,
}

/// What a checkpoint does with a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventChange {
    /// Stored, emitted, then read again: write it again (if still pending).
    Put,
    /// Stored and emitted: delete it.
    Delete,
}

/// A label event waiting for the frontier (its id, by which it is queued, is its event time,
/// partition and offset).
struct Queued {
    /// Its values, and its message key as the row's bytes, in the events' arena.
    at: RowAt,
    /// In the store (written by a checkpoint, or read at the start).
    stored: bool,
}

/// A queued event whose sample is due.
struct Ready {
    id: EventId,
    at: RowAt,
}

/// A running joiner.
pub struct Joiner {
    cfg: JoinConfig,
    spec: Arc<CompiledSpec>,
    registry_version: u64,
    /// Steps of decoded messages (Kafka: a consumer read a step ahead on its own threads).
    input: Box<dyn StepSource>,
    /// Where dead letters and Kafka samples go, and where sent ones are looked up.
    outlet: Box<dyn Outlet>,
    /// Writes the Parquet sink's files.
    writer: Option<SampleWriter>,
    store: StateStore,
    sources: Vec<SourceRt>,
    groups: Vec<GroupRt>,
    joins: Vec<JoinRt>,
    event_codec: Codec,
    sample_columns: Vec<Column>,
    ts_output: usize,
    marks: Watermarks,
    cp: Checkpoint,
    pending: PendingEvents<Queued>,
    /// Events queued since the last checkpoint and not stored: the next checkpoint writes
    /// those still pending. An event queued and emitted between two checkpoints is never
    /// written.
    new_events: Vec<EventId>,
    /// What the next checkpoint does with stored events that changed since the last one.
    event_changes: FastMap<EventId, EventChange>,
    /// Per group, the keys in memory.
    cache: Vec<KeyCache>,
    /// Every key the store holds is in memory (the store held none at the start and the
    /// cache has not been dropped since): a key not in the cache is not looked up.
    all_keys_cached: bool,
    /// Per group, the values and tie bytes of the rows of the keys in memory.
    arenas: Vec<RowArena>,
    /// The values and message keys of the queued label events.
    events: RowArena,
    out_msgs: Vec<OutMessage>,
    last_checkpoint: Instant,
    last_seen: HashMap<InputPartition, Instant>,
    /// Bounded runs: the end offsets present at the start.
    ends: Option<BTreeMap<InputPartition, (i64, i64)>>,
    /// When a partition's end offset was last asked, to decide idleness.
    end_checked: HashMap<InputPartition, Instant>,
    online: Option<Box<dyn OnlineWriter>>,
    /// Where the garbage collector's walk over stored keys goes on.
    sweep_from: Option<Vec<u8>>,
    phase_seconds: BTreeMap<String, f64>,
    /// The summary as of the last checkpoint, for metrics.
    status: Arc<std::sync::Mutex<Summary>>,
    /// Stopped on an error: see [`Joiner::usable`].
    failed: bool,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Joiner {
    /// Runs until the end offsets (bounded runs) or until `stop` is set; commits on the way
    /// out.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Summary, Error> {
        self.usable()?;
        let result = self.run_loop(stop);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// One step of the loop, without a checkpoint: reads what came (waiting a little),
    /// applies it, advances the frontier and emits the samples it passes. Returns whether a
    /// step came. [`Joiner::run`] repeats it; tests drive it one step at a time.
    pub fn step(&mut self) -> Result<bool, Error> {
        self.usable()?;
        let result = self.step_timed(&mut |_| {});
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// [`Joiner::step`], calling `lap` with each phase (read, apply, emit) as it ends.
    fn step_timed(&mut self, lap: &mut dyn FnMut(usize)) -> Result<bool, Error> {
        let step = self.read()?;
        lap(0);
        let got = step.is_some();
        if let Some(step) = step {
            self.apply(step)?;
        }
        self.update_idle();
        self.marks.advance();
        lap(1);
        self.emit()?;
        lap(2);
        Ok(got)
    }

    /// Rows held in memory, over every key of every group: what garbage collection bounds.
    pub fn rows_held(&self) -> usize {
        self.cache
            .iter()
            .map(|t| t.iter().map(|(_, e)| e.rows.rows.len()).sum::<usize>())
            .sum()
    }

    fn run_loop(&mut self, stop: &AtomicBool) -> Result<Summary, Error> {
        let mut clock = Instant::now();
        let mut lap = |phase: usize, times: &mut [Duration; 4]| {
            let now = Instant::now();
            times[phase] += now - clock;
            clock = now;
        };
        let mut times = [Duration::ZERO; 4];
        let mut waited_at_end = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                tracing::info!("stopping: committing a last checkpoint");
                self.checkpoint()?;
                break;
            }
            let got = self.step_timed(&mut |phase| lap(phase, &mut times))?;
            if self.at_end(got) {
                self.marks.finish();
                self.emit()?;
                self.checkpoint()?;
                break;
            }
            if got {
                waited_at_end = false;
            } else if !waited_at_end && self.ends.is_some() && self.short_of_end().is_empty() {
                // A bounded run read to its end offsets waits to see nothing more come: it
                // commits what it has meanwhile, so only the samples the end releases are
                // left for the last checkpoint.
                waited_at_end = true;
                self.checkpoint()?;
            }
            if self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval {
                self.checkpoint()?;
            }
            lap(3, &mut times);
        }
        lap(3, &mut times);
        self.phase_seconds = ["read", "apply", "emit", "checkpoint"]
            .iter()
            .zip(times)
            .map(|(p, t)| (p.to_string(), t.as_secs_f64()))
            .collect();
        Ok(self.summary())
    }

    /// The summary as of the last checkpoint, shared with a metrics endpoint.
    pub fn status(&self) -> Arc<std::sync::Mutex<Summary>> {
        self.status.clone()
    }

    fn publish_status(&self) {
        if let Ok(mut s) = self.status.lock() {
            *s = self.summary();
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            counters: self.cp.counters.clone(),
            frontier: self.marks.frontier(),
            pending: self.pending.len(),
            checkpoints: self.cp.seq,
            phase_seconds: self.phase_seconds.clone(),
        }
    }
}
