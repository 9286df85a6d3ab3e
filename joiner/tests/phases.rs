//! The join loop's phases without a broker: the joiner reads messages held in memory
//! ([`MemoryInput`]) and delivers to an outlet held in memory ([`MemoryOutlet`]), and its
//! samples and dead letters are checked against a reference written plainly below (the as-of
//! rule with TTL and ties, window counts over `[t - w, t)`, late rows left out).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use fstore_core::codec::Value;
use fstore_core::json::{decode_row, encode_row};
use fstore_core::types::{Column, DataType};
use fstore_core::xorshift::XorShift;
use fstore_joiner::deadletter::{Kind, MessageId};
use fstore_joiner::io::{Io, MemoryInput, MemoryOutlet, Message};
use fstore_joiner::{Instance, JoinConfig, Joiner, SinkTarget};
use fstore_registry::model::Definitions;

const DEFS: &str = "
CREATE ENTITY user KEY (user_id STRING);
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP, label BOOLEAN)
    EVENT TIME ts KAFKA TOPIC 'clicks';
CREATE SOURCE profile (user_id STRING, ts TIMESTAMP, age INT64)
    EVENT TIME ts KAFKA TOPIC 'profile';
CREATE FEATURE GROUP user_profile ON user FROM profile TTL 10 SECONDS
AS SELECT age, 100 / age AS inv;
CREATE FEATURE GROUP user_activity ON user FROM clicks
AS SELECT COUNT(*) OVER 5 SECONDS AS n5,
          COUNT(*) FILTER (WHERE label) OVER 20 SECONDS AS clicks20;
CREATE SAMPLE SPEC s FROM clicks JOIN user_profile JOIN user_activity LABEL label
AS SELECT user_id, ts, label, age, n5, clicks20,
          CASE WHEN age = 13 THEN 1 / (age - 13) ELSE 0 END AS t;
";

const SEC: i64 = 1_000_000;
const T0: i64 = 1_700_000_000 * SEC;
const LATENESS: i64 = 2 * SEC;
const SAMPLES: &str = "samples";
const DEAD: &str = "dead";

fn defs() -> Definitions {
    fstore_dsl::compile_files(vec![(Path::new("defs.sql").to_path_buf(), DEFS.into())])
        .unwrap_or_else(|d| panic!("{d}"))
}

fn col(name: &str, dtype: DataType) -> Column {
    Column {
        name: name.into(),
        dtype,
    }
}

/// A row as generated: which source, its values, and how it arrives.
#[derive(Debug, Clone)]
struct Row {
    /// 0 clicks, 1 profile.
    source: usize,
    user: Option<String>,
    ts: Option<i64>,
    /// clicks: label; profile: age.
    value: Value,
    /// Sent behind the frontier on purpose.
    late: bool,
    /// A value that is no row of the source.
    garbage: Option<Vec<u8>>,
}

/// The messages of a generated data set in arrival order, and the rows behind them.
struct Data {
    rows: Vec<Row>,
    messages: Vec<Message>,
}

