//! Streaming joiner benchmark against the Kafka-protocol broker.
//!
//! `cargo bench --bench join -- [--impressions 500000] [--latency-events 2000] [--rounds 2]
//! [--threads 1,2] [--reuse RUN_ID] [--compare PATH]`
//!
//! 1. **Throughput**: `fstore gen ctr` data produced to three topics in arrival order; then,
//!    side by side in the same run, a raw rdkafka consume of the same topics to their end
//!    (the baseline: read every message, touch its bytes) and `fstore join --until-end` to
//!    Parquet (decode, state, watermark, samples, checkpoints) with one thread and with
//!    `--threads 2`, each twice, alternating.
//! 2. **Latency**: a live `fstore join` (Kafka sink, lateness 1 s) while events are produced
//!    in real time (event time = now): for each sample, its arrival time minus its event
//!    time minus the lateness — the delay the joiner adds beyond the lateness it must wait.
//!
//! `--latency-events 0` skips the latency part. `--reuse RUN_ID` reads the topics an earlier
//! run produced on the same broker (it prints its run id) instead of producing them again.
//! `--compare PATH` runs another `fstore` binary (an earlier build) in every round next to
//! this one, for A/B comparisons on a noisy machine.
//!
//! Brokers: `FSTORE_KAFKA_BROKERS`, or a broker started by `scripts/services.sh`.
//!
//! Profiling: `FSTORE_BENCH_JOIN_WRAP="perf record -e cpu-clock -g -o FILE"` runs the second
//! joiner round under that command (its time then includes the profiler's overhead).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 2;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fstore() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fstore"));
    c.env_remove("FSTORE_REGISTRY");
    c
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn arg_str(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn brokers(state: &Path) -> (String, Option<PathBuf>) {
    if let Ok(b) = std::env::var("FSTORE_KAFKA_BROKERS")
        && !b.is_empty()
    {
        return (b, None);
    }
    run(Command::new(repo().join("scripts/services.sh"))
        .arg("start")
        .arg(state));
    let env = std::fs::read_to_string(state.join("env")).unwrap();
    let b = env
        .lines()
        .find_map(|l| l.strip_prefix("export FSTORE_KAFKA_BROKERS="))
        .unwrap()
        .to_string();
    (b, Some(state.to_path_buf()))
}

fn create_topics(brokers: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let res = futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new())).unwrap();
    assert!(res.iter().all(Result::is_ok), "{res:?}");
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap()
}

fn send(p: &BaseProducer, topic: &str, key: &str, payload: &str) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                p.poll(Duration::from_millis(10));
            }
        }
    }
}

/// Topic and key of a row of `events.jsonl`; the row without its `table` field.
fn route(line: &str, topics: &BTreeMap<&str, String>) -> (String, String, String) {
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
    let table = obj.remove("table").unwrap();
    let table = table.as_str().unwrap().to_string();
    let key_col = if table == "item_stats" {
        "item_id"
    } else {
        "user_id"
    };
    let key = match &obj[key_col] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (
        topics[table.as_str()].clone(),
        key,
        serde_json::Value::Object(obj).to_string(),
    )
}

/// The baseline: reads every message of `topics` to the end present at the start.
fn raw_consume(brokers: &str, topics: &[String]) -> (u64, u64, Duration) {
    let t0 = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-raw-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        // As the joiner's consumer: a full local queue pauses fetching 5 ms, not 1 s.
        .set("fetch.queue.backoff.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
            let (_, high) = consumer
                .fetch_watermarks(t, p, Duration::from_secs(10))
                .unwrap();
            ends.insert((t.clone(), p), high);
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut next: BTreeMap<(String, i32), i64> = ends.keys().map(|k| (k.clone(), 0)).collect();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut quiet: Option<Instant> = None;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.unwrap();
                n += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                quiet = None;
            }
            None => {
                if next.iter().all(|(k, o)| *o >= ends[k]) {
                    let q = *quiet.get_or_insert_with(Instant::now);
                    // A first empty poll, then 0.5 s: the end is 0.6 s after the last message, as
                    // the joiner's (which works on what came meanwhile).
                    if q.elapsed() >= Duration::from_millis(500) {
                        return (n, bytes, t0.elapsed());
                    }
                }
            }
        }
    }
}

