//! Reading sources from Parquet: a file, a folder, or a glob; every file's columns must have
//! the declared types (named in the error otherwise).

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use datafusion::common::ScalarValue;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, ident, lit};
use fstore_registry::DataType;
use fstore_registry::compiled::plain_source_schema;
use fstore_registry::model::Source;
use fstore_registry::types::UTC;

use crate::Error;

/// A session configured for fstore: plain string arrays (not views), as the compiled
/// expressions expect.
pub fn session() -> SessionContext {
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config(config)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Reads every row of a source at `location` with the source's declared schema.
/// `bounds` keeps only rows with event time in `[lower, upper)` (each end optional); the
/// predicate is pushed into the Parquet scan.
pub async fn read_source(
    ctx: &SessionContext,
    source: &Source,
    location: &Path,
    bounds: (Option<i64>, Option<i64>),
) -> Result<Vec<RecordBatch>, Error> {
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
    let names: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
    let mut df = df.select_columns(&names)?;
    let ts = |v: i64| lit(ScalarValue::TimestampMicrosecond(Some(v), Some(UTC.into())));
    if let Some(lower) = bounds.0 {
        df = df.filter(ident(&source.event_time).gt_eq(ts(lower)))?;
    }
    if let Some(upper) = bounds.1 {
        df = df.filter(ident(&source.event_time).lt(ts(upper)))?;
    }
    let batches = df.collect().await.map_err(|e| {
        Error::Input(format!(
            "source \"{}\": cannot read {}: {e}",
            source.name,
            location.display()
        ))
    })?;
    let schema = plain_source_schema(source);
    batches
        .into_iter()
        .map(|b| {
            // Same fstore types, possibly other encodings (LargeUtf8, a timestamp's timezone).
            let cols = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        cast(c, f.data_type())
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Input(e.to_string()))?;
            RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::Input(e.to_string()))
        })
        .collect()
}
