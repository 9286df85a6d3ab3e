//! `OnlineStore`: one encoded value per online key, in Redis or an embedded RocksDB.
//!
//! Chosen by URL: `redis://[[user]:password@]host:port[/db]` (the `redis` crate's URL syntax),
//! `rediss://…` for TLS (the server's certificate is verified against the system's CA store, or
//! the file `SSL_CERT_FILE` names; a `#insecure` suffix skips verification, for tests only),
//! `redis+unix:///path.sock`, or `rocksdb:///path/to/dir`. A lookup of many keys is one round trip: one `MGET` for Redis,
//! one `multi_get` for RocksDB.
//!
//! Writes are *newer wins*: a value replaces the stored one only if its event time (bytes
//! 9..17 of the codec's header) is at least the stored one's, so a late batch load never
//! clobbers fresher streaming values. Redis does the comparison server-side in one Lua script
//! per batch (atomic per key); RocksDB with a merge operator, so concurrent writers need no
//! read-modify-write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::Error;
use crate::resp::{Fetched, MgetPool};

/// The embedded store's block cache, MiB.
const ROCKSDB_CACHE_MIB: u64 = 256;

/// Keys per Redis command; larger lookups are split into pipelined commands.
const REDIS_CHUNK: usize = 1000;

/// Compares two encoded values' event times exactly (as a signed 64-bit pair of halves, since
/// Lua numbers are doubles) and writes only when the new one is not older.
const NEWER_WINS_LUA: &str = r#"
local written = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local old = redis.call('GET', KEYS[i])
  local write = true
  if old and #old >= 17 and #new >= 17 then
    local ohi = struct.unpack('<i4', old, 14)
    local olo = struct.unpack('<I4', old, 10)
    local nhi = struct.unpack('<i4', new, 14)
    local nlo = struct.unpack('<I4', new, 10)
    if ohi > nhi or (ohi == nhi and olo > nlo) then
      write = false
    end
  end
  if write then
    redis.call('SET', KEYS[i], new)
    written = written + 1
  end
end
return written
"#;

/// The event time in an encoded value's header; values too short to have one sort first.
fn event_time(v: &[u8]) -> i64 {
    fstore_core::codec::Codec::event_time(v).unwrap_or(i64::MIN)
}

/// Where features live online.
#[derive(Clone)]
pub enum OnlineStore {
    Redis(RedisStore),
    RocksDb(RocksStore),
}

impl std::fmt::Debug for OnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl OnlineStore {
    /// Opens the store a URL names (see the module docs).
    pub async fn open(url: &str) -> Result<Self, Error> {
        if let Some(path) = url.strip_prefix("rocksdb://") {
            if path.is_empty() {
                return Err(Error::BadUrl(format!(
                    "{url}: give a folder, e.g. rocksdb:///var/lib/fstore/online"
                )));
            }
            return Ok(OnlineStore::RocksDb(RocksStore::open(Path::new(path))?));
        }
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Ok(OnlineStore::Redis(RedisStore::open(url).await?));
        }
        Err(Error::BadUrl(format!(
            "{}: not an online store URL (redis://host:port/db, rediss:// for TLS, or rocksdb:///path)",
            redact(url)
        )))
    }

    /// A description without secrets, for logs.
    pub fn describe(&self) -> String {
        match self {
            OnlineStore::Redis(r) => format!("redis {}", r.addr),
            OnlineStore::RocksDb(r) => format!("rocksdb {}", r.path.display()),
        }
    }

    /// The values of `keys`, in order; `None` where a key has no value.
    pub async fn get<K: AsRef<str> + Sync>(&self, keys: &[K]) -> Result<Fetched, Error> {
        match self {
            OnlineStore::Redis(r) => r.get(keys).await,
            OnlineStore::RocksDb(r) => r.get(keys).await,
        }
    }

    /// After a bulk load: RocksDB flushes and compacts, which resolves the newer-wins merges
    /// so reads find one value per key; Redis has nothing to do.
    pub async fn compact(&self) -> Result<(), Error> {
        match self {
            OnlineStore::Redis(_) => Ok(()),
            OnlineStore::RocksDb(r) => {
                let db = r.db.clone();
                let path = r.path.clone();
                tokio::task::spawn_blocking(move || {
                    db.flush().map_err(|e| {
                        Error::Unavailable(format!("rocksdb at {}: {e}", path.display()))
                    })?;
                    db.compact_range::<&[u8], &[u8]>(None, None);
                    Ok(())
                })
                .await
                .map_err(|e| Error::Unavailable(format!("rocksdb compaction task: {e}")))?
            }
        }
    }

    /// Writes values, each only where it is not older than the stored value. Returns how many
    /// values were newer or equal (written); RocksDB resolves the comparison lazily and
    /// reports every value as written.
    pub async fn put_newer(&self, entries: Vec<(String, Vec<u8>)>) -> Result<u64, Error> {
        match self {
            OnlineStore::Redis(r) => r.put_newer(&entries).await,
            OnlineStore::RocksDb(r) => r.put_newer(entries).await,
        }
    }
}