fn generate(seed: u64) -> Data {
    let mut rng = XorShift::new(seed);
    let user = |rng: &mut XorShift| match rng.below(20) {
        0 => None,
        u => Some(format!("u{}", u % 6)),
    };
    let mut rows = Vec::new();
    let (mut tc, mut tp) = (T0, T0);
    for _ in 0..400 {
        tc += rng.below(SEC as u64) as i64;
        let u = user(&mut rng);
        rows.push(Row {
            source: 0,
            user: u,
            ts: Some(tc),
            value: Value::Boolean(rng.below(3) == 0),
            late: false,
            garbage: None,
        });
        if rng.below(3) == 0 {
            // Ties: sometimes two profile rows of one user at one time.
            if rng.below(6) != 0 {
                tp = tp.max(tc - SEC) + rng.below(SEC as u64) as i64;
            }
            let age = match rng.below(25) {
                0 => Value::Int64(0),  // 100 / age fails: an expression dead letter
                1 => Value::Int64(13), // the spec's transform fails
                2 => Value::Null,
                _ => Value::Int64(14 + rng.below(30) as i64),
            };
            rows.push(Row {
                source: 1,
                user: user(&mut rng),
                ts: Some(tp),
                value: age,
                late: false,
                garbage: None,
            });
        }
    }
    // Edges of the contract, planted: a profile row exactly the TTL before an event (still
    // joined), and clicks of the event's user exactly the window before it (counted) and at
    // its very time (not counted).
    let planted: Vec<Row> = rows
        .iter()
        .filter(|r| r.source == 0 && r.user.is_some())
        .step_by(9)
        .flat_map(|e| {
            let (t, user) = (e.ts.unwrap(), e.user.clone());
            let click = |ts: i64| Row {
                source: 0,
                user: user.clone(),
                ts: Some(ts),
                value: Value::Boolean(true),
                late: false,
                garbage: None,
            };
            let profile = Row {
                source: 1,
                user: user.clone(),
                ts: Some(t - 10 * SEC),
                value: Value::Int64(50),
                late: false,
                garbage: None,
            };
            [profile, click(t - 5 * SEC), click(t - 20 * SEC), click(t)]
        })
        .collect();
    rows.extend(planted);
    rows.sort_by_key(|r| r.ts);
    // Arrival: neighbours swap (well within the lateness); some rows come far behind the
    // frontier; some messages are no rows at all.
    for i in 1..rows.len() {
        if rng.below(4) == 0 && rows[i].ts.unwrap() - rows[i - 1].ts.unwrap() < LATENESS / 4 {
            rows.swap(i - 1, i);
        }
    }
    let mut arrived = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        let now = r.ts.unwrap();
        arrived.push(r);
        if i > 60 && i % 47 == 0 {
            let source = i % 2;
            arrived.push(Row {
                source,
                user: Some(format!("u{}", i % 6)),
                ts: Some(now - 15 * SEC),
                value: if source == 0 {
                    Value::Boolean(true)
                } else {
                    Value::Int64(99)
                },
                late: true,
                garbage: None,
            });
        }
        if i % 97 == 5 {
            let garbage = [&b"{\"user_id\": 1"[..], b"{\"user_id\": 5}", b""][i % 3];
            arrived.push(Row {
                source: i % 2,
                user: None,
                ts: None,
                value: Value::Null,
                late: false,
                garbage: Some(garbage.to_vec()),
            });
        }
        if i % 131 == 7 {
            arrived.push(Row {
                source: 0,
                user: Some("u1".into()),
                ts: None,
                value: Value::Boolean(true),
                late: false,
                garbage: None,
            });
        }
    }
    let columns = [
        vec![
            col("user_id", DataType::String),
            col("ts", DataType::Timestamp),
            col("label", DataType::Boolean),
        ],
        vec![
            col("user_id", DataType::String),
            col("ts", DataType::Timestamp),
            col("age", DataType::Int64),
        ],
    ];
    let mut next = [0i64; 2];
    let messages = arrived
        .iter()
        .map(|r| {
            let offset = next[r.source];
            next[r.source] += 1;
            let value = match &r.garbage {
                Some(g) if g.is_empty() => None,
                Some(g) => Some(g.clone()),
                None => {
                    let values = vec![
                        r.user.clone().map_or(Value::Null, Value::String),
                        r.ts.map_or(Value::Null, Value::Timestamp),
                        r.value.clone(),
                    ];
                    Some(encode_row(&columns[r.source], &values).into_bytes())
                }
            };
            Message {
                source: r.source,
                partition: 0,
                offset,
                key: r.user.clone().map(String::into_bytes),
                value,
            }
        })
        .collect();
    Data {
        rows: arrived,
        messages,
    }
}

/// The samples by event offset, as the contract gives them: (user_id, ts, label, age, n5,
/// clicks20, t) per event; events whose transform fails map to `None`.
fn reference(rows: &[Row]) -> BTreeMap<i64, Option<Vec<Value>>> {
    let mut offsets = [0i64; 2];
    let mut clicks: Vec<(i64, &Row)> = Vec::new();
    let mut profiles: Vec<&Row> = Vec::new();
    for r in rows {
        let offset = offsets[r.source];
        offsets[r.source] += 1;
        if r.late || r.garbage.is_some() || r.ts.is_none() {
            continue;
        }
        match r.source {
            0 => clicks.push((offset, r)),
            _ if r.value == Value::Int64(0) || r.user.is_none() => {} // dead letters
            _ => profiles.push(r),
        }
    }
    let mut out = BTreeMap::new();
    for (offset, e) in &clicks {
        let t = e.ts.unwrap();
        let mine = |r: &Row| r.user.is_some() && r.user == e.user;
        // As of t: the greatest (ts, age) at or before t, NULL age lowest; then the TTL.
        let latest = profiles
            .iter()
            .filter(|r| mine(r) && r.ts.unwrap() <= t)
            .max_by(|a, b| {
                let age = |r: &Row| match r.value {
                    Value::Int64(v) => Some(v),
                    _ => None,
                };
                (a.ts, age(a)).cmp(&(b.ts, age(b)))
            });
        let age = match latest {
            Some(r) if t - r.ts.unwrap() <= 10 * SEC => r.value.clone(),
            _ => Value::Null,
        };
        let in_window = |w: i64, labelled: bool| {
            clicks
                .iter()
                .filter(|(_, r)| mine(r))
                .filter(|(_, r)| r.ts.unwrap() >= t - w && r.ts.unwrap() < t)
                .filter(|(_, r)| !labelled || r.value == Value::Boolean(true))
                .count() as i64
        };
        let sample = (age != Value::Int64(13)).then(|| {
            vec![
                e.user.clone().map_or(Value::Null, Value::String),
                Value::Timestamp(t),
                e.value.clone(),
                age.clone(),
                Value::Int64(in_window(5 * SEC, false)),
                Value::Int64(in_window(20 * SEC, true)),
                Value::Int64(0),
            ]
        });
        out.insert(*offset, sample);
    }
    out
}

