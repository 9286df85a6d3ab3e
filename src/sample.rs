//! `fstore sample`: a batch sample job as schedulers run it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;

use fstore_core::json::parse_timestamp;
use fstore_offline::Range;
use fstore_registry::Registry;
use fstore_registry::compiled::CompiledSpec;

use crate::exit::CliError;
use crate::progress::Progress;

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
    /// Memory the job's sorts may hold before spilling to disk (TMPDIR): e.g. 512MiB, 2GiB.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub memory_limit: usize,
}

/// Parses a byte size: a number with an optional unit B, KiB, MiB, GiB, TiB (or K, M, G, T,
/// KB, MB, GB, TB, all powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: write e.g. 512MiB or 2GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => {
            return Err(format!(
                "bad size {s:?}: unknown unit {u:?} (use KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let bytes = n * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes < usize::MAX as f64) {
        return Err(format!("bad size {s:?}: must be at least 1 byte"));
    }
    Ok(bytes as usize)
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
    let sources = std::iter::once(&spec.source).chain(spec.joins.iter().map(|j| &j.group.source));
    let locations = source_locations(&snap, sources, &args.sources)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::internal)?;
    let ctx = fstore_offline::read::session_with(fstore_offline::read::SessionOptions {
        memory_limit: Some(args.memory_limit),
        batch_size: None,
    })?;
    let metadata = fstore_registry::sample_file::sample_metadata(&spec.spec, snap.version);
    let ts_out = spec
        .spec
        .columns
        .iter()
        .position(|c| matches!(&c.role, fstore_registry::ColumnRole::EventTime { .. }));
    let ts_out = ts_out.ok_or_else(|| CliError::user(format!("sample spec \"{}\" does not select its event time column; samples are partitioned by it", spec.spec.name)))?;
    let (written, stats, shown) = rt.block_on(async {
        let job = fstore_offline::plan(&ctx, &spec, &locations, range).await?;
        tracing::info!(
            spec = %spec.spec.name,
            events = job.events,
            memory_limit = args.memory_limit,
            "sample job planned"
        );
        let progress = Progress::start(
            &format!("sample {}", spec.spec.name),
            "events",
            job.progress(),
            Some((job.total_work(), job.events)),
        );
        let mut writer = fstore_registry::sample_file::PartitionedWriter::new(
            &args.out,
            &spec.output_schema,
            ts_out,
            metadata,
        );
        let mut shown = Vec::new();
        let mut shown_rows = 0;
        let mut stream = std::pin::pin!(job.execute(&ctx)?);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if shown_rows < args.show {
                let n = (args.show - shown_rows).min(batch.num_rows());
                shown.push(batch.slice(0, n));
                shown_rows += n;
            }
            writer.write(&batch)?;
        }
        let written = writer.finish()?;
        progress.stop();
        Ok::<_, CliError>((written, job.stats(), shown))
    })?;
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
    tracing::info!(
        spec = %spec.spec.name,
        events_read = stats.events_read,
        events_without_time = stats.events_without_time,
        samples = stats.samples,
        partitions = written.len(),
        seconds = started.elapsed().as_secs_f64(),
        peak_rss_mib = peak_rss_mib(),
        "sample job done"
    );
    if stats.events_without_time > 0 {
        println!(
            "  {} events without event time skipped",
            stats.events_without_time
        );
    }
    for j in &stats.joins {
        println!(
            "  join {}: {} events without a row, {} expired by TTL, {} source rows without key or time",
            j.alias, j.no_row, j.expired, j.skipped_rows
        );
    }
    if args.show > 0 {
        println!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&shown)
                .map_err(|e| { CliError::internal(e) })?
        );
    }
    Ok(())
}

/// Each source's Parquet location: its declared BATCH location, or a `--source NAME=PATH`
/// override.
pub fn source_locations<'a>(
    snap: &fstore_registry::snapshot::Snapshot,
    sources: impl Iterator<Item = &'a fstore_registry::model::Source>,
    overrides: &[String],
) -> Result<HashMap<String, PathBuf>, CliError> {
    let mut locations: HashMap<String, PathBuf> = HashMap::new();
    for src in sources {
        if let Some(b) = &src.batch {
            locations.insert(src.name.clone(), snap.resolve_location(b));
        }
    }
    for o in overrides {
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
    Ok(locations)
}

/// The process's peak resident memory (VmHWM), in MiB, where /proc has it.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
