//! The CLI as users and schedulers drive it: exit codes, messages, apply → plan → apply.

use std::fs;

use crate::support::{copy_defs, edit, fstore, repo, text};

#[test]
fn validate_accepts_the_example_and_rejects_mistakes_with_positions() {
    let root = repo();
    let ok = fstore(&["validate", "examples/ctr"], &root);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("1 sample specs"), "{}", text(&ok));

    let dir = tempfile::tempdir().unwrap();
    copy_defs(&root.join("examples/ctr"), dir.path());
    edit(
        &dir.path().join("samples.sql"),
        "ctr, category,",
        "ctrr, category,",
    );
    let bad = fstore(&["validate", dir.path().to_str().unwrap()], &root);
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(2), "{out}");
    assert!(out.contains("unknown column \"ctrr\""), "{out}");
    assert!(
        out.contains("samples.sql:12:5"),
        "file:line:col of the bad name: {out}"
    );
    assert!(out.contains("^^^^"), "a caret under the name: {out}");
    assert!(out.contains("did you mean \"ctr\""), "a hint: {out}");

    let missing = fstore(&["validate", "/nonexistent/defs"], &root);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("/nonexistent/defs"),
        "{}",
        text(&missing)
    );

    let empty = tempfile::tempdir().unwrap();
    let none = fstore(&["validate", empty.path().to_str().unwrap()], &root);
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none).contains("no definitions"), "{}", text(&none));
}

