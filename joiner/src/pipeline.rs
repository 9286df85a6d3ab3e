//! Work the join loop hands to threads of its own, so reading, joining and writing samples
//! overlap:
//! - a [`Reader`] polls the consumer a step at a time on one thread and decodes each step's
//!   JSON rows straight into its sources' columns on another, while the loop applies the
//!   step before;
//! - a [`SampleWriter`] encodes the Parquet files of a checkpoint under hidden names while the
//!   loop goes on; the checkpoint has them finished and renamed into place just before it
//!   commits.
//!
//! Neither changes what the loop decides: the loop sees the same messages in the same order
//! (and the same decoding) as if it read and decoded them itself, and commits only what it
//! applied. Steps read ahead and not yet applied stay queued for the loop; the consumer's
//! position never counts, the checkpoint's offsets do.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use fstore_core::json::{JsonError, RowDecoder};
use fstore_core::rows::{ColumnBuilder, ValueRef};
use fstore_registry::model::Column;
use fstore_registry::sample_file::PartitionedWriter;
use rdkafka::Message;
use rdkafka::consumer::BaseConsumer;

use crate::Error;

/// Steps queued for the loop at most (the reader holds one more while it waits to hand it
/// over).
const READ_AHEAD: usize = 2;
/// Sample batches queued for the writer at most.
const WRITE_AHEAD: usize = 64;
/// How long the reader waits for a step's first message before it looks at the stop flag:
/// stopping the reader waits this long at most.
const POLL_WAIT: Duration = Duration::from_millis(10);

/// Byte strings (message keys, or values), each possibly absent, in one buffer.
#[derive(Debug, Default)]
pub struct Blobs {
    bytes: Vec<u8>,
    spans: Vec<Option<(usize, usize)>>,
}

impl Blobs {
    fn push(&mut self, b: Option<&[u8]>) {
        self.spans.push(b.map(|b| {
            let from = self.bytes.len();
            self.bytes.extend_from_slice(b);
            (from, self.bytes.len())
        }));
    }

    /// The `i`th byte string.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.spans
            .get(i)
            .copied()
            .flatten()
            .map(|(from, to)| &self.bytes[from..to])
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }
}

/// One message of a chunk, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct MsgRef<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// What a step read from one source: its messages in the order read, and their values
/// decoded as the source's rows, column by column.
pub struct Chunk {
    pub partitions: Vec<i32>,
    pub offsets: Vec<i64>,
    pub keys: Blobs,
    pub payloads: Blobs,
    /// Messages whose value is not a row, in order: without a value (`None`), or why it
    /// does not decode. Their rows hold NULLs.
    pub bad: Vec<(usize, Option<JsonError>)>,
    /// One row per message, in the source's schema (set when the step is handed over).
    pub batch: Option<RecordBatch>,
    schema: SchemaRef,
    columns: Vec<Column>,
    decoder: RowDecoder,
    builders: Vec<ColumnBuilder>,
}

impl Chunk {
    fn new(source: &ReadSource) -> Self {
        Chunk {
            partitions: Vec::new(),
            offsets: Vec::new(),
            keys: Blobs::default(),
            payloads: Blobs::default(),
            bad: Vec::new(),
            batch: None,
            schema: source.schema.clone(),
            columns: source.columns.clone(),
            decoder: RowDecoder::new(&source.columns),
            builders: Vec::new(),
        }
    }

