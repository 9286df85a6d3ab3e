//! Golden-file tests. Every case under `cases/valid` must compile and every case under
//! `cases/errors` must fail; each is compared with the `.expected` file beside it:
//! canonical JSON of the objects the case defines, or the rendered diagnostics.
//!
//! A case is `NAME.sql` (compiled together with `cases/prelude/*.sql`, unless its first line is
//! `-- standalone`) or a folder `NAME/` of `.sql` files (always standalone).
//! `FSTORE_BLESS=1 cargo test -p fstore-dsl --test dsl golden` rewrites the expectations;
//! review the diff before committing it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use fstore_dsl::compile_files;
use fstore_registry::Definitions;

fn cases_dir() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("tests/cases")
}

fn read_sql(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| (rel(&p), fs::read_to_string(&p).unwrap()))
        .collect()
}

/// Paths as shown in messages: relative to the cases folder, so expectations are portable.
fn rel(p: &Path) -> PathBuf {
    p.strip_prefix(cases_dir()).unwrap_or(p).to_path_buf()
}

fn names(d: &Definitions) -> BTreeSet<(String, String)> {
    d.objects()
        .iter()
        .map(|o| (o.kind().label().to_string(), o.name().to_string()))
        .collect()
}

/// (path, text) of each definitions file.
type Files = Vec<(PathBuf, String)>;

/// The files of a case and the prelude objects to leave out of its expected output.
fn case_files(case: &Path) -> (Files, BTreeSet<(String, String)>) {
    if case.is_dir() {
        return (read_sql(case), BTreeSet::new());
    }
    let text = fs::read_to_string(case).unwrap();
    if text.starts_with("-- standalone") {
        return (vec![(rel(case), text)], BTreeSet::new());
    }
    let prelude = read_sql(&cases_dir().join("prelude"));
    let prelude_names = names(&compile_files(prelude.clone()).expect("the prelude compiles"));
    let mut files = prelude;
    files.push((rel(case), text));
    (files, prelude_names)
}

fn render(valid: bool, case: &Path) -> Result<String, String> {
    let (files, skip) = case_files(case);
    match (compile_files(files), valid) {
        (Ok(defs), true) => {
            let objs: Vec<serde_json::Value> = defs
                .objects()
                .iter()
                .filter(|o| !skip.contains(&(o.kind().label().to_string(), o.name().to_string())))
                .map(|o| {
                    let mut v: serde_json::Value =
                        serde_json::from_str(&o.canonical_json()).unwrap();
                    v.as_object_mut()
                        .unwrap()
                        .insert("object".into(), o.kind().label().into());
                    v
                })
                .collect();
            Ok(serde_json::to_string_pretty(&objs).unwrap() + "\n")
        }
        (Err(diags), false) => Ok(diags.to_string()),
        (Ok(_), false) => Err("expected errors, but it compiled".into()),
        (Err(diags), true) => Err(format!("expected to compile, got:\n{diags}")),
    }
}

fn run(kind: &str, valid: bool, min_cases: usize) {
    let bless = std::env::var_os("FSTORE_BLESS").is_some();
    let dir = cases_dir().join(kind);
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        let expected_path = case.with_extension("expected");
        match render(valid, case) {
            Err(e) => failures.push(format!("{}: {e}", rel(case).display())),
            Ok(actual) if bless => fs::write(&expected_path, actual).unwrap(),
            Ok(actual) => match fs::read_to_string(&expected_path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{}: output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                    rel(case).display(),
                    rel(&expected_path).display()
                )),
                Err(_) => failures.push(format!(
                    "{}: no {} (run with FSTORE_BLESS=1)",
                    rel(case).display(),
                    rel(&expected_path).display()
                )),
            },
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {kind} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    assert!(
        cases.len() >= min_cases,
        "only {} {kind} cases; the suite keeps at least {min_cases}",
        cases.len()
    );
}

#[test]
fn valid_cases_compile_to_their_expected_objects() {
    run("valid", true, 20);
}

#[test]
fn error_cases_report_their_expected_diagnostics() {
    run("errors", false, 40);
}

#[test]
fn every_error_has_a_position_and_the_example_validates() {
    let example = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../examples/ctr");
    let defs = fstore_dsl::load_dir(&example).expect("examples/ctr validates");
    let spec = defs.spec("ctr").unwrap();
    let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        &names[..12],
        [
            "request_id",
            "user_id",
            "item_id",
            "ts",
            "clicked",
            "age",
            "city",
            "score",
            "ctr",
            "category",
            "user_clicks_7d",
            "user_impr_1d"
        ]
    );
    assert!(
        names.len() >= 14,
        "the ctr spec has at least two transforms"
    );
    // Every rendered error case names file:line:col.
    for entry in fs::read_dir(cases_dir().join("errors")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "expected") {
            let text = fs::read_to_string(&p).unwrap();
            assert!(
                text.contains("  --> "),
                "{} has an error without a position",
                p.display()
            );
        }
    }
}

#[test]
fn the_documented_language_example_compiles() {
    let readme = fs::read_to_string(
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../docs/language.md"),
    )
    .unwrap();
    let start = readme
        .find("```sql\n-- Entities")
        .expect("docs/language.md has the complete example")
        + "```sql\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let defs = compile_files(vec![(
        PathBuf::from("docs/language.md"),
        readme[start..end].to_string(),
    )])
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(defs.specs["ctr"].columns.len(), 15);
    assert_eq!(defs.models["ctr_model"].outputs, ["clicked"]);
}
