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
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::Error;
use crate::arena::{ByteRows, RowArena, RowAt, byte_rows};
use crate::config::{JoinConfig, SinkTarget};
use crate::kafka::{Kafka, Outbox};
use crate::keys::{AHEAD, KeyBytes, KeyTable, Slot};
use crate::pending::PendingEvents;
use crate::pipeline::{Chunk, MsgRef, ReadSource, Reader, SampleWriter, Step};
use fstore_core::semantics::asof::AsOf;

use crate::state::{KeyRows, StateRow};
use crate::store::{
    CF_EVENTS, CF_KEYS, CF_OUTBOX, Checkpoint, Counters, EventId, KeyColumns, OutMessage,
    PendingEvent, StateStore, entity_key_values, event_key, state_key,
};
use crate::watermark::{InputPartition, Watermarks};
use prefetch_index::prefetch_index;

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

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One group's keys in memory.
type KeyCache = KeyTable<Entry>;

/// Every key in memory with its group.
fn cached(cache: &mut [KeyCache]) -> impl Iterator<Item = (usize, &KeyBytes, &mut Entry)> {
    cache
        .iter_mut()
        .enumerate()
        .flat_map(|(g, keys)| keys.iter_mut().map(move |(k, e)| (g, k, e)))
}

/// A key's rows in memory.
struct Entry {
    rows: KeyRows,
    /// A window group's on-time rows as folds read them: built by the first fold, kept up to
    /// date by inserts, dropped when garbage collection removes rows.
    window: Option<WindowRows>,
    /// Changed since the last checkpoint.
    dirty: bool,
    /// Its online value changed since the last checkpoint.
    online: bool,
}

fn prefetch_ref<T>(r: &T) {
    prefetch_index(std::slice::from_ref(r), 0);
}

/// For a walk over the entries of `slots`, at `i`, loads in three stages what the walk
/// reads, each stage reading only lines the one before loaded: the entry `2 × AHEAD` on
/// (its own lines); the last rows, fold times and per-feature fold arrays of the entry
/// `AHEAD` on; the fold inputs and filter results of the entry `AHEAD / 2` on.
fn prefetch_ahead(table: &KeyCache, slots: &[Option<Slot>], i: usize) {
    if let Some(&Some(s)) = slots.get(i + 2 * AHEAD) {
        let e = table.get(s);
        prefetch_ref(&e.rows);
        prefetch_ref(&e.window);
    }
    if let Some(&Some(s)) = slots.get(i + AHEAD) {
        let e = table.get(s);
        let rows = &e.rows.rows;
        for i in rows.len().saturating_sub(4)..rows.len() {
            prefetch_index(rows, i);
        }
        if let Some(w) = &e.window {
            prefetch_index(&w.ts, 0);
            prefetch_index(&w.ts, w.ts.len().saturating_sub(1));
            prefetch_index(&w.passes, 0);
            prefetch_index(&w.inputs, 0);
        }
    }
    if let Some(&Some(s)) = slots.get(i + AHEAD / 2)
        && let Some(w) = &table.get(s).window
    {
        for p in w.passes.iter().flatten() {
            prefetch_index(p, 0);
        }
        for v in w.inputs.iter().flatten() {
            prefetch_index(v, v.len().saturating_sub(1));
        }
    }
}

/// The entity keys of many rows, their bytes in one buffer.
#[derive(Default)]
struct KeyBatch {
    bytes: Vec<u8>,
    /// Per row, where its key's bytes end, or `None` for a key with a NULL part.
    ends: Vec<Option<usize>>,
}

impl KeyBatch {
    /// Adds the key of row `row` of `columns`; a key with a NULL part is no key (it resolves
    /// to no entry, and `push` returns false).
    fn push(&mut self, columns: &KeyColumns<'_>, row: usize) -> bool {
        let whole = columns.write(row, &mut self.bytes);
        self.ends.push(whole.then_some(self.bytes.len()));
        whole
    }

    fn keys(&self) -> Vec<Option<&[u8]>> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|end| {
                end.map(|end| {
                    let k = &self.bytes[start..end];
                    start = end;
                    k
                })
            })
            .collect()
    }
}

/// A stored key's new value, or its deletion.
type KeyChange = (Vec<u8>, Option<Vec<u8>>);

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

/// What a step read from one partition.
struct StepPartition {
    partition: i32,
    /// The offset after the last message read.
    next: i64,
    /// The greatest event time of its rows (those with one).
    max_ts: Option<i64>,
}

/// A source's rows of a step that are applied: the rows, the message of each (its number in
/// the chunk), and whether each is late.
struct AppliedRows<'a> {
    batch: &'a RecordBatch,
    msgs: &'a [u32],
    late: &'a [bool],
    chunk: &'a Chunk,
    ts_column: usize,
}

impl AppliedRows<'_> {
    fn msg(&self, i: usize) -> MsgRef<'_> {
        self.chunk.msg(self.msgs[i] as usize)
    }

    /// The rows' event times (none NULL).
    fn times(&self) -> Result<&TimestampMicrosecondArray, Error> {
        self.batch
            .column(self.ts_column)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| Error::Internal("event time column is not a timestamp".into()))
    }
}

/// A running joiner.
pub struct Joiner {
    cfg: JoinConfig,
    spec: Arc<CompiledSpec>,
    registry_version: u64,
    kafka: Kafka,
    /// Taken only by the drop.
    consumer: Option<Arc<BaseConsumer>>,
    /// Reads and decodes steps ahead of the loop (started by the first read). It lives as
    /// long as the joiner: steps it has read and the loop has not applied are past the
    /// consumer's position, so a new reader would skip them.
    reader: Option<Reader>,
    /// Writes the Parquet sink's files.
    writer: Option<SampleWriter>,
    outbox: Outbox,
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

impl Drop for Joiner {
    fn drop(&mut self) {
        // The reader first (it polls the consumer). The consumer's drop waits for its queue
        // to close, polling 100 ms at a time: it closes on a thread of its own rather than
        // hold up the caller (it has no group membership or offsets to hand back).
        self.reader = None;
        if let Some(c) = self.consumer.take() {
            let _ = std::thread::Builder::new()
                .name("fstore-close".into())
                .spawn(move || drop(c));
        }
    }
}

/// A joiner's state as opened: the store, its checkpoint (or a new one), and the events it
/// holds queued.
struct OpenedState {
    store: StateStore,
    /// The store holds no key's rows.
    no_keys: bool,
    cp: Checkpoint,
    pending: PendingEvents<Queued>,
    events: RowArena,
}

/// Opens (or creates) the state folder and checks that it belongs to this spec and instance.
fn open_state(
    cfg: &JoinConfig,
    defs: &Definitions,
    spec: &CompiledSpec,
    event_codec: &Codec,
) -> Result<OpenedState, Error> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| {
        Error::Config(format!(
            "cannot create the state folder {}: {e}",
            cfg.state_dir.display()
        ))
    })?;
    let store = StateStore::open(&cfg.state_dir)?;
    let no_keys = store.is_empty(CF_KEYS)?;
    let instance = format!("{}/{}", cfg.instance.index, cfg.instance.count);
    let fp = fingerprints(defs, spec);
    let cp = match store.checkpoint()? {
        Some(cp) => {
            if cp.tie_encoding != fstore_core::semantics::order::TIE_ENCODING {
                return Err(Error::Config(format!(
                    "state folder {} orders ties by {:?}, this fstore by {:?}: rebuild the state (a new --state folder from the start of the topics)",
                    cfg.state_dir.display(),
                    cp.tie_encoding,
                    fstore_core::semantics::order::TIE_ENCODING
                )));
            }
            if cp.spec != spec.spec.name || cp.spec_fingerprint != fp || cp.instance != instance {
                return Err(Error::Config(format!(
                    "state folder {} belongs to spec \"{}\" as instance {} with other definitions; this run is spec \"{}\" as instance {instance}: use a new --state folder (or delete it to start over)",
                    cfg.state_dir.display(),
                    cp.spec,
                    cp.instance,
                    spec.spec.name
                )));
            }
            cp
        }
        None => Checkpoint {
            spec: spec.spec.name.clone(),
            spec_fingerprint: fp,
            instance,
            frontier: i64::MIN,
            run: format!(
                "{:08x}",
                (now_us() as u64 ^ u64::from(std::process::id()).rotate_left(40)) & 0xffff_ffff
            ),
            tie_encoding: fstore_core::semantics::order::TIE_ENCODING.to_string(),
            ..Default::default()
        },
    };
    let mut pending = PendingEvents::default();
    let mut events = RowArena::new(event_codec.types().to_vec());
    for (_, v) in store.scan(CF_EVENTS)? {
        let event = PendingEvent::decode(event_codec, &v)?;
        let at = events.load(&event.values, event.key.as_deref())?;
        pending.insert(event.id(), Queued { at, stored: true });
    }
    events.seal()?;
    Ok(OpenedState {
        store,
        no_keys,
        cp,
        pending,
        events,
    })
}

