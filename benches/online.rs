//! Online serving benchmark: `GetFeatures` latency through `fstore serve` on Redis and on
//! RocksDB, side by side in the same run with a raw Redis `MGET` of the same keys (the physical
//! limit of one round trip) and with Feast's Redis layout (one hash per entity, one protobuf
//! value per feature, read with a pipeline of `HMGET`s), plus the bytes each layout stores.
//!
//! `cargo bench --bench online -- [--keys 100000] [--sizes 1,100,1000] [--rounds 2000,1000,300]
//! [--methods 0,1,2,3,4,5,6,7]` (0 raw MGET with the redis crate, 1 Feast layout, 2 fstore on
//! Redis, 3 fstore on RocksDB, 4 raw MGET with fstore's own reply reader, 5 and 6 fstore on Redis
//! and on RocksDB with Arrow IPC responses, 7 a gRPC health check on the same server: what any
//! gRPC call costs here before it carries a payload; a subset is for profiling)
//!
//! Redis: `FSTORE_REDIS_URL`, or a `redis-server` the bench starts on a free port. Each round
//! picks fresh random keys and times every method once, in a rotating order, so the machine's
//! noise falls on all of them alike; one client, one request at a time (latency, not
//! throughput).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fstore_core::codec::Value;
use fstore_online::OnlineStore;
use fstore_online::layout::GroupLayout;
use fstore_proto::v1 as pb;

const GROUP: &str = "user_profile";
const NAMESPACE: &str = "bench";

struct Args {
    keys: usize,
    sizes: Vec<usize>,
    rounds: Vec<usize>,
    /// Which methods to time (indexes into `methods`); all by default.
    methods: Vec<usize>,
}

fn parse_list(s: &str) -> Vec<usize> {
    s.split(',')
        .map(|x| x.trim().parse().expect("a number"))
        .collect()
}

