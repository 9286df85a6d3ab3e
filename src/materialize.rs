//! `fstore materialize`: load each key's as-of value of feature groups into the online store
//! (row groups: the latest row; window groups: the rows their windows fold).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use fstore_core::expr::ExprCompiler;
use fstore_core::rows::value_at;
use fstore_online::OnlineStore;
use fstore_online::layout::GroupLayout;
use fstore_registry::Registry;
use fstore_registry::compiled::{CompiledGroup, CompiledGroupKind};
use futures::StreamExt;

use crate::exit::CliError;
use crate::progress::Progress;
use crate::sample::{parse_size, parse_time, peak_rss_mib, source_locations};

/// Values per store write.
const WRITE_BATCH: usize = 1000;

/// Arguments of `fstore materialize`.
#[derive(Debug, clap::Args)]
pub struct MaterializeArgs {
    /// Feature groups to load: a row group's latest row per key, a window group's rows
    /// within its longest window.
    #[arg(required = true)]
    pub groups: Vec<String>,
    /// Online store: redis://host:port/db or rocksdb:///path.
    #[arg(
        long,
        env = "FSTORE_ONLINE",
        default_value = "rocksdb://.fstore/online"
    )]
    pub online: String,
    /// Key namespace in the store.
    #[arg(long, default_value = "fstore")]
    pub namespace: String,
    /// The time whose as-of values to load (inclusive): YYYY-MM-DD or RFC 3339; now by default.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Read a source from another Parquet location: NAME=PATH. Repeatable.
    #[arg(long = "source", value_name = "NAME=PATH")]
    pub sources: Vec<String>,
    /// Memory the sorts may hold before spilling to disk.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub memory_limit: usize,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::internal(e)
}

pub fn run(registry: &std::path::Path, args: MaterializeArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let snap = Registry::new(registry).require_current()?;
    let as_of = match &args.as_of {
        Some(t) => parse_time(t)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(internal)?
            .as_micros() as i64,
    };
    let compiler = ExprCompiler::new();
    let mut groups = Vec::new();
    for name in &args.groups {
        let g = snap.definitions.group(name)?;
        let layout =
            GroupLayout::new(&args.namespace, &snap.definitions, name).map_err(CliError::from)?;
        groups.push((
            std::sync::Arc::new(CompiledGroup::compile(&snap.definitions, g, &compiler)?),
            layout,
        ));
    }
    let locations = source_locations(&snap, groups.iter().map(|(g, _)| &g.source), &args.sources)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(internal)?;
    let ctx = fstore_offline::read::session_with(fstore_offline::read::SessionOptions {
        memory_limit: Some(args.memory_limit),
        batch_size: None,
    })?;
    rt.block_on(async {
        let store = OnlineStore::open(&args.online).await.map_err(CliError::from)?;
        tracing::info!(store = %store.describe(), as_of, "materialize");
        for (group, layout) in &groups {
            let t0 = Instant::now();
            let location: PathBuf = locations.get(&group.source.name).cloned().ok_or_else(|| {
                CliError::user(format!(
                    "no location for source \"{}\": declare BATCH PARQUET or pass --source {}=PATH",
                    group.source.name, group.source.name
                ))
            })?;
            if matches!(group.kind, CompiledGroupKind::Window { .. }) {
                let keys = Arc::new(AtomicU64::new(0));
                let progress = Progress::start(
                    &format!("materialize {}", group.group.name),
                    "keys",
                    {
                        let keys = keys.clone();
                        move || keys.load(Ordering::Relaxed)
                    },
                    None,
                );
                let mut stream =
                    std::pin::pin!(fstore_offline::engine::window_states(&ctx, group, &location, as_of).await?);
                let (mut rows, mut written) = (0u64, 0u64);
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    keys.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let mut entries = Vec::with_capacity(chunk.len());
                    for (key, state) in &chunk {
                        rows += state.len() as u64;
                        entries.push((
                            layout.key(key).map_err(CliError::from)?,
                            layout.encode_window(state).map_err(CliError::from)?,
                        ));
                    }
                    for part in entries.chunks(WRITE_BATCH) {
                        written += store.put_newer(part.to_vec()).await.map_err(CliError::from)?;
                    }
                }
                progress.stop();
                let keys = keys.load(Ordering::Relaxed);
                println!(
                    "materialize {} v{} as of {}: {keys} keys loaded with {rows} window rows ({written} not older than the store's) ({:.2?})",
                    group.group.name,
                    group.group.version,
                    fstore_core::json::format_timestamp(as_of),
                    t0.elapsed()
                );
                tracing::info!(group = %group.group.name, keys, rows, written, seconds = t0.elapsed().as_secs_f64(), "materialized");
                continue;
            }
            let job = fstore_offline::engine::plan_group_values(&ctx, group, &location, as_of).await?;
            let progress = Progress::start(
                &format!("materialize {}", group.group.name),
                "keys",
                job.progress(),
                None,
            );
            let mut stream = std::pin::pin!(job.execute(&ctx)?);
            let (mut keys, mut written, mut pending) = (0u64, 0u64, Vec::new());
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                keys += encode(layout, &batch, &mut pending)?;
                if pending.len() >= WRITE_BATCH {
                    written += store.put_newer(std::mem::take(&mut pending)).await.map_err(CliError::from)?;
                }
            }
            if !pending.is_empty() {
                written += store.put_newer(pending).await.map_err(CliError::from)?;
            }
            progress.stop();
            let stats = job.stats();
            let loaded = job.progress()();
            println!(
                "materialize {} v{} as of {}: {keys} of {loaded} keys loaded ({written} not older than the store's), {} source rows without key or time ({:.2?})",
                group.group.name,
                group.group.version,
                fstore_core::json::format_timestamp(as_of),
                stats.skipped_rows,
                t0.elapsed()
            );
            tracing::info!(
                group = %group.group.name,
                keys,
                written,
                seconds = t0.elapsed().as_secs_f64(),
                "materialized"
            );
        }
        store.compact().await.map_err(CliError::from)?;
        Ok::<_, CliError>(())
    })?;
    let peak = peak_rss_mib()
        .map(|m| format!(", peak RSS {m} MiB"))
        .unwrap_or_default();
    println!("done in {:.2?}{peak}", started.elapsed());
    Ok(())
}

/// Encodes a batch of as-of values (keys, the spine's time, features, row time) into store
/// entries; keys whose row expired (NULL row time) are left out. Returns entries added.
fn encode(
    layout: &GroupLayout,
    batch: &RecordBatch,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<u64, CliError> {
    let k = layout.entity.keys.len();
    let n_features = layout.features.len();
    let row_time = batch
        .column(k + 1 + n_features)
        .as_primitive::<TimestampMicrosecondType>();
    let mut added = 0;
    for r in 0..batch.num_rows() {
        if row_time.is_null(r) {
            continue;
        }
        let key = (0..k)
            .map(|c| value_at(batch.column(c), r))
            .collect::<Result<Vec<_>, _>>()?;
        let values = (0..n_features)
            .map(|c| value_at(batch.column(k + 1 + c), r))
            .collect::<Result<Vec<_>, _>>()?;
        let key = layout.key(&key).map_err(CliError::from)?;
        out.push((
            key,
            layout
                .encode(row_time.value(r), &values)
                .map_err(CliError::from)?,
        ));
        added += 1;
    }
    Ok(added)
}
