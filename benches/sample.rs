//! End-to-end batch benchmark: `fstore sample` against a naive DataFusion SQL baseline (range
//! join + ROW_NUMBER for the as-of joins, range join + GROUP BY for the windows — the shape
//! Feast's offline store uses) on the same generated data, in the same run.
//!
//! `cargo bench --bench sample -- [--sizes 100000,1000000] [--baseline-max N] [--memory-limit SIZE]
//! [--baseline-memory-gib 16]`
//!
//! The data for N impressions: N/10 users, N/100 items, N profile rows, N/10 item-stat rows
//! over 30 days (10M impressions: 1M users, 10M profile rows, 100k items, 1M item rows).
//! Each engine runs in its own process; the report gives wall time, samples/s and peak RSS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn fstore() -> &'static str {
    env!("CARGO_BIN_EXE_fstore")
}

/// Runs a command; its stdout and stderr, or why it failed.
fn try_run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{} ({last})", out.status))
    }
}

fn run(cmd: &mut Command) -> String {
    try_run(cmd).unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"))
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |k| k / 1024)
}

/// The baseline, run in a child process of this bench: plain DataFusion SQL, its memory pool
/// capped at `limit` bytes so that a run too big for the machine fails with DataFusion's
/// error instead of the kernel's OOM killer.
async fn baseline(data: &Path, limit: usize) {
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::*;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limit, 1.0)
        .build_arc()
        .unwrap();
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    for t in ["impressions", "user_profile", "item_stats"] {
        ctx.register_parquet(
            t,
            data.join(format!("{t}.parquet")).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    let sql = r#"
    WITH up AS (
      SELECT e.request_id, p.age, p.city, p.score,
             ROW_NUMBER() OVER (PARTITION BY e.request_id ORDER BY p.ts DESC) AS rn
      FROM impressions e LEFT JOIN user_profile p
        ON p.user_id = e.user_id AND p.ts <= e.ts AND p.ts >= e.ts - INTERVAL '30 days'
    ), ist AS (
      SELECT e.request_id, s.ctr, s.category,
             ROW_NUMBER() OVER (PARTITION BY e.request_id ORDER BY s.ts DESC) AS rn
      FROM impressions e LEFT JOIN item_stats s
        ON s.item_id = e.item_id AND s.ts <= e.ts AND s.ts >= e.ts - INTERVAL '7 days'
    ), act AS (
      SELECT e.request_id,
             COUNT(i.request_id) FILTER (WHERE i.clicked AND i.ts >= e.ts - INTERVAL '7 days') AS user_clicks_7d,
             COUNT(i.request_id) FILTER (WHERE i.ts >= e.ts - INTERVAL '1 day') AS user_impr_1d
      FROM impressions e LEFT JOIN impressions i
        ON i.user_id = e.user_id AND i.ts < e.ts AND i.ts >= e.ts - INTERVAL '7 days'
      GROUP BY e.request_id
    )
    SELECT e.request_id, e.user_id, e.item_id, e.ts, e.clicked, up.age, up.city, up.score,
           ist.ctr, ist.category, act.user_clicks_7d, act.user_impr_1d
    FROM impressions e
    JOIN up ON up.request_id = e.request_id AND up.rn = 1
    JOIN ist ON ist.request_id = e.request_id AND ist.rn = 1
    JOIN act ON act.request_id = e.request_id
    "#;
    let start = Instant::now();
    let batches = match ctx.sql(sql).await.unwrap().collect().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "baseline failed after {:.1}s, peak RSS {} MiB: {}",
                start.elapsed().as_secs_f64(),
                peak_rss_mib(),
                e.to_string().lines().next().unwrap_or("")
            );
            std::process::exit(1);
        }
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!(
        "baseline: {rows} samples in {:.3}s, peak RSS {} MiB",
        start.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
}

