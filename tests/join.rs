//! The streaming joiner against the real broker: `fstore join` on the example's rows, produced
//! in arrival order (late within the lateness) to partitioned topics, makes exactly the samples
//! `fstore sample` makes from the same rows; so it does across kill -9 restarts, to Parquet and
//! to Kafka; bad and late messages go to the dead-letter topic with their reasons.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use fstore_core::codec::Value;
use fstore_core::rows::value_at;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::support::{assert_no_diffs, fstore, http_get, repo, service, text, unique};

/// The example's sources and the entity key each topic is partitioned by.
const TABLES: [(&str, &str); 3] = [
    ("impressions", "user_id"),
    ("user_profile", "user_id"),
    ("item_stats", "item_id"),
];

/// A test's topics (unique names) and folders.
pub struct Setup {
    pub brokers: String,
    pub work: tempfile::TempDir,
    pub registry: PathBuf,
    /// Source name → topic.
    pub topics: BTreeMap<String, String>,
    pub dead_letter: String,
}

impl Setup {
    pub async fn new(brokers: &str, partitions: &[(&str, i32)]) -> Setup {
        let work = tempfile::tempdir().unwrap();
        let registry = crate::support::apply_example(work.path(), "registry");
        let topics: BTreeMap<String, String> = TABLES
            .iter()
            .map(|(t, _)| (t.to_string(), unique(&format!("join-{t}"))))
            .collect();
        let dead_letter = unique("join-dead");
        let new: Vec<(&str, i32)> = TABLES
            .iter()
            .map(|(t, _)| {
                let n = partitions
                    .iter()
                    .find(|(name, _)| name == t)
                    .map_or(1, |(_, n)| *n);
                (topics[*t].as_str(), n)
            })
            .collect();
        crate::support::create_topics(brokers, &new).await;
        Setup {
            brokers: brokers.to_string(),
            work,
            registry,
            topics,
            dead_letter,
        }
    }

    /// A setup whose topics hold the example's rows in arrival order, keyed by entity.
    pub async fn with_example_rows(brokers: &str, partitions: &[(&str, i32)]) -> Setup {
        let setup = Setup::new(brokers, partitions).await;
        let events = repo().join("examples/ctr/data/events.jsonl");
        produce(brokers, &messages(&setup, &events)).await;
        setup
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// `fstore join ctr` with this setup's topics and registry, plus `extra`.
    pub fn join_command(&self, state: &str, sink: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fstore"));
        cmd.current_dir(self.work.path())
            .env_remove("FSTORE_REGISTRY")
            .args(["join", "ctr", "--registry"])
            .arg(&self.registry)
            .args(["--brokers", &self.brokers, "--state"])
            .arg(self.path(state))
            .args(["--sink", sink, "--dead-letter", &self.dead_letter]);
        for (s, t) in &self.topics {
            cmd.args(["--topic", &format!("{s}={t}")]);
        }
        cmd.args(extra);
        cmd
    }

    pub fn join(&self, state: &str, sink: &str, extra: &[&str]) -> Output {
        self.join_command(state, sink, extra).output().unwrap()
    }
}

/// Rows of an arrival-ordered `events.jsonl` (each with its `table`) as (topic, key, JSON).
pub fn messages(setup: &Setup, events: &Path) -> Vec<(String, String, String)> {
    fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|line| {
            let mut obj: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).unwrap();
            let table = obj.remove("table").unwrap();
            let table = table.as_str().unwrap();
            let key_col = TABLES.iter().find(|(t, _)| *t == table).unwrap().1;
            let key = match &obj[key_col] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (
                setup.topics[table].clone(),
                key,
                serde_json::Value::Object(obj).to_string(),
            )
        })
        .collect()
}

/// Reorders messages by event time plus a random delay below `jitter_us`: every row then
/// arrives at most `jitter_us` behind any row before it. Rows without an event time keep the
/// time of the row before them.
pub fn shuffle_within(
    msgs: Vec<(String, String, String)>,
    jitter_us: i64,
    seed: u64,
) -> Vec<(String, String, String)> {
    let mut rng = fstore_core::xorshift::XorShift::new(seed | 1);
    let mut last = i64::MIN;
    let mut keyed: Vec<(i64, usize, (String, String, String))> = msgs
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let v: serde_json::Value = serde_json::from_str(&m.2).unwrap_or_default();
            if let Some(ts) = v["ts"]
                .as_str()
                .and_then(|t| fstore_core::json::parse_timestamp(t).ok())
            {
                last = ts;
            }
            (
                last.saturating_add(rng.below(jitter_us as u64) as i64),
                i,
                m,
            )
        })
        .collect();
    keyed.sort_by_key(|(t, i, _)| (*t, *i));
    keyed.into_iter().map(|(_, _, m)| m).collect()
}

/// Produces messages in order, each keyed (so a key stays in one partition).
pub async fn produce(brokers: &str, msgs: &[(String, String, String)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for chunk in msgs.chunks(500) {
        let sends = chunk.iter().map(|(topic, key, payload)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e).expect("produce acked");
        }
    }
}

/// A message read back: key, payload, headers.
pub type Consumed = (Option<Vec<u8>>, Vec<u8>, HashMap<String, String>);

