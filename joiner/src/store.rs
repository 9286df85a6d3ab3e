//! The joiner's state in RocksDB, committed atomically with the input offsets.
//!
//! Column families:
//! - `meta`: the [`Checkpoint`] (JSON): input offsets, greatest event time per partition,
//!   frontier, output sequence numbers, counters;
//! - `keys`: per feature group and entity key, the key's rows ([`crate::state::KeyRows`]);
//!   RocksDB key = group name, a zero byte, the entity key ([`KeyColumns::write`]);
//! - `events`: label events waiting for the frontier, in event-time order
//!   ([`PendingEvent`]);
//! - `outbox`: Kafka messages (samples, dead letters) committed but not yet known delivered
//!   ([`OutMessage`]).
//!
//! One `WriteBatch`, synced, carries a checkpoint: a crash at any moment leaves the previous
//! checkpoint or the new one, never a mix.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::datatypes::Int64Type;
use fstore_core::codec::{Codec, Value};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::state::{Cursor, put_len};

pub const CF_META: &str = "meta";
pub const CF_KEYS: &str = "keys";
pub const CF_EVENTS: &str = "events";
pub const CF_OUTBOX: &str = "outbox";
const CHECKPOINT_KEY: &[u8] = b"checkpoint";

/// Counts of a run, kept with the checkpoint so restarts neither lose nor repeat them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    pub messages: u64,
    pub events: u64,
    pub samples: u64,
    /// Feature rows applied to state (on time or late).
    pub rows: u64,
    /// Rows behind the frontier (label events and feature rows).
    pub late: u64,
    /// Feature rows without a key: no group can hold them.
    pub rows_without_key: u64,
    /// Dead letters by reason kind.
    pub dead_letters: BTreeMap<String, u64>,
    /// Per join alias: emitted events without a row, and with an expired one.
    pub no_row: BTreeMap<String, u64>,
    pub expired: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds another joiner's counts to these.
    pub fn add(&mut self, o: &Counters) {
        // Destructured, so a new counter cannot be left out.
        let Counters {
            messages,
            events,
            samples,
            rows,
            late,
            rows_without_key,
            dead_letters,
            no_row,
            expired,
        } = o;
        self.messages += messages;
        self.events += events;
        self.samples += samples;
        self.rows += rows;
        self.late += late;
        self.rows_without_key += rows_without_key;
        for (mine, theirs) in [
            (&mut self.dead_letters, dead_letters),
            (&mut self.no_row, no_row),
            (&mut self.expired, expired),
        ] {
            for (k, n) in theirs {
                *mine.entry(k.clone()).or_default() += n;
            }
        }
    }
}

/// What a checkpoint holds besides state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checkpoint {
    pub spec: String,
    pub spec_fingerprint: String,
    /// `I/N`.
    pub instance: String,
    /// Names this state folder's Parquet files, so other runs' files are left alone.
    pub run: String,
    /// How tie-order bytes were encoded ([`fstore_core::semantics::order::TIE_ENCODING`]).
    pub tie_encoding: String,
    /// Checkpoints committed; also the number of the next Parquet output file.
    pub seq: u64,
    pub frontier: i64,
    /// Per topic and partition: the next offset to read.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Per topic and partition: the greatest event time seen.
    pub max_ts: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Per output topic and partition: the offset after the last message known delivered.
    pub out_next: BTreeMap<String, BTreeMap<i32, i64>>,
    /// The next outbox sequence number.
    pub outbox_next: u64,
    pub counters: Counters,
}

/// A label event waiting for the frontier.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub ts: i64,
    pub partition: i32,
    pub offset: i64,
    /// The message's key, passed on to the sample.
    pub key: Option<Vec<u8>>,
    /// The event source's columns.
    pub values: Vec<Value>,
}

/// Orders pending events: event time, then partition, then offset.
pub type EventId = (i64, i32, i64);

impl PendingEvent {
    pub fn id(&self) -> EventId {
        (self.ts, self.partition, self.offset)
    }
}

