//! Reading sources from Parquet: a file, a folder, or a glob; every file's columns must have
//! the declared types (named in the error otherwise).

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use futures::TryStreamExt;

use datafusion::common::ScalarValue;
use datafusion::prelude::{
    DataFrame, Expr, ParquetReadOptions, SessionConfig, SessionContext, cast, ident, lit,
};
use fstore_core::types::UTC;
use fstore_registry::DataType;
use fstore_registry::compiled::plain_source_schema;
use fstore_registry::model::Source;

use crate::Error;

/// How a session may use memory and disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    /// Bytes the job's sorts may hold before spilling to disk; unbounded when `None`.
    pub memory_limit: Option<usize>,
    /// Rows per batch (DataFusion's default when `None`).
    pub batch_size: Option<usize>,
}

/// A session configured for fstore: plain string arrays (not views), as the compiled
/// expressions expect; no memory limit.
pub fn session() -> SessionContext {
    session_with(SessionOptions::default()).expect("a session without limits always builds")
}

/// A session whose sorts spill to the temporary folder (`TMPDIR`) beyond `memory_limit`.
pub fn session_with(options: SessionOptions) -> Result<SessionContext, Error> {
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config.options_mut().sql_parser.enable_ident_normalization = false;
    if let Some(n) = options.batch_size {
        config = config.with_batch_size(n.max(1));
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        // Each sort keeps a reservation for merging its spilled runs; a small pool gets a
        // proportionally small one.
        let reserve = (limit / 64).min(10 << 20);
        config = config.with_sort_spill_reservation_bytes(reserve);
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    let runtime = runtime.build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// Checks that every file the scan will read is at least shaped like Parquet (magic bytes,
/// a footer that fits in the file), so a damaged file gets an error naming it rather than
/// reaching the decoder; and that there is a file at all.
async fn check_files(
    ctx: &SessionContext,
    source: &Source,
    location: &Path,
    url: &str,
    ext: &str,
) -> Result<(), Error> {
    let io = |e: &dyn std::fmt::Display| {
        Error::Input(format!(
            "source \"{}\": cannot list {}: {e}",
            source.name,
            location.display()
        ))
    };
    let table = ListingTableUrl::parse(url).map_err(|e| io(&e))?;
    let store = ctx
        .runtime_env()
        .object_store(table.object_store())
        .map_err(|e| io(&e))?;
    let state = ctx.state();
    let files: Vec<_> = table
        .list_all_files(&state, store.as_ref(), ext)
        .await
        .map_err(|e| io(&e))?
        .try_collect()
        .await
        .map_err(|e| io(&e))?;
    if files.is_empty() {
        return Err(Error::Input(format!(
            "source \"{}\": no *{ext} files at {}",
            source.name,
            location.display()
        )));
    }
    for f in files {
        let path = Path::new("/").join(f.location.as_ref());
        parquet_shape(&path, f.size).map_err(|why| {
            Error::Input(format!(
                "source \"{}\": cannot read Parquet at {}: {why}",
                source.name,
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// `PAR1` at both ends and a footer length that fits: what every readable Parquet file has.
fn parquet_shape(path: &Path, size: u64) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    const MAGIC: &[u8; 4] = b"PAR1";
    if size < 12 {
        return Err(format!("{size} bytes is too short for a Parquet file"));
    }
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut head = [0u8; 4];
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8)).map_err(|e| e.to_string())?;
    f.read_exact(&mut tail).map_err(|e| e.to_string())?;
    if &head != MAGIC || &tail[4..] != MAGIC {
        return Err("no Parquet magic bytes (not a Parquet file, or truncated)".into());
    }
    let footer = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if footer + 12 > size {
        return Err(format!(
            "footer of {footer} bytes does not fit in the file's {size} bytes (truncated?)"
        ));
    }
    Ok(())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A source's rows at `location` with the source's declared schema, as a DataFrame to plan
/// with. `bounds` keeps only rows with event time in `[lower, upper)` (each end optional); the
/// predicate is pushed into the Parquet scan.
pub async fn source_frame(
    ctx: &SessionContext,
    source: &Source,
    location: &Path,
    bounds: (Option<i64>, Option<i64>),
) -> Result<DataFrame, Error> {
    let loc = location.to_string_lossy().to_string();
    let url = if has_glob(&loc) {
        loc.clone()
    } else if location.is_dir() {
        format!("{}/", loc.trim_end_matches('/'))
    } else if location.is_file() {
        loc.clone()
    } else {
        return Err(Error::Input(format!(
            "source \"{}\": {} does not exist",
            source.name,
            location.display()
        )));
    };
    // A single file is read whatever its extension; folders and globs read `*.parquet`.
    let ext = if location.is_file() {
        location
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default()
    } else {
        ".parquet".into()
    };
    check_files(ctx, source, location, &url, &ext).await?;
    let df = ctx
        .read_parquet(
            url.as_str(),
            ParquetReadOptions::default().file_extension(&ext),
        )
        .await
        .map_err(|e| {
            Error::Input(format!(
                "source \"{}\": cannot read Parquet at {}: {e}",
                source.name,
                location.display()
            ))
        })?;
    let file_schema = df.schema().as_arrow().clone();
    for col in &source.columns {
        match file_schema.field_with_name(&col.name) {
            Err(_) => {
                return Err(Error::Input(format!(
                    "source \"{}\": Parquet at {} has no column \"{}\" (it has: {})",
                    source.name,
                    location.display(),
                    col.name,
                    file_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Ok(f) if DataType::from_arrow(f.data_type()).as_ref() != Some(&col.dtype) => {
                return Err(Error::Input(format!(
                    "source \"{}\": column \"{}\" in {} is {}, declared {}",
                    source.name,
                    col.name,
                    location.display(),
                    f.data_type(),
                    col.dtype
                )));
            }
            Ok(_) => {}
        }
    }
    // Same fstore types, possibly other encodings (LargeUtf8, a timestamp's timezone).
    let plain = plain_source_schema(source);
    let columns: Vec<Expr> = plain
        .fields()
        .iter()
        .map(|f| {
            let c = ident(f.name());
            match file_schema.field_with_name(f.name()) {
                Ok(ff) if ff.data_type() == f.data_type() => c,
                _ => cast(c, f.data_type().clone()).alias(f.name()),
            }
        })
        .collect();
    let mut df = df.select(columns)?;
    let ts = |v: i64| lit(ScalarValue::TimestampMicrosecond(Some(v), Some(UTC.into())));
    if let Some(lower) = bounds.0 {
        df = df.filter(ident(&source.event_time).gt_eq(ts(lower)))?;
    }
    if let Some(upper) = bounds.1 {
        df = df.filter(ident(&source.event_time).lt(ts(upper)))?;
    }
    Ok(df)
}