fn args() -> Args {
    let mut a = Args {
        keys: 100_000,
        sizes: vec![1, 100, 1000],
        rounds: vec![2000, 1000, 300],
        methods: vec![0, 1, 2, 3, 4, 5, 6, 7],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--keys" => a.keys = it.next().expect("--keys N").parse().expect("a number"),
            "--sizes" => a.sizes = parse_list(&it.next().expect("--sizes LIST")),
            "--rounds" => a.rounds = parse_list(&it.next().expect("--rounds LIST")),
            "--methods" => a.methods = parse_list(&it.next().expect("--methods LIST")),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert_eq!(a.sizes.len(), a.rounds.len(), "one --rounds entry per size");
    a
}

use fstore_core::splitmix::SplitMix64 as Rng;

const CITIES: [&str; 8] = [
    "Berlin",
    "São Paulo",
    "Shenzhen",
    "Lagos",
    "Toronto",
    "Mumbai",
    "Kraków",
    "Osaka",
];

/// One profile row: age, city, score (some NULLs, as real data has).
fn profile(rng: &mut Rng) -> Vec<Value> {
    let age = if rng.below(20) == 0 {
        Value::Null
    } else {
        Value::Int64(16 + rng.below(60) as i64)
    };
    let city = Value::String(CITIES[rng.below(CITIES.len() as u64) as usize].to_string());
    let score = Value::Double(rng.below(1_000_000) as f64 / 7919.0);
    vec![age, city, score]
}

/// The bytes of the features themselves: 8 per INT64/DOUBLE, a string's UTF-8 bytes.
fn raw_payload(values: &[Value]) -> usize {
    values
        .iter()
        .map(|v| match v {
            Value::Null => 0,
            Value::Boolean(_) => 1,
            Value::Int64(_) | Value::Double(_) | Value::Timestamp(_) => 8,
            Value::String(s) => s.len(),
            Value::List(_) => unreachable!("no lists in the bench group"),
        })
        .sum()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Feast's Redis layout, written here as Feast writes it: the hash key is the serialized
/// `EntityKey` proto followed by the project name; one field per feature, named by the 4-byte
/// murmur3 of `view:feature`, holding a serialized `ValueProto`; and a `_ts:view` field holding a
/// `google.protobuf.Timestamp`. The protobuf bytes are produced by hand (tag, varint, payload).
mod feast {
    use fstore_core::codec::Value;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn len_field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    /// `feast.types.Value`: string_val = 2, int64_val = 4, double_val = 5; NULL is empty.
    pub fn value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => {}
            Value::String(s) => len_field(0x12, s.as_bytes(), &mut out),
            Value::Int64(n) => {
                out.push(0x20);
                varint(*n as u64, &mut out);
            }
            Value::Double(d) => {
                out.push(0x29);
                out.extend_from_slice(&d.to_le_bytes());
            }
            other => unreachable!("no {other:?} in the bench group"),
        }
        out
    }

    /// `feast.types.EntityKey { join_keys: ["user_id"], entity_values: [string_val] }` + project.
    pub fn key(user: &str, project: &str) -> Vec<u8> {
        let mut out = Vec::new();
        len_field(0x0a, b"user_id", &mut out);
        len_field(0x12, &value(&Value::String(user.to_string())), &mut out);
        out.extend_from_slice(project.as_bytes());
        out
    }

    /// `google.protobuf.Timestamp { seconds, nanos }`.
    pub fn timestamp(us: i64) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(0x08);
        varint(us.div_euclid(1_000_000) as u64, &mut out);
        out.push(0x10);
        varint((us.rem_euclid(1_000_000) * 1000) as u64, &mut out);
        out
    }

    /// MurmurHash3 x86_32, seed 0, as Feast names hash fields.
    pub fn mmh3(data: &[u8]) -> [u8; 4] {
        let (c1, c2) = (0xcc9e_2d51u32, 0x1b87_3593u32);
        let mut h: u32 = 0;
        let chunks = data.chunks_exact(4);
        let tail = chunks.remainder();
        for c in chunks {
            let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            k = k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
            h ^= k;
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
        }
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k ^= (*b as u32) << (8 * i);
        }
        if !tail.is_empty() {
            h ^= k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        }
        h ^= data.len() as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        h.to_le_bytes()
    }

    /// Decodes a `ValueProto` as Feast's client must, to be fair to its read path.
    pub fn decode(b: &[u8]) -> Option<Value> {
        let (&tag, rest) = b.split_first()?;
        let varint_at = |r: &[u8]| -> Option<(u64, usize)> {
            let mut n = 0u64;
            for (i, byte) in r.iter().enumerate().take(10) {
                n |= u64::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    return Some((n, i + 1));
                }
            }
            None
        };
        match tag {
            0x12 => {
                let (len, used) = varint_at(rest)?;
                let s = rest.get(used..used + len as usize)?;
                Some(Value::String(String::from_utf8(s.to_vec()).ok()?))
            }
            0x20 => Some(Value::Int64(varint_at(rest)?.0 as i64)),
            0x29 => Some(Value::Double(f64::from_le_bytes(
                rest.get(..8)?.try_into().ok()?,
            ))),
            _ => None,
        }
    }
}

fn start_redis(dir: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/setup.sh installs it)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("redis://127.0.0.1:{port}/0"))
}

/// A running `fstore serve`, its address and its metrics URL.
struct Server {
    child: Child,
    addr: String,
    metrics: String,
}

