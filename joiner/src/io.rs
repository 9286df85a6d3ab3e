//! The joiner's seam to the outside world: where its steps of messages come from
//! ([`StepSource`]) and where its Kafka-bound messages go ([`Outlet`]). The join loop
//! (apply, emit, checkpoint, recovery) only speaks to these, so it runs the same over
//! Kafka ([`KafkaInput`], [`KafkaOutlet`]) and over messages held in memory
//! ([`MemoryInput`], [`MemoryOutlet`]), which is how its unit tests run without a broker.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::Error;
use crate::config::{JoinConfig, SinkTarget};
use crate::kafka::{Kafka, Outbox};
use crate::pipeline::{ReadSource, Reader, Step};
use crate::store::{Checkpoint, OutMessage};
use crate::watermark::InputPartition;

/// Steps of decoded messages, each from the partitions a joiner reads.
pub trait StepSource: Send {
    /// The next step, waiting at most `wait` for one; `None` when none came.
    fn next(&mut self, wait: Duration) -> Result<Option<Step>, Error>;
    /// Takes back a step the joiner has applied (its buffers may be filled again).
    fn recycle(&mut self, step: Step);
    /// How long the source has delivered nothing, once all it delivered has been taken;
    /// `None` while a step is still on its way.
    fn quiet(&self) -> Option<Duration>;
    /// A partition's end offset now (the offset after its last message).
    fn end_offset(&self, p: &InputPartition) -> Result<i64, Error>;
}