#[test]
fn apply_plan_apply_classifies_changes_and_refuses_unversioned_breaks() {
    let root = repo();
    let work = tempfile::tempdir().unwrap();
    let defs = work.path().join("defs");
    copy_defs(&root.join("examples/ctr"), &defs);
    let reg = work.path().join("registry");
    let (d, r) = (defs.to_str().unwrap(), reg.to_str().unwrap());
    let run = |args: &[&str]| fstore(args, work.path());

    let first = run(&["apply", d, "--registry", r]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        text(&first).contains("now at version 1"),
        "{}",
        text(&first)
    );

    // Nothing changed: a second apply is a no-op.
    let again = run(&["apply", d, "--registry", r]);
    assert!(
        text(&again).contains("stays at version 1"),
        "{}",
        text(&again)
    );
    assert_eq!(
        run(&["plan", d, "--registry", r]).stdout,
        b"registry "
            .iter()
            .chain(reg.to_str().unwrap().as_bytes())
            .chain(b" at version 1\nno changes\n")
            .copied()
            .collect::<Vec<u8>>()
    );

    // Compatible: a TTL change and a new feature.
    edit(
        &defs.join("groups.sql"),
        "TTL 30 DAYS\nAS SELECT age, city, score;",
        "TTL 14 DAYS\nAS SELECT age, city, score, upper(city) AS city_upper;",
    );
    let plan = run(&["plan", d, "--registry", r]);
    let out = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "{out}");
    assert!(
        out.contains("~ feature group user_profile")
            && out
                .contains("compatible: TTL 30 DAYS → 14 DAYS; feature \"city_upper\" STRING added"),
        "{out}"
    );
    assert!(out.contains("apply would write version 2"), "{out}");
    let applied = run(&["apply", d, "--registry", r]);
    assert!(
        text(&applied).contains("now at version 2"),
        "{}",
        text(&applied)
    );

    // Breaking without a new version: plan says so, apply refuses with exit 2 and the reason.
    edit(
        &defs.join("groups.sql"),
        "AS SELECT age, city, score, upper(city) AS city_upper;",
        "AS SELECT age, city, score * 2 AS score, upper(city) AS city_upper;",
    );
    let plan = run(&["plan", d, "--registry", r]);
    let out = text(&plan);
    assert!(
        out.contains("BREAKING: feature \"score\" expression changed"),
        "{out}"
    );
    assert!(out.contains("set VERSION 2"), "{out}");
    let refused = run(&["apply", d, "--registry", r]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("needs a new version"),
        "{}",
        text(&refused)
    );
    let desc = run(&["describe", "group:user_profile", "--registry", r]);
    assert!(
        text(&desc).contains("registry version 2")
            && text(&desc).contains("feature score DOUBLE = score\n"),
        "registry unchanged: {}",
        text(&desc)
    );

    // The same change with a new version is accepted.
    edit(
        &defs.join("groups.sql"),
        "TTL 14 DAYS",
        "TTL 14 DAYS VERSION 2",
    );
    let applied = run(&["apply", d, "--registry", r]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    assert!(
        text(&applied).contains("version 1 → 2") && text(&applied).contains("now at version 3"),
        "{}",
        text(&applied)
    );

    // Retyping and dropping features are breaking too; a lower version is always refused.
    edit(
        &defs.join("groups.sql"),
        "TTL 14 DAYS VERSION 2",
        "TTL 14 DAYS VERSION 1",
    );
    let lower = run(&["apply", d, "--registry", r]);
    assert_eq!(lower.status.code(), Some(2));
    assert!(
        text(&lower).contains("lower than the registered version 2"),
        "{}",
        text(&lower)
    );
    edit(
        &defs.join("groups.sql"),
        "TTL 14 DAYS VERSION 1",
        "TTL 14 DAYS VERSION 2",
    );

    // Each probe edits the definitions, checks plan's verdict, and puts the text back.
    let probe = |from: &str, to: &str, verdict: &str| {
        edit(&defs.join("groups.sql"), from, to);
        let plan = text(&run(&["plan", d, "--registry", r]));
        assert!(plan.contains(verdict), "{verdict:?} not in:\n{plan}");
        edit(&defs.join("groups.sql"), to, from);
    };
    probe(
        "score * 2 AS score, upper(city) AS city_upper;",
        "score * 2 AS score;",
        "feature \"city_upper\" dropped",
    );
    probe(
        "AS SELECT ctr, category;",
        "AS SELECT ctr, CAST(ctr AS STRING) AS category;",
        "feature \"category\" expression changed",
    );
    probe(
        "AS SELECT age, city,",
        "AS SELECT CAST(age AS DOUBLE) AS age, city,",
        "feature \"age\" retyped INT64 → DOUBLE",
    );
    probe(
        "TTL 7 DAYS",
        "TTL 7 DAYS TIE BREAK (ctr)",
        "tie-break columns () → (ctr)",
    );
    assert!(text(&run(&["plan", d, "--registry", r])).contains("no changes"));

    // Removing an object is breaking: refused unless allowed.
    edit(
        &defs.join("samples.sql"),
        "CREATE MODEL ctr_model USING ctr;",
        "",
    );
    let removal = run(&["apply", d, "--registry", r]);
    assert_eq!(removal.status.code(), Some(2));
    assert!(
        text(&removal).contains("--allow-breaking"),
        "{}",
        text(&removal)
    );
    let allowed = run(&["apply", d, "--registry", r, "--allow-breaking"]);
    assert!(
        text(&allowed).contains("- model ctr_model") && text(&allowed).contains("now at version 4"),
        "{}",
        text(&allowed)
    );

    // Every version stays readable.
    for v in 1..=4 {
        assert!(reg.join(format!("versions/v{v:08}.json")).exists());
    }
}

#[test]
fn an_interrupted_apply_leaves_the_previous_version_current() {
    let root = repo();
    let work = tempfile::tempdir().unwrap();
    let reg = work.path().join("registry");
    let r = reg.to_str().unwrap();
    let ctr = root.join("examples/ctr");
    assert_eq!(
        fstore(
            &["apply", ctr.to_str().unwrap(), "--registry", r],
            work.path()
        )
        .status
        .code(),
        Some(0)
    );
    // A crash after writing a partial snapshot and its temp file, before CURRENT moved.
    fs::write(
        reg.join("versions/v00000002.json"),
        "{\"format\": 1, \"vers",
    )
    .unwrap();
    fs::write(reg.join("versions/.v00000002.json.tmp999"), "{").unwrap();
    let desc = fstore(&["describe", "ctr", "--registry", r], work.path());
    assert_eq!(desc.status.code(), Some(0), "{}", text(&desc));
    assert!(
        text(&desc).contains("registry version 1"),
        "{}",
        text(&desc)
    );
    // The next apply never reuses the half-written number.
    let defs = work.path().join("defs");
    copy_defs(&ctr, &defs);
    edit(&defs.join("groups.sql"), "TTL 7 DAYS", "TTL 8 DAYS");
    let out = fstore(
        &["apply", defs.to_str().unwrap(), "--registry", r],
        work.path(),
    );
    assert!(text(&out).contains("now at version 3"), "{}", text(&out));
    let desc = fstore(
        &["describe", "group:item_stats", "--registry", r],
        work.path(),
    );
    assert!(text(&desc).contains("TTL 8 DAYS"), "{}", text(&desc));
}