fn config(state: &Path) -> JoinConfig {
    JoinConfig {
        spec: "s".into(),
        brokers: String::new(),
        state_dir: state.to_path_buf(),
        sink: SinkTarget::Kafka(SAMPLES.into()),
        dead_letter_topic: DEAD.into(),
        lateness_us: LATENESS,
        until_end: true,
        topics: BTreeMap::new(),
        checkpoint_interval: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        instance: Instance::SOLE,
        broadcast: Default::default(),
        kafka_options: Vec::new(),
        max_batch: 16,
        compact_rows: 64,
        max_future_us: None,
    }
}

/// Opens a joiner on the state folder, reading the messages not yet consumed by its
/// checkpoint; `fail_after` makes the input fail after that many steps.
fn open(state: &Path, data: &Data, outlet: &MemoryOutlet, fail_after: Option<usize>) -> Joiner {
    Joiner::open_with(config(state), &defs(), 1, None, |cp, sources| {
        let rest: Vec<Message> = data
            .messages
            .iter()
            .filter(|m| {
                let topic = &sources[m.source].topic;
                let next = cp.offsets.get(topic).and_then(|p| p.get(&m.partition));
                next.is_none_or(|&n| m.offset >= n)
            })
            .cloned()
            .collect();
        // A bounded run ends at the end offsets of all the data, whatever it resumes from.
        let mut ends = BTreeMap::new();
        for m in &data.messages {
            let e = ends
                .entry((sources[m.source].topic.clone(), m.partition))
                .or_insert((0, 0));
            e.1 = m.offset + 1;
        }
        let mut input = MemoryInput::new(sources, rest, 16);
        if let Some(n) = fail_after {
            input = input.fail_after(n);
        }
        Ok(Io {
            input: Box::new(input),
            outlet: Box::new(outlet.clone()),
            partitions: ends.keys().cloned().collect(),
            ends: Some(ends),
        })
    })
    .unwrap()
}

/// The samples the outlet holds, by event offset; fails on a sample delivered twice.
fn samples(outlet: &MemoryOutlet) -> BTreeMap<i64, Option<Vec<Value>>> {
    let columns = [
        col("user_id", DataType::String),
        col("ts", DataType::Timestamp),
        col("label", DataType::Boolean),
        col("age", DataType::Int64),
        col("n5", DataType::Int64),
        col("clicks20", DataType::Int64),
        col("t", DataType::Int64),
    ];
    let mut out = BTreeMap::new();
    for m in outlet.messages(SAMPLES) {
        let Ok(MessageId::Sample { offset, .. }) = m.id.parse() else {
            panic!("not a sample id: {}", m.id);
        };
        let values = decode_row(&columns, &m.payload).unwrap();
        assert!(
            out.insert(offset, Some(values)).is_none(),
            "sample {offset} twice"
        );
    }
    // Events whose transform failed are dead letters of kind `transform`.
    for m in outlet.messages(DEAD) {
        let headers: HashMap<&str, &[u8]> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), &v[..]))
            .collect();
        if headers["fstore-kind"] == b"transform" {
            let offset: i64 = std::str::from_utf8(headers["fstore-offset"])
                .unwrap()
                .parse()
                .unwrap();
            assert!(out.insert(offset, None).is_none(), "event {offset} twice");
        }
    }
    out
}

/// Dead letters by kind, each with its headers checked.
fn dead_letters(outlet: &MemoryOutlet) -> BTreeMap<Kind, usize> {
    let mut out = BTreeMap::new();
    let mut ids = std::collections::HashSet::new();
    for m in outlet.messages(DEAD) {
        assert!(ids.insert(m.id.clone()), "dead letter {} twice", m.id);
        assert!(
            matches!(m.id.parse(), Ok(MessageId::DeadLetter { .. })),
            "{}",
            m.id
        );
        let headers: HashMap<&str, String> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let kind: Kind = headers["fstore-kind"].parse().unwrap();
        assert!(!headers["fstore-reason"].is_empty());
        *out.entry(kind).or_default() += 1;
    }
    out
}

