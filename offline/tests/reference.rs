//! Differential test: the batch engine on `examples/ctr/data/*.parquet` against a brute-force
//! reference computed here from the JSON lines with plain loops (no DataFusion, no fstore
//! code but the value type used to compare), transforms included.
//!
//! The data has every edge case `fstore gen ctr` plants: ties, TTL boundaries, NaN, -0.0,
//! window edges, many events at one ts, keys without rows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::PathBuf;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use fstore_core::codec::Value;
use fstore_core::rows::value_at;
use fstore_registry::compiled::CompiledSpec;
use serde_json::Value as Json;

const DAY: i64 = 86_400_000_000;

fn data_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../examples/ctr/data")
}

fn lines(name: &str) -> Vec<serde_json::Map<String, Json>> {
    std::fs::read_to_string(data_dir().join(format!("{name}.jsonl")))
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str(l).unwrap() {
            Json::Object(m) => m,
            _ => panic!("not an object"),
        })
        .collect()
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS.ffffffZ` to epoch µs, by hand.
fn ts(j: &Json) -> i64 {
    let s = j.as_str().unwrap();
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * DAY
        + n(11, 13) * 3_600_000_000
        + n(14, 16) * 60_000_000
        + n(17, 19) * 1_000_000
        + n(20, 26)
}

fn int(j: Option<&Json>) -> Value {
    j.and_then(|j| j.as_i64())
        .map(Value::Int64)
        .unwrap_or(Value::Null)
}
fn dbl(j: Option<&Json>) -> Value {
    match j {
        Some(Json::Number(n)) => Value::Double(n.as_f64().unwrap()),
        Some(Json::String(s)) if s == "NaN" => Value::Double(f64::NAN),
        Some(Json::String(s)) if s == "Infinity" => Value::Double(f64::INFINITY),
        Some(Json::String(s)) if s == "-Infinity" => Value::Double(f64::NEG_INFINITY),
        _ => Value::Null,
    }
}
fn string(j: Option<&Json>) -> Value {
    j.and_then(|j| j.as_str())
        .map(|s| Value::String(s.into()))
        .unwrap_or(Value::Null)
}

/// NULL lowest, doubles by total order, strings by bytes: the documented tie order.
fn cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Int64(x), Value::Int64(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => unreachable!(),
    }
}

/// The row with the greatest (ts, features) at or before `at`, within `ttl`.
fn as_of(rows: &[(i64, Vec<Value>)], at: i64, ttl: i64, width: usize) -> Vec<Value> {
    let mut best: Option<&(i64, Vec<Value>)> = None;
    for r in rows {
        if r.0 > at {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => {
                r.0 > b.0
                    || (r.0 == b.0
                        && r.1
                            .iter()
                            .zip(&b.1)
                            .map(|(x, y)| cmp(x, y))
                            .find(|o| o.is_ne())
                            == Some(Ordering::Greater))
            }
        };
        if better {
            best = Some(r);
        }
    }
    match best {
        Some(b) if at - b.0 <= ttl => b.1.clone(),
        _ => vec![Value::Null; width],
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

#[tokio::test]
async fn batch_equals_a_brute_force_reference_on_every_edge_case() {
    let mut profiles: HashMap<String, Vec<(i64, Vec<Value>)>> = HashMap::new();
    for r in lines("user_profile") {
        profiles
            .entry(r["user_id"].as_str().unwrap().into())
            .or_default()
            .push((
                ts(&r["ts"]),
                vec![
                    int(r.get("age")),
                    string(r.get("city")),
                    dbl(r.get("score")),
                ],
            ));
    }
    let mut stats: HashMap<i64, Vec<(i64, Vec<Value>)>> = HashMap::new();
    for r in lines("item_stats") {
        stats
            .entry(r["item_id"].as_i64().unwrap())
            .or_default()
            .push((
                ts(&r["ts"]),
                vec![dbl(r.get("ctr")), string(r.get("category"))],
            ));
    }
    let imps = lines("impressions");
    let mut by_user: HashMap<String, Vec<(i64, bool)>> = HashMap::new();
    for r in &imps {
        by_user
            .entry(r["user_id"].as_str().unwrap().into())
            .or_default()
            .push((
                ts(&r["ts"]),
                r.get("clicked").and_then(|c| c.as_bool()) == Some(true),
            ));
    }
    let mut expected: HashMap<i64, Vec<Value>> = HashMap::new();
    for r in &imps {
        let (id, user, item, t) = (
            r["request_id"].as_i64().unwrap(),
            r["user_id"].as_str().unwrap(),
            r["item_id"].as_i64().unwrap(),
            ts(&r["ts"]),
        );
        let p = as_of(
            profiles.get(user).map(Vec::as_slice).unwrap_or(&[]),
            t,
            30 * DAY,
            3,
        );
        let s = as_of(
            stats.get(&item).map(Vec::as_slice).unwrap_or(&[]),
            t,
            7 * DAY,
            2,
        );
        let mine = by_user.get(user).map(Vec::as_slice).unwrap_or(&[]);
        let clicks_7d = mine
            .iter()
            .filter(|(u, c)| *u >= t - 7 * DAY && *u < t && *c)
            .count() as i64;
        let impr_1d = mine.iter().filter(|(u, _)| *u >= t - DAY && *u < t).count() as i64;
        let age_bucket = match p[0] {
            Value::Int64(a) => Value::Int64(
                [18.0, 25.0, 35.0, 50.0, 65.0]
                    .iter()
                    .filter(|b| **b <= a as f64)
                    .count() as i64,
            ),
            _ => Value::Null,
        };
        let city = match &p[1] {
            Value::String(c) => c.clone(),
            _ => String::new(),
        };
        let ctr = match s[0] {
            Value::Double(c) => c,
            _ => 0.0,
        };
        let click_rate = if impr_1d == 0 {
            0.0
        } else {
            clicks_7d as f64 / impr_1d as f64
        };
        let mut row = vec![
            Value::Int64(id),
            Value::String(user.into()),
            Value::Int64(item),
            Value::Timestamp(t),
            match r.get("clicked") {
                Some(Json::Bool(b)) => Value::Boolean(*b),
                _ => Value::Null,
            },
        ];
        row.extend(p);
        row.extend(s);
        row.extend([
            Value::Int64(clicks_7d),
            Value::Int64(impr_1d),
            age_bucket,
            Value::Int64((fnv1a(city.as_bytes()) % 1024) as i64),
        ]);
        row.push(Value::Double((ctr.clamp(0.0, 1.0) * 100.0).ln_1p()));
        row.push(Value::Double(click_rate));
        expected.insert(id, row);
    }

    let defs = fstore_dsl::load_dir(&data_dir().join("..")).unwrap();
    let spec = CompiledSpec::compile(&defs, "ctr").unwrap();
    let locations: HashMap<String, PathBuf> = ["impressions", "user_profile", "item_stats"]
        .iter()
        .map(|s| (s.to_string(), data_dir().join(format!("{s}.parquet"))))
        .collect();
    for mode in crate::MODES {
        let (got, _) = crate::run_job(mode, &spec, &locations, Default::default()).await;
        assert_eq!(got.num_rows(), expected.len());
        let ids = got.column(0).as_primitive::<Int64Type>();
        let mut diffs = Vec::new();
        for r in 0..got.num_rows() {
            let want = &expected[&ids.value(r)];
            for (c, w) in want.iter().enumerate() {
                let g = value_at(got.column(c), r).unwrap();
                if &g != w {
                    diffs.push(format!(
                        "{mode:?}: request_id {} column {}: reference {w:?}, engine {g:?}",
                        ids.value(r),
                        got.schema().field(c).name()
                    ));
                }
            }
        }
        let cells = got.num_rows() * got.num_columns();
        crate::assert_no_diffs(diffs, cells);
    }
}
