//! The online stores against the real Redis (started by scripts/test.sh) and an embedded
//! RocksDB: lookups return what was written, in order, and a write never replaces a newer
//! value with an older one.

use fstore_online::OnlineStore;
use fstore_registry::DataType;
use fstore_registry::codec::{Codec, Value};

use crate::support::{service, unique};

fn codec() -> Codec {
    Codec::new(
        "00112233445566778899aabbccddeeff",
        vec![DataType::Int64, DataType::String],
    )
    .unwrap()
}

fn value(ts: i64, n: i64) -> Vec<u8> {
    codec()
        .encode(ts, &[Value::Int64(n), Value::String(format!("v{n}"))])
        .unwrap()
}

fn decoded(v: &Option<Vec<u8>>) -> Option<(i64, i64)> {
    v.as_ref().map(|b| {
        let row = codec().decode(b).unwrap();
        match row.values[0] {
            Value::Int64(n) => (row.event_time, n),
            ref other => panic!("unexpected {other:?}"),
        }
    })
}

/// Event-time pairs (stored first, then written) with whether the second write must win.
/// They cross the sign and the 32-bit halves the Redis script compares.
const ORDER_CASES: [(i64, i64, bool); 9] = [
    (10, 5, false),
    (5, 10, true),
    (10, 10, true), // equal: the later write wins
    (-1, 0, true),
    (0, -1, false),
    ((1 << 32) - 1, 1 << 32, true),
    (1 << 32, (1 << 32) - 1, false),
    (i64::MIN, i64::MAX, true),
    (1_704_067_200_000_001, 1_704_067_200_000_000, false),
];

async fn exercise(store: &OnlineStore, ns: &str) {
    // Many keys, more than one Redis command's worth, some never written.
    let keys: Vec<String> = (0..2500).map(|i| format!("{ns}:g:1:{i}")).collect();
    let entries: Vec<(String, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 3)
        .map(|(i, k)| (k.clone(), value(1_000 + i as i64, i as i64)))
        .collect();
    store.put_newer(entries).await.unwrap();
    let got = store.get(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (i, v) in got.iter().enumerate() {
        let want = (i % 7 != 3).then_some((1_000 + i as i64, i as i64));
        assert_eq!(decoded(v), want, "key {i}");
    }
    assert!(store.get(&[]).await.unwrap().is_empty());

    for (case, (first, second, wins)) in ORDER_CASES.iter().enumerate() {
        let key = format!("{ns}:order:1:{case}");
        store
            .put_newer(vec![(key.clone(), value(*first, 1))])
            .await
            .unwrap();
        store
            .put_newer(vec![(key.clone(), value(*second, 2))])
            .await
            .unwrap();
        let got = decoded(&store.get(std::slice::from_ref(&key)).await.unwrap()[0]);
        let want = if *wins { (*second, 2) } else { (*first, 1) };
        assert_eq!(got, Some(want), "stored ts {first}, then ts {second}");
    }
    // Several writes of one key in one batch: the newest stays whatever the order.
    let key = format!("{ns}:batch:1:k");
    store
        .put_newer(vec![
            (key.clone(), value(20, 20)),
            (key.clone(), value(30, 30)),
            (key.clone(), value(10, 10)),
        ])
        .await
        .unwrap();
    assert_eq!(
        decoded(&store.get(std::slice::from_ref(&key)).await.unwrap()[0]),
        Some((30, 30))
    );
}

#[tokio::test]
async fn redis_store_reads_in_order_and_newer_wins() {
    let Some(url) = service("FSTORE_REDIS_URL") else {
        return;
    };
    let store = OnlineStore::open(&url).await.unwrap();
    exercise(&store, &unique("store")).await;
}

#[tokio::test]
async fn rocksdb_store_reads_in_order_and_newer_wins() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}", dir.path().join("online").display());
    let store = OnlineStore::open(&url).await.unwrap();
    exercise(&store, "t").await;
    drop(store);
    // Reopened, the values (merged or not yet compacted) are still the newest.
    let store = OnlineStore::open(&url).await.unwrap();
    let key = "t:batch:1:k".to_string();
    assert_eq!(
        decoded(&store.get(std::slice::from_ref(&key)).await.unwrap()[0]),
        Some((30, 30))
    );
}

#[tokio::test]
async fn bad_store_urls_are_explained() {
    for (url, needle) in [
        ("memcached://x", "not an online store URL"),
        ("rocksdb://", "give a folder"),
        ("rediss://h:1", "TLS"),
        ("redis://127.0.0.1:1/0", "redis at 127.0.0.1:1"),
    ] {
        let err = OnlineStore::open(url).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
}