    /// Messages read.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Message `i`.
    pub fn msg(&self, i: usize) -> MsgRef<'_> {
        MsgRef {
            partition: self.partitions[i],
            offset: self.offsets[i],
            key: self.keys.get(i),
            payload: self.payloads.get(i),
        }
    }

    /// Appends a message as read (its value is decoded by [`Chunk::decode`]).
    fn push(&mut self, partition: i32, offset: i64, key: Option<&[u8]>, payload: Option<&[u8]>) {
        self.partitions.push(partition);
        self.offsets.push(offset);
        self.keys.push(key);
        self.payloads.push(payload);
    }

    /// Decodes the messages' values into the chunk's columns; a message whose value is no
    /// row is noted in `bad` and gets a row of NULLs.
    fn decode(&mut self) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        self.builders = self
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.dtype, self.len()))
            .collect();
        for row in 0..self.len() {
            let decoded = match self.payloads.get(row) {
                None => Err(None),
                Some(p) => self
                    .decoder
                    .decode_into(p, &mut self.builders)
                    .map_err(Some),
            };
            if let Err(why) = decoded {
                self.bad.push((row, why));
                for b in &mut self.builders {
                    b.append_ref(ValueRef::Null)?;
                }
            }
        }
        Ok(())
    }

    /// Builds the batch of the rows read.
    fn finish(&mut self) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        let columns = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>, _>>()?;
        self.batch = Some(
            RecordBatch::try_new(self.schema.clone(), columns)
                .map_err(|e| Error::Internal(format!("a step's rows: {e}")))?,
        );
        Ok(())
    }

    fn clear(&mut self) {
        self.partitions.clear();
        self.offsets.clear();
        self.keys.clear();
        self.payloads.clear();
        self.bad.clear();
        self.batch = None;
    }
}

/// A step of messages: per source (numbered as [`Reader::start`]'s sources), what was read.
pub struct Step {
    pub chunks: Vec<Chunk>,
}

impl Step {
    fn new(sources: &[ReadSource]) -> Self {
        Step {
            chunks: sources.iter().map(Chunk::new).collect(),
        }
    }

    /// A step of the given messages, each `(source, partition, offset, key, value)`, decoded
    /// as the reader decodes what it polls: an input that is not Kafka (tests, files).
    pub fn of_messages<'a>(
        sources: &[ReadSource],
        msgs: impl IntoIterator<Item = (usize, i32, i64, Option<&'a [u8]>, Option<&'a [u8]>)>,
    ) -> Result<Self, Error> {
        let mut step = Step::new(sources);
        for (source, partition, offset, key, payload) in msgs {
            let chunk = step.chunks.get_mut(source).ok_or_else(|| {
                Error::Internal(format!("a message of source {source} of {}", sources.len()))
            })?;
            chunk.push(partition, offset, key, payload);
        }
        for c in &mut step.chunks {
            c.decode()?;
            c.finish()?;
        }
        Ok(step)
    }

    /// Messages read.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Chunk::is_empty)
    }
}

/// A topic read, and its source's columns and schema (by position: the reader numbers
/// sources in this order).
pub struct ReadSource {
    pub topic: String,
    pub columns: Vec<Column>,
    pub schema: SchemaRef,
}

/// What the polling thread tells the loop of its deliveries: steps begun (each is handed on
/// once closed), and when the last one was begun or closed.
struct Deliveries {
    start: Instant,
    /// Steps begun: each is handed to the decoder once closed.
    sent: AtomicU64,
    /// Microseconds from `start` to when a step was last begun or closed (a step is closed
    /// within a poll wait of its last message).
    last_us: AtomicU64,
}

impl Deliveries {
    fn stamp(&self) {
        let at = self.start.elapsed().as_micros() as u64;
        self.last_us.store(at, Ordering::Release);
    }
}