/// A RocksDB key that sorts like the id.
pub fn event_key(id: EventId) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&((id.0 as u64) ^ (1 << 63)).to_be_bytes());
    k[8..12].copy_from_slice(&((id.1 as u32) ^ (1 << 31)).to_be_bytes());
    k[12..].copy_from_slice(&((id.2 as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

fn get_opt(r: &mut Cursor<'_>) -> Result<Option<Vec<u8>>, Error> {
    Ok(match r.u8()? {
        0 => None,
        _ => {
            let n = r.length()?;
            Some(r.take(n)?.to_vec())
        }
    })
}

fn get_bytes(r: &mut Cursor<'_>) -> Result<Vec<u8>, Error> {
    let n = r.length()?;
    Ok(r.take(n)?.to_vec())
}

impl PendingEvent {
    /// The stored value (the RocksDB key is [`event_key`]).
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        put_opt(&mut out, self.key.as_deref());
        put_bytes(&mut out, &codec.encode(self.ts, &self.values)?);
        out.extend_from_slice(&self.partition.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        Ok(out)
    }

    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Cursor { buf: bytes, pos: 0 };
        let key = get_opt(&mut r)?;
        let row = codec.decode(&get_bytes(&mut r)?)?;
        let partition = i32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        let offset = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        if !r.done() {
            return Err(Error::State("trailing bytes after a pending event".into()));
        }
        Ok(PendingEvent {
            ts: row.event_time,
            partition,
            offset,
            key,
            values: row.values,
        })
    }
}

/// A message for a Kafka topic, identified for deduplication by its `fstore-id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Unique per message: `SPEC:TOPIC/PARTITION/OFFSET` of the input message it comes from.
    pub id: String,
    /// Further headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, self.topic.as_bytes());
        put_opt(&mut out, self.key.as_deref());
        put_bytes(&mut out, &self.payload);
        put_bytes(&mut out, self.id.as_bytes());
        put_len(&mut out, self.headers.len());
        for (k, v) in &self.headers {
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, v);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Cursor { buf: bytes, pos: 0 };
        let text = |b: Vec<u8>| {
            String::from_utf8(b).map_err(|_| Error::State("outbox text is not UTF-8".into()))
        };
        let topic = text(get_bytes(&mut r)?)?;
        let key = get_opt(&mut r)?;
        let payload = get_bytes(&mut r)?;
        let id = text(get_bytes(&mut r)?)?;
        let n = r.length()?;
        let mut headers = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            headers.push((text(get_bytes(&mut r)?)?, get_bytes(&mut r)?));
        }
        if !r.done() {
            return Err(Error::State(
                "trailing bytes after an outbox message".into(),
            ));
        }
        Ok(OutMessage {
            topic,
            key,
            payload,
            id,
            headers,
        })
    }
}

/// The key columns of rows (INT64 or STRING), to write each row's entity key: per part,
/// INT64 as `0x01` and 8 bytes big-endian, STRING as `0x02`, the LEB128 length and the UTF-8
/// bytes.
pub struct KeyColumns<'a> {
    parts: Vec<KeyPart<'a>>,
}

