//! Exports for trainers, inference servers and graph samplers, checked with the real
//! libraries (pyarrow, Triton's ModelConfig), and the example that trains on samples through
//! the generated module and gets the same inputs served.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use fstore_core::codec::Value;
use fstore_core::rows::value_at;

use crate::join::read_parquet_dir;
use crate::online_serve::{batch_at, json_keys};
use crate::support::{apply_example, fstore, repo, text};

fn ok(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    text(o)
}

/// Whether python3 has what the export checks need; a failure under FSTORE_REQUIRE_SERVICES.
fn python_ready() -> bool {
    let have = Command::new("python3")
        .args(["-c", "import numpy, pyarrow, grpc_tools, tritonclient"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("FSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "python3 with numpy, pyarrow, grpcio-tools and tritonclient is required (scripts/setup.sh installs them)"
        );
        eprintln!("skipped: python3 lacks numpy, pyarrow, grpcio-tools or tritonclient");
    }
    have
}

fn sources() -> Vec<String> {
    ["impressions", "user_profile", "item_stats"]
        .iter()
        .flat_map(|s| {
            [
                "--source".to_string(),
                format!(
                    "{s}={}",
                    repo()
                        .join(format!("examples/ctr/data/{s}.parquet"))
                        .display()
                ),
            ]
        })
        .collect()
}

#[test]
fn exports_read_in_pyarrow_and_triton_and_the_example_serves_its_training_row() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let registry = apply_example(w, "reg");
    let reg = registry.to_str().unwrap();
    let samples = w.join("samples");
    ok(&fstore(
        &[
            "sample",
            "ctr",
            "--registry",
            reg,
            "--out",
            samples.to_str().unwrap(),
        ],
        w,
    ));
    let out = w.join("exports");
    for (format, file) in [
        ("arrow", "model.arrow"),
        ("tf", "model_tf.json"),
        ("python", "model_inputs.py"),
        ("triton", "config.pbtxt"),
        ("json", "signature.json"),
    ] {
        let path = out.join(file);
        let t = ok(&fstore(
            &[
                "export",
                "ctr_model",
                "--registry",
                reg,
                "--format",
                format,
                "--out",
                path.to_str().unwrap(),
            ],
            w,
        ));
        assert!(
            t.contains("11 inputs and 1 outputs of \"ctr_model\""),
            "{t}"
        );
    }
    // The signature: inputs in the model's order with their encodings.
    let sig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("signature.json")).unwrap())
            .unwrap();
    let inputs: Vec<&str> = sig["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        [
            "age",
            "city",
            "score",
            "ctr",
            "category",
            "user_clicks_7d",
            "user_impr_1d",
            "age_bucket",
            "city_bucket",
            "ctr_log",
            "click_rate"
        ]
    );
    let by_name = |n: &str| {
        sig["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .unwrap()
            .clone()
    };
    // hash_bucket(…, 1024): 1024 ids and one for NULL; bucketize with 5 boundaries: 6 + 1.
    assert_eq!(by_name("city_bucket")["encoding"]["num_ids"], 1025);
    assert_eq!(by_name("city_bucket")["encoding"]["hash_buckets"], 1024);
    assert_eq!(by_name("age_bucket")["encoding"]["num_ids"], 7);
    assert_eq!(by_name("age_bucket")["default"], 6);
    assert_eq!(by_name("age")["encoding"]["kind"], "dense");
    assert_eq!(by_name("age")["group"], "user_profile");
    assert_eq!(by_name("city")["encoding"]["kind"], "text");
    assert_eq!(sig["outputs"][0]["name"], "clicked");

    // Bad requests are the user's: exit 2 with a reason.
    let unknown = fstore(
        &[
            "export",
            "nope",
            "--registry",
            reg,
            "--format",
            "json",
            "--out",
            "-",
        ],
        w,
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("unknown model or sample spec \"nope\" (known: ctr, ctr_model)"),
        "{}",
        text(&unknown)
    );
    let stdout_arrow = fstore(
        &[
            "export",
            "ctr",
            "--registry",
            reg,
            "--format",
            "arrow",
            "--out",
            "-",
        ],
        w,
    );
    assert_eq!(stdout_arrow.status.code(), Some(2));

    if !python_ready() {
        return;
    }
    let checked = Command::new("python3")
        .arg(repo().join("tests/python/check_exports.py"))
        .arg(&out)
        .arg(&samples)
        .output()
        .unwrap();
    assert!(
        ok(&checked).contains("exports ok: 11 inputs, 2063 samples"),
        "{}",
        text(&checked)
    );
    let example = Command::new("python3")
        .arg(repo().join("examples/ctr/train_and_serve.py"))
        .args(["--fstore", env!("CARGO_BIN_EXE_fstore"), "--registry", reg])
        .arg("--samples")
        .arg(&samples)
        .arg("--module")
        .arg(out.join("model_inputs.py"))
        .arg("--work")
        .arg(w.join("replay"))
        .output()
        .unwrap();
    let t = ok(&example);
    assert!(t.contains("trained on 2063 samples"), "{t}");
    assert!(
        t.contains("served inputs equal the training row (11 inputs)"),
        "{t}"
    );
}

