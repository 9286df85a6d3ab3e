//! Reading: the next step from the input, and the end and idleness of input partitions.

use super::*;

impl Joiner {
    /// The next step of messages (up to `max_batch`, decoded): waits a little for one.
    pub(super) fn read(&mut self) -> Result<Option<Step>, Error> {
        self.input.next(Duration::from_millis(100))
    }

    /// The next offset to read of a partition.
    pub(super) fn next_offset(&self, p: &InputPartition) -> i64 {
        self.cp
            .offsets
            .get(&p.0)
            .and_then(|m| m.get(&p.1))
            .copied()
            .unwrap_or(0)
    }

    /// Whether a bounded run has read everything present at its start: every partition past
    /// its end offset (or empty), everything the consumer delivered applied, and nothing
    /// more delivered for a while; or nothing delivered for a long while (the offsets left
    /// hold no records).
    pub(super) fn at_end(&mut self, got: bool) -> bool {
        if self.ends.is_none() || got {
            return false;
        }
        let Some(quiet) = self.input.quiet() else {
            return false;
        };
        let short = self.short_of_end();
        if short.is_empty() {
            return quiet >= END_QUIET;
        }
        if quiet >= END_STALL {
            for (p, next, high) in short {
                tracing::warn!(topic = %p.0, partition = p.1, next, end = high, "ending short of the reported end offset: nothing more arrived (transaction markers or records removed)");
            }
            return true;
        }
        false
    }

    /// A bounded run's partitions not yet read to the end offsets present at its start: each
    /// with its next offset and end offset.
    pub(super) fn short_of_end(&self) -> Vec<(&InputPartition, i64, i64)> {
        self.ends
            .iter()
            .flatten()
            .filter(|(p, (low, high))| low < high && self.next_offset(p) < *high)
            .map(|(p, (_, high))| (p, self.next_offset(p), *high))
            .collect()
    }

    /// A partition is idle when nothing decodable came from it for the idle timeout and it
    /// is read to its end (its end offset is asked at most once per idle timeout).
    pub(super) fn update_idle(&mut self) {
        if self.cfg.until_end {
            return;
        }
        let timeout = self.cfg.idle_timeout;
        let quiet: Vec<InputPartition> = self
            .last_seen
            .iter()
            .filter(|(_, seen)| seen.elapsed() >= timeout)
            .map(|(p, _)| p.clone())
            .collect();
        for p in self.last_seen.keys().cloned().collect::<Vec<_>>() {
            if !quiet.contains(&p) {
                self.marks.set_idle(&p, false);
            }
        }
        for p in quiet {
            if self
                .end_checked
                .get(&p)
                .is_some_and(|t| t.elapsed() < timeout)
            {
                continue;
            }
            self.end_checked.insert(p.clone(), Instant::now());
            let at_end = match self.input.end_offset(&p) {
                Ok(high) => self.next_offset(&p) >= high,
                Err(e) => {
                    tracing::warn!(topic = %p.0, partition = p.1, error = %e, "cannot ask the end offset; the partition keeps holding the watermark");
                    false
                }
            };
            self.marks.set_idle(&p, at_end);
        }
    }
}
