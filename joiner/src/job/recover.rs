//! Recovering from an interrupted run: uncommitted sample files removed, the outbox's
//! undelivered messages sent.

use super::*;

impl Joiner {
    /// The Parquet file of checkpoint `seq`.
    /// The prefix of this state folder's files in the sink folder: its run id and instance.
    pub(super) fn file_prefix(&self) -> String {
        format!("part-{}-{:03}-", self.cp.run, self.cfg.instance.index)
    }

    pub(super) fn file_name(&self, seq: u64) -> String {
        format!("{}{seq:010}.parquet", self.file_prefix())
    }

    /// Deletes Parquet files (and temporary files) written after the last checkpoint.
    pub(super) fn remove_uncommitted_files(&self) -> Result<(), Error> {
        let SinkTarget::Parquet(dir) = &self.cfg.sink else {
            return Ok(());
        };
        let Ok(dates) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let prefix = self.file_prefix();
        for d in dates.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let plain = name.trim_start_matches('.');
                let Some(rest) = plain.strip_prefix(&prefix) else {
                    continue;
                };
                let seq: Option<u64> = rest.get(..10).and_then(|s| s.parse().ok());
                if name.starts_with('.') || seq.is_none_or(|s| s >= self.cp.seq) {
                    std::fs::remove_file(f.path()).map_err(|e| {
                        Error::Output(format!("remove {}: {e}", f.path().display()))
                    })?;
                    tracing::info!(file = %f.path().display(), "removed output of an uncommitted checkpoint");
                }
            }
        }
        Ok(())
    }

    /// Delivers outbox messages left by an interrupted run, except those their topic already
    /// holds.
    pub(super) fn recover_outbox(&mut self) -> Result<(), Error> {
        let stored = self.store.scan(CF_OUTBOX)?;
        if stored.is_empty() {
            return Ok(());
        }
        let mut msgs = Vec::with_capacity(stored.len());
        for (_, v) in &stored {
            msgs.push(OutMessage::decode(v)?);
        }
        let mut topics: Vec<String> = msgs.iter().map(|m| m.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let mut present = std::collections::HashSet::new();
        for t in &topics {
            let from = self.cp.out_next.get(t).cloned().unwrap_or_default();
            present.extend(self.outlet.ids_in(t, &from)?);
        }
        let missing: Vec<OutMessage> = msgs
            .into_iter()
            .filter(|m| !present.contains(&m.id))
            .collect();
        tracing::info!(
            outbox = stored.len(),
            resent = missing.len(),
            "recovered the outbox of an interrupted run"
        );
        let next = self.outlet.deliver(&missing)?;
        self.record_delivered(next);
        let mut b = self.store.batch();
        for (k, _) in &stored {
            b.delete(CF_OUTBOX, k)?;
        }
        b.put_checkpoint(&self.cp)?;
        b.commit(true)
    }

    pub(super) fn record_delivered(&mut self, next: BTreeMap<(String, i32), i64>) {
        for ((t, p), o) in next {
            let e = self.cp.out_next.entry(t).or_default().entry(p).or_insert(0);
            *e = (*e).max(o);
        }
    }
}