#[test]
fn export_graph_writes_nodes_as_of_a_time_and_edges_up_to_it() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let registry = apply_example(w, "reg");
    let reg = registry.to_str().unwrap();
    let at = "2024-01-10T00:00:00Z";
    let t = fstore_core::json::parse_timestamp(at).unwrap();
    let graph = w.join("graph");
    let mut args = vec![
        "export-graph".to_string(),
        "ctr".into(),
        "--registry".into(),
        reg.into(),
        "--as-of".into(),
        at.into(),
        "--out".into(),
        graph.display().to_string(),
    ];
    args.extend(sources());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&fstore(&refs, w));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(graph.join("graph.json")).unwrap()).unwrap();
    assert_eq!(schema["edges"][0]["type"], "impressions");
    assert_eq!(schema["edges"][0]["source"]["node"], "user");
    assert_eq!(schema["edges"][0]["destination"]["node"], "item");

    // Node features equal the batch's features for an event of each key at the same time.
    let data = repo().join("examples/ctr/data");
    let users: Vec<String> = json_keys(&data, "user_profile.jsonl", "user_id")
        .into_iter()
        .chain(json_keys(&data, "impressions.jsonl", "user_id"))
        .filter_map(|v| v.as_str().map(String::from))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let items: Vec<i64> = json_keys(&data, "item_stats.jsonl", "item_id")
        .into_iter()
        .chain(json_keys(&data, "impressions.jsonl", "item_id"))
        .filter_map(|v| v.as_i64())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let batch = batch_at(w, reg, &users, &items, t);
    let read = |p: &Path| {
        let b = read_parquet_dir(p);
        arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
    };
    let nodes_user = read(&graph.join("nodes/user.parquet"));
    let nodes_item = read(&graph.join("nodes/item.parquet"));
    let node_rows = |b: &arrow::array::RecordBatch| -> BTreeMap<String, BTreeMap<String, Value>> {
        (0..b.num_rows())
            .map(|r| {
                let key = format!("{:?}", value_at(b.column(0), r).unwrap());
                let vals = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .skip(1)
                    .map(|(f, c)| {
                        let name = f.name().split_once('.').unwrap().1.to_string();
                        (name, value_at(c, r).unwrap())
                    })
                    .collect();
                (key, vals)
            })
            .collect()
    };
    let (user_nodes, item_nodes) = (node_rows(&nodes_user), node_rows(&nodes_item));
    assert!(user_nodes.len() > 150 && item_nodes.len() > 30);
    let col = |n: &str| batch.column_by_name(n).unwrap().clone();
    let mut diffs = Vec::new();
    let mut cells = 0;
    for r in 0..batch.num_rows() {
        for (key_col, nodes, features) in [
            (
                "user_id",
                &user_nodes,
                &["age", "city", "score", "user_clicks_7d", "user_impr_1d"][..],
            ),
            ("item_id", &item_nodes, &["ctr", "category"][..]),
        ] {
            let key = format!("{:?}", value_at(&col(key_col), r).unwrap());
            for f in features {
                let want = value_at(&col(f), r).unwrap();
                // Keys without any value are absent: their features are NULL (counts 0).
                let got = nodes.get(&key).and_then(|n| n.get(*f)).cloned().unwrap_or(
                    if f.starts_with("user_") {
                        Value::Int64(0)
                    } else {
                        Value::Null
                    },
                );
                cells += 1;
                if got != want {
                    diffs.push(format!("{key} {f}: graph {got:?}, batch {want:?}"));
                }
            }
        }
    }
    crate::support::assert_no_diffs(diffs, cells);

    // Edges: every impression up to the time, inclusive.
    let edges = read(&graph.join("edges/impressions.parquet"));
    let want = std::fs::read_to_string(data.join("impressions.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["ts"]
                .as_str()
                .and_then(|s| fstore_core::json::parse_timestamp(s).ok())
                .is_some_and(|ts| ts <= t)
        })
        .count();
    assert_eq!(edges.num_rows(), want);
    let ids = edges
        .column_by_name("request_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(ids.len(), want);
}