/// Where a joiner's Kafka-bound messages (dead letters, samples for a Kafka sink) go.
pub trait Outlet: Send {
    /// Sends every message and waits until all are acknowledged. Returns the offset after
    /// the last delivered message per topic partition.
    fn deliver(&mut self, msgs: &[OutMessage]) -> Result<BTreeMap<(String, i32), i64>, Error>;
    /// The ids of the messages `topic` holds from `from` (per partition; from the beginning
    /// where absent) to its end.
    fn ids_in(&mut self, topic: &str, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, Error>;
}

/// A joiner's connection to its input and output: the partitions it reads, the end offsets
/// of a bounded run (low and high per partition, as at its start), the input and the outlet.
pub struct Io {
    pub input: Box<dyn StepSource>,
    pub outlet: Box<dyn Outlet>,
    pub partitions: Vec<InputPartition>,
    pub ends: Option<BTreeMap<InputPartition, (i64, i64)>>,
}

/// A Kafka consumer assigned to the joiner's partitions, read a step ahead on the
/// [`Reader`]'s threads (started by the first read).
pub struct KafkaInput {
    /// Taken only by the drop.
    consumer: Option<Arc<BaseConsumer>>,
    /// It lives as long as the input: steps it has read and the joiner has not applied are
    /// past the consumer's position, so a new reader would skip them.
    reader: Option<Reader>,
    sources: Option<Vec<ReadSource>>,
    max_batch: usize,
}

impl KafkaInput {
    /// A consumer for the joiner and the partitions of each source's topic (`sources` as
    /// (name, topic)).
    pub fn list(
        kafka: &Kafka,
        cfg: &JoinConfig,
        spec: &str,
        sources: &[(&str, &str)],
    ) -> Result<(BaseConsumer, Vec<Vec<i32>>), Error> {
        let consumer = kafka.consumer(&format!(
            "fstore-join-{spec}-{}-of-{}",
            cfg.instance.index, cfg.instance.count
        ))?;
        let partitions = sources
            .iter()
            .map(|(name, topic)| {
                kafka.partitions(&consumer, topic).map_err(|e| match e {
                    Error::Config(m) => Error::Config(format!("source \"{name}\": {m}")),
                    e => e,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok((consumer, partitions))
    }

    /// Assigns `inputs` at the checkpoint's offsets (the beginning where it has none), asks
    /// the end offsets of a bounded run, and makes sure the output topics exist.
    pub fn connect(
        kafka: &Kafka,
        consumer: BaseConsumer,
        cfg: &JoinConfig,
        sources: Vec<ReadSource>,
        inputs: &[InputPartition],
        cp: &Checkpoint,
        event_partitions: usize,
    ) -> Result<Io, Error> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in inputs {
            let at = cp
                .offsets
                .get(topic)
                .and_then(|m| m.get(p))
                .map_or(Offset::Beginning, |&o| Offset::Offset(o));
            tpl.add_partition_offset(topic, *p, at)?;
        }
        // End offsets before the assignment: once fetching starts, these requests queue
        // behind the fetches.
        let ends = if cfg.until_end {
            let mut ends = BTreeMap::new();
            for (t, p) in inputs {
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
        Ok(Io {
            input: Box::new(KafkaInput {
                consumer: Some(Arc::new(consumer)),
                reader: None,
                sources: Some(sources),
                max_batch: cfg.max_batch,
            }),
            outlet: Box::new(KafkaOutlet {
                outbox: Outbox::new(kafka)?,
                kafka: kafka.clone(),
            }),
            partitions: inputs.to_vec(),
            ends,
        })
    }
}

impl StepSource for KafkaInput {
    fn next(&mut self, wait: Duration) -> Result<Option<Step>, Error> {
        if self.reader.is_none() {
            let consumer = self
                .consumer
                .clone()
                .ok_or_else(|| Error::Internal("the joiner's consumer is closed".into()))?;
            let sources = self.sources.take().unwrap_or_default();
            self.reader = Some(Reader::start(consumer, sources, self.max_batch)?);
        }
        match &self.reader {
            Some(r) => r.next(wait),
            None => Ok(None),
        }
    }

    fn recycle(&mut self, step: Step) {
        if let Some(r) = &self.reader {
            r.recycle(step);
        }
    }

    fn quiet(&self) -> Option<Duration> {
        self.reader.as_ref().and_then(Reader::quiet)
    }

    fn end_offset(&self, p: &InputPartition) -> Result<i64, Error> {
        let consumer = self
            .consumer
            .as_ref()
            .ok_or_else(|| Error::Internal("the joiner's consumer is closed".into()))?;
        let (_, high) = consumer.fetch_watermarks(&p.0, p.1, Duration::from_secs(2))?;
        Ok(high)
    }
}

impl Drop for KafkaInput {
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

/// An idempotent producer for the outbox; sent ids are read back from the topics.
pub struct KafkaOutlet {
    kafka: Kafka,
    outbox: Outbox,
}

impl Outlet for KafkaOutlet {
    fn deliver(&mut self, msgs: &[OutMessage]) -> Result<BTreeMap<(String, i32), i64>, Error> {
        self.outbox.deliver(msgs)
    }

    fn ids_in(&mut self, topic: &str, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, Error> {
        self.kafka.ids_in(topic, from)
    }
}

/// A message as an input holds it: its source (numbered as the joiner's read sources), its
/// partition and offset, key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub source: usize,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Messages held in memory, read in order in steps of up to `max_batch`: an input for tests
/// and replays. It can be made to fail after some steps, as a lost broker would.
pub struct MemoryInput {
    sources: Vec<ReadSource>,
    messages: VecDeque<Message>,
    max_batch: usize,
    ends: BTreeMap<InputPartition, i64>,
    /// Steps left before `next` fails (`None`: never).
    fail_after: Option<usize>,
    last: Instant,
}

impl MemoryInput {
    /// Reads `messages` (of `sources`) in order; the end offsets are those after the last
    /// message of each partition.
    pub fn new(sources: Vec<ReadSource>, messages: Vec<Message>, max_batch: usize) -> Self {
        let mut ends = BTreeMap::new();
        for m in &messages {
            let topic = sources
                .get(m.source)
                .map_or_else(String::new, |s| s.topic.clone());
            let e = ends.entry((topic, m.partition)).or_insert(0);
            *e = (*e).max(m.offset + 1);
        }
        MemoryInput {
            sources,
            messages: messages.into(),
            max_batch: max_batch.max(1),
            ends,
            fail_after: None,
            last: Instant::now(),
        }
    }

    /// Fails every read after `steps` steps.
    pub fn fail_after(mut self, steps: usize) -> Self {
        self.fail_after = Some(steps);
        self
    }

    /// The end offsets, low and high, of every partition read: a bounded run's ends.
    pub fn ends(&self) -> BTreeMap<InputPartition, (i64, i64)> {
        self.ends
            .iter()
            .map(|(p, &e)| (p.clone(), (0, e)))
            .collect()
    }
}

impl StepSource for MemoryInput {
    fn next(&mut self, _wait: Duration) -> Result<Option<Step>, Error> {
        match &mut self.fail_after {
            Some(0) => return Err(Error::Kafka("the input is gone".into())),
            Some(n) if !self.messages.is_empty() => *n -= 1,
            _ => {}
        }
        if self.messages.is_empty() {
            return Ok(None);
        }
        let n = self.max_batch.min(self.messages.len());
        let taken: Vec<Message> = self.messages.drain(..n).collect();
        self.last = Instant::now();
        let step = Step::of_messages(
            &self.sources,
            taken.iter().map(|m| {
                (
                    m.source,
                    m.partition,
                    m.offset,
                    m.key.as_deref(),
                    m.value.as_deref(),
                )
            }),
        )?;
        Ok(Some(step))
    }

    fn recycle(&mut self, _step: Step) {}

    fn quiet(&self) -> Option<Duration> {
        // Nothing is ever on its way: once empty, as quiet as a bounded run waits for.
        self.messages
            .is_empty()
            .then(|| Duration::from_secs(3600).max(self.last.elapsed()))
    }

    fn end_offset(&self, p: &InputPartition) -> Result<i64, Error> {
        Ok(self.ends.get(p).copied().unwrap_or(0))
    }
}

/// Keeps delivered messages in memory, as topics: what a broker would hold.
#[derive(Clone, Default)]
pub struct MemoryOutlet {
    pub topics: Arc<Mutex<BTreeMap<String, Vec<OutMessage>>>>,
    /// When set, how many more messages are delivered before deliveries fail (a broker
    /// lost in the middle of a batch).
    pub budget: Arc<Mutex<Option<usize>>>,
}

impl MemoryOutlet {
    /// The messages delivered to `topic`, in order.
    pub fn messages(&self, topic: &str) -> Vec<OutMessage> {
        self.topics
            .lock()
            .map(|t| t.get(topic).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Delivers `n` more messages, then fails every delivery (`None`: no limit).
    pub fn set_budget(&self, n: Option<usize>) {
        if let Ok(mut b) = self.budget.lock() {
            *b = n;
        }
    }
}

impl Outlet for MemoryOutlet {
    fn deliver(&mut self, msgs: &[OutMessage]) -> Result<BTreeMap<(String, i32), i64>, Error> {
        let lock = || Error::Internal("outlet lock".into());
        let mut topics = self.topics.lock().map_err(|_| lock())?;
        let mut budget = self.budget.lock().map_err(|_| lock())?;
        let mut next = BTreeMap::new();
        for m in msgs {
            match budget.as_mut() {
                Some(0) => return Err(Error::Kafka("the outlet is down".into())),
                Some(n) => *n -= 1,
                None => {}
            }
            let t = topics.entry(m.topic.clone()).or_default();
            t.push(m.clone());
            next.insert((m.topic.clone(), 0), t.len() as i64);
        }
        Ok(next)
    }

    fn ids_in(&mut self, topic: &str, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, Error> {
        let start = from.get(&0).copied().unwrap_or(0).max(0) as usize;
        Ok(self
            .messages(topic)
            .into_iter()
            .skip(start)
            .map(|m| m.id)
            .collect())
    }
}
