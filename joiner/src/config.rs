//! What a joiner run is told: typed and checked before anything starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// Where samples go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// A Kafka topic: one JSON message per sample, keyed by the label event's message key.
    Kafka(String),
    /// A folder of Parquet files as `fstore sample` writes them (`dt=YYYY-MM-DD/…`).
    Parquet(PathBuf),
}

impl SinkTarget {
    /// `kafka://TOPIC` or `parquet://DIR`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(t) = s.strip_prefix("kafka://") {
            if t.is_empty() || t.contains('/') {
                return Err(Error::Config(format!(
                    "--sink {s}: give a topic name, e.g. kafka://ctr-samples"
                )));
            }
            return Ok(SinkTarget::Kafka(t.to_string()));
        }
        if let Some(d) = s.strip_prefix("parquet://") {
            if d.is_empty() {
                return Err(Error::Config(format!(
                    "--sink {s}: give a folder, e.g. parquet:///data/samples/ctr"
                )));
            }
            return Ok(SinkTarget::Parquet(PathBuf::from(d)));
        }
        Err(Error::Config(format!(
            "--sink {s}: expected kafka://TOPIC or parquet://DIR"
        )))
    }
}

/// Which share of the input partitions this instance owns: partition `p` of a partitioned
/// source belongs to instance `p % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub index: u32,
    pub count: u32,
}

impl Instance {
    pub const SOLE: Instance = Instance { index: 0, count: 1 };

    /// `I/N`, e.g. `0/2`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Config(format!(
                "--instance {s}: expected I/N with 0 <= I < N, e.g. 0/2"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Instance { index, count })
    }

    pub fn owns(&self, partition: i32) -> bool {
        partition.rem_euclid(self.count as i32) as u32 == self.index
    }
}

/// A joiner run.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    pub spec: String,
    pub brokers: String,
    pub state_dir: PathBuf,
    pub sink: SinkTarget,
    pub dead_letter_topic: String,
    pub lateness_us: i64,
    /// Stop at the end offsets present at the start.
    pub until_end: bool,
    /// Topic overrides by source name.
    pub topics: BTreeMap<String, String>,
    /// How often state, offsets and output are committed together.
    pub checkpoint_interval: Duration,
    /// A partition read to its end and quiet this long stops holding the watermark back
    /// (not in bounded runs).
    pub idle_timeout: Duration,
    pub instance: Instance,
    /// Sources every instance reads whole (their groups are not partitioned like the events).
    pub broadcast: BTreeSet<String>,
    /// Extra librdkafka settings (security, timeouts) for every client.
    pub kafka_options: Vec<(String, String)>,
    /// Messages read per step at most.
    pub max_batch: usize,
    /// Rows a group's (or the queued events') memory may hold, live and dead, before a
    /// checkpoint copies the live rows together once most are dead.
    pub compact_rows: usize,
    /// Rows with an event time further ahead of the clock than this are dead-lettered (a
    /// timestamp in the wrong unit would otherwise move the frontier years ahead).
    pub max_future_us: Option<i64>,
}

/// `N UNIT` or `NUNIT`: `500ms`, `30s`, `15m`, `15 minutes`, `2h`, `1d`, `0`.
pub fn parse_duration(s: &str) -> Result<i64, Error> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let bad = || {
        Error::Config(format!(
            "\"{s}\" is not a duration: use e.g. 500ms, 30s, 15m, 2h, 1d"
        ))
    };
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit_us: i64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" if n == 0 => 1,
        "us" | "microsecond" | "microseconds" => 1,
        "ms" | "millisecond" | "milliseconds" => 1_000,
        "s" | "sec" | "second" | "seconds" => 1_000_000,
        "m" | "min" | "minute" | "minutes" => 60_000_000,
        "h" | "hour" | "hours" => 3_600_000_000,
        "d" | "day" | "days" => 86_400_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_us).ok_or_else(bad)
}

/// [`parse_duration`] as a [`Duration`].
pub fn parse_std_duration(s: &str) -> Result<Duration, Error> {
    let us = parse_duration(s)?;
    Ok(Duration::from_micros(us.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("15m").unwrap(), 900_000_000);
        assert_eq!(parse_duration("15 minutes").unwrap(), 900_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("1d").unwrap(), 86_400_000_000);
        for bad in ["", "m", "10", "-1s", "1 fortnight", "99999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sinks_and_instances_parse() {
        assert_eq!(
            SinkTarget::parse("kafka://out").unwrap(),
            SinkTarget::Kafka("out".into())
        );
        assert_eq!(
            SinkTarget::parse("parquet:///tmp/x").unwrap(),
            SinkTarget::Parquet("/tmp/x".into())
        );
        assert!(SinkTarget::parse("s3://b").is_err());
        assert!(SinkTarget::parse("kafka://").is_err());
        let i = Instance::parse("1/3").unwrap();
        assert!(i.owns(1) && i.owns(4) && !i.owns(0));
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(Instance::parse(bad).is_err(), "{bad}");
        }
    }
}
