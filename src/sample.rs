//! `fstore sample`: a batch sample job as schedulers run it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use fstore_offline::Range;
use fstore_registry::Registry;
use fstore_registry::compiled::CompiledSpec;
use fstore_registry::json::parse_timestamp;

use crate::exit::CliError;

/// Arguments of `fstore sample`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// The sample spec.
    pub spec: String,
    /// Output folder; samples go to OUT/dt=YYYY-MM-DD/part-00000.parquet.
    #[arg(long)]
    pub out: PathBuf,
    /// First event time to sample (inclusive): YYYY-MM-DD or RFC 3339.
    #[arg(long)]
    pub start: Option<String>,
    /// Event time to stop before (exclusive): YYYY-MM-DD or RFC 3339.
    #[arg(long)]
    pub end: Option<String>,
    /// Read a source from another Parquet location: NAME=PATH (file, folder or glob). Repeatable.
    #[arg(long = "source", value_name = "NAME=PATH")]
    pub sources: Vec<String>,
    /// Print the first N samples after the job.
    #[arg(long, default_value_t = 0)]
    pub show: usize,
}

/// Parses `YYYY-MM-DD` (midnight UTC) or RFC 3339 into epoch microseconds.
pub fn parse_time(s: &str) -> Result<i64, CliError> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    parse_timestamp(&full)
        .map_err(|e| CliError::user(format!("bad time {s:?}: {e}; write YYYY-MM-DD or RFC 3339")))
}

pub fn run(registry: &std::path::Path, args: SampleArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let snap = Registry::new(registry).require_current()?;
    let spec = CompiledSpec::compile(&snap.definitions, &args.spec)?;
    let range = Range {
        start: args.start.as_deref().map(parse_time).transpose()?,
        end: args.end.as_deref().map(parse_time).transpose()?,
    };
    if let (Some(s), Some(e)) = (range.start, range.end)
        && s >= e
    {
        return Err(CliError::user(format!(
            "--start {} is not before --end {}",
            args.start.unwrap_or_default(),
            args.end.unwrap_or_default()
        )));
    }
    let mut locations: HashMap<String, PathBuf> = HashMap::new();
    for src in std::iter::once(&spec.source).chain(spec.joins.iter().map(|j| &j.group.source)) {
        if let Some(b) = &src.batch {
            locations.insert(src.name.clone(), snap.resolve_location(b));
        }
    }
    for o in &args.sources {
        let (name, path) = o
            .split_once('=')
            .ok_or_else(|| CliError::user(format!("--source {o:?}: write NAME=PATH")))?;
        if !locations.contains_key(name) && !snap.definitions.sources.contains_key(name) {
            let known: Vec<&str> = snap
                .definitions
                .sources
                .keys()
                .map(String::as_str)
                .collect();
            return Err(CliError::user(format!(
                "--source {o:?}: unknown source \"{name}\" (known: {})",
                known.join(", ")
            )));
        }
        locations.insert(name.to_string(), PathBuf::from(path));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError {
            user: false,
            message: e.to_string(),
        })?;
    let ctx = fstore_offline::read::session();
    let (samples, stats) = rt.block_on(fstore_offline::sample(&ctx, &spec, &locations, range))?;
    let spec_fp = fstore_registry::model::ObjectRef::Spec(&spec.spec).fingerprint();
    let metadata = BTreeMap::from([
        ("fstore.spec".to_string(), spec.spec.name.clone()),
        (
            "fstore.registry_version".to_string(),
            snap.version.to_string(),
        ),
        ("fstore.spec_fingerprint".to_string(), spec_fp),
    ]);
    let ts_out = spec
        .spec
        .columns
        .iter()
        .position(|c| matches!(&c.role, fstore_registry::ColumnRole::EventTime { .. }));
    let ts_out = ts_out.ok_or_else(|| CliError::user(format!("sample spec \"{}\" does not select its event time column; samples are partitioned by it", spec.spec.name)))?;
    let written = fstore_offline::sink::write_partitioned(&args.out, &samples, ts_out, metadata)?;
    let peak = peak_rss_mib()
        .map(|m| format!(", peak RSS {m} MiB"))
        .unwrap_or_default();
    println!(
        "sample {}: {} events read, {} samples in {} partitions under {} ({:.2?}{peak})",
        spec.spec.name,
        stats.events_read,
        stats.samples,
        written.len(),
        args.out.display(),
        started.elapsed()
    );
    for j in &stats.joins {
        println!(
            "  join {}: {} events without a row, {} expired by TTL, {} source rows without key or time",
            j.alias, j.no_row, j.expired, j.skipped_rows
        );
    }
    if args.show > 0 {
        let n = args.show.min(samples.num_rows());
        println!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&[samples.slice(0, n)]).map_err(|e| {
                CliError {
                    user: false,
                    message: e.to_string(),
                }
            })?
        );
    }
    Ok(())
}

/// The process's peak resident memory (VmHWM), in MiB, where /proc has it.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