/// Redis through one auto-reconnecting multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    /// Writes (the newer-wins script).
    conn: ConnectionManager,
    /// Reads: `MGET` on connections of its own ([`crate::resp`]).
    reads: Arc<MgetPool>,
    script: Arc<redis::Script>,
    addr: String,
}

impl RedisStore {
    async fn open(url: &str) -> Result<Self, Error> {
        let client =
            redis::Client::open(url).map_err(|e| Error::BadUrl(format!("{}: {e}", redact(url))))?;
        let info = client.get_connection_info().clone();
        let addr = match info.addr() {
            redis::ConnectionAddr::TcpTls { .. } => format!("{} (tls)", info.addr()),
            a => a.to_string(),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::Unavailable(format!("redis at {addr}: {e}")))?;
        Ok(RedisStore {
            conn,
            reads: Arc::new(MgetPool::new(info)),
            script: Arc::new(redis::Script::new(NEWER_WINS_LUA)),
            addr,
        })
    }

    fn unavailable(&self, e: redis::RedisError) -> Error {
        Error::Unavailable(format!("redis at {}: {e}", self.addr))
    }

    async fn get<K: AsRef<str> + Sync>(&self, keys: &[K]) -> Result<Fetched, Error> {
        self.reads
            .mget(keys, REDIS_CHUNK)
            .await
            .map_err(|e| Error::Unavailable(format!("redis at {}: {e}", self.addr)))
    }

    async fn put_newer(&self, entries: &[(String, Vec<u8>)]) -> Result<u64, Error> {
        let mut conn = self.conn.clone();
        let mut written = 0u64;
        for chunk in entries.chunks(REDIS_CHUNK) {
            let mut inv = self.script.prepare_invoke();
            for (k, v) in chunk {
                inv.key(k).arg(v.as_slice());
            }
            let n: u64 = inv
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?;
            written += n;
        }
        Ok(written)
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &cred[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// An embedded RocksDB whose merge operator keeps the newest value.
#[derive(Clone)]
pub struct RocksStore {
    db: Arc<rocksdb::DB>,
    path: PathBuf,
}

/// Merge: of the stored value and the operands, the one with the greatest event time; on a
/// tie the later write wins.
fn newer_wins(
    _key: &[u8],
    existing: Option<&[u8]>,
    ops: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let mut best: Option<&[u8]> = existing;
    for op in ops {
        if best.is_none_or(|b| event_time(op) >= event_time(b)) {
            best = Some(op);
        }
    }
    best.map(<[u8]>::to_vec)
}

impl RocksStore {
    fn open(path: &Path) -> Result<Self, Error> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_merge_operator_associative("fstore_newer_wins", newer_wins);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Point lookups only: a block cache, bloom filters, hash indexes inside data blocks.
        opts.optimize_for_point_lookup(ROCKSDB_CACHE_MIB);
        // Opened by its column family, so lookups can name it (batched multi-get needs one).
        let default = rocksdb::ColumnFamilyDescriptor::new("default", opts.clone());
        let db = rocksdb::DB::open_cf_descriptors(&opts, path, [default])
            .map_err(|e| Error::Unavailable(format!("rocksdb at {}: {e}", path.display())))?;
        Ok(RocksStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
        })
    }

    async fn get<K: AsRef<str> + Sync>(&self, keys: &[K]) -> Result<Fetched, Error> {
        let db = self.db.clone();
        let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_string()).collect();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let unavailable = |e: rocksdb::Error| {
                Error::Unavailable(format!("rocksdb at {}: {e}", path.display()))
            };
            let cf = db
                .cf_handle("default")
                .ok_or_else(|| Error::Unavailable("rocksdb: no default column family".into()))?;
            // Sorted lookups let RocksDB batch them per block; answers go back in key order.
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
            let sorted = order.iter().map(|&i| keys[i].as_bytes());
            let got = db.batched_multi_get_cf(cf, sorted, true);
            let mut slot = vec![0usize; keys.len()];
            for (at, &i) in order.iter().enumerate() {
                slot[i] = at;
            }
            let got = got
                .into_iter()
                .map(|v| v.map_err(unavailable))
                .collect::<Result<Vec<_>, Error>>()?;
            let mut out = Fetched::with_capacity(keys.len());
            for &at in &slot {
                out.push(got[at].as_deref());
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("rocksdb read task: {e}")))?
    }

    async fn put_newer(&self, entries: Vec<(String, Vec<u8>)>) -> Result<u64, Error> {
        let db = self.db.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut batch = rocksdb::WriteBatch::default();
            for (k, v) in &entries {
                batch.merge(k, v);
            }
            db.write(batch)
                .map_err(|e| Error::Unavailable(format!("rocksdb at {}: {e}", path.display())))?;
            Ok(entries.len() as u64)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("rocksdb write task: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://:hunter2@localhost:6379/0"),
            "redis://:***@localhost:6379/0"
        );
        assert_eq!(redact("redis://admin:pw@h:1"), "redis://admin:***@h:1");
        assert_eq!(redact("redis://h:1/2"), "redis://h:1/2");
    }
}
