//! Emitting: queued events before the frontier joined to their groups' state (the as-of rule,
//! window folds), projected through the spec's transforms, and handed to the sink.

use super::*;
use crate::deadletter::{Kind, MessageId};

impl Joiner {
    /// Emits the samples of queued events before the frontier.
    pub(super) fn emit(&mut self) -> Result<(), Error> {
        let ready = self.pending.take_before(self.marks.frontier());
        for events in ready.chunks(EMIT_CHUNK) {
            let mut chunk = Vec::with_capacity(events.len());
            for (id, q) in events {
                let id = *id;
                if q.stored {
                    self.event_changes.insert(id, EventChange::Delete);
                }
                chunk.push(Ready { id, at: q.at });
            }
            self.emit_chunk(&chunk)?;
        }
        Ok(())
    }

    pub(super) fn emit_chunk(&mut self, events: &[Ready]) -> Result<(), Error> {
        let n_cols = self.spec.source.columns.len();
        let spec = self.spec.clone();
        // The base columns: the events' columns, then each join's.
        let at: Vec<Option<RowAt>> = events.iter().map(|e| Some(e.at)).collect();
        let mut columns = self.events.gather(&at)?;
        for j in 0..self.joins.len() {
            let g = self.joins[j].group;
            let compiled = self.groups[g].compiled.clone();
            let key_columns: Vec<ArrayRef> = self.joins[j]
                .event_keys
                .iter()
                .map(|&k| columns[k].clone())
                .collect();
            let key_refs: Vec<&ArrayRef> = key_columns.iter().collect();
            let key_refs = KeyColumns::new(&key_refs)?;
            let (mut no_row, mut expired) = (0u64, 0u64);
            let mut keys = KeyBatch::default();
            for i in 0..events.len() {
                keys.push(&key_refs, i);
            }
            let keys = keys.keys();
            let slots = self.resolve(g, &keys)?;
            // Each pass loads, a few events ahead, what the next pass will read.
            match &compiled.kind {
                CompiledGroupKind::Row { .. } => {
                    let rule = compiled.rule();
                    let table = &self.cache[g];
                    let mut found: Vec<Option<RowAt>> = Vec::with_capacity(events.len());
                    for (i, e) in events.iter().enumerate() {
                        prefetch_ahead(table, &slots, i);
                        let row = match slots[i].map(|s| table.get(s).rows.as_of(e.id.0, rule)) {
                            Some(AsOf::Found(r)) => Some(r.at),
                            Some(AsOf::Expired) => {
                                expired += 1;
                                None
                            }
                            Some(AsOf::NoRow) | None => {
                                no_row += 1;
                                None
                            }
                        };
                        found.push(row);
                    }
                    columns.extend(self.arenas[g].gather(&found)?);
                }
                CompiledGroupKind::Window { features } => {
                    let mut builders: Vec<ColumnBuilder> = compiled
                        .features()
                        .iter()
                        .map(|(_, t)| ColumnBuilder::new(t, events.len()))
                        .collect();
                    let table = &mut self.cache[g];
                    let arena = &self.arenas[g];
                    let empty = WindowRows::empty(features);
                    for (i, e) in events.iter().enumerate() {
                        prefetch_ahead(table, &slots, i);
                        match slots[i] {
                            Some(s) => {
                                let entry = table.get_mut(s);
                                if entry.window.is_none() {
                                    entry.window =
                                        Some(entry.rows.window_rows(arena, features, false)?);
                                }
                                match &entry.window {
                                    Some(w) => w.fold_into(features, e.id.0, &mut builders)?,
                                    None => empty.fold_into(features, e.id.0, &mut builders)?,
                                }
                            }
                            None => empty.fold_into(features, e.id.0, &mut builders)?,
                        }
                    }
                    for b in &mut builders {
                        columns.push(b.finish()?);
                    }
                }
            }
            let alias = &self.joins[j].alias;
            *self.cp.counters.no_row.entry(alias.clone()).or_default() += no_row;
            *self.cp.counters.expired.entry(alias.clone()).or_default() += expired;
        }
        let base = RecordBatch::try_new(spec.base_schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("base rows: {e}")))?;
        match self.spec.project(&base) {
            Ok(samples) => self.output(events, &samples),
            Err(_) => {
                // Row by row, to dead-letter only the events whose transforms fail.
                for (i, e) in events.iter().enumerate() {
                    let one = base.slice(i, 1);
                    match self.spec.project(&one) {
                        Ok(s) => self.output(std::slice::from_ref(e), &s)?,
                        Err(err) => {
                            let values = (0..n_cols)
                                .map(|c| value_at(one.column(c), 0))
                                .collect::<Result<Vec<_>, _>>()?;
                            self.transform_failed(e, &values, err);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) fn transform_failed(
        &mut self,
        e: &Ready,
        values: &[Value],
        err: fstore_registry::Error,
    ) {
        let payload = encode_row(&self.spec.source.columns, values).into_bytes();
        let key = self.events.bytes(e.at).map(<[u8]>::to_vec);
        let m = MsgRef {
            partition: e.id.1,
            offset: e.id.2,
            key: key.as_deref(),
            payload: Some(&payload),
        };
        let reason = format!(
            "spec \"{}\": a transform failed: {err}",
            self.spec.spec.name
        );
        self.dead_letter(0, m, Kind::Transform, reason, None);
    }

    /// Queues samples for the sink.
    pub(super) fn output(&mut self, events: &[Ready], samples: &RecordBatch) -> Result<(), Error> {
        self.cp.counters.samples += samples.num_rows() as u64;
        match &self.cfg.sink {
            SinkTarget::Parquet(dir) => {
                // The checkpoint's files open with its first samples.
                let files = match &self.writer {
                    Some(w) if !w.started() => Some(
                        PartitionedWriter::new(
                            dir,
                            &self.spec.output_schema,
                            self.ts_output,
                            sample_metadata(&self.spec.spec, self.registry_version),
                        )
                        .with_file_name(&self.file_name(self.cp.seq)),
                    ),
                    _ => None,
                };
                if let Some(w) = &mut self.writer {
                    if let Some(files) = files {
                        w.begin(files)?;
                    }
                    w.write(samples.clone())?;
                }
            }
            SinkTarget::Kafka(topic) => {
                let topic = topic.clone();
                for (r, e) in events.iter().enumerate() {
                    let values = samples
                        .columns()
                        .iter()
                        .map(|c| value_at(c, r))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.out_msgs.push(OutMessage {
                        topic: topic.clone(),
                        key: self.events.bytes(e.at).map(<[u8]>::to_vec),
                        payload: encode_row(&self.sample_columns, &values).into_bytes(),
                        id: MessageId::Sample {
                            spec: self.spec.spec.name.clone(),
                            topic: self.sources[0].topic.clone(),
                            partition: e.id.1,
                            offset: e.id.2,
                        }
                        .to_string(),
                        headers: vec![(
                            "fstore-spec".into(),
                            self.spec.spec.name.as_bytes().to_vec(),
                        )],
                    });
                }
            }
        }
        Ok(())
    }
}