enum KeyPart<'a> {
    Int(&'a Int64Array),
    Str(&'a StringArray),
}

impl<'a> KeyColumns<'a> {
    pub fn new(columns: &[&'a ArrayRef]) -> Result<Self, Error> {
        let parts = columns
            .iter()
            .map(|c| {
                if let Some(a) = c.as_primitive_opt::<Int64Type>() {
                    Ok(KeyPart::Int(a))
                } else if let Some(a) = c.as_string_opt::<i32>() {
                    Ok(KeyPart::Str(a))
                } else {
                    Err(Error::Internal(format!(
                        "entity key column of type {} is not INT64 or STRING",
                        c.data_type()
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(KeyColumns { parts })
    }

    /// Appends row `row`'s entity key to `out` (so many keys can share one buffer); false,
    /// and nothing written, when a part is NULL.
    pub fn write(&self, row: usize, out: &mut Vec<u8>) -> bool {
        let null = self.parts.iter().any(|p| match p {
            KeyPart::Int(a) => a.is_null(row),
            KeyPart::Str(a) => a.is_null(row),
        });
        if null {
            return false;
        }
        for p in &self.parts {
            match p {
                KeyPart::Int(a) => put_key_int(a.value(row), out),
                KeyPart::Str(a) => put_key_str(a.value(row), out),
            }
        }
        true
    }
}

/// The values of an entity key written by [`KeyColumns::write`].
pub fn entity_key_values(bytes: &[u8]) -> Result<Vec<Value>, Error> {
    let mut r = Cursor { buf: bytes, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        out.push(match r.u8()? {
            1 => Value::Int64(i64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let n = r.length()?;
                let s = std::str::from_utf8(r.take(n)?)
                    .map_err(|_| Error::State("an entity key part is not UTF-8".into()))?;
                Value::String(s.to_string())
            }
            t => return Err(Error::State(format!("entity key part of kind {t}"))),
        });
    }
    Ok(out)
}

fn put_key_int(n: i64, out: &mut Vec<u8>) {
    out.push(1);
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_key_str(s: &str, out: &mut Vec<u8>) {
    out.push(2);
    put_bytes(out, s.as_bytes());
}

/// The RocksDB key of a group's entity key.
pub fn state_key(group: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + 1 + key.len());
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

/// A stored key and value.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// The joiner's RocksDB.
pub struct StateStore {
    db: DB,
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Key state is read a key at a time, mostly for keys it does not hold (the first
        // time the joiner sees a key): bloom filters answer those without a search, in the
        // memtable and in the tables.
        let mut keys = opts.clone();
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        keys.set_block_based_table_factory(&table);
        keys.set_memtable_prefix_bloom_ratio(0.1);
        keys.set_memtable_whole_key_filtering(true);
        let cfs = [CF_META, CF_KEYS, CF_EVENTS, CF_OUTBOX]
            .into_iter()
            .map(|n| {
                ColumnFamilyDescriptor::new(
                    n,
                    if n == CF_KEYS {
                        keys.clone()
                    } else {
                        opts.clone()
                    },
                )
            });
        let db = DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|e| Error::State(format!("open {}: {e}", dir.display())))?;
        Ok(StateStore { db })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, Error> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::State(format!("column family {name} missing")))
    }

    /// The last committed checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, Error> {
        let Some(b) = self.db.get_cf(self.cf(CF_META)?, CHECKPOINT_KEY)? else {
            return Ok(None);
        };
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::State(format!("checkpoint does not parse: {e}")))
    }

    pub fn get_key(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get_cf(self.cf(CF_KEYS)?, key)?)
    }

    /// Every stored value of a column family, in key order.
    pub fn scan(&self, cf: &str) -> Result<Vec<KeyValue>, Error> {
        self.db
            .iterator_cf(self.cf(cf)?, IteratorMode::Start)
            .map(|r| r.map_err(Error::from))
            .collect()
    }

    /// Whether a column family holds nothing.
    pub fn is_empty(&self, cf: &str) -> Result<bool, Error> {
        match self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::Start)
            .next()
        {
            None => Ok(true),
            Some(r) => r.map(|_| false).map_err(Error::from),
        }
    }

    /// Up to `limit` stored values of a column family from `from` on (the start by default).
    pub fn scan_from(
        &self,
        cf: &str,
        from: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, Error> {
        let mode = match from {
            Some(k) => IteratorMode::From(k, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        self.db
            .iterator_cf(self.cf(cf)?, mode)
            .take(limit)
            .map(|r| r.map_err(Error::from))
            .collect()
    }

    /// A write batch for this store.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            batch: WriteBatch::default(),
        }
    }
}

/// Changes committed together.
pub struct Batch<'a> {
    store: &'a StateStore,
    batch: WriteBatch,
}

impl Batch<'_> {
    pub fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.batch.put_cf(self.store.cf(cf)?, key, value);
        Ok(())
    }

    pub fn delete(&mut self, cf: &str, key: &[u8]) -> Result<(), Error> {
        self.batch.delete_cf(self.store.cf(cf)?, key);
        Ok(())
    }

    pub fn put_checkpoint(&mut self, c: &Checkpoint) -> Result<(), Error> {
        let json = serde_json::to_vec(c).map_err(|e| Error::Internal(e.to_string()))?;
        self.put(CF_META, CHECKPOINT_KEY, &json)
    }

    /// Commits; `sync` waits for the write-ahead log to reach the disk.
    pub fn commit(self, sync: bool) -> Result<(), Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.store.db.write_opt(self.batch, &opts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_registry::DataType;

    #[test]
    fn event_keys_sort_like_event_ids() {
        let ids = [
            (i64::MIN, 0, 0),
            (-1, 5, 9),
            (0, -1, 3),
            (0, 0, 2),
            (0, 0, 10),
            (7, 1, 0),
            (i64::MAX, i32::MAX, i64::MAX),
        ];
        for w in ids.windows(2) {
            assert!(event_key(w[0]) < event_key(w[1]), "{w:?}");
        }
    }

    #[test]
    fn stored_records_round_trip() {
        let codec = Codec::new(
            "0123456789abcdef",
            vec![DataType::String, DataType::Timestamp],
        )
        .unwrap();
        let e = PendingEvent {
            ts: 1_700_000_000_000_000,
            partition: 3,
            offset: 99,
            key: Some(b"u1".to_vec()),
            values: vec![
                Value::String("ä".into()),
                Value::Timestamp(1_700_000_000_000_000),
            ],
        };
        let b = e.encode(&codec).unwrap();
        assert_eq!(PendingEvent::decode(&codec, &b).unwrap(), e);
        assert!(PendingEvent::decode(&codec, &b[..b.len() - 1]).is_err());
        let m = OutMessage {
            topic: "t".into(),
            key: None,
            payload: b"{}".to_vec(),
            id: "ctr:imp/0/1".into(),
            headers: vec![("fstore-reason".into(), b"late".to_vec())],
        };
        assert_eq!(OutMessage::decode(&m.encode()).unwrap(), m);
        // Keys: the documented bytes; no key with a NULL part.
        let users: ArrayRef = std::sync::Arc::new(arrow::array::StringArray::from(vec![
            Some("a"),
            None,
            Some("日本"),
            Some("a\u{1}"),
        ]));
        let ids: ArrayRef = std::sync::Arc::new(arrow::array::Int64Array::from(vec![
            Some(1),
            Some(2),
            Some(i64::MIN),
            Some(1),
        ]));
        let key = |columns: &[&ArrayRef], row| {
            let mut out = Vec::new();
            KeyColumns::new(columns)
                .unwrap()
                .write(row, &mut out)
                .then_some(out)
        };
        assert_eq!(
            key(&[&users, &ids], 0).unwrap(),
            [2, 1, b'a', 1, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(key(&[&users, &ids], 1), None);
        assert_eq!(
            key(&[&ids, &users], 2).unwrap(),
            [&[1, 0x80, 0, 0, 0, 0, 0, 0, 0, 2, 6][..], "日本".as_bytes()].concat()
        );
        // And back to values.
        assert_eq!(
            entity_key_values(&key(&[&ids, &users], 2).unwrap()).unwrap(),
            [Value::Int64(i64::MIN), Value::String("日本".into())]
        );
        assert!(entity_key_values(&[3]).is_err());
        assert!(entity_key_values(&[2, 5, b'a']).is_err());
        assert!(
            KeyColumns::new(&[
                &(std::sync::Arc::new(arrow::array::BooleanArray::from(vec![true])) as ArrayRef)
            ])
            .is_err()
        );
        assert_ne!(key(&[&users, &ids], 0), key(&[&users], 3));
    }
}