/// Every message of a topic.
pub fn consume_all(brokers: &str, topic: &str) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("join-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for &p in &partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends.insert(p, high);
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut next: BTreeMap<i32, i64> = partitions.iter().map(|&p| (p, 0)).collect();
    let mut quiet = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "reading {topic} took too long");
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.unwrap();
                next.insert(m.partition(), m.offset() + 1);
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for i in 0..h.count() {
                        let h = h.get(i);
                        headers.insert(
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                ));
                quiet = Instant::now();
            }
            None => {
                let reached = next.iter().all(|(p, o)| *o >= ends[p]);
                if reached && quiet.elapsed() > Duration::from_millis(700) {
                    return out;
                }
            }
        }
    }
}

/// Every row of the Parquet files under `dir` (dot-files skipped), or of the file `dir`.
pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Vec::new();
    }
    let mut stack = vec![dir.to_path_buf()];
    if dir.is_file() {
        files.push(stack.remove(0));
    }
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let hidden = p.file_name().unwrap().to_string_lossy().starts_with('.');
            if p.is_dir() {
                stack.push(p);
            } else if !hidden && p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            fs::File::open(&f).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        out.extend(r.map(|b| b.unwrap()));
    }
    out
}

/// Samples keyed by request_id: column name → value per row. Panics on a duplicate id.
pub fn by_request_id(batches: &[RecordBatch]) -> BTreeMap<i64, Vec<(String, Value)>> {
    let mut out = BTreeMap::new();
    for b in batches {
        let ids = b
            .column_by_name("request_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let row: Vec<(String, Value)> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| (f.name().clone(), value_at(c, r).unwrap()))
                .collect();
            let prev = out.insert(ids.value(r), row);
            assert!(prev.is_none(), "request_id {} twice", ids.value(r));
        }
    }
    out
}

/// Samples as JSON messages (the Kafka sink), keyed by request_id.
pub fn json_by_request_id(
    msgs: &[Consumed],
    columns: &[fstore_registry::model::Column],
) -> BTreeMap<i64, Vec<(String, Value)>> {
    let mut out = BTreeMap::new();
    for (_, payload, _) in msgs {
        let values = fstore_core::json::decode_row(columns, payload).unwrap();
        let id = match values[0] {
            Value::Int64(i) => i,
            ref v => panic!("request_id {v:?}"),
        };
        let row = columns
            .iter()
            .zip(values)
            .map(|(c, v)| (c.name.clone(), v))
            .collect();
        assert!(out.insert(id, row).is_none(), "request_id {id} twice");
    }
    out
}

/// Fails with the differing cells (bitwise; NULL is not NaN) of two sample sets.
pub fn assert_same(
    got: &BTreeMap<i64, Vec<(String, Value)>>,
    want: &BTreeMap<i64, Vec<(String, Value)>>,
    columns: Option<&[&str]>,
) {
    let mut diffs = Vec::new();
    let mut cells = 0;
    for id in want.keys().filter(|k| !got.contains_key(k)) {
        diffs.push(format!(
            "request_id {id}: missing from the stream's samples"
        ));
    }
    for id in got.keys().filter(|k| !want.contains_key(k)) {
        diffs.push(format!("request_id {id}: only in the stream's samples"));
    }
    for (id, w) in want {
        let Some(g) = got.get(id) else { continue };
        for (name, wv) in w {
            if columns.is_some_and(|c| !c.contains(&name.as_str())) {
                continue;
            }
            cells += 1;
            let gv = g.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            if gv != Some(wv) {
                diffs.push(format!(
                    "request_id {id} {name}: stream {gv:?}, batch {wv:?}"
                ));
            }
        }
    }
    assert!(cells > 0 || want.is_empty(), "no cells compared");
    assert_no_diffs(diffs, cells);
}

/// `fstore sample ctr` over the example's Parquet files (or `sources`).
pub fn batch_samples(setup: &Setup, sources: &[(&str, PathBuf)]) -> Vec<RecordBatch> {
    batch_run(setup, sources).0
}

