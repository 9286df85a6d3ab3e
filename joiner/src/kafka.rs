//! The joiner's Kafka edges: clients, topic metadata, end offsets, delivering messages with
//! their offsets known, and reading back which messages a topic already holds.
//!
//! Only the Kafka protocol through rdkafka. End-of-partition detection does not trust the
//! reported high watermark alone (some brokers report it behind the last record batch): a
//! partition is read to its end once a fetch at or past the reported end comes back empty.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use crate::Error;
use crate::store::OutMessage;

/// Timeout of metadata and offset requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The header carrying an output message's identity.
pub const ID_HEADER: &str = "fstore-id";

/// Settings shared by every client of a run.
#[derive(Debug, Clone)]
pub struct Kafka {
    pub brokers: String,
    pub options: Vec<(String, String)>,
}

impl Kafka {
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// A consumer that reads assigned partitions and commits nothing to Kafka.
    pub fn consumer(&self, group: &str) -> Result<BaseConsumer, Error> {
        let mut c = self.config();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // When the local queue is full librdkafka pauses fetching for this long (1 s by
            // default), which leaves a consumer that just drained it idle.
            .set("fetch.queue.backoff.ms", "5");
        Ok(c.create()?)
    }

    /// The partitions of `topic`; a topic the broker does not know is the user's error.
    pub fn partitions(&self, consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, Error> {
        let md = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| Error::Config(format!("topic \"{topic}\" does not exist")))?;
        if let Some(e) = t.error() {
            return Err(Error::Config(format!("topic \"{topic}\": {e:?}")));
        }
        let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ps.sort_unstable();
        if ps.is_empty() {
            return Err(Error::Config(format!(
                "topic \"{topic}\" does not exist (no partitions)"
            )));
        }
        Ok(ps)
    }

    /// Creates `topic` with `partitions` if it does not exist; `probe` (any connected
    /// consumer) asks the metadata.
    pub fn ensure_topic(
        &self,
        probe: &BaseConsumer,
        topic: &str,
        partitions: i32,
    ) -> Result<(), Error> {
        if self.partitions(probe, topic).is_ok() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let results = futures::executor::block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)),
        ))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(Error::Kafka(format!("create topic \"{t}\": {code}")));
                }
            }
        }
        // Metadata can trail the creation briefly.
        let t0 = Instant::now();
        while self.partitions(probe, topic).is_err() {
            if t0.elapsed() > REQUEST_TIMEOUT {
                return Err(Error::Kafka(format!(
                    "topic \"{topic}\" not visible after creating it"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The `fstore-id` headers of the messages of `topic` from `from` (per partition; from the
    /// beginning where absent) to the end.
    pub fn ids_in(&self, topic: &str, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, Error> {
        let consumer = self.consumer("fstore-dedup")?;
        let partitions = self.partitions(&consumer, topic)?;
        let mut ends = BTreeMap::new();
        for &p in &partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)?;
            // An empty partition (retention removed everything) is read already.
            ends.insert(p, if low >= high { i64::MIN } else { high });
        }
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let start = from
                .get(&p)
                .map_or(Offset::Beginning, |&o| Offset::Offset(o));
            tpl.add_partition_offset(topic, p, start)?;
        }
        consumer.assign(&tpl)?;
        let mut ids = HashSet::new();
        let mut next: BTreeMap<i32, i64> = partitions
            .iter()
            .map(|&p| (p, from.get(&p).copied().unwrap_or(0)))
            .collect();
        let mut quiet_since: Option<Instant> = None;
        loop {
            let reached = next.iter().all(|(p, o)| *o >= ends[p]);
            let quiet = quiet_since.map_or(Duration::ZERO, |t| t.elapsed());
            if !reached && quiet >= Duration::from_secs(10) {
                // Offsets short of the end that no record fills (transaction markers,
                // retention): nothing more will come.
                tracing::warn!(
                    topic,
                    "ending the read of sent ids short of the reported end"
                );
                return Ok(ids);
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(m) => {
                    let m = m?;
                    quiet_since = None;
                    next.insert(m.partition(), m.offset() + 1);
                    if let Some(h) = m.headers() {
                        for i in 0..h.count() {
                            let h = h.get(i);
                            if h.key == ID_HEADER
                                && let Some(v) = h.value
                            {
                                ids.insert(String::from_utf8_lossy(v).into_owned());
                            }
                        }
                    }
                }
                None => {
                    // Past the reported end and a fetch came back empty: done.
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if reached && since.elapsed() >= Duration::from_millis(600) {
                        return Ok(ids);
                    }
                }
            }
        }
    }
}

/// Records where delivered messages landed and what failed.
#[derive(Default)]
pub struct Deliveries {
    pub next: Mutex<BTreeMap<(String, i32), i64>>,
    pub failed: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Ok(mut next) = self.next.lock() {
                    let e = next
                        .entry((m.topic().to_string(), m.partition()))
                        .or_insert(0);
                    *e = (*e).max(m.offset() + 1);
                }
            }
            Err((e, m)) => {
                if let Ok(mut f) = self.failed.lock() {
                    f.push(format!("{} partition {}: {e}", m.topic(), m.partition()));
                }
            }
        }
    }
}

/// An idempotent producer that reports where each batch of messages landed.
pub struct Outbox {
    producer: BaseProducer<Deliveries>,
}

impl Outbox {
    pub fn new(kafka: &Kafka) -> Result<Self, Error> {
        let mut c = kafka.config();
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000");
        Ok(Outbox {
            producer: c.create_with_context(Deliveries::default())?,
        })
    }

    /// Sends every message and waits until all are acknowledged. Returns the offset after
    /// the last delivered message per topic partition.
    pub fn deliver(&self, msgs: &[OutMessage]) -> Result<BTreeMap<(String, i32), i64>, Error> {
        for m in msgs {
            let mut headers = OwnedHeaders::new().insert(Header {
                key: ID_HEADER,
                value: Some(m.id.as_bytes()),
            });
            for (k, v) in &m.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&m.topic)
                .payload(m.payload.as_slice())
                .headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k.as_slice());
            }
            let mut record = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        r,
                    )) => {
                        record = r;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => {
                        return Err(Error::Kafka(format!("produce to {}: {e}", m.topic)));
                    }
                }
            }
        }
        self.producer.flush(Duration::from_secs(120))?;
        let failed = std::mem::take(
            &mut *self
                .producer
                .context()
                .failed
                .lock()
                .map_err(|_| Error::Internal("delivery lock".into()))?,
        );
        if !failed.is_empty() {
            return Err(Error::Kafka(format!(
                "{} messages not delivered, e.g. {}",
                failed.len(),
                failed[0]
            )));
        }
        let next = self
            .producer
            .context()
            .next
            .lock()
            .map_err(|_| Error::Internal("delivery lock".into()))?
            .clone();
        Ok(next)
    }
}
