//! Sample files, as every engine writes them: Parquet (zstd) under
//! `OUT/dt=YYYY-MM-DD/FILE.parquet`, one file per event date (UTC), the schema carrying the
//! spec's name, registry version and fingerprint. `fstore sample` writes `part-00000.parquet`
//! per date; the joiner one file per checkpoint. Each file is written to a hidden temporary
//! name in its partition folder, synced and renamed over the old one, so a file is replaced
//! atomically and a failed or killed run leaves no partial file visible (readers skip
//! dot-files).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef, TimestampMicrosecondType};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::model::{ObjectRef, SampleSpec};
use crate::{Error, Result};

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// The schema metadata of a spec's sample files.
pub fn sample_metadata(spec: &SampleSpec, registry_version: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("fstore.spec".to_string(), spec.name.clone()),
        (
            "fstore.registry_version".to_string(),
            registry_version.to_string(),
        ),
        (
            "fstore.spec_fingerprint".to_string(),
            ObjectRef::Spec(spec).fingerprint(),
        ),
    ])
}

/// The file name of a partition's samples written by `fstore sample`.
pub const PART_FILE: &str = "part-00000.parquet";

/// Rows per Parquet row group: bounds the writer's buffer.
const ROW_GROUP_ROWS: usize = 128 * 1024;

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

/// Writes samples that arrive in event-time order into one Parquet file per event date.
pub struct PartitionedWriter {
    out: PathBuf,
    schema: SchemaRef,
    ts_column: usize,
    props: WriterProperties,
    file_name: String,
    open: Option<OpenPartition>,
    written: Vec<(PathBuf, usize)>,
}

struct OpenPartition {
    date: String,
    dir: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<File>,
    rows: usize,
}

impl PartitionedWriter {
    /// `schema` is the samples' schema, `ts_column` the event time that partitions them;
    /// `metadata` is added to the schema of every file.
    pub fn new(
        out: &Path,
        schema: &Schema,
        ts_column: usize,
        metadata: BTreeMap<String, String>,
    ) -> Self {
        let mut meta = schema.metadata().clone();
        meta.extend(metadata);
        let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), meta));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        PartitionedWriter {
            out: out.to_path_buf(),
            schema,
            ts_column,
            props,
            file_name: PART_FILE.to_string(),
            open: None,
            written: Vec::new(),
        }
    }

    /// Names each date's file `name` instead of [`PART_FILE`].
    pub fn with_file_name(mut self, name: &str) -> Self {
        self.file_name = name.to_string();
        self
    }

    /// Appends samples; their event times must not go back to an earlier date.
    pub fn write(&mut self, samples: &RecordBatch) -> Result<()> {
        let ts = samples
            .column(self.ts_column)
            .as_primitive::<TimestampMicrosecondType>();
        let mut start = 0;
        while start < samples.num_rows() {
            if ts.is_null(start) {
                return Err(internal("a sample without event time"));
            }
            let date = event_date(ts.value(start));
            let mut end = start + 1;
            while end < samples.num_rows() && ts.is_valid(end) && event_date(ts.value(end)) == date
            {
                end += 1;
            }
            let part = samples
                .slice(start, end - start)
                .with_schema(self.schema.clone())
                .map_err(internal)?;
            self.partition(&date)?;
            if let Some(open) = &mut self.open {
                open.writer.write(&part).map_err(internal)?;
                open.rows += part.num_rows();
            }
            start = end;
        }
        Ok(())
    }

    /// Makes `date` the open partition, closing the previous one.
    fn partition(&mut self, date: &str) -> Result<()> {
        match &self.open {
            Some(open) if open.date == date => return Ok(()),
            Some(open) if open.date.as_str() > date => {
                return Err(internal(format!(
                    "samples of {date} arrived after {}: not in event-time order",
                    open.date
                )));
            }
            _ => {}
        }
        self.close()?;
        let dir = self.out.join(format!("dt={date}"));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::Output(format!("create {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".{}.tmp{}", self.file_name, std::process::id()));
        let file = File::create(&tmp)
            .map_err(|e| Error::Output(format!("create {}: {e}", tmp.display())))?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.props.clone()))
            .map_err(internal)?;
        self.open = Some(OpenPartition {
            date: date.to_string(),
            dir,
            tmp,
            writer,
            rows: 0,
        });
        Ok(())
    }

    /// Finishes the open partition: sync the file, rename it over the old one, sync the folder.
    fn close(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let tmp = open.tmp.clone();
        let io =
            |what: &str, e: std::io::Error| Error::Output(format!("{what} {}: {e}", tmp.display()));
        let result = (|| {
            let file = open.writer.into_inner().map_err(internal)?;
            file.sync_all().map_err(|e| io("sync", e))?;
            let final_path = open.dir.join(&self.file_name);
            fs::rename(&tmp, &final_path).map_err(|e| io("rename", e))?;
            File::open(&open.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("sync dir of", e))?;
            Ok(final_path)
        })();
        match result {
            Ok(path) => {
                self.written.push((path, open.rows));
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Closes the last partition; returns every partition written and its row count.
    pub fn finish(mut self) -> Result<Vec<(PathBuf, usize)>> {
        self.close()?;
        Ok(std::mem::take(&mut self.written))
    }
}

impl Drop for PartitionedWriter {
    /// A job that failed leaves its unfinished partition's temporary file behind no longer.
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = fs::remove_file(&open.tmp);
        }
    }
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