/// [`batch_samples`], and what the command printed.
pub fn batch_run(setup: &Setup, sources: &[(&str, PathBuf)]) -> (Vec<RecordBatch>, String) {
    let out = setup.path(&unique("batch"));
    let mut args: Vec<String> = vec![
        "sample".into(),
        "ctr".into(),
        "--registry".into(),
        setup.registry.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for (s, p) in sources {
        args.push("--source".into());
        args.push(format!("{s}={}", p.display()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = fstore(&refs, setup.work.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (read_parquet_dir(&out), text(&o))
}

/// Per join, the events a run printed as without a row or expired by TTL, added up: the
/// events whose features of that join are NULL. (How they split between the two differs: the
/// joiner's garbage collection drops a row that has expired for every later event, and a
/// later event of that key then counts as without a row.)
fn null_joins(printed: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in printed.lines() {
        let Some(rest) = l.trim().strip_prefix("join ") else {
            continue;
        };
        let Some((alias, rest)) = rest.split_once(": ") else {
            continue;
        };
        let Some((none, rest)) = rest.split_once(" events without a row, ") else {
            continue;
        };
        let Some((expired, _)) = rest.split_once(" expired by TTL") else {
            continue;
        };
        let n = none.parse::<u64>().unwrap() + expired.parse::<u64>().unwrap();
        out.insert(alias.to_string(), n);
    }
    out
}

fn example_sources() -> Vec<(&'static str, PathBuf)> {
    sources_in(&repo().join("examples/ctr/data"))
}

/// The example's sources as Parquet files of `dir` (as `fstore gen ctr` writes them).
fn sources_in(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    ["impressions", "user_profile", "item_stats"]
        .iter()
        .map(|s| (*s, dir.join(format!("{s}.parquet"))))
        .collect()
}

fn ok(o: &Output) -> String {
    let t = text(o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    t
}

#[tokio::test]
async fn stream_samples_equal_the_batch_on_the_example_data() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let setup = Setup::new(
        &brokers,
        &[("impressions", 3), ("user_profile", 3), ("item_stats", 2)],
    )
    .await;
    // Shuffled within 14 minutes of event time (the joiner allows 15), a new order each run.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("arrival order seed {seed}");
    let msgs = shuffle_within(
        messages(&setup, &repo().join("examples/ctr/data/events.jsonl")),
        14 * 60_000_000,
        seed,
    );
    produce(&brokers, &msgs).await;
    let out = setup.path("samples");
    let t = ok(&setup.join(
        "state",
        &format!("parquet://{}", out.display()),
        &["--until-end", "--lateness", "15m"],
    ));
    assert!(t.contains("0 dead letters"), "{t}");
    eprintln!("{t}");
    let got = by_request_id(&read_parquet_dir(&out));
    let (batch, printed) = batch_run(&setup, &example_sources());
    let want = by_request_id(&batch);
    assert_eq!(got.len(), want.len());
    assert_same(&got, &want, None);
    // Both count the same events whose join gave NULL features (a NULL key among them).
    assert_eq!(null_joins(&t), null_joins(&printed));
    assert_eq!(null_joins(&t).len(), 3, "{t}");

    // The files are what `fstore sample` writes: same schema and spec metadata.
    let files = read_parquet_dir(&out);
    let batch = batch_samples(&setup, &example_sources());
    assert_eq!(files[0].schema(), batch[0].schema());

    // State is garbage-collected down to what later events could join: per group, the keys
    // whose latest row is within the TTL (row groups) or the longest window (window groups)
    // of the frontier, here the end of the data.
    {
        let store = fstore_joiner::store::StateStore::open(&setup.path("state")).unwrap();
        let mut stored: BTreeMap<String, usize> = BTreeMap::new();
        for (k, _) in store.scan(fstore_joiner::store::CF_KEYS).unwrap() {
            let z = k.iter().position(|&b| b == 0).unwrap();
            *stored
                .entry(String::from_utf8(k[..z].to_vec()).unwrap())
                .or_default() += 1;
        }
        assert!(
            store
                .scan(fstore_joiner::store::CF_EVENTS)
                .unwrap()
                .is_empty()
        );
        let mut latest: BTreeMap<(&str, String), i64> = BTreeMap::new();
        let mut end = i64::MIN;
        for (_, _, payload) in &msgs {
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            let Some(ts) = v["ts"].as_str() else { continue };
            let ts = fstore_core::json::parse_timestamp(ts).unwrap();
            end = end.max(ts);
            let (group, key) = if v.get("request_id").is_some() {
                ("user_activity", v["user_id"].to_string())
            } else if v.get("age").is_some() {
                ("user_profile", v["user_id"].to_string())
            } else {
                ("item_stats", v["item_id"].to_string())
            };
            if key == "null" {
                continue;
            }
            let l = latest.entry((group, key)).or_insert(i64::MIN);
            *l = (*l).max(ts);
        }
        let day = 86_400_000_000i64;
        let frontier = end + 1;
        let mut alive: BTreeMap<String, usize> = BTreeMap::new();
        for ((group, _), ts) in &latest {
            let keep = match *group {
                "user_profile" => frontier - ts <= 30 * day,
                _ => frontier - ts <= 7 * day,
            };
            if keep {
                *alive.entry(group.to_string()).or_default() += 1;
            }
        }
        assert_eq!(stored, alive, "keys kept per group");
    }

    // A second run on the same state reads nothing new and writes nothing again.
    let t = ok(&setup.join(
        "state",
        &format!("parquet://{}", out.display()),
        &["--until-end", "--lateness", "15m"],
    ));
    assert!(t.contains(&format!("{} samples", got.len())), "{t}");
    assert_eq!(by_request_id(&read_parquet_dir(&out)).len(), got.len());

    // Another state folder writing to the same sink leaves this run's files alone (its own
    // are named by its run id), so the folder then holds every sample twice.
    let files = |dir: &Path| -> std::collections::BTreeSet<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().path())
            .collect()
    };
    let before = files(&out);
    ok(&setup.join(
        "state-again",
        &format!("parquet://{}", out.display()),
        &["--until-end", "--lateness", "15m"],
    ));
    let after = files(&out);
    assert!(
        before.is_subset(&after),
        "files of the first run were removed"
    );
    assert_eq!(after.len(), 2 * before.len());
}

/// Runs the joiner to the end, killing it with SIGKILL at each of `kills`: after that many
/// checkpoints of the run (read from its debug log) plus that many milliseconds, so kills land
/// between and inside checkpoints. Returns how many kills hit a running process.
fn run_with_kills(
    mut cmd: impl FnMut() -> Command,
    kills: &[(usize, u64)],
    mut progress: impl FnMut() -> usize,
) -> usize {
    use std::io::BufRead;
    let mut hit = 0;
    for &(checkpoints, ms) in kills {
        let mut child = cmd()
            .env("FSTORE_LOG", "fstore_joiner=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("\"message\":\"checkpoint\"") {
                    let _ = tx.send(());
                }
            }
        });
        let mut seen = 0;
        while seen < checkpoints {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(()) => seen += 1,
                Err(_) => break, // exited (or hung: the wait below tells)
            }
        }
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            hit += 1;
        }
        let status = child.wait().unwrap();
        assert!(
            status.success() || status.code().is_none(),
            "the joiner failed before its kill: {status:?}"
        );
        eprintln!(
            "killed after {seen} checkpoints + {ms} ms; output so far: {}",
            progress()
        );
    }
    let o = cmd().output().unwrap();
    ok(&o);
    hit
}