/// What the data set's planted faults must produce, the events whose transform fails (`None`
/// in the reference) among them.
fn expected_dead_letters(
    rows: &[Row],
    want: &BTreeMap<i64, Option<Vec<Value>>>,
) -> BTreeMap<Kind, usize> {
    let mut out = BTreeMap::new();
    out.insert(
        Kind::Transform,
        want.values().filter(|s| s.is_none()).count(),
    );
    let mut add = |k| *out.entry(k).or_default() += 1;
    for r in rows {
        match r {
            Row {
                garbage: Some(_), ..
            } => add(Kind::Undecodable),
            Row { ts: None, .. } => add(Kind::MissingEventTime),
            Row { late: true, .. } => add(Kind::Late),
            // The group's expressions are evaluated before keys are looked at.
            Row {
                source: 1,
                value: Value::Int64(0),
                ..
            } => add(Kind::Expression),
            Row {
                source: 1,
                user: None,
                ..
            } => add(Kind::NullKey),
            _ => {}
        }
    }
    out
}

#[test]
fn a_bounded_run_gives_the_reference_samples_and_dead_letters() {
    let data = generate(7);
    let dir = tempfile::tempdir().unwrap();
    let outlet = MemoryOutlet::default();
    let mut joiner = open(dir.path(), &data, &outlet, None);
    let summary = joiner.run(&Default::default()).unwrap();
    let want = reference(&data.rows);
    assert!(
        want.values().any(Option::is_none),
        "no transform failure planted"
    );
    assert_eq!(samples(&outlet), want);
    let expected = expected_dead_letters(&data.rows, &want);
    assert_eq!(dead_letters(&outlet), expected);
    assert_eq!(summary.counters.late as usize, expected[&Kind::Late]);
    assert_eq!(summary.pending, 0);
    // Garbage collection keeps what an event at or after the frontier can need: a key's
    // rows within the longest window and TTL, far fewer than were applied.
    assert!(
        joiner.rows_held() * 5 < summary.counters.rows as usize,
        "{} rows held of {} applied",
        joiner.rows_held(),
        summary.counters.rows
    );
}

#[test]
fn crashes_between_checkpoints_resume_to_the_same_samples_exactly_once() {
    let data = generate(11);
    let want = reference(&data.rows);
    let dir = tempfile::tempdir().unwrap();
    let outlet = MemoryOutlet::default();
    // Steps applied past the last checkpoint are lost with the process and read again.
    let mut rng = XorShift::new(3);
    for _ in 0..4 {
        let mut j = open(dir.path(), &data, &outlet, None);
        for _ in 0..1 + rng.below(6) {
            j.step().unwrap();
        }
        j.checkpoint().unwrap();
        for _ in 0..rng.below(4) {
            j.step().unwrap();
        }
        drop(j);
    }
    // A run whose input fails stops without committing; the next one goes on.
    let mut j = open(dir.path(), &data, &outlet, Some(5));
    assert!(j.run(&Default::default()).is_err());
    assert!(j.checkpoint().is_err(), "a failed joiner refuses to go on");
    drop(j);
    let mut j = open(dir.path(), &data, &outlet, None);
    j.run(&Default::default()).unwrap();
    assert_eq!(samples(&outlet), want);
    let expected = expected_dead_letters(&data.rows, &want);
    assert_eq!(dead_letters(&outlet), expected);
}

#[test]
fn an_outbox_delivered_in_part_is_completed_by_the_next_start_without_repeats() {
    let data = generate(5);
    let want = reference(&data.rows);
    let dir = tempfile::tempdir().unwrap();
    let outlet = MemoryOutlet::default();
    let mut j = open(dir.path(), &data, &outlet, None);
    for _ in 0..8 {
        j.step().unwrap();
    }
    j.checkpoint().unwrap();
    for _ in 0..8 {
        j.step().unwrap();
    }
    // The checkpoint commits its outbox, then delivers only part of it.
    outlet.set_budget(Some(3));
    assert!(j.checkpoint().is_err());
    drop(j);
    outlet.set_budget(None);
    let before = outlet.messages(SAMPLES).len();
    let mut j = open(dir.path(), &data, &outlet, None);
    assert!(
        outlet.messages(SAMPLES).len() > before,
        "the outbox was not delivered at start"
    );
    j.run(&Default::default()).unwrap();
    assert_eq!(samples(&outlet), want);
}
