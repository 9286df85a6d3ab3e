//! Online = offline, differentially: after `fstore materialize` as of T, every key's values
//! served by `fstore serve` (over gRPC, from the real Redis and from RocksDB) equal the
//! features `fstore sample` gives an event at T for that key, floats bit for bit; at T + 1 µs
//! the same store serves what the batch gives then (a row exactly TTL old expires).

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Schema;
use fstore_core::codec::Value;
use fstore_core::json::parse_timestamp;
use fstore_core::rows::value_at;
use fstore_proto::v1 as pb;

use crate::support::{fstore, repo, service, text, unique};

const DAY: i64 = 86_400_000_000;
/// Request ids of the spine's events, above any of the example's.
const SPINE_IDS: i64 = 1_000_000_000_000;

/// A running `fstore serve`, stopped on drop.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(registry: &Path, online: &str, namespace: &str) -> Server {
        Self::start_with(registry, online, namespace, &[]).0
    }

    /// Starts with extra arguments; also returns the next stdout line's last word when
    /// `--metrics` is among them (the metrics URL).
    pub fn start_with(
        registry: &Path,
        online: &str,
        namespace: &str,
        extra: &[&str],
    ) -> (Server, Option<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fstore"))
            .args([
                "serve",
                "--registry",
                registry.to_str().unwrap(),
                "--online",
                online,
                "--namespace",
                namespace,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstore serve starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .rsplit(' ')
            .next()
            .map(|s| s.trim().to_string())
            .filter(|a| a.contains(':'))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let more = extra.contains(&"--metrics").then(|| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l.trim().rsplit(' ').next().unwrap().to_string()
        });
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        (Server { child, addr }, more)
    }

    /// Asks the server to stop (SIGTERM) and returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    pub async fn client(
        &self,
    ) -> pb::feature_service_client::FeatureServiceClient<tonic::transport::Channel> {
        pb::feature_service_client::FeatureServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn column_value(dtype: &str, c: &pb::Column, i: usize) -> Value {
    if !c.valid[i] {
        return Value::Null;
    }
    match dtype {
        "INT64" => Value::Int64(c.int64_values[i]),
        "DOUBLE" => Value::Double(c.double_values[i]),
        "STRING" => Value::String(c.string_values[i].clone()),
        "BOOLEAN" => Value::Boolean(c.bool_values[i]),
        "TIMESTAMP" => Value::Timestamp(c.int64_values[i]),
        other => panic!("unexpected dtype {other}"),
    }
}

pub fn json_keys(data: &Path, file: &str, key: &str) -> Vec<serde_json::Value> {
    let set: BTreeSet<String> = fs::read_to_string(data.join(file))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].to_string())
        .collect();
    set.iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
}