/// Kill points spread over a run, different each time (the test's clock), printed for replay.
fn kill_points() -> Vec<(usize, u64)> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut rng = fstore_core::xorshift::XorShift::new(seed | 1);
    let mut next = || rng.next_u64();
    let points: Vec<(usize, u64)> = (0..3)
        .map(|_| (1 + (next() % 5) as usize, next() % 25))
        .collect();
    eprintln!("kill -9 after (checkpoints, ms): {points:?}");
    points
}

/// A bounded run that checkpoints often and reads small steps, so kills land mid-run; and
/// compacts its rows in memory at every checkpoint that can.
const KILL_RUN: [&str; 9] = [
    "--until-end",
    "--lateness",
    "15m",
    "--checkpoint-interval",
    "50ms",
    "--max-batch",
    "40",
    "--compact-rows",
    "1",
];

#[tokio::test]
async fn kill_9_restarts_give_the_same_parquet_samples() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let setup = Setup::with_example_rows(
        &brokers,
        &[("impressions", 3), ("user_profile", 2), ("item_stats", 1)],
    )
    .await;
    let out = setup.path("samples");
    let sink = format!("parquet://{}", out.display());
    let hit = run_with_kills(
        || setup.join_command("state", &sink, &KILL_RUN),
        &kill_points(),
        || {
            read_parquet_dir(&out)
                .iter()
                .map(RecordBatch::num_rows)
                .sum()
        },
    );
    eprintln!("{hit} of 3 kills hit a running joiner");
    assert!(hit >= 1, "no kill landed while the joiner ran");
    let got = by_request_id(&read_parquet_dir(&out));
    let want = by_request_id(&batch_samples(&setup, &example_sources()));
    assert_same(&got, &want, None);
}

#[tokio::test]
async fn kill_9_restarts_give_the_same_kafka_samples_once_each() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let setup = Setup::with_example_rows(
        &brokers,
        &[("impressions", 2), ("user_profile", 2), ("item_stats", 2)],
    )
    .await;
    let topic = unique("join-samples");
    let sink = format!("kafka://{topic}");
    // Two joiner threads, each with its own checkpoints and outbox, killed together.
    let mut args = KILL_RUN.to_vec();
    args.extend(["--threads", "2", "--broadcast", "item_stats"]);
    let hit = run_with_kills(
        || setup.join_command("state", &sink, &args),
        &kill_points(),
        || consume_all(&brokers, &topic).len(),
    );
    eprintln!("{hit} of 3 kills hit a running joiner");
    assert!(hit >= 1, "no kill landed while the joiner ran");
    let defs = fstore_registry::Registry::new(&setup.registry)
        .require_current()
        .unwrap()
        .definitions;
    let columns: Vec<fstore_registry::model::Column> = defs.specs["ctr"]
        .columns
        .iter()
        .map(|c| fstore_registry::model::Column {
            name: c.name.clone(),
            dtype: c.dtype.clone(),
        })
        .collect();
    let msgs = consume_all(&brokers, &topic);
    // Keyed by the label event's key (user_id), identified by the event's position.
    for (key, payload, headers) in &msgs {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(
            key.as_deref().map(String::from_utf8_lossy).as_deref(),
            v["user_id"].as_str(),
            "sample key"
        );
        assert!(headers["fstore-id"].starts_with("ctr:"), "{headers:?}");
    }
    let got = json_by_request_id(&msgs, &columns);
    let want = by_request_id(&batch_samples(&setup, &example_sources()));
    assert_eq!(msgs.len(), want.len(), "every sample exactly once");
    assert_same(&got, &want, None);
}

/// Each key's online value as a request at `at` sees it, per group, from a namespace of a
/// RocksDB online store: key → (found, features). EXPIRED and NOT_FOUND both read "absent":
/// the joiner keeps a key whose row expired, a materialization leaves it out.
async fn online_view(
    url: &str,
    namespace: &str,
    registry: &Path,
    keys: &BTreeMap<&str, Vec<Value>>,
    at: i64,
) -> BTreeMap<(String, String), (bool, Vec<Value>)> {
    use fstore_online::layout::{GroupLayout, KeyStatus};
    let defs = fstore_registry::Registry::new(registry)
        .require_current()
        .unwrap()
        .definitions;
    let store = fstore_online::OnlineStore::open(url).await.unwrap();
    let mut out = BTreeMap::new();
    for (group, entity_keys) in [
        ("user_profile", &keys["user"]),
        ("user_activity", &keys["user"]),
        ("item_stats", &keys["item"]),
    ] {
        let layout = GroupLayout::new(namespace, &defs, group).unwrap();
        let online_keys: Vec<String> = entity_keys
            .iter()
            .map(|k| layout.key(std::slice::from_ref(k)).unwrap())
            .collect();
        let got = store.get(&online_keys).await.unwrap();
        for (k, v) in entity_keys.iter().zip(got.iter()) {
            let (status, _, values) = layout.values_at(v, at).unwrap();
            // A window group's status only says whether the key has rows stored (the joiner
            // keeps a key's latest row, a materialization only rows within the window);
            // its features are what a request sees.
            let found = group != "user_activity" && status == KeyStatus::Found;
            out.insert((group.to_string(), format!("{k:?}")), (found, values));
        }
    }
    out
}

