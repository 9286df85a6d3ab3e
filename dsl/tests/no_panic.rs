//! The parser and checker never panic, whatever the input: arbitrary text, soups of the
//! language's own tokens, and random mutations of valid definitions.
//!
//! The suite runs a few hundred cases of each. For a long run:
//! `FSTORE_FUZZ_SECONDS=600 cargo test -p fstore-dsl --release --test dsl no_panic -- --ignored --nocapture`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const VOCAB: &[&str] = &[
    "CREATE",
    "ENTITY",
    "SOURCE",
    "FEATURE",
    "GROUP",
    "SAMPLE",
    "SPEC",
    "MODEL",
    "KEY",
    "EVENT",
    "TIME",
    "BATCH",
    "PARQUET",
    "KAFKA",
    "TOPIC",
    "ON",
    "FROM",
    "TTL",
    "VERSION",
    "TIE",
    "BREAK",
    "AS",
    "SELECT",
    "JOIN",
    "LABEL",
    "USING",
    "INPUTS",
    "OVER",
    "FILTER",
    "WHERE",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "LAST",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "DOUBLE",
    "INT64",
    "STRING",
    "BOOLEAN",
    "TIMESTAMP",
    "LIST",
    "<",
    ">",
    ">>",
    "(",
    ")",
    ",",
    ";",
    ".",
    "*",
    "+",
    "-",
    "/",
    "=",
    "'x'",
    "''",
    "\"q\"",
    "7",
    "0",
    "-1",
    "1.5",
    "99999999999999999999",
    "DAYS",
    "HOUR",
    "user",
    "item",
    "user_id",
    "item_id",
    "ts",
    "age",
    "city",
    "impressions",
    "user_profile",
    "clicked",
    "bucketize",
    "hash_bucket",
    "log1p",
    "clip",
    "COALESCE",
    "NULL",
    "TRUE",
    "[",
    "]",
    "--c\n",
    "/*",
    "*/",
    "'",
    "\"",
    "$1",
    "?",
    "::",
    "@",
    "EXISTS",
    "INTERVAL",
];

fn example_files() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../examples/ctr");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect()
}

/// Outcomes seen, to show how deep the inputs reach: [compiled, syntax errors, semantic errors].
static OUTCOMES: [std::sync::atomic::AtomicU64; 3] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];

fn check(files: Vec<(PathBuf, String)>) {
    use std::sync::atomic::Ordering::Relaxed;
    // Errors are fine; rendering them must not panic either.
    match fstore_dsl::compile_files(files) {
        Ok(_) => OUTCOMES[0].fetch_add(1, Relaxed),
        Err(d) => {
            let text = d.to_string();
            let syntax = text.contains("error: expected")
                || text.contains("invalid expression")
                || text.contains("cannot read token");
            if std::env::var_os("FSTORE_FUZZ_DEBUG").is_some() {
                eprintln!("{}", text.lines().next().unwrap_or(""));
            }
            OUTCOMES[if syntax { 1 } else { 2 }].fetch_add(1, Relaxed)
        }
    };
}

/// A valid file with a few whole words replaced by words of the language: mostly still
/// parses, so the checker and the expression planner see it.
fn word_mutation() -> impl Strategy<Value = (usize, Vec<(usize, &'static str)>)> {
    (
        any::<usize>(),
        prop::collection::vec((any::<usize>(), prop::sample::select(VOCAB)), 1..4),
    )
}

fn apply_word_mutation(
    files: &[(PathBuf, String)],
    (which, edits): &(usize, Vec<(usize, &'static str)>),
) -> Vec<(PathBuf, String)> {
    let mut files = files.to_vec();
    let i = which % files.len();
    let mut words: Vec<String> = files[i].1.split(' ').map(str::to_string).collect();
    for (at, w) in edits {
        let n = words.len();
        words[at % n] = (*w).to_string();
    }
    files[i].1 = words.join(" ");
    files
}

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(VOCAB), 0..80).prop_map(|t| t.join(" "))
}

/// A valid file with a random slice replaced by random text or tokens.
fn mutation() -> impl Strategy<Value = (usize, usize, usize, String)> {
    (
        any::<usize>(),
        any::<usize>(),
        0usize..40,
        prop_oneof![".{0,12}", soup()],
    )
}

fn apply_mutation(
    files: &[(PathBuf, String)],
    (which, at, len, insert): &(usize, usize, usize, String),
) -> Vec<(PathBuf, String)> {
    let mut files = files.to_vec();
    let i = which % files.len();
    let text = &files[i].1;
    let mut cut = at % (text.len() + 1);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut end = (cut + len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    files[i].1 = format!("{}{}{}", &text[..cut], insert, &text[end..]);
    files
}

fn run_all(config: Config, deadline: Option<Instant>) -> u64 {
    let examples = example_files();
    let mut cases = 0u64;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for round in 0u64.. {
        // A fresh runner per strategy and a fresh seed per round, so a long run keeps
        // exploring new inputs.
        let runner = |k: u64| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&base.to_le_bytes());
            seed[8..16].copy_from_slice(&round.to_le_bytes());
            seed[16..24].copy_from_slice(&k.to_le_bytes());
            let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
            if deadline.is_some() {
                TestRunner::new_with_rng(config.clone(), rng)
            } else {
                TestRunner::new(config.clone())
            }
        };
        runner(0)
            .run(&".*", |s| {
                check(vec![(PathBuf::from("a.sql"), s)]);
                Ok(())
            })
            .unwrap();
        runner(1)
            .run(&soup(), |s| {
                check(vec![(PathBuf::from("a.sql"), s)]);
                Ok(())
            })
            .unwrap();
        runner(2)
            .run(&mutation(), |m| {
                check(apply_mutation(&examples, &m));
                Ok(())
            })
            .unwrap();
        runner(3)
            .run(&word_mutation(), |m| {
                check(apply_word_mutation(&examples, &m));
                Ok(())
            })
            .unwrap();
        cases += 4 * u64::from(config.cases);
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    cases
}

#[test]
fn never_panics_on_generated_input() {
    run_all(
        Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        },
        None,
    );
}

#[test]
#[ignore = "long run: FSTORE_FUZZ_SECONDS=600"]
fn never_panics_for_a_long_time() {
    let secs: u64 = std::env::var("FSTORE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let start = Instant::now();
    let cases = run_all(
        Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        },
        Some(start + Duration::from_secs(secs)),
    );
    let o: Vec<u64> = OUTCOMES
        .iter()
        .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    println!(
        "fuzz: {cases} inputs in {:.0?}, no panic ({} compiled, {} syntax errors, {} semantic errors)",
        start.elapsed(),
        o[0],
        o[1],
        o[2]
    );
}