impl Server {
    fn start(registry: &Path, online: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fstore"))
            .args(["serve", "--registry"])
            .arg(registry)
            .args(["--online", online, "--namespace", NAMESPACE])
            .args(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstore serve starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        line.clear();
        out.read_line(&mut line).unwrap();
        let metrics = line.trim().rsplit(' ').next().unwrap().to_string();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Server {
            child,
            addr,
            metrics,
        }
    }

    /// The server's total GetFeatures handler time (seconds) and request count so far.
    fn handler_time(&self) -> (f64, f64) {
        use std::io::{Read, Write};
        let rest = self.metrics.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let find = |name: &str| {
            body.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            find("fstore_request_seconds_sum{method=\"GetFeatures\"}"),
            find("fstore_request_seconds_count{method=\"GetFeatures\"}"),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Client = pb::feature_service_client::FeatureServiceClient<tonic::transport::Channel>;

/// A request with one message per key.
fn request_rows(users: &[String], idx: &[usize], at: i64) -> pb::GetFeaturesRequest {
    pb::GetFeaturesRequest {
        refs: vec![GROUP.to_string()],
        keys: idx
            .iter()
            .map(|&i| pb::EntityKey {
                parts: vec![pb::KeyPart {
                    value: Some(pb::key_part::Value::StringValue(users[i].clone())),
                }],
            })
            .collect(),
        request_time_us: Some(at),
        ..Default::default()
    }
}

/// The same request with its keys as one key column (what the timed calls send).
fn request(users: &[String], idx: &[usize], at: i64) -> pb::GetFeaturesRequest {
    pb::GetFeaturesRequest {
        refs: vec![GROUP.to_string()],
        keys: vec![],
        request_time_us: Some(at),
        key_columns: vec![pb::KeyColumn {
            string_values: idx.iter().map(|&i| users[i].clone()).collect(),
            int64_values: vec![],
        }],
        format: 0,
    }
}

/// The one record batch of an Arrow IPC stream.
fn arrow_batch(ipc: &[u8]) -> arrow::record_batch::RecordBatch {
    let mut reader = arrow::ipc::reader::StreamReader::try_new(ipc, None).unwrap();
    reader.next().expect("one batch").unwrap()
}

async fn grpc(client: &mut Client, req: pb::GetFeaturesRequest) -> pb::GetFeaturesResponse {
    client.get_features(req).await.unwrap().into_inner()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let work = tempfile::tempdir().unwrap();
    let registry = work.path().join("registry");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ctr");
    let out = Command::new(env!("CARGO_BIN_EXE_fstore"))
        .arg("apply")
        .arg(&examples)
        .arg("--registry")
        .arg(&registry)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let defs = fstore_registry::Registry::new(&registry)
        .require_current()
        .unwrap()
        .definitions;
    let layout = GroupLayout::new(NAMESPACE, &defs, GROUP).unwrap();

    let (_redis_child, redis_url) = match std::env::var("FSTORE_REDIS_URL") {
        Ok(u) if !u.is_empty() => (None, u),
        _ => {
            let (c, u) = start_redis(work.path());
            (Some(KillOnDrop(c)), u)
        }
    };
    let rocks_url = format!("rocksdb://{}", work.path().join("online").display());

    // The data: one profile per user, event times within the last day.
    let t0 = now_us();
    let mut rng = Rng(7);
    let users: Vec<String> = (0..args.keys).map(|i| format!("user-{i:08}")).collect();
    let rows: Vec<(i64, Vec<Value>)> = users
        .iter()
        .map(|_| (t0 - rng.below(86_400_000_000) as i64, profile(&mut rng)))
        .collect();
    let keys: Vec<String> = users
        .iter()
        .map(|u| layout.key(&[Value::String(u.clone())]).unwrap())
        .collect();
    let values: Vec<Vec<u8>> = rows
        .iter()
        .map(|(ts, v)| layout.encode(*ts, v).unwrap())
        .collect();
    let project = "bench";
    let feast_fields: Vec<Vec<u8>> = layout
        .features
        .iter()
        .map(|(f, _)| feast::mmh3(format!("{GROUP}:{f}").as_bytes()).to_vec())
        .collect();
    let feast_ts_field = format!("_ts:{GROUP}").into_bytes();
    let feast_keys: Vec<Vec<u8>> = users.iter().map(|u| feast::key(u, project)).collect();

    eprintln!(
        "loading {} keys into redis ({redis_url}) and rocksdb",
        args.keys
    );
    {
        let redis = OnlineStore::open(&redis_url).await.unwrap();
        let rocks = OnlineStore::open(&rocks_url).await.unwrap();
        let entries: Vec<(String, Vec<u8>)> = keys.iter().cloned().zip(values.clone()).collect();
        for chunk in entries.chunks(10_000) {
            redis.put_newer(chunk.to_vec()).await.unwrap();
            rocks.put_newer(chunk.to_vec()).await.unwrap();
        }
        // As fstore materialize leaves it after a load.
        rocks.compact().await.unwrap();
        // RocksDB is opened by the server next; this handle closes here.
    }
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let fast_mget = fstore_online::resp::MgetPool::new(client.get_connection_info().clone());
    for chunk in (0..args.keys).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&feast_keys[i]);
            for (f, v) in feast_fields.iter().zip(&rows[i].1) {
                cmd.arg(f).arg(feast::value(v));
            }
            cmd.arg(&feast_ts_field).arg(feast::timestamp(rows[i].0));
            pipe.add_command(cmd).ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }

    // Bytes per entity.
    let sample: Vec<usize> = Rng(11).distinct(1000.min(args.keys), args.keys);
    let mut fstore_value = 0usize;
    let mut fstore_key = 0usize;
    let mut raw = 0usize;
    let mut feast_value = 0usize;
    let mut fstore_mem = 0usize;
    let mut feast_mem = 0usize;
    for &i in &sample {
        fstore_value += values[i].len();
        fstore_key += keys[i].len();
        raw += raw_payload(&rows[i].1);
        feast_value += feast_fields
            .iter()
            .zip(&rows[i].1)
            .map(|(f, v)| f.len() + feast::value(v).len())
            .sum::<usize>()
            + feast_ts_field.len()
            + feast::timestamp(rows[i].0).len();
        let m: Option<usize> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&keys[i])
            .query_async(&mut conn)
            .await
            .unwrap();
        fstore_mem += m.unwrap_or(0);
        let m: Option<usize> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&feast_keys[i])
            .query_async(&mut conn)
            .await
            .unwrap();
        feast_mem += m.unwrap_or(0);
    }
    let n = sample.len() as f64;