/// The threads that read steps of messages (one polls the consumer, one decodes the
/// values of the step before).
pub struct Reader {
    steps: Option<Receiver<Result<Step, Error>>>,
    deliveries: Arc<Deliveries>,
    /// Steps the loop has taken (from the decoder).
    taken: AtomicU64,
    /// Applied steps, back to the reader to fill again: their buffers are large, and new
    /// ones each step would be grown, copied and faulted in every time.
    spent: SyncSender<Step>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Reader {
    /// Starts reading: steps of up to `max_batch` messages, each the messages present when its
    /// first arrived.
    pub fn start(
        consumer: Arc<BaseConsumer>,
        sources: Vec<ReadSource>,
        max_batch: usize,
    ) -> Result<Self, Error> {
        let (tx, rx) = sync_channel(READ_AHEAD);
        let (read_tx, read_rx) = sync_channel(1);
        let (spent, buffers) = sync_channel(READ_AHEAD + 2);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let deliveries = Arc::new(Deliveries {
            start: Instant::now(),
            sent: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
        });
        let told = deliveries.clone();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::Internal(format!("cannot start the {name} thread: {e}")))
        };
        let decoder = spawn(
            "fstore-decode",
            Box::new(move || decode_steps(&read_rx, &tx)),
        )?;
        let poller = spawn(
            "fstore-read",
            Box::new(move || {
                read_steps(
                    &consumer, &sources, max_batch, &flag, &told, &read_tx, &buffers,
                );
            }),
        )?;
        Ok(Reader {
            steps: Some(rx),
            deliveries,
            taken: AtomicU64::new(0),
            spent,
            stop,
            threads: vec![poller, decoder],
        })
    }

    /// The next step, waiting up to `wait` for one; `None` when none came.
    pub fn next(&self, wait: Duration) -> Result<Option<Step>, Error> {
        let Some(steps) = &self.steps else {
            return Ok(None);
        };
        match steps.recv_timeout(wait) {
            Ok(step) => {
                self.taken.fetch_add(1, Ordering::Relaxed);
                step.map(Some)
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Internal(
                "the reader threads stopped (see the log for a panic)".into(),
            )),
        }
    }

    /// How long the consumer has delivered nothing (since the reader started, if it never
    /// did), once every step it delivered has reached the loop; `None` while one is still on
    /// its way (being read or decoded).
    pub fn quiet(&self) -> Option<Duration> {
        let d = &self.deliveries;
        // A step is counted as sent at its first message (after its time is stored) and
        // stamped again when it is closed, before the decoder gets it: once the loop has
        // taken every step counted, the time read is that of the last one's close.
        let sent = d.sent.load(Ordering::Acquire);
        let last = Duration::from_micros(d.last_us.load(Ordering::Acquire));
        (sent == self.taken.load(Ordering::Relaxed)).then(|| d.start.elapsed().saturating_sub(last))
    }

    /// Hands an applied step back to be filled again (its messages are dropped).
    pub fn recycle(&self, mut step: Step) {
        step.chunks.iter_mut().for_each(Chunk::clear);
        // A full queue (or a stopped reader) just drops it.
        let _ = self.spent.try_send(step);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblocks a decoder waiting to hand over a step (and so the poller waiting on it).
        drop(self.steps.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn read_steps(
    consumer: &BaseConsumer,
    sources: &[ReadSource],
    max_batch: usize,
    stop: &AtomicBool,
    deliveries: &Deliveries,
    read_steps_tx: &SyncSender<Step>,
    buffers: &Receiver<Step>,
) {
    // The source of the message before is tried first: fetches come a partition at a time.
    let mut last = 0;
    let mut step = Step::new(sources);
    let mut read = 0;
    while !stop.load(Ordering::Relaxed) {
        while read < max_batch {
            let wait = if read == 0 { POLL_WAIT } else { Duration::ZERO };
            match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    // Transport errors recover inside librdkafka; note them and go on.
                    tracing::warn!(error = %e, "kafka consumer");
                    break;
                }
                Some(Ok(m)) => {
                    let topic = m.topic();
                    let source = match sources.get(last) {
                        Some(s) if s.topic == topic => last,
                        _ => match sources.iter().position(|s| s.topic == topic) {
                            Some(i) => i,
                            None => continue,
                        },
                    };
                    last = source;
                    step.chunks[source].push(m.partition(), m.offset(), m.key(), m.payload());
                    read += 1;
                    if read == 1 {
                        // On its way from its first message: the loop does not see quiet
                        // while a step is being read.
                        deliveries.stamp();
                        deliveries.sent.fetch_add(1, Ordering::Release);
                    }
                }
            }
        }
        if read > 0 {
            read = 0;
            deliveries.stamp();
            let full = Step {
                chunks: std::mem::take(&mut step.chunks),
            };
            if read_steps_tx.send(full).is_err() {
                return;
            }
            // Once this step is handed over, the buffers of one the loop has applied; new
            // ones only when none came back yet.
            step = buffers.try_recv().unwrap_or_else(|_| Step::new(sources));
        }
    }
}