#[test]
fn describe_prints_schemas_and_reports_unknown_names() {
    let root = repo();
    let work = tempfile::tempdir().unwrap();
    let r = work.path().join("reg");
    let r = r.to_str().unwrap();
    let none = fstore(&["describe", "ctr", "--registry", r], work.path());
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none).contains("fstore apply"), "{}", text(&none));
    fstore(
        &[
            "apply",
            root.join("examples/ctr").to_str().unwrap(),
            "--registry",
            r,
        ],
        work.path(),
    );
    let ctr = fstore(&["describe", "spec:ctr", "--registry", r], work.path());
    let out = text(&ctr);
    assert!(
        out.contains("user_clicks_7d  INT64") && out.contains("Timestamp(µs, \"UTC\")"),
        "{out}"
    );
    let json = fstore(
        &["describe", "model:ctr_model", "--registry", r, "--json"],
        work.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["spec"], "ctr");
    assert_eq!(v["outputs"][0], "clicked");
    let unknown = fstore(&["describe", "nope", "--registry", r], work.path());
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).contains("known: item"), "{}", text(&unknown));
}

#[test]
fn the_example_data_is_what_the_generator_writes() {
    let root = repo();
    let out = tempfile::tempdir().unwrap();
    let generated = fstore(
        &["gen", "ctr", "--out", out.path().to_str().unwrap()],
        &root,
    );
    assert_eq!(generated.status.code(), Some(0), "{}", text(&generated));
    let committed = root.join("examples/ctr/data");
    let mut names: Vec<String> = fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let a = fs::read(committed.join(&name)).unwrap();
        let b = fs::read(out.path().join(&name)).unwrap_or_default();
        assert!(
            a == b,
            "examples/ctr/data/{name} differs from `fstore gen ctr` output; regenerate it"
        );
    }
    // The planted edge cases are there.
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(committed.join("gen_meta.json")).unwrap()).unwrap();
    for key in [
        "up_ts_equals_impression",
        "up_exactly_ttl_before",
        "up_ttl_plus_1us_before",
        "is_exactly_ttl_before",
        "is_ttl_plus_1us_before",
        "users_without_profile",
        "items_without_stats",
        "impressions_dup_user_ts_targets",
        "impressions_plus_1d",
        "impressions_plus_7d",
        "impressions_plus_1d_minus_1us",
        "profile_ties",
        "special_floats",
        "int64_beyond_2_53",
        "empty_strings",
        "events_late_impressions",
    ] {
        assert!(
            meta["edge_cases"][key].as_u64().unwrap_or(0) > 0,
            "no {key} planted: {meta}"
        );
    }
    let events = fs::read_to_string(committed.join("events.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(first.as_object().unwrap().keys().next().unwrap(), "table");
}

#[test]
fn sample_writes_dated_partitions_idempotently_and_reports_bad_inputs() {
    let root = repo();
    let work = tempfile::tempdir().unwrap();
    let r = work.path().join("reg");
    let r = r.to_str().unwrap();
    assert_eq!(
        fstore(
            &[
                "apply",
                root.join("examples/ctr").to_str().unwrap(),
                "--registry",
                r
            ],
            work.path()
        )
        .status
        .code(),
        Some(0)
    );
    let out = work.path().join("samples");
    let o = out.to_str().unwrap();
    let run = fstore(
        &[
            "sample",
            "ctr",
            "--registry",
            r,
            "--out",
            o,
            "--start",
            "2024-01-05",
            "--end",
            "2024-01-07T00:00:00Z",
        ],
        work.path(),
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    // Not on a terminal: structured JSON log lines on stderr, the summary among them.
    let stderr = String::from_utf8_lossy(&run.stderr);
    let done: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "sample job done")
        .unwrap_or_else(|| panic!("no JSON summary line in stderr:\n{stderr}"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains(&format!("{} samples", done["samples"])),
        "log line {done} disagrees with the summary:\n{stdout}"
    );
    assert!(done["samples"].as_u64().unwrap() > 0);
    let mut parts: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    parts.sort();
    assert_eq!(parts, ["dt=2024-01-05", "dt=2024-01-06"]);
    let file = out.join("dt=2024-01-05/part-00000.parquet");
    let first = fs::read(&file).unwrap();
    // Parquet footer metadata names the spec, the registry version and the spec fingerprint.
    let reader =
        parquet::file::reader::SerializedFileReader::new(fs::File::open(&file).unwrap()).unwrap();
    let kv = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let schema_meta = kv
        .iter()
        .find(|k| k.key == "ARROW:schema")
        .expect("arrow schema stored");
    assert!(schema_meta.value.is_some());
    // A rerun writes the same bytes and leaves no temporary files.
    let again = fstore(
        &[
            "sample",
            "ctr",
            "--registry",
            r,
            "--out",
            o,
            "--start",
            "2024-01-05",
            "--end",
            "2024-01-07",
        ],
        work.path(),
    );
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(fs::read(&file).unwrap(), first);
    let leftovers: Vec<_> = fs::read_dir(out.join("dt=2024-01-05"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    for (args, needle) in [
        (vec!["sample", "nope"], "unknown sample spec \"nope\""),
        (
            vec![
                "sample",
                "ctr",
                "--source",
                "impressions=/nonexistent.parquet",
            ],
            "/nonexistent.parquet does not exist",
        ),
        (
            vec![
                "sample",
                "ctr",
                "--source",
                "item_stats=DATA/user_profile.parquet",
            ],
            "has no column \"item_id\"",
        ),
        (
            vec!["sample", "ctr", "--source", "bogus=x"],
            "unknown source \"bogus\"",
        ),
        (
            vec![
                "sample",
                "ctr",
                "--start",
                "2024-02-01",
                "--end",
                "2024-01-01",
            ],
            "is not before",
        ),
        (vec!["sample", "ctr", "--start", "yesterday"], "bad time"),
        (
            vec![
                "sample",
                "ctr",
                "--source",
                "impressions=WORK/garbage.parquet",
            ],
            "cannot read Parquet at",
        ),
        (
            vec![
                "sample",
                "ctr",
                "--source",
                "user_profile=WORK/truncated.parquet",
            ],
            "cannot read Parquet at",
        ),
        (
            vec!["sample", "ctr", "--memory-limit", "4KiB"],
            "raise --memory-limit",
        ),
        (vec!["sample", "ctr", "--memory-limit", "lots"], "bad size"),
    ] {
        let data = root.join("examples/ctr/data");
        fs::write(
            work.path().join("garbage.parquet"),
            b"PAR1 not really parquet PAR1",
        )
        .unwrap();
        let whole = fs::read(data.join("user_profile.parquet")).unwrap();
        fs::write(
            work.path().join("truncated.parquet"),
            &whole[..whole.len() / 2],
        )
        .unwrap();
        let mut full: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("DATA", data.to_str().unwrap())
                    .replace("WORK", work.path().to_str().unwrap())
            })
            .collect();
        full.extend([
            "--registry".into(),
            r.into(),
            "--out".into(),
            work.path().join("x").to_str().unwrap().into(),
        ]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let res = fstore(&full, work.path());
        assert_eq!(res.status.code(), Some(2), "{full:?}: {}", text(&res));
        assert!(text(&res).contains(needle), "{full:?}: {}", text(&res));
    }
}
