//! The online stores against the real Redis (started by scripts/test.sh) and an embedded
//! RocksDB: lookups return what was written, in order, and a write never replaces a newer
//! value with an older one.

use fstore_core::codec::{Codec, Value};
use fstore_online::OnlineStore;
use fstore_registry::DataType;

use crate::support::{repo, service, text, unique};

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

fn decoded(v: Option<&[u8]>) -> Option<(i64, i64)> {
    v.map(|b| {
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
    assert!(store.get::<String>(&[]).await.unwrap().is_empty());

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
        let got = decoded(store.get(std::slice::from_ref(&key)).await.unwrap().get(0));
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
        decoded(store.get(std::slice::from_ref(&key)).await.unwrap().get(0)),
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
        decoded(store.get(std::slice::from_ref(&key)).await.unwrap().get(0)),
        Some((30, 30))
    );
}

#[tokio::test]
async fn bad_store_urls_are_explained() {
    for (url, needle) in [
        ("memcached://x", "not an online store URL"),
        ("rocksdb://", "give a folder"),
        ("rediss://127.0.0.1:1/0", "redis at 127.0.0.1:1"),
        ("redis://127.0.0.1:1/0", "redis at 127.0.0.1:1"),
    ] {
        let err = OnlineStore::open(url).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
}

/// A redis-server speaking only TLS on a free port, with a self-signed certificate for
/// 127.0.0.1 made by the openssl command; returns the server and the certificate's path.
fn start_tls_redis(dir: &std::path::Path) -> Option<(KillOnDrop, u16, std::path::PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("FSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "openssl is required for the TLS test: {made:?}"
        );
        eprintln!("skipped: no openssl command");
        return None;
    }
    let port = crate::support::free_port();
    let port_s = port.to_string();
    let tls: Vec<&std::ffi::OsStr> = vec![
        "--port".as_ref(),
        "0".as_ref(),
        "--tls-port".as_ref(),
        port_s.as_ref(),
        "--tls-cert-file".as_ref(),
        cert.as_os_str(),
        "--tls-key-file".as_ref(),
        key.as_os_str(),
        "--tls-ca-cert-file".as_ref(),
        cert.as_os_str(),
        "--tls-auth-clients".as_ref(),
        "no".as_ref(),
    ];
    let guard = KillOnDrop(crate::support::start_redis(port, dir, &tls));
    Some((guard, port, cert))
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn redis_over_tls_verifies_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_redis, port, cert)) = start_tls_redis(dir.path()) else {
        return;
    };
    // rediss:// with verification skipped: the store works as over plain TCP.
    let insecure = format!("rediss://127.0.0.1:{port}/0#insecure");
    let store = OnlineStore::open(&insecure).await.unwrap();
    assert!(store.describe().contains("(tls)"), "{}", store.describe());
    exercise(&store, &unique("tls")).await;

    // Verified: the self-signed certificate is refused unless SSL_CERT_FILE trusts it.
    let registry = crate::support::apply_example(dir.path(), "reg");
    let example = repo().join("examples/ctr");
    let url = format!("rediss://127.0.0.1:{port}/1");
    let materialize = |trust: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fstore"));
        cmd.args(["materialize", "user_profile", "--registry"])
            .arg(&registry)
            .args(["--online", &url, "--as-of", "2024-01-15"])
            .arg("--source")
            .arg(format!(
                "user_profile={}",
                example.join("data/user_profile.parquet").display()
            ))
            .env_remove("SSL_CERT_DIR");
        match trust {
            Some(c) => cmd.env("SSL_CERT_FILE", c),
            None => cmd.env("SSL_CERT_FILE", dir.path().join("no-such-ca.pem")),
        };
        cmd.output().unwrap()
    };
    let refused = materialize(None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("redis at 127.0.0.1") && text(&refused).contains("certificate"),
        "{}",
        text(&refused)
    );
    let trusted = materialize(Some(&cert));
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted));
    assert!(text(&trusted).contains("keys loaded"), "{}", text(&trusted));
    let client = redis::Client::open(format!("rediss://127.0.0.1:{port}/1#insecure")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(keys > 100, "{keys} keys in db 1 after materialize over TLS");
}

/// A password-protected Redis with a Unix socket: reads and writes authenticate and select the
/// URL's database, over TCP and over the socket, and a wrong password is refused by name.
#[tokio::test]
async fn redis_with_a_password_a_database_and_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let socket = dir.path().join("redis.sock");
    let port_s = port.to_string();
    let args: Vec<&std::ffi::OsStr> = vec![
        "--port".as_ref(),
        port_s.as_ref(),
        "--requirepass".as_ref(),
        "s3cret".as_ref(),
        "--unixsocket".as_ref(),
        socket.as_os_str(),
    ];
    let _redis = KillOnDrop(crate::support::start_redis(port, dir.path(), &args));
    let tcp = OnlineStore::open(&format!("redis://:s3cret@127.0.0.1:{port}/3"))
        .await
        .unwrap();
    exercise(&tcp, &unique("auth")).await;
    let unix = OnlineStore::open(&format!(
        "redis+unix://{}?db=3&pass=s3cret",
        socket.display()
    ))
    .await
    .unwrap();
    exercise(&unix, &unique("unix")).await;
    // What one wrote into db 3 the other reads; db 0 has none of it.
    let key = format!("{}:g:1:x", unique("shared"));
    tcp.put_newer(vec![(key.clone(), value(5, 6))])
        .await
        .unwrap();
    assert_eq!(
        decoded(unix.get(std::slice::from_ref(&key)).await.unwrap().get(0)),
        Some((5, 6))
    );
    let db0 = OnlineStore::open(&format!("redis://:s3cret@127.0.0.1:{port}/0"))
        .await
        .unwrap();
    assert_eq!(
        db0.get(std::slice::from_ref(&key)).await.unwrap().get(0),
        None
    );
    let err = OnlineStore::open(&format!("redis://:wrong@127.0.0.1:{port}/3"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("redis at 127.0.0.1"), "{err}");
}

/// Many concurrent lookups each get their own answer, on at most `MAX_CONNECTIONS` read
/// connections (the rest wait for one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_share_a_bounded_pool() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let _redis = KillOnDrop(crate::support::start_redis(port, dir.path(), &[]));
    let url = format!("redis://127.0.0.1:{port}/0");
    let store = OnlineStore::open(&url).await.unwrap();
    let keys: Vec<String> = (0..500).map(|i| format!("pool:g:1:{i}")).collect();
    store
        .put_newer(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), value(i as i64, i as i64)))
                .collect(),
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..400)
        .map(|t| {
            let store = store.clone();
            let mine: Vec<String> = (0..25).map(|j| keys[(t * 7 + j) % 500].clone()).collect();
            tokio::spawn(async move {
                let got = store.get(&mine).await.unwrap();
                for (k, v) in mine.iter().zip(got.iter()) {
                    let i: i64 = k.rsplit(':').next().unwrap().parse().unwrap();
                    assert_eq!(decoded(v), Some((i, i)), "{k}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let open = list.lines().count();
    // The pool's connections, the writer's, and this one.
    assert!(
        open <= fstore_online::resp::MAX_CONNECTIONS + 2,
        "{open} connections"
    );
    assert!(open >= 3, "{open} connections: the reads used none?");
}