fn parse_after(text: &str, key: &str) -> Option<f64> {
    let i = text.find(key)? + key.len();
    text[i..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|s| !s.is_empty())?
        .parse()
        .ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--run-baseline") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let limit: usize = args[i + 2].parse().expect("bytes");
        rt.block_on(baseline(Path::new(&args[i + 1]), limit));
        return;
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = flag("--sizes")
        .unwrap_or_else(|| "100000,1000000".into())
        .split(',')
        .map(|s| s.parse().expect("size"))
        .collect();
    let memory_limit = flag("--memory-limit");
    // The baseline's DataFusion memory pool, GiB (the machine's RAM minus headroom by default).
    let baseline_gib: usize = flag("--baseline-memory-gib").map_or(16, |s| s.parse().expect("GiB"));
    let baseline_max: usize =
        flag("--baseline-max").map_or(1_000_000, |s| s.parse().expect("number"));
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let work = std::env::temp_dir().join(format!("fstore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let registry = work.join("registry");
    run(Command::new(fstore()).args([
        "apply",
        root.join("examples/ctr").to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
    ]));
    println!(
        "| impressions | engine | samples | seconds | samples/s | peak RSS MiB | time vs fstore |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for n in sizes {
        let data = work.join(format!("data-{n}"));
        let sz = |x: usize| x.max(1).to_string();
        run(Command::new(fstore()).args([
            "gen",
            "ctr",
            "--out",
            data.to_str().unwrap(),
            "--no-json",
            "--impressions",
            &n.to_string(),
            "--users",
            &sz(n / 10),
            "--items",
            &sz(n / 100),
            "--profile-rows",
            &n.to_string(),
            "--item-rows",
            &sz(n / 10),
            "--days",
            "30",
        ]));
        let src = |t: &str| format!("{t}={}", data.join(format!("{t}.parquet")).display());
        let mut cmd = Command::new(fstore());
        cmd.args([
            "sample",
            "ctr",
            "--registry",
            registry.to_str().unwrap(),
            "--out",
            work.join(format!("out-{n}")).to_str().unwrap(),
            "--source",
            &src("impressions"),
            "--source",
            &src("user_profile"),
            "--source",
            &src("item_stats"),
        ]);
        if let Some(m) = &memory_limit {
            cmd.args(["--memory-limit", m]);
        }
        let start = Instant::now();
        let out = run(&mut cmd);
        let secs = start.elapsed().as_secs_f64();
        let samples = parse_after(&out, "events read, ").unwrap_or(0.0);
        let rss = parse_after(&out, "peak RSS ").unwrap_or(0.0);
        println!(
            "| {n} | fstore sample | {samples} | {secs:.2} | {:.0} | {rss} | 1.00 |",
            samples / secs
        );
        if n <= baseline_max {
            let start = Instant::now();
            let exe = std::env::current_exe().unwrap();
            let out = try_run(Command::new(exe).args([
                "--run-baseline",
                data.to_str().unwrap(),
                &(baseline_gib << 30).to_string(),
            ]));
            let bsecs = start.elapsed().as_secs_f64();
            let out = match out {
                Ok(out) => out,
                Err(why) => {
                    println!(
                        "| {n} | DataFusion SQL (range join + ROW_NUMBER) | failed after {bsecs:.0} s: {why} | | | | |"
                    );
                    continue;
                }
            };
            let bsamples = parse_after(&out, "baseline: ").unwrap_or(0.0);
            let brss = parse_after(&out, "peak RSS ").unwrap_or(0.0);
            println!(
                "| {n} | DataFusion SQL (range join + ROW_NUMBER) | {bsamples} | {bsecs:.2} | {:.0} | {brss} | {:.2} |",
                bsamples / bsecs,
                bsecs / secs
            );
        } else {
            println!(
                "| {n} | DataFusion SQL baseline | skipped (--baseline-max {baseline_max}) | | | | |"
            );
        }
    }
    std::fs::remove_dir_all(&work).ok();
}