#[tokio::test]
async fn bad_and_late_messages_go_to_the_dead_letter_topic_and_online_stays_fresh() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let setup = Setup::new(&brokers, &[]).await;
    let t = &setup.topics;
    let events = repo().join("examples/ctr/data/events.jsonl");
    // Bad messages first in their topics, then the example's rows.
    let bad: Vec<(String, String, String, &str)> = vec![
        (
            t["user_profile"].clone(),
            "user_bad".into(),
            "{oops".into(),
            "undecodable",
        ),
        (
            t["user_profile"].clone(),
            "user_3".into(),
            r#"{"user_id":"user_3","ts":"2024-01-01T00:00:00Z","age":"old"}"#.into(),
            "undecodable",
        ),
        (
            t["impressions"].clone(),
            "user_1".into(),
            r#"{"request_id":999999,"user_id":"user_1","item_id":5,"clicked":true}"#.into(),
            "missing-event-time",
        ),
        (
            t["user_profile"].clone(),
            "nobody".into(),
            r#"{"user_id":null,"ts":"2024-01-05T00:00:00Z","age":3}"#.into(),
            "null-key",
        ),
        (
            t["item_stats"].clone(),
            "7".into(),
            "[1,2]".into(),
            "undecodable",
        ),
        (
            t["impressions"].clone(),
            "user_2".into(),
            r#"{"request_id":777777,"user_id":"user_2","item_id":5,"ts":"2999-01-01T00:00:00Z","clicked":true}"#.into(),
            "future-event-time",
        ),
    ];
    let mut msgs: Vec<(String, String, String)> = bad
        .iter()
        .map(|(t, k, p, _)| (t.clone(), k.clone(), p.clone()))
        .collect();
    msgs.extend(messages(&setup, &events));
    produce(&brokers, &msgs).await;

    let out = setup.path("samples");
    let sink = format!("parquet://{}", out.display());
    let online = format!("rocksdb://{}", setup.path("online").display());
    // First live (no end): metrics count the dead letters as they come; SIGTERM commits and
    // stops cleanly. Then a bounded run on the same state finishes the job.
    {
        use std::io::BufRead;
        let mut live = setup
            .join_command(
                "state",
                &sink,
                &[
                    "--lateness",
                    "15m",
                    "--online",
                    &online,
                    "--namespace",
                    "j",
                    "--metrics",
                    "127.0.0.1:0",
                    "--checkpoint-interval",
                    "100ms",
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(live.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(url.ends_with("/metrics"), "{line}");
        let want_messages = format!("fstore_join_messages_total {}", msgs.len());
        let t0 = Instant::now();
        let body = loop {
            let body = http_get(&url);
            if body.contains(&want_messages) {
                break body;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{body}");
            std::thread::sleep(Duration::from_millis(100));
        };
        for needle in [
            "fstore_join_dead_letters_total{kind=\"undecodable\"} 3",
            "fstore_join_dead_letters_total{kind=\"missing-event-time\"} 1",
            "fstore_join_dead_letters_total{kind=\"null-key\"} 1",
            "fstore_join_dead_letters_total{kind=\"future-event-time\"} 1",
            "fstore_join_late_total 0",
            "fstore_join_frontier_seconds 17",
        ] {
            assert!(body.contains(needle), "{needle} not in\n{body}");
        }
        Command::new("kill")
            .args(["-TERM", &live.id().to_string()])
            .status()
            .unwrap();
        let status = live.wait().unwrap();
        assert!(
            status.success(),
            "SIGTERM stops the joiner cleanly: {status:?}"
        );
    }
    let args = [
        "--until-end",
        "--lateness",
        "15m",
        "--online",
        &online,
        "--namespace",
        "j",
    ];
    let first = ok(&setup.join("state", &sink, &args));
    assert!(first.contains(", 6 dead letters, 0 late"), "{first}");
    let want = by_request_id(&batch_samples(&setup, &example_sources()));
    assert_same(&by_request_id(&read_parquet_dir(&out)), &want, None);

    let dead = consume_all(&brokers, &setup.dead_letter);
    assert_eq!(dead.len(), bad.len(), "{dead:?}");
    for (topic, key, payload, kind) in &bad {
        let d = dead
            .iter()
            .find(|(k, p, _)| k.as_deref() == Some(key.as_bytes()) && p == payload.as_bytes())
            .unwrap_or_else(|| panic!("no dead letter for {payload}"));
        assert_eq!(d.2["fstore-kind"], *kind, "{payload}: {:?}", d.2);
        assert_eq!(d.2["fstore-topic"], *topic);
        assert!(!d.2["fstore-reason"].is_empty());
    }
    let reason = |kind: &str| {
        dead.iter()
            .find(|d| d.2["fstore-kind"] == kind)
            .map(|d| d.2["fstore-reason"].clone())
            .unwrap()
    };
    assert!(reason("missing-event-time").contains("no event time (column \"ts\")"));
    assert!(reason("null-key").contains("the key (user_id) is NULL"));
    assert!(
        dead.iter()
            .any(|d| d.2["fstore-reason"].contains("expected INT64, got \"old\""))
    );

    // The joiner's online values equal a materialization as of the end, for every key.
    let mut max_ts = i64::MIN;
    let mut users = std::collections::BTreeSet::new();
    let mut items = std::collections::BTreeSet::new();
    for line in fs::read_to_string(&events).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(ts) = v["ts"].as_str() {
            max_ts = max_ts.max(fstore_core::json::parse_timestamp(ts).unwrap());
        }
        if let Some(u) = v["user_id"].as_str() {
            users.insert(u.to_string());
        }
        if let Some(i) = v["item_id"].as_i64() {
            items.insert(i);
        }
    }
    let keys: BTreeMap<&str, Vec<Value>> = BTreeMap::from([
        (
            "user",
            users.iter().map(|u| Value::String(u.clone())).collect(),
        ),
        ("item", items.iter().map(|i| Value::Int64(*i)).collect()),
    ]);
    let end = fstore_core::json::format_timestamp(max_ts);
    let mut mat = vec![
        "materialize".to_string(),
        "user_profile".into(),
        "item_stats".into(),
        "user_activity".into(),
        "--registry".into(),
        setup.registry.display().to_string(),
        "--online".into(),
        online.clone(),
        "--namespace".into(),
        "m".into(),
        "--as-of".into(),
        end,
    ];
    for (s, p) in example_sources() {
        mat.push("--source".into());
        mat.push(format!("{s}={}", p.display()));
    }
    let refs: Vec<&str> = mat.iter().map(String::as_str).collect();
    ok(&fstore(&refs, setup.work.path()));
    for at in [max_ts + 1, max_ts + 86_400_000_000 * 3 / 2] {
        let joined = online_view(&online, "j", &setup.registry, &keys, at).await;
        let materialized = online_view(&online, "m", &setup.registry, &keys, at).await;
        let found = joined.values().filter(|(f, _)| *f).count();
        assert!(found > 100, "{found} keys found online");
        let diffs: Vec<String> = joined
            .iter()
            .filter(|(k, v)| materialized.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k:?}: joiner {v:?}, materialize {:?}", materialized.get(k)))
            .collect();
        assert_no_diffs(diffs, joined.len());
    }

    // Late rows: dead-lettered, no sample, but the online store takes them.
    let late_ts = "2024-01-10T00:00:00Z";
    let late = vec![
        (
            t["user_profile"].clone(),
            "user_late".to_string(),
            format!(
                r#"{{"user_id":"user_late","ts":"{late_ts}","age":33,"city":"Late","score":1.5}}"#
            ),
        ),
        (
            t["impressions"].clone(),
            "user_0".to_string(),
            format!(
                r#"{{"request_id":888888,"user_id":"user_0","item_id":5,"ts":"{late_ts}","clicked":true}}"#
            ),
        ),
    ];
    produce(&brokers, &late).await;
    let second = ok(&setup.join("state", &sink, &args));
    assert!(second.contains(", 8 dead letters, 2 late"), "{second}");
    assert_same(&by_request_id(&read_parquet_dir(&out)), &want, None);
    let dead = consume_all(&brokers, &setup.dead_letter);
    let lates: Vec<_> = dead
        .iter()
        .filter(|d| d.2["fstore-kind"] == "late")
        .collect();
    assert_eq!(lates.len(), 2);
    assert!(
        lates
            .iter()
            .all(|d| d.2["fstore-reason"].contains("is behind the frontier"))
    );
    let at = fstore_core::json::parse_timestamp(late_ts).unwrap() + 1;
    let keys = BTreeMap::from([
        ("user", vec![Value::String("user_late".into())]),
        ("item", vec![]),
    ]);
    let view = online_view(&online, "j", &setup.registry, &keys, at).await;
    let (found, values) = &view[&(
        "user_profile".to_string(),
        "String(\"user_late\")".to_string(),
    )];
    assert!(found, "the late row reached the online store");
    assert_eq!(values[0], Value::Int64(33));
}

#[tokio::test]
async fn two_instances_or_threads_split_the_partitions_and_together_equal_the_batch() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    // Events and profiles keyed by user_id with equal partition counts (co-partitioned);
    // item stats keyed by item_id, read whole by both instances.
    let setup = Setup::with_example_rows(
        &brokers,
        &[("impressions", 4), ("user_profile", 4), ("item_stats", 3)],
    )
    .await;
    let out = setup.path("samples");
    let sink = format!("parquet://{}", out.display());
    let run = |i: u32| {
        let instance = format!("{i}/2");
        setup
            .join_command(
                &format!("state-{i}"),
                &sink,
                &[
                    "--until-end",
                    "--lateness",
                    "15m",
                    "--instance",
                    &instance,
                    "--broadcast",
                    "item_stats",
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(0), run(1));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ta, tb) = (ok(&a), ok(&b));
    let samples = |t: &str| -> usize {
        let s = t.split(" samples,").next().unwrap();
        s.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (na, nb) = (samples(&ta), samples(&tb));
    assert!(
        na > 0 && nb > 0,
        "both instances emit: {na} and {nb}\n{ta}\n{tb}"
    );
    let got = by_request_id(&read_parquet_dir(&out));
    let want = by_request_id(&batch_samples(&setup, &example_sources()));
    assert_eq!(na + nb, want.len());
    assert_same(&got, &want, None);

    // The same split inside one process: two joiner threads.
    let threaded_out = setup.path("samples-threads");
    let threaded_sink = format!("parquet://{}", threaded_out.display());
    let threaded = |threads: &str| {
        setup.join(
            "state-threads",
            &threaded_sink,
            &[
                "--until-end",
                "--lateness",
                "15m",
                "--threads",
                threads,
                "--broadcast",
                "item_stats",
            ],
        )
    };
    let t = ok(&threaded("2"));
    assert!(t.contains("summed over 2 threads"), "{t}");
    assert_eq!(samples(&t), want.len(), "{t}");
    assert!(setup.path("state-threads/thread-1").is_dir());
    assert_eq!(
        std::fs::read_to_string(setup.path("state-threads/THREADS")).unwrap(),
        "2\n"
    );
    assert_same(
        &by_request_id(&read_parquet_dir(&threaded_out)),
        &want,
        None,
    );
    // A state folder keeps its thread count: its partitions are split that way.
    for other in ["1", "3"] {
        let refused = threaded(other);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        assert!(
            text(&refused).contains("was started with --threads 2"),
            "{}",
            text(&refused)
        );
    }
    let refused = setup.join("state-0", &sink, &["--until-end", "--threads", "2"]);
    assert!(
        text(&refused).contains("was started with --threads 1"),
        "{}",
        text(&refused)
    );
    // Run again to its end, it finds nothing new: the same samples, none twice.
    let again = ok(&threaded("2"));
    assert_eq!(samples(&again), want.len(), "{again}");
    assert_same(
        &by_request_id(&read_parquet_dir(&threaded_out)),
        &want,
        None,
    );

    // The events are never broadcast: every instance would emit every sample.
    let both = setup.join(
        "state-bad",
        &sink,
        &[
            "--until-end",
            "--instance",
            "0/2",
            "--broadcast",
            "impressions",
        ],
    );
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    assert!(text(&both).contains("never broadcast"), "{}", text(&both));

    // A source split between instances must be partitioned like the events.
    let bad = setup.join("state-bad", &sink, &["--until-end", "--instance", "0/2"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("source \"item_stats\" has 3 partitions, the events' topic 4"),
        "{}",
        text(&bad)
    );
}

#[tokio::test]
async fn stream_samples_reproduce_the_contract_vectors() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let Some(contract) = crate::support::contract_dir() else {
        return;
    };
    let contract = contract.join("basic");
    let setup = Setup::new(
        &brokers,
        &[("impressions", 2), ("user_profile", 2), ("item_stats", 2)],
    )
    .await;
    // The contract's own arrival order: mostly by time, some rows up to 10 minutes late.
    produce(&brokers, &messages(&setup, &contract.join("events.jsonl"))).await;
    let out = setup.path("samples");
    let t = ok(&setup.join(
        "state",
        &format!("parquet://{}", out.display()),
        &["--until-end", "--lateness", "10m"],
    ));
    assert!(t.contains("0 dead letters"), "{t}");
    let ctx = datafusion::prelude::SessionContext::new();
    let expected = ctx
        .read_parquet(
            contract.join("expected.parquet").to_str().unwrap(),
            Default::default(),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let want = by_request_id(&expected);
    let got = by_request_id(&read_parquet_dir(&out));
    let columns: Vec<String> = expected[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    assert_eq!(columns.len(), 12);
    assert_same(&got, &want, Some(&columns));
}

/// A feature expression or a transform that fails at run time (here an integer division by
/// zero) dead-letters just the row or event at fault: the other rows still feed their keys and
/// the other events still make their samples, with the values the definitions give.
#[tokio::test]
async fn rows_and_events_whose_expressions_fail_are_dead_lettered_alone() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let defs = work.path().join("defs");
    fs::create_dir_all(&defs).unwrap();
    fs::write(
        defs.join("defs.sql"),
        "CREATE ENTITY user KEY (user_id STRING);
         CREATE SOURCE ev (request_id INT64, user_id STRING, ts TIMESTAMP, x INT64, y BOOLEAN)
             EVENT TIME ts KAFKA TOPIC 'ev';
         CREATE SOURCE rows (user_id STRING, ts TIMESTAMP, a INT64, b INT64)
             EVENT TIME ts KAFKA TOPIC 'rows';
         CREATE FEATURE GROUP g ON user FROM rows AS SELECT a / b AS q, a;
         CREATE SAMPLE SPEC s FROM ev JOIN g LABEL y
         AS SELECT request_id, user_id, ts, y, q, a, 10 / x AS t;",
    )
    .unwrap();
    let registry = crate::support::apply(work.path(), &defs, "registry");
    let (ev, rows, dead) = (unique("fail-ev"), unique("fail-rows"), unique("fail-dead"));
    crate::support::create_topics(&brokers, &[(&ev, 1), (&rows, 1)]).await;
    let msg =
        |topic: &str, key: &str, json: &str| (topic.to_string(), key.to_string(), json.to_string());
    let bad_row = r#"{"user_id":"u2","ts":"2024-01-01T00:00:00Z","a":1,"b":0}"#;
    let bad_event = r#"{"request_id":3,"user_id":"u1","ts":"2024-01-01T00:02:00Z","x":0,"y":true}"#;
    produce(
        &brokers,
        &[
            msg(
                &rows,
                "u1",
                r#"{"user_id":"u1","ts":"2024-01-01T00:00:00Z","a":6,"b":2}"#,
            ),
            msg(&rows, "u2", bad_row),
            msg(
                &ev,
                "u1",
                r#"{"request_id":1,"user_id":"u1","ts":"2024-01-01T00:01:00Z","x":1,"y":true}"#,
            ),
            msg(
                &ev,
                "u2",
                r#"{"request_id":2,"user_id":"u2","ts":"2024-01-01T00:01:00Z","x":2,"y":false}"#,
            ),
            msg(&ev, "u1", bad_event),
        ],
    )
    .await;
    let out = work.path().join("samples");
    let run = Command::new(env!("CARGO_BIN_EXE_fstore"))
        .current_dir(work.path())
        .env_remove("FSTORE_REGISTRY")
        .args(["join", "s", "--registry"])
        .arg(&registry)
        .args(["--brokers", &brokers, "--state"])
        .arg(work.path().join("state"))
        .arg("--sink")
        .arg(format!("parquet://{}", out.display()))
        .args(["--dead-letter", &dead, "--until-end", "--lateness", "1h"])
        .args([
            "--topic",
            &format!("ev={ev}"),
            "--topic",
            &format!("rows={rows}"),
        ])
        .output()
        .unwrap();
    let summary = ok(&run);
    assert!(summary.contains(", 2 dead letters, 0 late"), "{summary}");

    let samples = by_request_id(&read_parquet_dir(&out));
    let cell = |id: i64, name: &str| {
        samples[&id]
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(samples.keys().copied().collect::<Vec<_>>(), [1, 2]);
    // u1's row: 6 / 2; u2's only row failed, so u2 has no row.
    assert_eq!(cell(1, "q"), Value::Int64(3));
    assert_eq!(cell(1, "a"), Value::Int64(6));
    assert_eq!(cell(1, "t"), Value::Int64(10));
    assert_eq!(cell(2, "q"), Value::Null);
    assert_eq!(cell(2, "a"), Value::Null);
    assert_eq!(cell(2, "t"), Value::Int64(5));

    let dead = consume_all(&brokers, &dead);
    assert_eq!(dead.len(), 2, "{dead:?}");
    let find = |kind: &str| {
        dead.iter()
            .find(|d| d.2["fstore-kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} dead letter in {dead:?}"))
    };
    let expression = find("expression");
    assert_eq!(expression.1, bad_row.as_bytes(), "the original bytes");
    assert_eq!(expression.0.as_deref(), Some(&b"u2"[..]));
    assert_eq!(expression.2["fstore-topic"], rows);
    let reason = &expression.2["fstore-reason"];
    assert!(
        reason.contains("group \"g\": expression failed") && reason.contains("Divide by zero"),
        "{reason}"
    );
    let transform = find("transform");
    assert_eq!(transform.2["fstore-topic"], ev);
    assert_eq!(transform.2["fstore-offset"], "2");
    let reason = &transform.2["fstore-reason"];
    assert!(
        reason.contains("spec \"s\": a transform failed") && reason.contains("Divide by zero"),
        "{reason}"
    );
    // The event's row as the joiner read it.
    let row = fstore_core::json::decode_row(
        &[
            fstore_registry::model::Column {
                name: "request_id".into(),
                dtype: fstore_registry::DataType::Int64,
            },
            fstore_registry::model::Column {
                name: "x".into(),
                dtype: fstore_registry::DataType::Int64,
            },
        ],
        &transform.1,
    )
    .unwrap();
    assert_eq!(row, [Value::Int64(3), Value::Int64(0)]);
}

/// Groups of thousands of keys are encoded on threads of their own at a checkpoint: a run
/// over the first half of generated data (its checkpoints write every key it touched) and a
/// second run over the rest, which reads those keys back, make the same samples as the batch
/// job over all of it.
#[tokio::test]
async fn state_of_many_keys_written_in_parallel_resumes_to_the_batch_result() {
    let Some(brokers) = service("FSTORE_KAFKA_BROKERS") else {
        return;
    };
    let setup = Setup::new(
        &brokers,
        &[("impressions", 2), ("user_profile", 2), ("item_stats", 1)],
    )
    .await;
    // 6,000 users (profiles and activity windows) and 300 items: two groups past the 4,096
    // keys that put a group's encoding on a thread of its own.
    let data = setup.path("data");
    let data_arg = data.display().to_string();
    let o = fstore(
        &[
            "gen",
            "ctr",
            "--out",
            &data_arg,
            "--impressions",
            "24000",
            "--users",
            "6000",
            "--items",
            "300",
            "--profile-rows",
            "12000",
            "--item-rows",
            "2400",
            "--days",
            "10",
        ],
        setup.work.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let msgs = messages(&setup, &data.join("events.jsonl"));
    let (first, second) = msgs.split_at(msgs.len() / 2);
    let out = setup.path("samples");
    let sink = format!("parquet://{}", out.display());
    let args = ["--until-end", "--lateness", "15m"];

    produce(&brokers, first).await;
    let t = ok(&setup.join("state", &sink, &args));
    assert!(t.contains("0 dead letters"), "{t}");
    let stored = fstore_joiner::store::StateStore::open(&setup.path("state"))
        .unwrap()
        .scan(fstore_joiner::store::CF_KEYS)
        .unwrap()
        .len();
    assert!(stored > 2 * 4096, "only {stored} keys stored");
    eprintln!("first half: {t}; {stored} keys stored");

    produce(&brokers, second).await;
    let t = ok(&setup.join("state", &sink, &args));
    assert!(t.contains("0 dead letters"), "{t}");
    let got = by_request_id(&read_parquet_dir(&out));
    let want = by_request_id(&batch_samples(&setup, &sources_in(&data)));
    assert_eq!(got.len(), want.len());
    assert_same(&got, &want, None);
}