fn fingerprints(defs: &Definitions, spec: &CompiledSpec) -> String {
    let mut parts = vec![format!(
        "spec:{}",
        ObjectRef::Spec(&spec.spec).fingerprint()
    )];
    let mut sources = vec![&spec.source];
    for j in &spec.joins {
        parts.push(format!(
            "group:{}:{}",
            j.group.group.name,
            ObjectRef::Group(&j.group.group).fingerprint()
        ));
        sources.push(&j.group.source);
    }
    for s in sources {
        if let Ok(src) = defs.source(&s.name) {
            parts.push(format!(
                "source:{}:{}",
                s.name,
                ObjectRef::Source(src).fingerprint()
            ));
        }
    }
    parts.sort();
    parts.dedup();
    parts.join(",")
}

/// The codec types of a group's state rows.
fn state_types(g: &CompiledGroup) -> Vec<DataType> {
    match &g.kind {
        CompiledGroupKind::Row { features, .. } => {
            features.iter().map(|f| f.dtype.clone()).collect()
        }
        CompiledGroupKind::Window { features } => {
            let mut t = Vec::new();
            for f in features {
                if let Some(i) = &f.input {
                    t.push(i.dtype.clone());
                }
                if f.filter.is_some() {
                    t.push(DataType::Boolean);
                }
            }
            t
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Joiner {
    /// Prepares a run: compiles the spec, opens the state folder (resuming its checkpoint),
    /// finds the topics' partitions, and repairs the output of an interrupted run.
    pub fn open(
        cfg: JoinConfig,
        defs: &Definitions,
        registry_version: u64,
        online: Option<Box<dyn OnlineWriter>>,
    ) -> Result<Self, Error> {
        let spec = Arc::new(CompiledSpec::compile(defs, &cfg.spec)?);
        let ts_output = spec
            .spec
            .columns
            .iter()
            .position(|c| matches!(c.role, ColumnRole::EventTime { .. }))
            .ok_or_else(|| {
                Error::Config(format!(
                    "sample spec \"{}\" does not select its event time column; samples are ordered and partitioned by it",
                    spec.spec.name
                ))
            })?;

        // Sources: the events' first, then each join's, once each.
        let mut sources: Vec<SourceRt> = Vec::new();
        let mut groups: Vec<GroupRt> = Vec::new();
        let mut joins = Vec::new();
        let topic_of = |name: &str, declared: &Option<String>| -> Result<String, Error> {
            cfg.topics
                .get(name)
                .cloned()
                .or_else(|| declared.clone())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "source \"{name}\" has no KAFKA TOPIC; declare one or pass --topic {name}=TOPIC"
                    ))
                })
        };
        let source_rt = |s: &fstore_registry::model::Source| -> Result<SourceRt, Error> {
            Ok(SourceRt {
                name: s.name.clone(),
                topic: topic_of(&s.name, &s.topic)?,
                columns: s.columns.clone(),
                schema: plain_source_schema(s),
                ts_column: s
                    .columns
                    .iter()
                    .position(|c| c.name == s.event_time)
                    .ok_or_else(|| Error::Internal("event time column missing".into()))?,
                is_event: false,
                groups: Vec::new(),
            })
        };
        let mut events = source_rt(&spec.source)?;
        events.is_event = true;
        sources.push(events);
        for j in &spec.joins {
            let g = match groups
                .iter()
                .position(|g| g.compiled.group.name == j.group.group.name)
            {
                Some(g) => g,
                None => {
                    groups.push(GroupRt {
                        codec: Codec::new(
                            &ObjectRef::Group(&j.group.group).fingerprint(),
                            state_types(&j.group),
                        )?,
                        compiled: j.group.clone(),
                    });
                    let g = groups.len() - 1;
                    let s = match sources.iter().position(|s| s.name == j.group.source.name) {
                        Some(s) => s,
                        None => {
                            sources.push(source_rt(&j.group.source)?);
                            sources.len() - 1
                        }
                    };
                    sources[s].groups.push(g);
                    g
                }
            };
            joins.push(JoinRt {
                alias: j.join.alias.clone(),
                group: g,
                event_keys: j.event_keys.clone(),
            });
        }
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        for name in cfg.topics.keys().chain(cfg.broadcast.iter()) {
            if !names.contains(&name.as_str()) {
                return Err(Error::Config(format!(
                    "\"{name}\" is not a source of spec \"{}\" (its sources: {})",
                    spec.spec.name,
                    names.join(", ")
                )));
            }
        }
        if cfg.broadcast.contains(&spec.source.name) {
            return Err(Error::Config(format!(
                "--broadcast {}: the label events are split between instances, never broadcast (each would emit every sample)",
                spec.source.name
            )));
        }
        let mut by_topic = HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            if let Some(other) = by_topic.insert(s.topic.clone(), i) {
                return Err(Error::Config(format!(
                    "sources \"{}\" and \"{}\" read the same topic \"{}\"",
                    sources[other].name, s.name, s.topic
                )));
            }
        }
        let event_codec = Codec::new(
            &ObjectRef::Source(defs.source(&spec.source.name)?).fingerprint(),
            spec.source
                .columns
                .iter()
                .map(|c| c.dtype.clone())
                .collect(),
        )?;

        // The state store opens (its files created and synced) while the broker is asked
        // for the sources' partitions: both wait on I/O.
        let kafka = Kafka {
            brokers: cfg.brokers.clone(),
            options: cfg.kafka_options.clone(),
        };
        let (state, listed) = std::thread::scope(|scope| {
            let state = scope.spawn(|| open_state(&cfg, defs, &spec, &event_codec));
            let listed = (|| {
                let consumer = kafka.consumer(&format!(
                    "fstore-join-{}-{}-of-{}",
                    spec.spec.name, cfg.instance.index, cfg.instance.count
                ))?;
                let partitions = sources
                    .iter()
                    .map(|s| {
                        kafka.partitions(&consumer, &s.topic).map_err(|e| match e {
                            Error::Config(m) => {
                                Error::Config(format!("source \"{}\": {m}", s.name))
                            }
                            e => e,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok::<_, Error>((consumer, partitions))
            })();
            (state.join(), listed)
        });
        let OpenedState {
            store,
            no_keys,
            cp,
            pending,
            events,
        } = state.map_err(|_| Error::Internal("opening the state store panicked".into()))??;
        let (consumer, listed) = listed?;
        // Assignment at the committed offsets.
        let mut tpl = TopicPartitionList::new();
        let mut inputs = Vec::new();
        let mut event_partitions = 0usize;
        for (s, all) in sources.iter().zip(listed) {
            if s.is_event {
                event_partitions = all.len();
            } else if cfg.instance.count > 1
                && !cfg.broadcast.contains(&s.name)
                && all.len() != event_partitions
            {
                return Err(Error::Config(format!(
                    "source \"{}\" has {} partitions, the events' topic {}: sources split between instances must be partitioned alike (or pass --broadcast {})",
                    s.name,
                    all.len(),
                    event_partitions,
                    s.name
                )));
            }
            for p in all {
                if cfg.broadcast.contains(&s.name) || cfg.instance.owns(p) {
                    let at = cp
                        .offsets
                        .get(&s.topic)
                        .and_then(|m| m.get(&p))
                        .map_or(Offset::Beginning, |&o| Offset::Offset(o));
                    tpl.add_partition_offset(&s.topic, p, at)?;
                    inputs.push((s.topic.clone(), p));
                }
            }
        }
        // End offsets before the assignment: once fetching starts, these requests queue
        // behind the fetches.
        let ends = if cfg.until_end {
            let mut ends = BTreeMap::new();
            for (t, p) in &inputs {
                let (low, high) =
                    consumer.fetch_watermarks(t, *p, crate::kafka::REQUEST_TIMEOUT)?;
                ends.insert((t.clone(), *p), (low, high));
            }
            Some(ends)
        } else {
            None
        };
        kafka.ensure_topic(&consumer, &cfg.dead_letter_topic, 1)?;
        if let SinkTarget::Kafka(t) = &cfg.sink {
            kafka.ensure_topic(&consumer, t, event_partitions.max(1) as i32)?;
        }
        consumer.assign(&tpl)?;
        let max_ts: BTreeMap<InputPartition, i64> = cp
            .max_ts
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |(p, ts)| ((t.clone(), *p), *ts)))
            .collect();
        let marks = Watermarks::new(cfg.lateness_us, inputs.clone(), max_ts, cp.frontier);

        // Outputs.
        let outbox = Outbox::new(&kafka)?;
        let now = Instant::now();
        let sample_columns = spec
            .spec
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                dtype: c.dtype.clone(),
            })
            .collect();
        let groups_len = groups.len();
        let arenas = groups
            .iter()
            .map(|g| RowArena::new(g.codec.types().to_vec()))
            .collect();
        let writer = match &cfg.sink {
            SinkTarget::Parquet(_) => Some(SampleWriter::start()?),
            SinkTarget::Kafka(_) => None,
        };
        let mut joiner = Joiner {
            last_seen: inputs.iter().map(|p| (p.clone(), now)).collect(),
            cfg,
            spec,
            registry_version,
            writer,
            kafka,
            consumer: Some(Arc::new(consumer)),
            reader: None,
            outbox,
            store,
            sources,
            groups,
            joins,
            event_codec,
            sample_columns,
            ts_output,
            marks,
            cp,
            pending,
            new_events: Vec::new(),
            event_changes: FastMap::default(),
            cache: (0..groups_len).map(|_| KeyCache::default()).collect(),
            all_keys_cached: no_keys,
            arenas,
            events,
            out_msgs: Vec::new(),
            last_checkpoint: now,
            ends,
            end_checked: HashMap::new(),
            online,
            sweep_from: None,
            phase_seconds: BTreeMap::new(),
            status: Arc::default(),
            failed: false,
        };
        joiner.remove_uncommitted_files()?;
        joiner.recover_outbox()?;
        joiner.publish_status();
        Ok(joiner)
    }

    /// The Parquet file of checkpoint `seq`.
    /// The prefix of this state folder's files in the sink folder: its run id and instance.
    fn file_prefix(&self) -> String {
        format!("part-{}-{:03}-", self.cp.run, self.cfg.instance.index)
    }

    fn file_name(&self, seq: u64) -> String {
        format!("{}{seq:010}.parquet", self.file_prefix())
    }

    /// Deletes Parquet files (and temporary files) written after the last checkpoint.
    fn remove_uncommitted_files(&self) -> Result<(), Error> {
        let SinkTarget::Parquet(dir) = &self.cfg.sink else {
            return Ok(());
        };
        let Ok(dates) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let prefix = self.file_prefix();
        for d in dates.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let plain = name.trim_start_matches('.');
                let Some(rest) = plain.strip_prefix(&prefix) else {
                    continue;
                };
                let seq: Option<u64> = rest.get(..10).and_then(|s| s.parse().ok());
                if name.starts_with('.') || seq.is_none_or(|s| s >= self.cp.seq) {
                    std::fs::remove_file(f.path()).map_err(|e| {
                        Error::Output(format!("remove {}: {e}", f.path().display()))
                    })?;
                    tracing::info!(file = %f.path().display(), "removed output of an uncommitted checkpoint");
                }
            }
        }
        Ok(())
    }

    /// Delivers outbox messages left by an interrupted run, except those their topic already
    /// holds.
    fn recover_outbox(&mut self) -> Result<(), Error> {
        let stored = self.store.scan(CF_OUTBOX)?;
        if stored.is_empty() {
            return Ok(());
        }
        let mut msgs = Vec::with_capacity(stored.len());
        for (_, v) in &stored {
            msgs.push(OutMessage::decode(v)?);
        }
        let mut topics: Vec<String> = msgs.iter().map(|m| m.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let mut present = std::collections::HashSet::new();
        for t in &topics {
            let from = self.cp.out_next.get(t).cloned().unwrap_or_default();
            present.extend(self.kafka.ids_in(t, &from)?);
        }
        let missing: Vec<OutMessage> = msgs
            .into_iter()
            .filter(|m| !present.contains(&m.id))
            .collect();
        tracing::info!(
            outbox = stored.len(),
            resent = missing.len(),
            "recovered the outbox of an interrupted run"
        );
        let next = self.outbox.deliver(&missing)?;
        self.record_delivered(next);
        let mut b = self.store.batch();
        for (k, _) in &stored {
            b.delete(CF_OUTBOX, k)?;
        }
        b.put_checkpoint(&self.cp)?;
        b.commit(true)
    }

    fn record_delivered(&mut self, next: BTreeMap<(String, i32), i64>) {
        for ((t, p), o) in next {
            let e = self.cp.out_next.entry(t).or_default().entry(p).or_insert(0);
            *e = (*e).max(o);
        }
    }

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
            let step = self.read()?;
            lap(0, &mut times);
            let got = step.is_some();
            if let Some(step) = step {
                self.apply(step)?;
            }
            self.update_idle();
            self.marks.advance();
            lap(1, &mut times);
            self.emit()?;
            lap(2, &mut times);
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

    /// The next step of messages (up to `max_batch`, decoded): waits a little for one.
    fn read(&mut self) -> Result<Option<Step>, Error> {
        if self.reader.is_none() {
            let sources = self
                .sources
                .iter()
                .map(|s| ReadSource {
                    topic: s.topic.clone(),
                    columns: s.columns.clone(),
                    schema: s.schema.clone(),
                })
                .collect();
            let consumer = self
                .consumer
                .clone()
                .ok_or_else(|| Error::Internal("the joiner's consumer is closed".into()))?;
            self.reader = Some(Reader::start(consumer, sources, self.cfg.max_batch)?);
        }
        match &self.reader {
            Some(r) => r.next(Duration::from_millis(100)),
            None => Ok(None),
        }
    }

    /// The next offset to read of a partition.
    fn next_offset(&self, p: &InputPartition) -> i64 {
        self.cp
            .offsets
            .get(&p.0)
            .and_then(|m| m.get(&p.1))
            .copied()
            .unwrap_or(0)
    }

    /// Whether a bounded run has read everything present at its start: every partition past
    /// its end offset (or empty), everything the consumer delivered applied, and nothing
    /// more delivered for a while; or nothing delivered for a long while (the offsets left
    /// hold no records).
    fn at_end(&mut self, got: bool) -> bool {
        if self.ends.is_none() || got {
            return false;
        }
        let Some(quiet) = self.reader.as_ref().and_then(Reader::quiet) else {
            return false;
        };
        let short = self.short_of_end();
        if short.is_empty() {
            return quiet >= END_QUIET;
        }
        if quiet >= END_STALL {
            for (p, next, high) in short {
                tracing::warn!(topic = %p.0, partition = p.1, next, end = high, "ending short of the reported end offset: nothing more arrived (transaction markers or records removed)");
            }
            return true;
        }
        false
    }

    /// A bounded run's partitions not yet read to the end offsets present at its start: each
    /// with its next offset and end offset.
    fn short_of_end(&self) -> Vec<(&InputPartition, i64, i64)> {
        self.ends
            .iter()
            .flatten()
            .filter(|(p, (low, high))| low < high && self.next_offset(p) < *high)
            .map(|(p, (_, high))| (p, self.next_offset(p), *high))
            .collect()
    }

    /// A partition is idle when nothing decodable came from it for the idle timeout and it
    /// is read to its end (its end offset is asked at most once per idle timeout).
    fn update_idle(&mut self) {
        if self.cfg.until_end {
            return;
        }
        let timeout = self.cfg.idle_timeout;
        let quiet: Vec<InputPartition> = self
            .last_seen
            .iter()
            .filter(|(_, seen)| seen.elapsed() >= timeout)
            .map(|(p, _)| p.clone())
            .collect();
        for p in self.last_seen.keys().cloned().collect::<Vec<_>>() {
            if !quiet.contains(&p) {
                self.marks.set_idle(&p, false);
            }
        }
        for p in quiet {
            if self
                .end_checked
                .get(&p)
                .is_some_and(|t| t.elapsed() < timeout)
            {
                continue;
            }
            self.end_checked.insert(p.clone(), Instant::now());
            // The consumer is there until the drop.
            let Some(consumer) = &self.consumer else {
                return;
            };
            let at_end = match consumer.fetch_watermarks(&p.0, p.1, Duration::from_secs(2)) {
                Ok((_, high)) => self.next_offset(&p) >= high,
                Err(e) => {
                    tracing::warn!(topic = %p.0, partition = p.1, error = %e, "cannot ask the end offset; the partition keeps holding the watermark");
                    false
                }
            };
            self.marks.set_idle(&p, at_end);
        }
    }

    fn dead_letter(
        &mut self,
        source: usize,
        m: MsgRef<'_>,
        kind: &str,
        reason: String,
        suffix: &str,
    ) {
        let src = &self.sources[source];
        *self
            .cp
            .counters
            .dead_letters
            .entry(kind.to_string())
            .or_default() += 1;
        tracing::debug!(kind, %reason, topic = %src.topic, partition = m.partition, offset = m.offset, "dead letter");
        self.out_msgs.push(OutMessage {
            topic: self.cfg.dead_letter_topic.clone(),
            key: m.key.map(<[u8]>::to_vec),
            payload: m.payload.unwrap_or_default().to_vec(),
            id: format!(
                "{}:{}/{}:{}/{}/{}{suffix}",
                self.spec.spec.name,
                self.cfg.instance.index,
                self.cfg.instance.count,
                src.topic,
                m.partition,
                m.offset
            ),
            headers: vec![
                ("fstore-kind".into(), kind.as_bytes().to_vec()),
                ("fstore-reason".into(), reason.into_bytes()),
                ("fstore-source".into(), src.name.as_bytes().to_vec()),
                ("fstore-topic".into(), src.topic.as_bytes().to_vec()),
                (
                    "fstore-partition".into(),
                    m.partition.to_string().into_bytes(),
                ),
                ("fstore-offset".into(), m.offset.to_string().into_bytes()),
            ],
        });
    }

    /// Applies a step's messages.
    fn apply(&mut self, mut step: Step) -> Result<(), Error> {
        // The step's messages were read together: one clock reading for them all.
        let horizon = now_us();
        let seen = Instant::now();
        for (s, chunk) in step.chunks.iter_mut().enumerate() {
            if !chunk.is_empty() {
                self.apply_chunk(s, chunk, horizon, seen)?;
            }
        }
        if let Some(r) = &self.reader {
            r.recycle(step);
        }
        Ok(())
    }

    /// Checks a source's messages of a step, dead-letters those that are no rows (or late),
    /// and applies the rows to the source's groups; queues label events.
    fn apply_chunk(
        &mut self,
        s: usize,
        chunk: &mut Chunk,
        horizon: i64,
        seen: Instant,
    ) -> Result<(), Error> {
        let batch = chunk
            .batch
            .take()
            .ok_or_else(|| Error::Internal("a step's chunk without its rows".into()))?;
        let n = chunk.len();
        let ts_column = batch.column(self.sources[s].ts_column).clone();
        let times = ts_column
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| Error::Internal("event time column is not a timestamp".into()))?;
        // Per partition read: the next offset, and the greatest event time of its rows
        // (recorded once per step; the frontier does not move within one).
        let mut step: Vec<StepPartition> = Vec::new();
        let mut last = 0;
        // The rows applied (as message numbers), and whether each is late.
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        let mut late: Vec<bool> = Vec::with_capacity(n);
        let mut bad = chunk.bad.iter().peekable();
        for r in 0..n {
            let m = chunk.msg(r);
            if step.get(last).is_none_or(|p| p.partition != m.partition) {
                last = match step.iter().position(|p| p.partition == m.partition) {
                    Some(k) => k,
                    None => {
                        step.push(StepPartition {
                            partition: m.partition,
                            next: 0,
                            max_ts: None,
                        });
                        step.len() - 1
                    }
                };
            }
            step[last].next = m.offset + 1;
            self.cp.counters.messages += 1;
            if let Some((_, why)) = bad.next_if(|(b, _)| *b == r) {
                let reason = match why {
                    None => "empty message (no value)".to_string(),
                    Some(e) => format!("source \"{}\": {e}", self.sources[s].name),
                };
                self.dead_letter(s, m, "undecodable", reason, "");
                continue;
            }
            if times.is_null(r) {
                let src = &self.sources[s];
                let reason = format!(
                    "source \"{}\": no event time (column \"{}\")",
                    src.name, src.columns[src.ts_column].name
                );
                self.dead_letter(s, m, "missing-event-time", reason, "");
                continue;
            }
            let ts = times.value(r);
            if let Some(skew) = self.cfg.max_future_us
                && ts > horizon.saturating_add(skew)
            {
                let reason = format!(
                    "source \"{}\": event time {} is more than {} µs ahead of this machine's clock (--max-future)",
                    self.sources[s].name,
                    format_timestamp(ts),
                    skew
                );
                self.dead_letter(s, m, "future-event-time", reason, "");
                continue;
            }
            step[last].max_ts = Some(step[last].max_ts.map_or(ts, |t| t.max(ts)));
            let is_late = self.marks.is_late(ts);
            if is_late {
                self.cp.counters.late += 1;
                let what = if self.sources[s].is_event {
                    "its sample was due already"
                } else {
                    "applied to the online store only"
                };
                let reason = format!(
                    "late: event time {} is behind the frontier {} (lateness {} µs); {what}",
                    format_timestamp(ts),
                    format_timestamp(self.marks.frontier()),
                    self.cfg.lateness_us
                );
                self.dead_letter(s, m, "late", reason, "");
            }
            rows.push(r as u32);
            late.push(is_late);
        }
        let topic = &self.sources[s].topic;
        for sp in step {
            self.cp
                .offsets
                .entry(topic.clone())
                .or_default()
                .insert(sp.partition, sp.next);
            if let Some(ts) = sp.max_ts {
                let p = (topic.clone(), sp.partition);
                self.marks.observe(&p, ts);
                self.last_seen.insert(p, seen);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let batch = if rows.len() == n {
            batch
        } else {
            arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows.clone()))
                .map_err(|e| Error::Internal(format!("a step's rows: {e}")))?
        };
        let rows = AppliedRows {
            batch: &batch,
            msgs: &rows,
            late: &late,
            chunk,
            ts_column: self.sources[s].ts_column,
        };
        for g in self.sources[s].groups.clone() {
            self.apply_group(s, g, &rows)?;
        }
        if self.sources[s].is_event {
            self.queue_events(&rows)?;
        }
        Ok(())
    }

    /// Queues a step's label events (those on time).
    fn queue_events(&mut self, rows: &AppliedRows<'_>) -> Result<(), Error> {
        let on_time: Vec<u32> = (0..rows.batch.num_rows() as u32)
            .filter(|&i| !rows.late[i as usize])
            .collect();
        if on_time.is_empty() {
            return Ok(());
        }
        let batch = if on_time.len() == rows.batch.num_rows() {
            rows.batch.clone()
        } else {
            arrow::compute::take_record_batch(rows.batch, &UInt32Array::from(on_time.clone()))
                .map_err(|e| Error::Internal(format!("a step's events: {e}")))?
        };
        let keys = byte_rows(on_time.iter().map(|&i| rows.msg(i as usize).key))?;
        let seg = self.events.push(batch.columns().to_vec(), keys)?;
        let times = rows.times()?;
        for (row, &i) in on_time.iter().enumerate() {
            let m = rows.msg(i as usize);
            let id = (times.value(i as usize), m.partition, m.offset);
            self.cp.counters.events += 1;
            let q = Queued {
                at: RowAt {
                    seg,
                    row: row as u32,
                },
                stored: false,
            };
            // The same event read again (an offset reset) may be queued or stored already.
            match self.pending.insert(id, q) {
                Some(before) => {
                    if let Some(q) = self.pending.get_mut(&id) {
                        q.stored = before.stored;
                    }
                }
                None if self.event_changes.get(&id) == Some(&EventChange::Delete) => {
                    self.event_changes.insert(id, EventChange::Put);
                    if let Some(q) = self.pending.get_mut(&id) {
                        q.stored = true;
                    }
                }
                None => self.new_events.push(id),
            }
        }
        Ok(())
    }

    /// Evaluates a group's features (or window inputs and filters) over rows of its source
    /// and inserts them into their keys. A row whose expressions fail is dead-lettered.
    fn apply_group(&mut self, s: usize, g: usize, rows: &AppliedRows<'_>) -> Result<(), Error> {
        let batch = rows.batch;
        let compiled = self.groups[g].compiled.clone();
        // The state columns, and which of the batch's rows they hold (all, or those whose
        // expressions did not fail).
        let (columns, ties, held): (Vec<ArrayRef>, ByteRows, Option<Vec<usize>>) =
            match state_columns(&compiled, batch) {
                Ok((c, t)) => (c, t, None),
                Err(_) => {
                    // Row by row, to find the rows at fault.
                    let mut ok = Vec::new();
                    let mut held = Vec::new();
                    for i in 0..batch.num_rows() {
                        match state_columns(&compiled, &batch.slice(i, 1)) {
                            Ok(c) => {
                                ok.push(c);
                                held.push(i);
                            }
                            Err(e) => {
                                let reason = format!(
                                    "group \"{}\": expression failed: {e}",
                                    self.groups[g].name()
                                );
                                let suffix = format!("#{}", self.groups[g].name());
                                self.dead_letter(s, rows.msg(i), "expression", reason, &suffix);
                            }
                        }
                    }
                    if held.is_empty() {
                        return Ok(());
                    }
                    let (c, t) = concat_state_columns(ok)?;
                    (c, t, Some(held))
                }
            };
        let row_of = |j: usize| held.as_ref().map_or(j, |h| h[j]);
        let n = ties.len();
        let seg = self.arenas[g].push(columns, ties)?;
        let key_columns: Vec<&ArrayRef> = compiled
            .key_columns
            .iter()
            .map(|&k| batch.column(k))
            .collect();
        let key_columns = KeyColumns::new(&key_columns)?;
        let times = rows.times()?;
        let only_groups = !self.sources[s].is_event;
        // The rows' keys (none for a NULL key).
        let mut keys = KeyBatch::default();
        for j in 0..n {
            let i = row_of(j);
            if keys.push(&key_columns, i) {
                self.cp.counters.rows += 1;
            } else {
                self.cp.counters.rows_without_key += 1;
                if only_groups && !rows.late[i] {
                    let reason = format!(
                        "group \"{}\": the key ({}) is NULL",
                        self.groups[g].name(),
                        self.groups[g].compiled.group.keys.join(", ")
                    );
                    let suffix = format!("#{}", self.groups[g].name());
                    self.dead_letter(s, rows.msg(i), "null-key", reason, &suffix);
                }
            }
        }
        let keys = keys.keys();
        let slots = self.resolve(g, &keys)?;
        let table = &mut self.cache[g];
        let arena = &self.arenas[g];
        for (j, slot) in slots.iter().enumerate() {
            prefetch_ahead(table, &slots, j);
            let Some(slot) = *slot else { continue };
            let i = row_of(j);
            let entry = table.get_mut(slot);
            let at = entry.rows.insert(
                arena,
                StateRow {
                    ts: times.value(i),
                    late: rows.late[i],
                    at: RowAt { seg, row: j as u32 },
                },
            );
            if let (Some(w), CompiledGroupKind::Window { features }) =
                (&mut entry.window, &compiled.kind)
            {
                entry.rows.insert_window_row(arena, features, w, at)?;
            }
            entry.dirty = true;
            entry.online = true;
        }
        Ok(())
    }

    /// The slots of many keys of group `g` (`None` for no key), each loaded from the store
    /// on its first use.
    fn resolve(&mut self, g: usize, keys: &[Option<&[u8]>]) -> Result<Vec<Option<Slot>>, Error> {
        let group = &self.groups[g];
        let store = (!self.all_keys_cached).then_some(&self.store);
        let arena = &mut self.arenas[g];
        let slots = self.cache[g].resolve(keys, |_, k| {
            let stored = match store {
                Some(store) => store.get_key(&state_key(group.name(), k))?,
                None => None,
            };
            let rows = match stored {
                Some(b) => KeyRows::decode(&group.codec, &b, arena)?,
                None => KeyRows::default(),
            };
            Ok::<_, Error>(Entry {
                rows,
                window: None,
                dirty: false,
                online: false,
            })
        })?;
        arena.seal()?;
        Ok(slots)
    }

    /// Emits the samples of queued events before the frontier.
    fn emit(&mut self) -> Result<(), Error> {
        let ready = self.pending.take_before(self.marks.frontier());
        for events in ready.chunks(EMIT_CHUNK) {
            let mut chunk = Vec::with_capacity(events.len());
            for (id, q) in events {
                let id = *id;
                if q.stored {
                    self.event_changes.insert(id, EventChange::Delete);
                }
                chunk.push(Ready { id, at: q.at });
            }
            self.emit_chunk(&chunk)?;
        }
        Ok(())
    }

    fn emit_chunk(&mut self, events: &[Ready]) -> Result<(), Error> {
        let n_cols = self.spec.source.columns.len();
        let spec = self.spec.clone();
        // The base columns: the events' columns, then each join's.
        let at: Vec<Option<RowAt>> = events.iter().map(|e| Some(e.at)).collect();
        let mut columns = self.events.gather(&at)?;
        for j in 0..self.joins.len() {
            let g = self.joins[j].group;
            let compiled = self.groups[g].compiled.clone();
            let key_columns: Vec<ArrayRef> = self.joins[j]
                .event_keys
                .iter()
                .map(|&k| columns[k].clone())
                .collect();
            let key_refs: Vec<&ArrayRef> = key_columns.iter().collect();
            let key_refs = KeyColumns::new(&key_refs)?;
            let (mut no_row, mut expired) = (0u64, 0u64);
            let mut keys = KeyBatch::default();
            for i in 0..events.len() {
                keys.push(&key_refs, i);
            }
            let keys = keys.keys();
            let slots = self.resolve(g, &keys)?;
            // Each pass loads, a few events ahead, what the next pass will read.
            match &compiled.kind {
                CompiledGroupKind::Row { .. } => {
                    let rule = compiled.rule();
                    let table = &self.cache[g];
                    let mut found: Vec<Option<RowAt>> = Vec::with_capacity(events.len());
                    for (i, e) in events.iter().enumerate() {
                        prefetch_ahead(table, &slots, i);
                        let row = match slots[i].map(|s| table.get(s).rows.as_of(e.id.0, rule)) {
                            Some(AsOf::Found(r)) => Some(r.at),
                            Some(AsOf::Expired) => {
                                expired += 1;
                                None
                            }
                            Some(AsOf::NoRow) | None => {
                                no_row += 1;
                                None
                            }
                        };
                        found.push(row);
                    }
                    columns.extend(self.arenas[g].gather(&found)?);
                }
                CompiledGroupKind::Window { features } => {
                    let mut builders: Vec<ColumnBuilder> = compiled
                        .features()
                        .iter()
                        .map(|(_, t)| ColumnBuilder::new(t, events.len()))
                        .collect();
                    let table = &mut self.cache[g];
                    let arena = &self.arenas[g];
                    let empty = WindowRows::empty(features);
                    for (i, e) in events.iter().enumerate() {
                        prefetch_ahead(table, &slots, i);
                        match slots[i] {
                            Some(s) => {
                                let entry = table.get_mut(s);
                                if entry.window.is_none() {
                                    entry.window =
                                        Some(entry.rows.window_rows(arena, features, false)?);
                                }
                                match &entry.window {
                                    Some(w) => w.fold_into(features, e.id.0, &mut builders)?,
                                    None => empty.fold_into(features, e.id.0, &mut builders)?,
                                }
                            }
                            None => empty.fold_into(features, e.id.0, &mut builders)?,
                        }
                    }
                    for b in &mut builders {
                        columns.push(b.finish()?);
                    }
                }
            }
            let alias = &self.joins[j].alias;
            *self.cp.counters.no_row.entry(alias.clone()).or_default() += no_row;
            *self.cp.counters.expired.entry(alias.clone()).or_default() += expired;
        }
        let base = RecordBatch::try_new(spec.base_schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("base rows: {e}")))?;
        match self.spec.project(&base) {
            Ok(samples) => self.output(events, &samples),
            Err(_) => {
                // Row by row, to dead-letter only the events whose transforms fail.
                for (i, e) in events.iter().enumerate() {
                    let one = base.slice(i, 1);
                    match self.spec.project(&one) {
                        Ok(s) => self.output(std::slice::from_ref(e), &s)?,
                        Err(err) => {
                            let values = (0..n_cols)
                                .map(|c| value_at(one.column(c), 0))
                                .collect::<Result<Vec<_>, _>>()?;
                            self.transform_failed(e, &values, err);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn transform_failed(&mut self, e: &Ready, values: &[Value], err: fstore_registry::Error) {
        let payload = encode_row(&self.spec.source.columns, values).into_bytes();
        let key = self.events.bytes(e.at).map(<[u8]>::to_vec);
        let m = MsgRef {
            partition: e.id.1,
            offset: e.id.2,
            key: key.as_deref(),
            payload: Some(&payload),
        };
        let reason = format!(
            "spec \"{}\": a transform failed: {err}",
            self.spec.spec.name
        );
        self.dead_letter(0, m, "transform", reason, "");
    }

    /// Queues samples for the sink.
    fn output(&mut self, events: &[Ready], samples: &RecordBatch) -> Result<(), Error> {
        self.cp.counters.samples += samples.num_rows() as u64;
        match &self.cfg.sink {
            SinkTarget::Parquet(dir) => {
                // The checkpoint's files open with its first samples.
                let files = match &self.writer {
                    Some(w) if !w.started() => Some(
                        PartitionedWriter::new(
                            dir,
                            &self.spec.output_schema,
                            self.ts_output,
                            sample_metadata(&self.spec.spec, self.registry_version),
                        )
                        .with_file_name(&self.file_name(self.cp.seq)),
                    ),
                    _ => None,
                };
                if let Some(w) = &mut self.writer {
                    if let Some(files) = files {
                        w.begin(files)?;
                    }
                    w.write(samples.clone())?;
                }
            }
            SinkTarget::Kafka(topic) => {
                let topic = topic.clone();
                for (r, e) in events.iter().enumerate() {
                    let values = samples
                        .columns()
                        .iter()
                        .map(|c| value_at(c, r))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.out_msgs.push(OutMessage {
                        topic: topic.clone(),
                        key: self.events.bytes(e.at).map(<[u8]>::to_vec),
                        payload: encode_row(&self.sample_columns, &values).into_bytes(),
                        id: format!(
                            "{}:{}/{}/{}",
                            self.spec.spec.name, self.sources[0].topic, e.id.1, e.id.2
                        ),
                        headers: vec![(
                            "fstore-spec".into(),
                            self.spec.spec.name.as_bytes().to_vec(),
                        )],
                    });
                }
            }
        }
        Ok(())
    }

    /// Drops rows no future event can join from the keys in memory.
    fn collect_garbage(&mut self, frontier: i64) {
        for (g, _, e) in cached(&mut self.cache) {
            let before = e.rows.rows.len();
            e.rows.collect(frontier, self.groups[g].compiled.rule());
            if e.rows.rows.len() != before {
                e.dirty = true;
                e.window = None;
            }
        }
    }

    /// Copies the live rows of arenas mostly holding dead rows into one segment each.
    fn compact_arenas(&mut self) -> Result<(), Error> {
        for (g, arena) in self.arenas.iter_mut().enumerate() {
            let live: usize = self.cache[g]
                .iter_mut()
                .map(|(_, e)| e.rows.rows.len())
                .sum();
            if !arena.mostly_dead(live, self.cfg.compact_rows) {
                continue;
            }
            let mut at = Vec::with_capacity(live);
            for (_, e) in self.cache[g].iter_mut() {
                at.extend(e.rows.rows.iter().map(|r| r.at));
            }
            let mut moved = arena.compact(&at)?.into_iter();
            for (_, e) in self.cache[g].iter_mut() {
                for r in &mut e.rows.rows {
                    r.at = moved.next().ok_or_else(|| {
                        Error::Internal("compaction moved fewer rows than live".into())
                    })?;
                }
            }
        }
        if self
            .events
            .mostly_dead(self.pending.len(), self.cfg.compact_rows)
        {
            let at: Vec<RowAt> = self.pending.values().map(|q| q.at).collect();
            let moved = self.events.compact(&at)?;
            for (q, at) in self.pending.values_mut().zip(moved) {
                q.at = at;
            }
        }
        Ok(())
    }

    /// A pending event as stored.
    fn pending_event(&self, id: EventId, at: RowAt) -> Result<PendingEvent, Error> {
        Ok(PendingEvent {
            ts: id.0,
            partition: id.1,
            offset: id.2,
            key: self.events.bytes(at).map(<[u8]>::to_vec),
            values: self.events.values(at)?,
        })
    }

    /// Collects the garbage of stored keys that are not in memory, a slice per checkpoint,
    /// walking the whole store over and over. Returns the changes to commit.
    fn sweep(&mut self, frontier: i64) -> Result<Vec<KeyChange>, Error> {
        let stored = self
            .store
            .scan_from(CF_KEYS, self.sweep_from.as_deref(), SWEEP_KEYS)?;
        self.sweep_from = match stored.last() {
            Some((k, _)) if stored.len() == SWEEP_KEYS => {
                let mut next = k.to_vec();
                next.push(0);
                Some(next)
            }
            _ => None,
        };
        let mut changes = Vec::new();
        for (k, v) in stored {
            let Some(z) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let Some(g) = self
                .groups
                .iter()
                .position(|g| g.name().as_bytes() == &k[..z])
            else {
                continue;
            };
            if self.cache[g].contains_key(&k[z + 1..]) {
                continue;
            }
            // Event times decide: the rows kept are copied as stored.
            let mut rows = KeyRows::decode_times(&v)?;
            let before = rows.rows.len();
            rows.collect(frontier, self.groups[g].compiled.rule());
            if rows.is_empty() {
                changes.push((k.to_vec(), None));
            } else if rows.rows.len() != before {
                changes.push((k.to_vec(), Some(rows.encode_kept(&v)?)));
            }
        }
        Ok(changes)
    }

    /// Commits state, offsets and output together (see the module docs).
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        self.usable()?;
        let result = self.commit_checkpoint();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// A joiner that stopped on an error may hold a half-applied step or a half-made
    /// checkpoint: it refuses to go on (its state folder, opened again, resumes correctly).
    fn usable(&self) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Internal(
                "this joiner stopped on an error; open its state folder again to go on".into(),
            ));
        }
        Ok(())
    }

    fn commit_checkpoint(&mut self) -> Result<(), Error> {
        self.write_online()?;
        let frontier = self.marks.frontier();
        self.collect_garbage(frontier);
        let swept = self.sweep(frontier)?;

        // Keys go into the batch in key order: the memtable takes sorted inserts fastest.
        let mut keys = swept;
        for changed in encode_dirty(&mut self.cache, &self.groups, &self.arenas) {
            keys.extend(changed?);
        }
        let mut events = Vec::with_capacity(self.new_events.len() + self.event_changes.len());
        for id in std::mem::take(&mut self.new_events) {
            if let Some(q) = self.pending.get(&id)
                && !q.stored
            {
                let e = self.pending_event(id, q.at)?.encode(&self.event_codec)?;
                if let Some(q) = self.pending.get_mut(&id) {
                    q.stored = true;
                }
                events.push((event_key(id).to_vec(), Some(e)));
            }
        }
        for (id, change) in std::mem::take(&mut self.event_changes) {
            match self.pending.get(&id) {
                Some(q) if change == EventChange::Put => events.push((
                    event_key(id).to_vec(),
                    Some(self.pending_event(id, q.at)?.encode(&self.event_codec)?),
                )),
                _ => events.push((event_key(id).to_vec(), None)),
            }
        }
        let mut b = self.store.batch();
        for (cf, mut changes) in [(CF_KEYS, keys), (CF_EVENTS, events)] {
            // Stable: of two changes to one key, the later stays the later.
            changes.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in &changes {
                match v {
                    Some(v) => b.put(cf, k, v)?,
                    None => b.delete(cf, k)?,
                }
            }
        }
        let msgs = std::mem::take(&mut self.out_msgs);
        let first = self.cp.outbox_next;
        for (i, m) in msgs.iter().enumerate() {
            b.put(CF_OUTBOX, &(first + i as u64).to_be_bytes(), &m.encode())?;
        }
        self.cp.outbox_next = first + msgs.len() as u64;
        self.cp.seq += 1;
        self.cp.frontier = self.marks.frontier();
        self.cp.max_ts = BTreeMap::new();
        for ((t, p), ts) in self.marks.max_ts() {
            self.cp.max_ts.entry(t.clone()).or_default().insert(*p, *ts);
        }
        b.put_checkpoint(&self.cp)?;
        // The sample files are finished (their last rows encoded on the writer's thread while
        // the batch is built) and in place before the checkpoint that counts them commits.
        let files = match &mut self.writer {
            Some(w) => w.finish()?,
            None => Vec::new(),
        };
        if let Err(e) = b.commit(true) {
            for f in files {
                if let Err(re) = std::fs::remove_file(&f) {
                    tracing::warn!(file = %f.display(), error = %re, "cannot remove the file of a failed checkpoint; the next start removes it");
                }
            }
            return Err(e);
        }
        if !msgs.is_empty() {
            let next = self.outbox.deliver(&msgs)?;
            self.record_delivered(next);
            let mut b = self.store.batch();
            for i in 0..msgs.len() as u64 {
                b.delete(CF_OUTBOX, &(first + i).to_be_bytes())?;
            }
            b.put_checkpoint(&self.cp)?;
            b.commit(false)?;
        }
        if self.cache.iter().map(KeyCache::len).sum::<usize>() > CACHE_KEYS {
            self.cache.iter_mut().for_each(KeyCache::clear);
            self.all_keys_cached = false;
            self.arenas.iter_mut().for_each(RowArena::clear);
        }
        self.compact_arenas()?;
        self.last_checkpoint = Instant::now();
        self.publish_status();
        tracing::debug!(seq = self.cp.seq, frontier = %format_timestamp(self.cp.frontier), pending = self.pending.len(), "checkpoint");
        Ok(())
    }

    /// Writes the online values of keys whose rows changed.
    fn write_online(&mut self) -> Result<(), Error> {
        let Some(writer) = self.online.as_mut() else {
            return Ok(());
        };
        let mut per_group: Vec<Vec<OnlineUpdate>> =
            (0..self.groups.len()).map(|_| Vec::new()).collect();
        for (g, table) in self.cache.iter_mut().enumerate() {
            let arena = &self.arenas[g];
            for (kb, e) in table.iter_mut().filter(|(_, e)| e.online) {
                e.online = false;
                let Some(latest) = e.rows.latest() else {
                    continue;
                };
                let value = match &self.groups[g].compiled.kind {
                    CompiledGroupKind::Row { .. } => OnlineValue::Row {
                        ts: latest.ts,
                        values: arena.values(latest.at)?,
                    },
                    CompiledGroupKind::Window { features } => {
                        let mut w = e.rows.window_rows(arena, features, true)?;
                        w.retain_for(features, latest.ts);
                        OnlineValue::Window(w)
                    }
                };
                per_group[g].push(OnlineUpdate {
                    key: entity_key_values(kb)?,
                    value,
                });
            }
        }
        for (g, updates) in per_group.into_iter().enumerate() {
            if !updates.is_empty() {
                writer
                    .write(self.groups[g].name(), updates)
                    .map_err(Error::Online)?;
            }
        }
        Ok(())
    }
}

/// Keys in memory a group must have for its changed keys to be encoded on a thread of their
/// own (a thread costs tens of microseconds; a small checkpoint is encoded in less).
const PARALLEL_ENCODE_KEYS: usize = 4096;

/// The stored forms of each group's changed keys (`None` for a key left without rows), in
/// key order within a group; clears their dirty flags. Groups with many keys in memory are
/// encoded side by side on scoped threads (a bounded run's checkpoint at its end writes nearly
/// every key).
fn encode_dirty(
    cache: &mut [KeyCache],
    groups: &[GroupRt],
    arenas: &[RowArena],
) -> Vec<Result<Vec<KeyChange>, Error>> {
    fn encode(
        table: &mut KeyCache,
        group: &GroupRt,
        arena: &RowArena,
    ) -> Result<Vec<KeyChange>, Error> {
        let mut keys = Vec::new();
        for (kb, e) in table.iter_mut().filter(|(_, e)| e.dirty) {
            let key = state_key(group.name(), kb);
            if e.rows.is_empty() {
                keys.push((key, None));
            } else {
                keys.push((key, Some(e.rows.encode(arena, &group.codec)?)));
            }
            e.dirty = false;
        }
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(keys)
    }
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut here = Vec::new();
        // The first large group stays on this thread, as do the small ones.
        let mut large_here = false;
        for ((table, group), arena) in cache.iter_mut().zip(groups).zip(arenas) {
            let large = table.len() >= PARALLEL_ENCODE_KEYS;
            if large && large_here {
                handles.push((group, scope.spawn(move || encode(table, group, arena))));
            } else {
                large_here |= large;
                here.push((table, group, arena));
            }
        }
        let mut done: Vec<_> = here
            .into_iter()
            .map(|(table, group, arena)| encode(table, group, arena))
            .collect();
        done.extend(handles.into_iter().map(|(group, h)| {
            h.join().unwrap_or_else(|_| {
                Err(Error::Internal(format!(
                    "encoding the keys of group \"{}\" panicked",
                    group.name()
                )))
            })
        }));
        done
    })
}

