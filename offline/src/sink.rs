//! Writing samples: Parquet (zstd) under `OUT/dt=YYYY-MM-DD/part-00000.parquet`, one file
//! per event date (UTC). Each file is written to a hidden temporary name in its partition
//! folder, synced and renamed over the old one, so a partition is replaced atomically and a
//! failed or killed run leaves no partial file visible (readers skip dot-files).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, TimestampMicrosecondType};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::Error;
use crate::error::internal;

/// The file name of a partition's samples.
pub const PART_FILE: &str = "part-00000.parquet";

/// `YYYY-MM-DD` of an epoch-µs timestamp, UTC.
pub fn event_date(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Writes `samples` partitioned by the date of `ts_column`, with `metadata` on the schema.
/// Returns the partitions written and their row counts.
pub fn write_partitioned(
    out: &Path,
    samples: &RecordBatch,
    ts_column: usize,
    metadata: BTreeMap<String, String>,
) -> Result<Vec<(PathBuf, usize)>, Error> {
    let ts = samples
        .column(ts_column)
        .as_primitive::<TimestampMicrosecondType>();
    let mut dates: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for i in 0..samples.num_rows() {
        if ts.is_valid(i) {
            dates
                .entry(event_date(ts.value(i)))
                .or_insert_with(|| vec![false; samples.num_rows()])[i] = true;
        }
    }
    let mut meta = samples.schema().metadata().clone();
    meta.extend(metadata);
    let schema = Arc::new(Schema::new_with_metadata(
        samples.schema().fields().clone(),
        meta,
    ));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut written = Vec::new();
    for (date, mask) in dates {
        let part = filter_record_batch(samples, &BooleanArray::from(mask)).map_err(internal)?;
        let part = part.with_schema(schema.clone()).map_err(internal)?;
        let dir = out.join(format!("dt={date}"));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::Input(format!("create {}: {e}", dir.display())))?;
        let final_path = dir.join(PART_FILE);
        let tmp = dir.join(format!(".{PART_FILE}.tmp{}", std::process::id()));
        let io =
            |what: &str, e: std::io::Error| Error::Input(format!("{what} {}: {e}", tmp.display()));
        let file = File::create(&tmp).map_err(|e| io("create", e))?;
        let mut w =
            ArrowWriter::try_new(file, schema.clone(), Some(props.clone())).map_err(internal)?;
        w.write(&part).map_err(internal)?;
        let file = w.into_inner().map_err(internal)?;
        file.sync_all().map_err(|e| io("sync", e))?;
        fs::rename(&tmp, &final_path).map_err(|e| io("rename", e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync dir of", e))?;
        written.push((final_path, part.num_rows()));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::event_date;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(event_date(0), "1970-01-01");
        assert_eq!(event_date(-1), "1969-12-31");
        assert_eq!(event_date(1_704_593_979_533_398), "2024-01-07");
        assert_eq!(event_date(951_782_400_000_000), "2000-02-29");
    }
}