/// Decodes the steps read, in order, and hands them to the loop.
fn decode_steps(read: &Receiver<Step>, steps: &SyncSender<Result<Step, Error>>) {
    while let Ok(mut step) = read.recv() {
        let done = step
            .chunks
            .iter_mut()
            .try_for_each(|c| {
                c.decode()?;
                c.finish()
            })
            .map(|()| step);
        let failed = done.is_err();
        if steps.send(done).is_err() || failed {
            return;
        }
    }
}

enum WriteOp {
    Start(Box<PartitionedWriter>),
    Batch(RecordBatch),
    Finish(SyncSender<Result<Vec<PathBuf>, Error>>),
}

/// What the writer thread shares with the loop: the first error of the current files (so the
/// loop stops at once instead of at the checkpoint), and a request to drop everything queued.
#[derive(Default)]
struct WriterShared {
    failed: Mutex<Option<String>>,
    abort: AtomicBool,
}

/// The thread that writes a checkpoint's sample files.
pub struct SampleWriter {
    ops: Option<SyncSender<WriteOp>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<WriterShared>,
    /// A file is open for the current checkpoint.
    started: bool,
}

/// Gives the calling thread the lowest priority of normal threads (nice 19): the writer
/// encodes samples when a core is free, behind the reader and the join loop. Its queue is
/// bounded (the loop waits when it is full) and a checkpoint waits for it, so it falls
/// behind by at most that queue and catches up in the loop's idle time (a bounded run's end
/// wait, a live joiner's pauses between steps).
fn lowest_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    let set = ThreadPriority::try_from(0u8)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            set_thread_priority_and_policy(thread_native_id(), p, policy)
                .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = set {
        tracing::debug!(error = %e, "the sample writer keeps its priority");
    }
}

fn write_ops(ops: Receiver<WriteOp>, shared: &WriterShared) {
    lowest_priority();
    let mut open: Option<Box<PartitionedWriter>> = None;
    let fail = |e: String| {
        if let Ok(mut f) = shared.failed.lock() {
            f.get_or_insert(e);
        }
    };
    for op in ops {
        if shared.abort.load(Ordering::Relaxed) {
            // Dropping the files removes every temporary file; nothing is published.
            return;
        }
        match op {
            WriteOp::Start(w) => open = Some(w),
            WriteOp::Batch(b) => {
                if let Some(w) = open.as_mut()
                    && let Err(e) = w.write(&b)
                {
                    fail(e.to_string());
                    open = None;
                }
            }
            WriteOp::Finish(reply) => {
                let failed = shared.failed.lock().ok().and_then(|mut f| f.take());
                let result = match (failed, open.take()) {
                    (Some(e), _) => Err(Error::Output(e)),
                    (None, Some(w)) => w
                        .finish()
                        .map(|written| written.into_iter().map(|(p, _)| p).collect())
                        .map_err(|e| Error::Output(e.to_string())),
                    (None, None) => Ok(Vec::new()),
                };
                let _ = reply.send(result);
            }
        }
    }
}

impl SampleWriter {
    pub fn start() -> Result<Self, Error> {
        let (tx, rx) = sync_channel::<WriteOp>(WRITE_AHEAD);
        let shared = Arc::new(WriterShared::default());
        let on_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fstore-write".into())
            .spawn(move || write_ops(rx, &on_thread))
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(SampleWriter {
            ops: Some(tx),
            thread: Some(thread),
            shared,
            started: false,
        })
    }

    fn send(&self, op: WriteOp) -> Result<(), Error> {
        self.ops
            .as_ref()
            .and_then(|o| o.send(op).ok())
            .ok_or_else(stopped)
    }

    /// Whether the current checkpoint's files are open.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Opens the current checkpoint's files.
    pub fn begin(&mut self, files: PartitionedWriter) -> Result<(), Error> {
        self.send(WriteOp::Start(Box::new(files)))?;
        self.started = true;
        Ok(())
    }