    let on_redis = Server::start(&registry, &redis_url);
    let on_rocks = Server::start(&registry, &rocks_url);
    let mut redis_client = Client::connect(format!("http://{}", on_redis.addr))
        .await
        .unwrap();
    let mut rocks_client = Client::connect(format!("http://{}", on_rocks.addr))
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", on_redis.addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );

    println!(
        "\nGetFeatures({GROUP}: {} features) over {} stored keys; one client, sequential requests; µs",
        layout.features.len(),
        args.keys
    );
    println!(
        "| keys | method | p50 µs | p99 µs | mean µs | p50 vs MGET | p50 vs MGET (fstore reader) | p99 vs MGET | server handler mean µs (per store, both formats) |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let methods = [
        "raw Redis MGET (fstore keys)",
        "Feast layout: pipelined HMGET + decode",
        "fstore gRPC on Redis",
        "fstore gRPC on RocksDB",
        "raw Redis MGET, fstore's RESP reader",
        "fstore gRPC on Redis, Arrow IPC response",
        "fstore gRPC on RocksDB, Arrow IPC response",
        "gRPC health check (no store, no payload)",
    ];
    let mut rng = Rng(42);
    let at = now_us();
    for (&size, &rounds) in args.sizes.iter().zip(&args.rounds) {
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); methods.len()];
        let mut handler = [(0.0, 0.0); 2];
        let warmup = 20.max(rounds / 10);
        for round in 0..warmup + rounds {
            for k in 0..methods.len() {
                let m = (k + round) % methods.len();
                if !args.methods.contains(&m) {
                    continue;
                }
                // Fresh keys for every call: keys another method just read would be in
                // Redis's CPU caches and answer faster (a 1,000-key MGET takes about a third
                // less), which would favour whichever method runs second.
                let idx = rng.distinct(size, args.keys);
                // Each method's input is ready before its clock starts: the MGET's key list,
                // the gRPC request message (its encoding is timed, like the MGET's).
                let mkeys: Vec<&String> = idx.iter().map(|&i| &keys[i]).collect();
                let message = match m {
                    2 | 3 => Some(request(&users, &idx, at)),
                    5 | 6 => Some(pb::GetFeaturesRequest {
                        format: pb::ResponseFormat::ArrowIpc as i32,
                        ..request(&users, &idx, at)
                    }),
                    _ => None,
                };
                let started = Instant::now();
                match m {
                    0 => {
                        let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                            .arg(&mkeys)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                        assert!(got.iter().all(Option::is_some));
                    }
                    1 => {
                        let mut pipe = redis::pipe();
                        for &i in &idx {
                            let mut cmd = redis::cmd("HMGET");
                            cmd.arg(&feast_keys[i]);
                            for f in &feast_fields {
                                cmd.arg(f);
                            }
                            cmd.arg(&feast_ts_field);
                            pipe.add_command(cmd);
                        }
                        let got: Vec<Vec<Option<Vec<u8>>>> =
                            pipe.query_async(&mut conn).await.unwrap();
                        let decoded: usize = got
                            .iter()
                            .flat_map(|fields| &fields[..feast_fields.len()])
                            .filter_map(|v| v.as_deref().and_then(feast::decode))
                            .count();
                        assert!(decoded > 0 || size == 0);
                    }
                    2 | 3 => {
                        let c = if m == 2 {
                            &mut redis_client
                        } else {
                            &mut rocks_client
                        };
                        let resp = grpc(c, message.expect("a gRPC method")).await;
                        let g = &resp.groups[0];
                        assert!(
                            g.status.iter().all(|&s| s == pb::KeyStatus::Found as i32),
                            "every key is found"
                        );
                    }
                    4 => {
                        let got = fast_mget.mget(&mkeys, 1000).await.unwrap();
                        assert!(got.iter().all(|v| v.is_some()));
                    }
                    5 | 6 => {
                        let c = if m == 5 {
                            &mut redis_client
                        } else {
                            &mut rocks_client
                        };
                        let resp = grpc(c, message.expect("a gRPC method")).await;
                        let batch = arrow_batch(&resp.groups[0].arrow_ipc);
                        let status = batch.column(0).as_any();
                        let status = status
                            .downcast_ref::<arrow::array::UInt8Array>()
                            .expect("status is UInt8");
                        assert!(
                            status
                                .values()
                                .iter()
                                .all(|&s| s == pb::KeyStatus::Found as u8),
                            "every key is found"
                        );
                    }
                    7 => {
                        let r = health
                            .check(tonic_health::pb::HealthCheckRequest {
                                service: String::new(),
                            })
                            .await
                            .unwrap();
                        std::hint::black_box(r);
                    }
                    _ => unreachable!(),
                }
                if round >= warmup {
                    times[m].push(started.elapsed());
                }
            }
            if round + 1 == warmup {
                handler = [on_redis.handler_time(), on_rocks.handler_time()];
            }
        }
        let after = [on_redis.handler_time(), on_rocks.handler_time()];
        let handler_us: Vec<f64> = handler
            .iter()
            .zip(after)
            .map(|(b, a)| (a.0 - b.0) / (a.1 - b.1).max(1.0) * 1e6)
            .collect();
        for t in &mut times {
            t.sort();
        }
        // Without a baseline in the run, its ratios print as NaN.
        let base = |m: usize, p: f64| match times[m].is_empty() {
            true => f64::NAN,
            false => us(percentile(&times[m], p)),
        };
        let (base50, base99, fast50) = (base(0, 0.5), base(0, 0.99), base(4, 0.5));
        for (m, name) in methods.iter().enumerate() {
            let t = &times[m];
            if t.is_empty() {
                continue;
            }
            let p50 = percentile(t, 0.5);
            let p99 = percentile(t, 0.99);
            let mean = t.iter().sum::<Duration>() / t.len() as u32;
            let server = match m {
                2 | 5 => format!("{:.0}", handler_us[0]),
                3 | 6 => format!("{:.0}", handler_us[1]),
                _ => "—".to_string(),
            };
            println!(
                "| {size} | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {server} |",
                us(p50),
                us(p99),
                us(mean),
                us(p50) / base50,
                us(p50) / fast50,
                us(p99) / base99
            );
        }
    }

    // What the protobuf messages alone cost at 1,000 keys (in this process, no network):
    // the part of a call outside the server's handler that is not transport.
    {
        use prost::Message;
        let idx = Rng(9).distinct(1000.min(args.keys), args.keys);
        let rows = request_rows(&users, &idx, at);
        let req = request(&users, &idx, at);
        let resp = grpc(&mut redis_client, req.clone()).await;
        let reps = 300;
        let time = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed() / reps
        };
        let request_cost = |r: &pb::GetFeaturesRequest| {
            let bytes = r.encode_to_vec();
            let enc = time(&mut || {
                std::hint::black_box(r.encode_to_vec());
            });
            let dec = time(&mut || {
                std::hint::black_box(pb::GetFeaturesRequest::decode(bytes.as_slice()).unwrap());
            });
            format!(
                "{} bytes (encode {:.0}, decode {:.0})",
                bytes.len(),
                us(enc),
                us(dec)
            )
        };
        let (rows_cost, columns_cost) = (request_cost(&rows), request_cost(&req));
        let resp_bytes = resp.encode_to_vec();
        let enc_resp = time(&mut || {
            std::hint::black_box(resp.encode_to_vec());
        });
        let dec_resp = time(&mut || {
            std::hint::black_box(pb::GetFeaturesResponse::decode(resp_bytes.as_slice()).unwrap());
        });
        // The same response with Arrow IPC groups: the message around it, then the batch.
        let arrow_resp = grpc(
            &mut redis_client,
            pb::GetFeaturesRequest {
                format: pb::ResponseFormat::ArrowIpc as i32,
                ..req.clone()
            },
        )
        .await;
        let arrow_bytes = arrow_resp.encode_to_vec();
        let enc_arrow = time(&mut || {
            std::hint::black_box(arrow_resp.encode_to_vec());
        });
        let dec_arrow = time(&mut || {
            let r = pb::GetFeaturesResponse::decode(arrow_bytes.as_slice()).unwrap();
            std::hint::black_box(arrow_batch(&r.groups[0].arrow_ipc));
        });
        println!(
            "\nprotobuf at {} keys, µs: request with key columns {columns_cost}, with a message per key {rows_cost}; response {} bytes (encode {:.0}, decode {:.0}); with Arrow IPC {} bytes (encode {:.0}, decode into a record batch {:.0})",
            idx.len(),
            resp_bytes.len(),
            us(enc_resp),
            us(dec_resp),
            arrow_bytes.len(),
            us(enc_arrow),
            us(dec_arrow)
        );
    }

    // Same answers from both stores (a sanity check on what was timed).
    let idx = Rng(5).distinct(100.min(args.keys), args.keys);
    let a = grpc(&mut redis_client, request(&users, &idx, at)).await;
    let b = grpc(&mut rocks_client, request(&users, &idx, at)).await;
    let c = grpc(&mut redis_client, request_rows(&users, &idx, at)).await;
    assert_eq!(
        a.groups, b.groups,
        "redis and rocksdb serve the same values"
    );
    assert_eq!(a.groups, c.groups, "both key forms get the same values");

    println!(
        "\nStored bytes per entity ({GROUP}, mean over {} keys)",
        sample.len()
    );
    println!("| layout | key bytes | value bytes | Redis MEMORY USAGE | vs raw payload |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| raw feature payload (values only) | — | {:.1} | — | 1.00 |",
        raw as f64 / n
    );
    println!(
        "| fstore (one binary value per key) | {:.1} | {:.1} | {:.1} | {:.2} |",
        fstore_key as f64 / n,
        fstore_value as f64 / n,
        fstore_mem as f64 / n,
        fstore_value as f64 / raw as f64
    );
    println!(
        "| Feast (hash per entity, protobuf per feature; fields included) | {:.1} | {:.1} | {:.1} | {:.2} |",
        feast_keys[0].len() as f64,
        feast_value as f64 / n,
        feast_mem as f64 / n,
        feast_value as f64 / raw as f64
    );
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