/// A group's state columns for the rows of a batch of its source (row group: features;
/// window group: per feature its input if any, then its FILTER result with NULL as false, if
/// any), and each row's tie-order bytes.
fn state_columns(
    g: &CompiledGroup,
    batch: &RecordBatch,
) -> Result<(Vec<ArrayRef>, ByteRows), Error> {
    let n = batch.num_rows();
    let eval = |e: &CompiledExpr| e.evaluate(batch);
    let (cols, tie_columns): (Vec<ArrayRef>, Vec<ArrayRef>) = match &g.kind {
        CompiledGroupKind::Row {
            tie_break,
            features,
            ..
        } => {
            let values = features.iter().map(eval).collect::<Result<Vec<_>, _>>()?;
            let tb: Vec<ArrayRef> = tie_break.iter().map(|&i| batch.column(i).clone()).collect();
            let ties = row_tie_columns(&tb, &values);
            (values, ties)
        }
        CompiledGroupKind::Window { features } => {
            let inputs = features
                .iter()
                .map(|f| f.input.as_ref().map(eval).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            let filters = features
                .iter()
                .map(|f| f.filter.as_ref().map(eval).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            let ties = window_tie_columns(&inputs, &filters);
            let mut cols = Vec::new();
            for (i, f) in inputs.into_iter().zip(filters) {
                cols.extend(i);
                if let Some(f) = f {
                    let passes = f.as_boolean_opt().ok_or_else(|| {
                        Error::Internal(format!("a FILTER of type {}", f.data_type()))
                    })?;
                    // NULL as false.
                    let values = match passes.nulls() {
                        Some(nulls) => passes.values() & nulls.inner(),
                        None => passes.values().clone(),
                    };
                    cols.push(Arc::new(BooleanArray::new(values, None)) as ArrayRef);
                }
            }
            (cols, ties)
        }
    };
    let ties = match TieOrder::rows(&tie_columns)? {
        Some(rows) => byte_rows(rows.iter().map(|r| Some(r.data())))?,
        None => byte_rows((0..n).map(|_| Some(&[][..])))?,
    };
    Ok((cols, ties))
}

/// The state columns of rows evaluated one at a time, as one.
fn concat_state_columns(
    rows: Vec<(Vec<ArrayRef>, ByteRows)>,
) -> Result<(Vec<ArrayRef>, ByteRows), Error> {
    let width = rows.first().map_or(0, |r| r.0.len());
    let columns = (0..width)
        .map(|c| {
            let parts: Vec<&dyn Array> = rows.iter().map(|r| r.0[c].as_ref()).collect();
            arrow::compute::concat(&parts)
                .map_err(|e| Error::Internal(format!("state columns: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ties = byte_rows(rows.iter().map(|r| r.1.get(0)))?;
    Ok((columns, ties))
}
