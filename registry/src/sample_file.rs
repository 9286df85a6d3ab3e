//! Sample files, as every engine writes them: Parquet (zstd) under
//! `OUT/dt=YYYY-MM-DD/FILE.parquet`, one file per event date (UTC), the schema carrying the
//! spec's name, registry version and fingerprint. `fstore sample` writes `part-00000.parquet`
//! per date; the joiner one file per checkpoint. Each file is written to a hidden temporary
//! name in its partition folder and synced; [`PartitionedWriter::finish`] renames them all over
//! the old ones, so files are replaced atomically, none shows before the writer is finished,
//! and a failed or killed run leaves no partial file visible (readers skip dot-files).

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
/// A column chunk's dictionary is kept up to this size, then the column is written plain:
/// columns of few distinct values (categories, buckets, flags) stay dictionary-encoded, while
/// columns of mostly distinct values (ids, times, scores) stop paying for a dictionary early.
const DICTIONARY_BYTES: usize = 64 * 1024;

/// Microseconds per day: samples are partitioned by the UTC day of their event time.
const DAY_US: i64 = 86_400_000_000;

/// `YYYY-MM-DD` of an epoch-µs timestamp, UTC.
pub fn event_date(us: i64) -> String {
    let days = us.div_euclid(DAY_US);
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
    /// Dates written and synced under their temporary names, published by `finish`.
    closed: Vec<Closed>,
}

struct Closed {
    dir: PathBuf,
    tmp: PathBuf,
    rows: usize,
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
            .set_dictionary_page_size_limit(DICTIONARY_BYTES)
            .build();
        PartitionedWriter {
            out: out.to_path_buf(),
            schema,
            ts_column,
            props,
            file_name: PART_FILE.to_string(),
            open: None,
            closed: Vec::new(),
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
            // Rows of one day (the date string is made once per run of them).
            let day = ts.value(start).div_euclid(DAY_US);
            let mut end = start + 1;
            while end < samples.num_rows()
                && ts.is_valid(end)
                && ts.value(end).div_euclid(DAY_US) == day
            {
                end += 1;
            }
            let date = event_date(ts.value(start));
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

    /// Finishes the open partition's file and syncs it, under its temporary name.
    fn close(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let tmp = open.tmp.clone();
        let result = open.writer.into_inner().map_err(internal).and_then(|file| {
            file.sync_all()
                .map_err(|e| Error::Output(format!("sync {}: {e}", tmp.display())))
        });
        match result {
            Ok(()) => {
                self.closed.push(Closed {
                    dir: open.dir,
                    tmp,
                    rows: open.rows,
                });
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Closes the last partition and renames every file over the old one (syncing their
    /// folders); returns every partition written and its row count.
    pub fn finish(mut self) -> Result<Vec<(PathBuf, usize)>> {
        self.close()?;
        let mut written = Vec::with_capacity(self.closed.len());
        while let Some(c) = self.closed.first() {
            let final_path = c.dir.join(&self.file_name);
            fs::rename(&c.tmp, &final_path)
                .and_then(|()| File::open(&c.dir).and_then(|d| d.sync_all()))
                .map_err(|e| Error::Output(format!("publish {}: {e}", c.tmp.display())))?;
            written.push((final_path, c.rows));
            self.closed.remove(0);
        }
        Ok(written)
    }
}

impl Drop for PartitionedWriter {
    /// A job that failed leaves none of its unpublished files behind.
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = fs::remove_file(&open.tmp);
        }
        for c in &self.closed {
            let _ = fs::remove_file(&c.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::{DataType, Field, TimeUnit};

    const DAY: i64 = 86_400_000_000;

    fn visible(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for d in fs::read_dir(dir).into_iter().flatten().flatten() {
            for f in fs::read_dir(d.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    out.push(format!("{}/{name}", d.file_name().to_string_lossy()));
                }
            }
        }
        out.sort();
        out
    }

    fn all_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| fs::read_dir(d.path()).unwrap().count())
            .sum()
    }

    #[test]
    fn files_show_only_when_the_writer_is_finished() {
        let schema = Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]);
        let batch = |ts: Vec<i64>| {
            RecordBatch::try_new(
                Arc::new(schema.clone()),
                vec![Arc::new(
                    TimestampMicrosecondArray::from(ts).with_timezone("UTC"),
                )],
            )
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut w = PartitionedWriter::new(dir.path(), &schema, 0, BTreeMap::new());
        w.write(&batch(vec![0, 1])).unwrap();
        w.write(&batch(vec![DAY, 2 * DAY])).unwrap();
        // Two dates closed, one open: written, synced, not yet visible.
        assert_eq!(all_files(dir.path()), 3);
        assert!(visible(dir.path()).is_empty(), "{:?}", visible(dir.path()));
        let written = w.finish().unwrap();
        assert_eq!(
            written.iter().map(|(_, rows)| *rows).collect::<Vec<_>>(),
            [2, 1, 1]
        );
        assert_eq!(
            visible(dir.path()),
            [
                "dt=1970-01-01/part-00000.parquet",
                "dt=1970-01-02/part-00000.parquet",
                "dt=1970-01-03/part-00000.parquet"
            ]
        );

        // A writer dropped unfinished leaves nothing behind.
        let other = tempfile::tempdir().unwrap();
        let mut w = PartitionedWriter::new(other.path(), &schema, 0, BTreeMap::new());
        w.write(&batch(vec![0, DAY])).unwrap();
        drop(w);
        assert_eq!(all_files(other.path()), 0);
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(event_date(0), "1970-01-01");
        assert_eq!(event_date(-1), "1969-12-31");
        assert_eq!(event_date(1_704_593_979_533_398), "2024-01-07");
        assert_eq!(event_date(951_782_400_000_000), "2000-02-29");
    }
}
