//! Batch engine tests: the contract vectors and a brute-force reference.

mod contract;
#[path = "../../tests/contract_dir.rs"]
mod contract_dir;
mod optimizer;
mod ranges;
mod reference;

use std::collections::HashMap;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use fstore_offline::Range;
use fstore_offline::read::{SessionOptions, session, session_with};
use fstore_registry::compiled::CompiledSpec;
use futures::TryStreamExt;

/// How a test runs the engine.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Default session: no memory limit, one chunk per join on test data.
    InMemory,
    /// Batches of 7 rows (chunks of 28 events, so keys straddle every cut) and a 1 MiB
    /// memory pool: every sort spills. The test fails unless some sort did spill.
    Spilling,
}

pub const MODES: [Mode; 2] = [Mode::InMemory, Mode::Spilling];

fn spills(plan: &dyn ExecutionPlan) -> usize {
    plan.metrics().and_then(|m| m.spill_count()).unwrap_or(0)
        + plan
            .children()
            .iter()
            .map(|c| spills(c.as_ref()))
            .sum::<usize>()
}

/// The example's `ctr` spec, compiled, and its sources' Parquet files.
pub fn example() -> (CompiledSpec, HashMap<String, PathBuf>) {
    let data = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../examples/ctr/data");
    let defs = fstore_dsl::load_dir(&data.join("..")).unwrap();
    let spec = CompiledSpec::compile(&defs, "ctr").unwrap();
    let locations = ["impressions", "user_profile", "item_stats"]
        .iter()
        .map(|s| (s.to_string(), data.join(format!("{s}.parquet"))))
        .collect();
    (spec, locations)
}

/// Runs a sample job in `mode`; all samples in one batch.
pub async fn run_job(
    mode: Mode,
    spec: &CompiledSpec,
    locations: &HashMap<String, PathBuf>,
    range: Range,
) -> (RecordBatch, fstore_offline::SampleStats) {
    let ctx = match mode {
        Mode::InMemory => session(),
        Mode::Spilling => session_with(SessionOptions {
            memory_limit: Some(1 << 20),
            batch_size: Some(7),
        })
        .unwrap(),
    };
    let job = fstore_offline::plan(&ctx, spec, locations, range)
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = job.execute(&ctx).unwrap().try_collect().await.unwrap();
    let out = arrow::compute::concat_batches(&spec.output_schema, &batches).unwrap();
    if matches!(mode, Mode::Spilling) && out.num_rows() > 100 {
        let n = spills(job.physical_plan().as_ref());
        assert!(n > 0, "no sort spilled under a 1 MiB pool");
    }
    (out, job.stats())
}

/// Fails with the first differing cells, sorted, if any.
pub fn assert_no_diffs(mut diffs: Vec<String>, cells: usize) {
    diffs.sort();
    let shown: Vec<&str> = diffs.iter().take(30).map(String::as_str).collect();
    assert!(
        diffs.is_empty(),
        "{} of {cells} cells differ:\n{}",
        diffs.len(),
        shown.join("\n")
    );
}