/// Impressions at `t`: one per user (and per item, cycling the shorter list), plus keys
/// that have no rows at all.
fn write_spine(path: &Path, users: &[String], items: &[i64], t: i64) {
    let n = users.len().max(items.len());
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..n as i64).map(|i| SPINE_IDS + i),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| users[i % users.len()].clone()),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| items[i % items.len()]),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![t; n]).with_timezone("UTC")),
        Arc::new(BooleanArray::from(vec![false; n])),
    ];
    let schema = Arc::new(Schema::new(vec![
        arrow::datatypes::Field::new("request_id", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("user_id", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("item_id", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new(
            "ts",
            arrow::datatypes::DataType::Timestamp(
                arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into()),
            ),
            true,
        ),
        arrow::datatypes::Field::new("clicked", arrow::datatypes::DataType::Boolean, true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, None)
        .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn read_samples(dir: &Path) -> RecordBatch {
    let mut batches = Vec::new();
    for part in fs::read_dir(dir).unwrap() {
        let file = part.unwrap().path().join("part-00000.parquet");
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            fs::File::open(file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        batches.extend(r.map(|b| b.unwrap()));
    }
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn ok(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

/// Batch samples for one event per key at `t`: the example's impressions plus the spine's
/// events (which windows at `t` do not see), sampled in `[t, t + 1)`; only the spine's rows.
pub fn batch_at(
    work: &Path,
    registry: &str,
    users: &[String],
    items: &[i64],
    t: i64,
) -> RecordBatch {
    let dir = work.join(format!("impressions-{t}"));
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        repo().join("examples/ctr/data/impressions.parquet"),
        dir.join("example.parquet"),
    )
    .unwrap();
    write_spine(&dir.join("spine.parquet"), users, items, t);
    let out = work.join(format!("samples-{t}"));
    let at = |us: i64| fstore_core::json::format_timestamp(us);
    ok(&fstore(
        &[
            "sample",
            "ctr",
            "--registry",
            registry,
            "--out",
            out.to_str().unwrap(),
            "--source",
            &format!("impressions={}", dir.display()),
            "--start",
            &at(t),
            "--end",
            &at(t + 1),
        ],
        work,
    ));
    let all = read_samples(&out);
    let ids = all
        .column_by_name("request_id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let keep: BooleanArray = ids
        .iter()
        .map(|i| Some(i.is_some_and(|i| i >= SPINE_IDS)))
        .collect();
    arrow::compute::filter_record_batch(&all, &keep).unwrap()
}

/// GetModelInputs for the batch's events equals the batch's model input columns.
async fn compare_model_inputs(
    server: &Server,
    batch: &RecordBatch,
    t: i64,
) -> (usize, Vec<String>) {
    let scalar = |v: Value| pb::Scalar {
        value: match v {
            Value::Null => None,
            Value::Int64(n) => Some(pb::scalar::Value::Int64Value(n)),
            Value::String(s) => Some(pb::scalar::Value::StringValue(s)),
            Value::Boolean(b) => Some(pb::scalar::Value::BoolValue(b)),
            v => panic!("unexpected event value {v:?}"),
        },
    };
    let rows: Vec<pb::EventRow> = (0..batch.num_rows())
        .map(|r| pb::EventRow {
            columns: ["request_id", "user_id", "item_id", "clicked"]
                .iter()
                .map(|c| {
                    let v = value_at(batch.column_by_name(c).unwrap(), r).unwrap();
                    (c.to_string(), scalar(v))
                })
                .collect(),
        })
        .collect();
    let resp = server
        .client()
        .await
        .get_model_inputs(pb::GetModelInputsRequest {
            model: "ctr_model".into(),
            rows,
            request_time_us: Some(t),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.spec, "ctr");
    assert!(
        resp.columns.len() >= 11,
        "{} model inputs",
        resp.columns.len()
    );
    let (mut cells, mut diffs) = (0, Vec::new());
    for col in &resp.columns {
        let want_col = batch
            .column_by_name(&col.name)
            .unwrap_or_else(|| panic!("model input {} is not a sample column", col.name));
        for r in 0..batch.num_rows() {
            let served = column_value(&col.dtype, col.values.as_ref().unwrap(), r);
            let want = value_at(want_col, r).unwrap();
            cells += 1;
            if served != want {
                diffs.push(format!(
                    "GetModelInputs row {r} at {t} input {}: batch {want:?}, served {served:?}",
                    col.name
                ));
            }
        }
    }
    (cells, diffs)
}

/// An Arrow IPC group (`arrow`) holds what the protobuf columns of the same request (`g`) hold:
/// statuses, event times (NULL for NOT_FOUND where the columns have 0), names, types and every
/// value, doubles by their bits.
fn arrow_equals_columns(group: &str, arrow: &pb::GroupValues, g: &pb::GroupValues) {
    assert!(
        arrow.status.is_empty() && arrow.event_time_us.is_empty() && arrow.features.is_empty(),
        "{group}: an Arrow IPC group also has protobuf columns"
    );
    assert_eq!((&arrow.group, arrow.version), (&g.group, g.version));
    let mut reader = arrow::ipc::reader::StreamReader::try_new(arrow.arrow_ipc.as_slice(), None)
        .expect("an Arrow IPC stream");
    let batch = reader.next().expect("one record batch").unwrap();
    assert!(
        reader.next().is_none(),
        "{group}: more than one record batch"
    );
    let n = g.status.len();
    assert_eq!(batch.num_rows(), n);
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let mut want_names = vec!["status", "event_time"];
    want_names.extend(g.features.iter().map(|f| f.name.as_str()));
    assert_eq!(names, want_names, "{group}: Arrow columns");
    let status = batch
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::UInt8Array>()
        .expect("status is UInt8");
    for r in 0..n {
        assert_eq!(
            i32::from(status.value(r)),
            g.status[r],
            "{group} row {r} status"
        );
        let time = match value_at(batch.column(1), r).unwrap() {
            Value::Null => {
                assert_eq!(
                    g.status[r],
                    pb::KeyStatus::NotFound as i32,
                    "{group} row {r}"
                );
                0
            }
            Value::Timestamp(us) => us,
            v => panic!("{group} row {r}: event_time {v:?}"),
        };
        assert_eq!(time, g.event_time_us[r], "{group} row {r} event time");
    }
    for (i, f) in g.features.iter().enumerate() {
        let col = batch.column(2 + i);
        let dtype: fstore_registry::DataType = f.dtype.parse().unwrap();
        assert_eq!(col.data_type(), &dtype.to_arrow(), "{}", f.name);
        for r in 0..n {
            let want = column_value(&f.dtype, f.values.as_ref().unwrap(), r);
            assert_eq!(value_at(col, r).unwrap(), want, "{} row {r}", f.name);
        }
    }
}

/// Compares served values of `group` at `t` for the samples' keys with the samples' columns.
async fn compare(
    server: &Server,
    batch: &RecordBatch,
    group: &str,
    key_col: &str,
    features: &[&str],
    t: i64,
) -> (usize, Vec<String>) {
    let keys_arr = batch.column_by_name(key_col).unwrap();
    let keys: Vec<pb::EntityKey> = (0..batch.num_rows())
        .map(|r| pb::EntityKey {
            parts: vec![pb::KeyPart {
                value: Some(match value_at(keys_arr, r).unwrap() {
                    Value::String(s) => pb::key_part::Value::StringValue(s),
                    Value::Int64(n) => pb::key_part::Value::Int64Value(n),
                    v => panic!("key {v:?}"),
                }),
            }],
        })
        .collect();
    let resp = server
        .client()
        .await
        .get_features(pb::GetFeaturesRequest {
            refs: vec![group.to_string()],
            keys,
            request_time_us: Some(t),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The same keys as one key column get the same answer.
    let column = match batch.column_by_name(key_col).unwrap().data_type() {
        arrow::datatypes::DataType::Int64 => pb::KeyColumn {
            int64_values: (0..batch.num_rows())
                .map(|r| match value_at(keys_arr, r).unwrap() {
                    Value::Int64(n) => n,
                    v => panic!("key {v:?}"),
                })
                .collect(),
            ..Default::default()
        },
        _ => pb::KeyColumn {
            string_values: (0..batch.num_rows())
                .map(|r| match value_at(keys_arr, r).unwrap() {
                    Value::String(s) => s,
                    v => panic!("key {v:?}"),
                })
                .collect(),
            ..Default::default()
        },
    };
    let by_column = |format: pb::ResponseFormat| {
        let column = column.clone();
        async move {
            server
                .client()
                .await
                .get_features(pb::GetFeaturesRequest {
                    refs: vec![group.to_string()],
                    keys: vec![],
                    request_time_us: Some(t),
                    key_columns: vec![column],
                    format: format as i32,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let columnar = by_column(pb::ResponseFormat::Columns).await;
    // Compared as bytes, so NaN values compare by their bits.
    assert!(
        prost::Message::encode_to_vec(&columnar) == prost::Message::encode_to_vec(&resp),
        "{group}: key columns and key messages disagree"
    );
    let g = &resp.groups[0];
    let arrow = by_column(pb::ResponseFormat::ArrowIpc).await;
    arrow_equals_columns(group, &arrow.groups[0], g);
    let mut diffs = Vec::new();
    let mut cells = 0;
    let mut found = 0;
    let mut informative = 0;
    for r in 0..batch.num_rows() {
        if g.status[r] == pb::KeyStatus::Found as i32 {
            found += 1;
        }
        for f in features {
            let col = g
                .features
                .iter()
                .find(|c| c.name == format!("{group}.{f}"))
                .unwrap();
            let served = column_value(&col.dtype, col.values.as_ref().unwrap(), r);
            let want = value_at(batch.column_by_name(f).unwrap(), r).unwrap();
            cells += 1;
            informative += usize::from(!matches!(want, Value::Null | Value::Int64(0)));
            if served != want {
                diffs.push(format!(
                    "{group} key {:?} at {t} feature {f}: batch {want:?}, served {served:?} (status {})",
                    value_at(keys_arr, r).unwrap(),
                    g.status[r]
                ));
            }
        }
    }
    assert!(found > 0, "{group}: no key found at {t}");
    assert!(
        informative > 10,
        "{group}: only {informative} values at {t} are neither NULL nor 0"
    );
    (cells, diffs)
}

async fn online_equals_offline(online: &str) {
    let work = tempfile::tempdir().unwrap();
    let registry = work.path().join("reg");
    let r = registry.to_str().unwrap();
    ok(&fstore(
        &[
            "apply",
            repo().join("examples/ctr").to_str().unwrap(),
            "--registry",
            r,
        ],
        work.path(),
    ));
    let data = repo().join("examples/ctr/data");
    let mut users: Vec<String> = json_keys(&data, "user_profile.jsonl", "user_id")
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    users.push("user_nobody".into());
    let mut items: Vec<i64> = json_keys(&data, "item_stats.jsonl", "item_id")
        .into_iter()
        .filter_map(|v| v.as_i64())
        .collect();
    items.push(i64::MAX);
    // T: some user's latest profile row is exactly 30 days (the TTL) old, so it is served at
    // T and expired at T + 1.
    let mut latest: std::collections::BTreeMap<String, i64> = Default::default();
    for l in fs::read_to_string(data.join("user_profile.jsonl"))
        .unwrap()
        .lines()
    {
        let row: serde_json::Value = serde_json::from_str(l).unwrap();
        if let (Some(u), Some(ts)) = (row["user_id"].as_str(), row["ts"].as_str()) {
            let ts = parse_timestamp(ts).unwrap();
            let e = latest.entry(u.to_string()).or_insert(ts);
            *e = (*e).max(ts);
        }
    }
    let (key, last) = latest.iter().next().map(|(k, v)| (k.clone(), *v)).unwrap();
    let t = last + 30 * DAY;
    let ns = unique("serve");
    ok(&fstore(
        &[
            "materialize",
            "user_profile",
            "item_stats",
            "user_activity",
            "--registry",
            r,
            "--online",
            online,
            "--namespace",
            &ns,
            "--as-of",
            &fstore_core::json::format_timestamp(t),
        ],
        work.path(),
    ));
    let server = Server::start(&registry, online, &ns);
    let (mut cells, mut diffs) = (0, Vec::new());
    for at in [t, t + 1] {
        let batch = batch_at(work.path(), r, &users, &items, at);
        let (c, d) = compare_model_inputs(&server, &batch, at).await;
        cells += c;
        diffs.extend(d);
        for (group, key, features) in [
            ("user_profile", "user_id", &["age", "city", "score"][..]),
            ("item_stats", "item_id", &["ctr", "category"][..]),
            (
                "user_activity",
                "user_id",
                &["user_clicks_7d", "user_impr_1d"][..],
            ),
        ] {
            let (c, d) = compare(&server, &batch, group, key, features, at).await;
            cells += c;
            diffs.extend(d);
        }
    }
    assert!(cells > 500, "only {cells} cells compared");
    crate::support::assert_no_diffs(diffs, cells);
    // The expiring row really is in the data: at T it is served, at T + 1 it is EXPIRED.
    let mut client = server.client().await;
    let mut status_at = async |at: i64| {
        client
            .get_features(pb::GetFeaturesRequest {
                refs: vec!["user_profile".into()],
                keys: vec![pb::EntityKey {
                    parts: vec![pb::KeyPart {
                        value: Some(pb::key_part::Value::StringValue(key.clone())),
                    }],
                }],
                request_time_us: Some(at),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .groups[0]
            .status[0]
    };
    assert_eq!(
        status_at(t).await,
        pb::KeyStatus::Found as i32,
        "{key} at T"
    );
    assert_eq!(
        status_at(t + 1).await,
        pb::KeyStatus::Expired as i32,
        "{key} at T + 1"
    );
    python_client_agrees(&server, &users[..20], t).await;
}

/// The proto works outside Rust: a Python client generated by grpcio-tools gets the same
/// statuses, event times and values as the Rust client, in both response formats.
async fn python_client_agrees(server: &Server, users: &[String], t: i64) {
    let have = Command::new("python3")
        .args(["-c", "import grpc_tools, pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("FSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "python3 with grpcio-tools and pyarrow is required (scripts/setup.sh installs them)"
        );
        eprintln!("skipped: python3 lacks grpcio-tools or pyarrow");
        return;
    }
    let python = |arrow: bool| {
        let out = Command::new("python3")
            .arg(repo().join("tests/python/get_features.py"))
            .args(arrow.then_some("--arrow"))
            .arg(repo().join("proto/proto"))
            .arg(&server.addr)
            .arg("user_profile")
            .arg(t.to_string())
            .args(users)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let py = python(false);
    // The Arrow IPC response, read with pyarrow, says the same.
    assert_eq!(
        python(true),
        py,
        "pyarrow reads the Arrow IPC response differently"
    );
    let resp = server
        .client()
        .await
        .get_features(pb::GetFeaturesRequest {
            refs: vec!["user_profile".into()],
            keys: users
                .iter()
                .map(|u| pb::EntityKey {
                    parts: vec![pb::KeyPart {
                        value: Some(pb::key_part::Value::StringValue(u.clone())),
                    }],
                })
                .collect(),
            request_time_us: Some(t),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let g = &resp.groups[0];
    let rows = py["rows"].as_array().unwrap();
    assert_eq!(rows.len(), users.len());
    let mut found = 0;
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        let status = pb::KeyStatus::try_from(g.status[i]).unwrap().as_str_name();
        assert_eq!(row["status"], status, "{row}");
        assert_eq!(row["event_time_us"], g.event_time_us[i], "{row}");
        found += usize::from(status == "KEY_STATUS_FOUND");
        for f in &g.features {
            let want = match column_value(&f.dtype, f.values.as_ref().unwrap(), i) {
                Value::Null => serde_json::Value::Null,
                Value::Int64(n) => n.into(),
                Value::String(s) => s.into(),
                Value::Double(d) if d.is_finite() => d.into(),
                // NaN and infinities: the Rust client's bits were checked against the batch.
                Value::Double(_) => continue,
                v => panic!("unexpected {v:?}"),
            };
            assert_eq!(row["features"][&f.name], want, "{row}");
            checked += 1;
        }
    }
    assert!(
        found > 5 && checked > 30,
        "python saw {found} found keys, {checked} values"
    );
}

#[tokio::test]
async fn served_features_equal_batch_as_of_on_redis() {
    let Some(url) = service("FSTORE_REDIS_URL") else {
        return;
    };
    online_equals_offline(&url).await;
}

#[tokio::test]
async fn served_features_equal_batch_as_of_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    online_equals_offline(&format!(
        "rocksdb://{}",
        dir.path().join("online").display()
    ))
    .await;
}

/// A new registry version is served without restart: a group added by `apply` becomes
/// requestable, and responses name the new version.
#[tokio::test]
async fn a_new_registry_version_is_served_without_restart() {
    let work = tempfile::tempdir().unwrap();
    let defs = work.path().join("defs");
    crate::support::copy_defs(&repo().join("examples/ctr"), &defs);
    let registry = work.path().join("reg");
    let apply = || {
        fstore(
            &[
                "apply",
                defs.to_str().unwrap(),
                "--registry",
                registry.to_str().unwrap(),
            ],
            work.path(),
        )
    };
    ok(&apply());
    let online = format!("rocksdb://{}", work.path().join("online").display());
    let server = Server::start(&registry, &online, "reload");
    let ask = |refs: &str| pb::GetFeaturesRequest {
        refs: vec![refs.to_string()],
        keys: vec![pb::EntityKey {
            parts: vec![pb::KeyPart {
                value: Some(pb::key_part::Value::StringValue("u1".into())),
            }],
        }],
        request_time_us: Some(0),
        ..Default::default()
    };
    let mut client = server.client().await;
    let before = client.get_features(ask("user_age")).await.unwrap_err();
    assert_eq!(before.code(), tonic::Code::NotFound);
    assert!(
        before
            .message()
            .contains("unknown feature group \"user_age\""),
        "{before:?}"
    );

    fs::write(
        defs.join("extra.sql"),
        "CREATE FEATURE GROUP user_age ON user FROM user_profile TTL 1 DAY AS SELECT age;\n",
    )
    .unwrap();
    ok(&apply());
    let t0 = std::time::Instant::now();
    let resp = loop {
        match client.get_features(ask("user_age")).await {
            Ok(r) => break r.into_inner(),
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
                assert!(
                    t0.elapsed().as_secs() < 10,
                    "version 2 not picked up: {e:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(resp.registry_version, 2);
    assert_eq!(resp.groups[0].status, vec![pb::KeyStatus::NotFound as i32]);
    assert_eq!(resp.groups[0].features[0].name, "user_age.age");
}