fn main() {
    let impressions = arg("--impressions", 500_000);
    let latency_events = arg("--latency-events", 2_000);
    let rounds = arg("--rounds", 2);
    // Topics of an earlier run on the same broker (its printed run id): not produced again.
    let reuse = arg("--reuse", 0);
    let work = tempfile::tempdir().unwrap();
    let (brokers, services) = brokers(&work.path().join("services"));
    let registry = work.path().join("registry");
    run(fstore()
        .arg("apply")
        .arg(repo().join("examples/ctr"))
        .arg("--registry")
        .arg(&registry));

    // Data: the example's shape, scaled.
    let data = work.path().join("data");
    let users = (impressions / 10).max(200);
    let t0 = Instant::now();
    run(fstore().args(["gen", "ctr", "--out"]).arg(&data).args([
        "--impressions",
        &impressions.to_string(),
        "--users",
        &users.to_string(),
        "--items",
        &(impressions / 100).max(60).to_string(),
        "--profile-rows",
        &(impressions / 2).to_string(),
        "--item-rows",
        &(impressions / 10).to_string(),
        "--days",
        "20",
    ]));
    let run_id = if reuse > 0 {
        reuse as u32
    } else {
        std::process::id()
    };
    let topics: BTreeMap<&str, String> = ["impressions", "user_profile", "item_stats"]
        .iter()
        .map(|t| (*t, format!("bench-{t}-{run_id}")))
        .collect();
    let events = std::fs::read_to_string(data.join("events.jsonl")).unwrap();
    let produced = events.lines().count() as u64;
    if reuse == 0 {
        let names: Vec<&str> = topics.values().map(String::as_str).collect();
        create_topics(&brokers, &names);
        let p = producer(&brokers);
        for line in events.lines() {
            let (topic, key, payload) = route(line, &topics);
            send(&p, &topic, &key, &payload);
        }
        p.flush(Duration::from_secs(120)).unwrap();
    }
    eprintln!(
        "generated and produced {produced} messages ({impressions} impressions) in {:.1?}; run id {run_id} (--reuse {run_id} reads these topics again)",
        t0.elapsed()
    );

    // Throughput, alternating: the baseline, then each joiner configuration.
    let threads_list: Vec<usize> = arg_str("--threads", "1,2")
        .split(',')
        .map(|t| t.parse().expect("--threads: a list of numbers"))
        .filter(|&t| t > 0)
        .collect();
    // Another fstore binary (an earlier build) run side by side for A/B comparisons.
    let compare = arg_str("--compare", "");
    let mut binaries = vec![(PathBuf::from(env!("CARGO_BIN_EXE_fstore")), String::new())];
    if !compare.is_empty() {
        binaries.push((PathBuf::from(&compare), format!(" ({compare})")));
    }
    let topic_list: Vec<String> = topics.values().cloned().collect();
    let mut rows: Vec<(String, u64, Duration, Option<u64>)> = Vec::new();
    for round in 0..rounds {
        let (n, _, took) = raw_consume(&brokers, &topic_list);
        assert_eq!(n, produced, "the baseline read every message");
        rows.push(("raw rdkafka consume (baseline)".into(), n, took, None));
        for &threads in &threads_list {
            for (b, (bin, label)) in binaries.iter().enumerate() {
                let state = work.path().join(format!("state-{round}-{threads}-{b}"));
                let out = work.path().join(format!("samples-{round}-{threads}-{b}"));
                let wrap = std::env::var("FSTORE_BENCH_JOIN_WRAP").unwrap_or_default();
                let mut cmd = match wrap.split_whitespace().collect::<Vec<_>>().split_first() {
                    Some((prog, args)) if round == 1 && threads == 1 && b == 0 => {
                        let mut c = Command::new(prog);
                        c.args(args).arg(bin);
                        c
                    }
                    _ => Command::new(bin),
                };
                cmd.env_remove("FSTORE_REGISTRY");
                cmd.args(["join", "ctr", "--registry"])
                    .arg(&registry)
                    .args(["--brokers", &brokers, "--state"])
                    .arg(&state)
                    .arg("--sink")
                    .arg(format!("parquet://{}", out.display()))
                    .args(["--until-end", "--lateness", "15m"])
                    .args(["--dead-letter", &format!("bench-dead-{run_id}")])
                    // Events and profiles are keyed by user, item stats by item: with threads
                    // splitting the partitions, every thread reads the item stats whole.
                    .args([
                        "--threads",
                        &threads.to_string(),
                        "--broadcast",
                        "item_stats",
                    ]);
                for (s, t) in &topics {
                    cmd.args(["--topic", &format!("{s}={t}")]);
                }
                let t = Instant::now();
                let text = run(&mut cmd);
                let took = t.elapsed();
                if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("time")) {
                    eprintln!(
                        "joiner round {round}, {threads} thread(s){label}: {}",
                        line.trim()
                    );
                }
                let samples: u64 = text
                    .split(" samples,")
                    .next()
                    .and_then(|s| s.rsplit(' ').next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let name = if threads == 1 {
                    "fstore join --until-end → Parquet, 1 thread".to_string()
                } else {
                    format!("fstore join --until-end → Parquet, --threads {threads}")
                };
                rows.push((format!("{name}{label}"), produced, took, Some(samples)));
            }
        }
    }
    println!(
        "\nThroughput: {produced} messages ({impressions} label events), {PARTITIONS} partitions per topic"
    );
    println!("| run | messages | seconds | messages/s | samples | vs baseline |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let base: f64 = rows
        .iter()
        .filter(|r| r.3.is_none())
        .map(|r| r.1 as f64 / r.2.as_secs_f64())
        .sum::<f64>()
        / rounds as f64;
    for (name, n, took, samples) in &rows {
        let rate = *n as f64 / took.as_secs_f64();
        println!(
            "| {name} | {n} | {:.2} | {:.0} | {} | {:.2} |",
            took.as_secs_f64(),
            rate,
            samples.map_or("—".to_string(), |s| s.to_string()),
            rate / base
        );
    }

    if latency_events > 0 {
        // Topics of their own each run (a reused run id has had its live topics already).
        latency(
            &brokers,
            &registry,
            work.path(),
            latency_events,
            std::process::id(),
        );
    }

    if let Some(s) = services {
        let _ = Command::new(repo().join("scripts/services.sh"))
            .arg("stop")
            .arg(s)
            .status();
    }
}

/// Live joiner, events produced in real time: delay of each sample beyond the lateness.
fn latency(brokers: &str, registry: &Path, work: &Path, events: usize, run_id: u32) {
    let topics: BTreeMap<&str, String> = ["impressions", "user_profile", "item_stats"]
        .iter()
        .map(|t| (*t, format!("live-{t}-{run_id}")))
        .collect();
    let out_topic = format!("live-samples-{run_id}");
    let names: Vec<&str> = topics
        .values()
        .map(String::as_str)
        .chain([out_topic.as_str()])
        .collect();
    create_topics(brokers, &names);
    let lateness_ms = 1000i64;
    let mut cmd = fstore();
    cmd.args(["join", "ctr", "--registry"])
        .arg(registry)
        .args(["--brokers", brokers, "--state"])
        .arg(work.join("live-state"))
        .args(["--sink", &format!("kafka://{out_topic}")])
        .args([
            "--lateness",
            "1s",
            "--checkpoint-interval",
            "100ms",
            "--idle-timeout",
            "2s",
        ])
        .args(["--dead-letter", &format!("live-dead-{run_id}")]);
    for (s, t) in &topics {
        cmd.args(["--topic", &format!("{s}={t}")]);
    }
    let mut joiner = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let reader = {
        let brokers = brokers.to_string();
        let out_topic = out_topic.clone();
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", format!("bench-live-{}", std::process::id()))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "5")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                tpl.add_partition_offset(&out_topic, p, Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let mut delays = Vec::new();
            let t0 = Instant::now();
            while delays.len() < events && t0.elapsed() < Duration::from_secs(120) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let now = now_us();
                    let v: serde_json::Value =
                        serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                    let ts = fstore_core::json::parse_timestamp(v["ts"].as_str().unwrap()).unwrap();
                    delays.push(now - ts);
                }
            }
            delays
        })
    };

    // Events at ~2,000/s with event time now; profiles and item stats alongside.
    let p = producer(brokers);
    let start = Instant::now();
    for i in 0..events {
        let now = now_us();
        let ts = fstore_core::json::format_timestamp(now);
        let user = format!("u{}", i % 500);
        send(
            &p,
            &topics["impressions"],
            &user,
            &format!(
                r#"{{"request_id":{i},"user_id":"{user}","item_id":{},"ts":"{ts}","clicked":{}}}"#,
                i % 50,
                i % 7 == 0
            ),
        );
        if i % 4 == 0 {
            send(
                &p,
                &topics["user_profile"],
                &user,
                &format!(
                    r#"{{"user_id":"{user}","ts":"{ts}","age":{},"city":"c","score":0.5}}"#,
                    i % 80
                ),
            );
            let item = i % 50;
            send(
                &p,
                &topics["item_stats"],
                &item.to_string(),
                &format!(r#"{{"item_id":{item},"ts":"{ts}","ctr":0.1,"category":"x"}}"#),
            );
        }
        p.poll(Duration::ZERO);
        let due = start + Duration::from_micros(500 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    // Keep time moving so the last events pass the watermark.
    for k in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        let ts = fstore_core::json::format_timestamp(now_us());
        for (t, body) in [
            (
                "impressions",
                format!(
                    r#"{{"request_id":{},"user_id":"tick","item_id":0,"ts":"{ts}","clicked":false}}"#,
                    10_000_000 + k
                ),
            ),
            (
                "user_profile",
                format!(r#"{{"user_id":"tick","ts":"{ts}","age":1,"city":"c","score":0.5}}"#),
            ),
            (
                "item_stats",
                format!(r#"{{"item_id":0,"ts":"{ts}","ctr":0.1,"category":"x"}}"#),
            ),
        ] {
            for part in 0..PARTITIONS {
                let mut r = BaseRecord::to(&topics[t]).payload(&body).key("tick");
                r = r.partition(part);
                let _ = p.send(r);
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let mut delays = reader.join().unwrap();
    let _ = joiner.kill();
    let _ = joiner.wait();
    delays.sort_unstable();
    if delays.is_empty() {
        println!("\nLatency: no samples arrived");
        return;
    }
    let pct = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    let lateness = lateness_ms as f64;
    println!(
        "\nLatency: {} samples, lateness 1 s, checkpoint interval 100 ms; event time → sample in the output topic, ms",
        delays.len()
    );
    println!("| | p50 | p90 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| total | {:.0} | {:.0} | {:.0} | {:.0} |",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "| beyond the lateness | {:.0} | {:.0} | {:.0} | {:.0} |",
        pct(0.5) - lateness,
        pct(0.9) - lateness,
        pct(0.99) - lateness,
        pct(1.0) - lateness
    );
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}