    /// Appends samples to the current checkpoint's files; fails as soon as writing them has
    /// failed.
    pub fn write(&mut self, samples: RecordBatch) -> Result<(), Error> {
        if !self.started {
            return Err(Error::Internal(
                "samples written before their files were opened".into(),
            ));
        }
        if let Some(e) = self.shared.failed.lock().ok().and_then(|f| f.clone()) {
            return Err(Error::Output(e));
        }
        self.send(WriteOp::Batch(samples))
    }

    /// Finishes the current checkpoint's files: waits until they are synced and renamed into
    /// place, and returns them. Samples written after it go to the next checkpoint's files.
    pub fn finish(&mut self) -> Result<Vec<PathBuf>, Error> {
        if !self.started {
            return Ok(Vec::new());
        }
        self.started = false;
        let (tx, rx) = sync_channel(1);
        self.send(WriteOp::Finish(tx))?;
        rx.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Internal("the sample writer thread stopped (see the log for its panic)".into())
}

impl Drop for SampleWriter {
    /// Files not finished are dropped unpublished (their temporary files removed), and
    /// samples still queued are not written.
    fn drop(&mut self) {
        self.shared.abort.store(true, Ordering::Relaxed);
        drop(self.ops.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::SampleWriter;
    use fstore_registry::sample_file::PartitionedWriter;

    const DAY: i64 = 86_400_000_000;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("x", DataType::Int64, true),
        ])
    }

    fn batch(ts: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")),
                Arc::new(Int64Array::from(
                    ts.iter().map(|t| t / DAY).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                out.push(format!(
                    "{}/{}",
                    d.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn files_are_finished_by_finish_and_hold_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SampleWriter::start().unwrap();
        assert!(!w.started());
        w.finish().unwrap(); // nothing written: nothing to finish
        let open = |name: &str| {
            PartitionedWriter::new(dir.path(), &schema(), 0, BTreeMap::new()).with_file_name(name)
        };
        w.begin(open("a.parquet")).unwrap();
        w.write(batch(&[0, 1, DAY])).unwrap();
        w.write(batch(&[DAY + 5])).unwrap();
        w.finish().unwrap();
        assert_eq!(
            files(dir.path()),
            ["dt=1970-01-01/a.parquet", "dt=1970-01-02/a.parquet"]
        );
        let rows: usize = files(dir.path())
            .iter()
            .map(|f| {
                let file = std::fs::File::open(dir.path().join(f)).unwrap();
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap()
                    .map(|b| b.unwrap().num_rows())
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(rows, 4);
        // The next checkpoint's file.
        w.begin(open("b.parquet")).unwrap();
        w.write(batch(&[2 * DAY])).unwrap();
        w.finish().unwrap();
        assert_eq!(files(dir.path()).len(), 3);
    }

    #[test]
    fn a_failed_write_fails_the_finish_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SampleWriter::start().unwrap();
        w.begin(
            PartitionedWriter::new(dir.path(), &schema(), 0, BTreeMap::new())
                .with_file_name("a.parquet"),
        )
        .unwrap();
        w.write(batch(&[DAY])).unwrap();
        // Samples going back a day are refused by the file writer; later writes fail as soon
        // as the writer has seen it.
        w.write(batch(&[0])).unwrap();
        let mut early = None;
        for _ in 0..1000 {
            if let Err(e) = w.write(batch(&[2 * DAY])) {
                early = Some(e.to_string());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let early = early.expect("a write after the failure fails");
        assert!(early.contains("not in event-time order"), "{early}");
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("not in event-time order"), "{err}");
        assert!(
            files(dir.path()).iter().all(|f| !f.ends_with("a.parquet")),
            "{:?}",
            files(dir.path())
        );
        // Writing before a file is opened is refused.
        assert!(w.write(batch(&[0])).is_err());

        // A writer dropped with samples queued publishes nothing and leaves no file.
        w.begin(
            PartitionedWriter::new(dir.path(), &schema(), 0, BTreeMap::new())
                .with_file_name("b.parquet"),
        )
        .unwrap();
        for d in 0..20 {
            w.write(batch(&[d * DAY, d * DAY + 1])).unwrap();
        }
        drop(w);
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }
}
