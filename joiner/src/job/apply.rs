//! Applying a step: each message checked (undecodable, no event time, too far ahead, late:
//! dead letters), feature rows evaluated by their group's compiled expressions into the
//! group's arena and inserted into their keys' rows, label events queued.

use super::*;
use crate::deadletter::Kind;

/// What a step read from one partition.
pub(super) struct StepPartition {
    pub(super) partition: i32,
    /// The offset after the last message read.
    pub(super) next: i64,
    /// The greatest event time of its rows (those with one).
    pub(super) max_ts: Option<i64>,
}

/// A source's rows of a step that are applied: the rows, the message of each (its number in
/// the chunk), and whether each is late.
pub(super) struct AppliedRows<'a> {
    pub(super) batch: &'a RecordBatch,
    pub(super) msgs: &'a [u32],
    pub(super) late: &'a [bool],
    pub(super) chunk: &'a Chunk,
    pub(super) ts_column: usize,
}

impl AppliedRows<'_> {
    pub(super) fn msg(&self, i: usize) -> MsgRef<'_> {
        self.chunk.msg(self.msgs[i] as usize)
    }

    /// The rows' event times (none NULL).
    pub(super) fn times(&self) -> Result<&TimestampMicrosecondArray, Error> {
        self.batch
            .column(self.ts_column)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| Error::Internal("event time column is not a timestamp".into()))
    }
}

/// A group's state columns for the rows of a batch of its source (row group: features;
/// window group: per feature its input if any, then its FILTER result with NULL as false, if
/// any), and each row's tie-order bytes.
pub(super) fn state_columns(
    g: &CompiledGroup,
    batch: &RecordBatch,
) -> Result<(Vec<ArrayRef>, ByteRows), Error> {
    let n = batch.num_rows();
    let eval = |e: &CompiledExpr| e.evaluate(batch);
    let (cols, tie_columns): (Vec<ArrayRef>, Vec<ArrayRef>) = match &g.kind {
        CompiledGroupKind::Row {
            tie_break,
            features,
            ..
        } => {
            let values = features.iter().map(eval).collect::<Result<Vec<_>, _>>()?;
            let tb: Vec<ArrayRef> = tie_break.iter().map(|&i| batch.column(i).clone()).collect();
            let ties = row_tie_columns(&tb, &values);
            (values, ties)
        }
        CompiledGroupKind::Window { features } => {
            let inputs = features
                .iter()
                .map(|f| f.input.as_ref().map(eval).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            let filters = features
                .iter()
                .map(|f| f.filter.as_ref().map(eval).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            let ties = window_tie_columns(&inputs, &filters);
            let mut cols = Vec::new();
            for (i, f) in inputs.into_iter().zip(filters) {
                cols.extend(i);
                if let Some(f) = f {
                    let passes = f.as_boolean_opt().ok_or_else(|| {
                        Error::Internal(format!("a FILTER of type {}", f.data_type()))
                    })?;
                    // NULL as false.
                    let values = match passes.nulls() {
                        Some(nulls) => passes.values() & nulls.inner(),
                        None => passes.values().clone(),
                    };
                    cols.push(Arc::new(BooleanArray::new(values, None)) as ArrayRef);
                }
            }
            (cols, ties)
        }
    };
    let ties = match TieOrder::rows(&tie_columns)? {
        Some(rows) => byte_rows(rows.iter().map(|r| Some(r.data())))?,
        None => byte_rows((0..n).map(|_| Some(&[][..])))?,
    };
    Ok((cols, ties))
}

/// The state columns of rows evaluated one at a time, as one.
pub(super) fn concat_state_columns(
    rows: Vec<(Vec<ArrayRef>, ByteRows)>,
) -> Result<(Vec<ArrayRef>, ByteRows), Error> {
    let width = rows.first().map_or(0, |r| r.0.len());
    let columns = (0..width)
        .map(|c| {
            let parts: Vec<&dyn Array> = rows.iter().map(|r| r.0[c].as_ref()).collect();
            arrow::compute::concat(&parts)
                .map_err(|e| Error::Internal(format!("state columns: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ties = byte_rows(rows.iter().map(|r| r.1.get(0)))?;
    Ok((columns, ties))
}

impl Joiner {
    /// Applies a step's messages.
    pub(super) fn apply(&mut self, mut step: Step) -> Result<(), Error> {
        // The step's messages were read together: one clock reading for them all.
        let horizon = now_us();
        let seen = Instant::now();
        for (s, chunk) in step.chunks.iter_mut().enumerate() {
            if !chunk.is_empty() {
                self.apply_chunk(s, chunk, horizon, seen)?;
            }
        }
        self.input.recycle(step);
        Ok(())
    }

    /// Checks a source's messages of a step, dead-letters those that are no rows (or late),
    /// and applies the rows to the source's groups; queues label events.
    pub(super) fn apply_chunk(
        &mut self,
        s: usize,
        chunk: &mut Chunk,
        horizon: i64,
        seen: Instant,
    ) -> Result<(), Error> {
        let batch = chunk
            .batch
            .take()
            .ok_or_else(|| Error::Internal("a step's chunk without its rows".into()))?;
        let n = chunk.len();
        let ts_column = batch.column(self.sources[s].ts_column).clone();
        let times = ts_column
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| Error::Internal("event time column is not a timestamp".into()))?;
        // Per partition read: the next offset, and the greatest event time of its rows
        // (recorded once per step; the frontier does not move within one).
        let mut step: Vec<StepPartition> = Vec::new();
        let mut last = 0;
        // The rows applied (as message numbers), and whether each is late.
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        let mut late: Vec<bool> = Vec::with_capacity(n);
        let mut bad = chunk.bad.iter().peekable();
        for r in 0..n {
            let m = chunk.msg(r);
            if step.get(last).is_none_or(|p| p.partition != m.partition) {
                last = match step.iter().position(|p| p.partition == m.partition) {
                    Some(k) => k,
                    None => {
                        step.push(StepPartition {
                            partition: m.partition,
                            next: 0,
                            max_ts: None,
                        });
                        step.len() - 1
                    }
                };
            }
            step[last].next = m.offset + 1;
            self.cp.counters.messages += 1;
            if let Some((_, why)) = bad.next_if(|(b, _)| *b == r) {
                let reason = match why {
                    None => "empty message (no value)".to_string(),
                    Some(e) => format!("source \"{}\": {e}", self.sources[s].name),
                };
                self.dead_letter(s, m, Kind::Undecodable, reason, None);
                continue;
            }
            if times.is_null(r) {
                let src = &self.sources[s];
                let reason = format!(
                    "source \"{}\": no event time (column \"{}\")",
                    src.name, src.columns[src.ts_column].name
                );
                self.dead_letter(s, m, Kind::MissingEventTime, reason, None);
                continue;
            }
            let ts = times.value(r);
            if let Some(skew) = self.cfg.max_future_us
                && ts > horizon.saturating_add(skew)
            {
                let reason = format!(
                    "source \"{}\": event time {} is more than {} µs ahead of this machine's clock (--max-future)",
                    self.sources[s].name,
                    format_timestamp(ts),
                    skew
                );
                self.dead_letter(s, m, Kind::FutureEventTime, reason, None);
                continue;
            }
            step[last].max_ts = Some(step[last].max_ts.map_or(ts, |t| t.max(ts)));
            let is_late = self.marks.is_late(ts);
            if is_late {
                self.cp.counters.late += 1;
                let what = if self.sources[s].is_event {
                    "its sample was due already"
                } else {
                    "applied to the online store only"
                };
                let reason = format!(
                    "late: event time {} is behind the frontier {} (lateness {} µs); {what}",
                    format_timestamp(ts),
                    format_timestamp(self.marks.frontier()),
                    self.cfg.lateness_us
                );
                self.dead_letter(s, m, Kind::Late, reason, None);
            }
            rows.push(r as u32);
            late.push(is_late);
        }
        let topic = &self.sources[s].topic;
        for sp in step {
            self.cp
                .offsets
                .entry(topic.clone())
                .or_default()
                .insert(sp.partition, sp.next);
            if let Some(ts) = sp.max_ts {
                let p = (topic.clone(), sp.partition);
                self.marks.observe(&p, ts);
                self.last_seen.insert(p, seen);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let batch = if rows.len() == n {
            batch
        } else {
            arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows.clone()))
                .map_err(|e| Error::Internal(format!("a step's rows: {e}")))?
        };
        let rows = AppliedRows {
            batch: &batch,
            msgs: &rows,
            late: &late,
            chunk,
            ts_column: self.sources[s].ts_column,
        };
        for g in self.sources[s].groups.clone() {
            self.apply_group(s, g, &rows)?;
        }
        if self.sources[s].is_event {
            self.queue_events(&rows)?;
        }
        Ok(())
    }

    /// Queues a step's label events (those on time).
    pub(super) fn queue_events(&mut self, rows: &AppliedRows<'_>) -> Result<(), Error> {
        let on_time: Vec<u32> = (0..rows.batch.num_rows() as u32)
            .filter(|&i| !rows.late[i as usize])
            .collect();
        if on_time.is_empty() {
            return Ok(());
        }
        let batch = if on_time.len() == rows.batch.num_rows() {
            rows.batch.clone()
        } else {
            arrow::compute::take_record_batch(rows.batch, &UInt32Array::from(on_time.clone()))
                .map_err(|e| Error::Internal(format!("a step's events: {e}")))?
        };
        let keys = byte_rows(on_time.iter().map(|&i| rows.msg(i as usize).key))?;
        let seg = self.events.push(batch.columns().to_vec(), keys)?;
        let times = rows.times()?;
        for (row, &i) in on_time.iter().enumerate() {
            let m = rows.msg(i as usize);
            let id = (times.value(i as usize), m.partition, m.offset);
            self.cp.counters.events += 1;
            let q = Queued {
                at: RowAt {
                    seg,
                    row: row as u32,
                },
                stored: false,
            };
            // The same event read again (an offset reset) may be queued or stored already.
            match self.pending.insert(id, q) {
                Some(before) => {
                    if let Some(q) = self.pending.get_mut(&id) {
                        q.stored = before.stored;
                    }
                }
                None if self.event_changes.get(&id) == Some(&EventChange::Delete) => {
                    self.event_changes.insert(id, EventChange::Put);
                    if let Some(q) = self.pending.get_mut(&id) {
                        q.stored = true;
                    }
                }
                None => self.new_events.push(id),
            }
        }
        Ok(())
    }

    /// Evaluates a group's features (or window inputs and filters) over rows of its source
    /// and inserts them into their keys. A row whose expressions fail is dead-lettered.
    pub(super) fn apply_group(
        &mut self,
        s: usize,
        g: usize,
        rows: &AppliedRows<'_>,
    ) -> Result<(), Error> {
        let batch = rows.batch;
        let compiled = self.groups[g].compiled.clone();
        // The state columns, and which of the batch's rows they hold (all, or those whose
        // expressions did not fail).
        let (columns, ties, held): (Vec<ArrayRef>, ByteRows, Option<Vec<usize>>) =
            match state_columns(&compiled, batch) {
                Ok((c, t)) => (c, t, None),
                Err(_) => {
                    // Row by row, to find the rows at fault.
                    let mut ok = Vec::new();
                    let mut held = Vec::new();
                    for i in 0..batch.num_rows() {
                        match state_columns(&compiled, &batch.slice(i, 1)) {
                            Ok(c) => {
                                ok.push(c);
                                held.push(i);
                            }
                            Err(e) => {
                                let reason = format!(
                                    "group \"{}\": expression failed: {e}",
                                    self.groups[g].name()
                                );
                                let group = self.groups[g].name().to_string();
                                self.dead_letter(
                                    s,
                                    rows.msg(i),
                                    Kind::Expression,
                                    reason,
                                    Some(&group),
                                );
                            }
                        }
                    }
                    if held.is_empty() {
                        return Ok(());
                    }
                    let (c, t) = concat_state_columns(ok)?;
                    (c, t, Some(held))
                }
            };
        let row_of = |j: usize| held.as_ref().map_or(j, |h| h[j]);
        let n = ties.len();
        let seg = self.arenas[g].push(columns, ties)?;
        let key_columns: Vec<&ArrayRef> = compiled
            .key_columns
            .iter()
            .map(|&k| batch.column(k))
            .collect();
        let key_columns = KeyColumns::new(&key_columns)?;
        let times = rows.times()?;
        let only_groups = !self.sources[s].is_event;
        // The rows' keys (none for a NULL key).
        let mut keys = KeyBatch::default();
        for j in 0..n {
            let i = row_of(j);
            if keys.push(&key_columns, i) {
                self.cp.counters.rows += 1;
            } else {
                self.cp.counters.rows_without_key += 1;
                if only_groups && !rows.late[i] {
                    let reason = format!(
                        "group \"{}\": the key ({}) is NULL",
                        self.groups[g].name(),
                        self.groups[g].compiled.group.keys.join(", ")
                    );
                    let group = self.groups[g].name().to_string();
                    self.dead_letter(s, rows.msg(i), Kind::NullKey, reason, Some(&group));
                }
            }
        }
        let keys = keys.keys();
        let slots = self.resolve(g, &keys)?;
        let table = &mut self.cache[g];
        let arena = &self.arenas[g];
        for (j, slot) in slots.iter().enumerate() {
            prefetch_ahead(table, &slots, j);
            let Some(slot) = *slot else { continue };
            let i = row_of(j);
            let entry = table.get_mut(slot);
            let at = entry.rows.insert(
                arena,
                StateRow {
                    ts: times.value(i),
                    late: rows.late[i],
                    at: RowAt { seg, row: j as u32 },
                },
            );
            if let (Some(w), CompiledGroupKind::Window { features }) =
                (&mut entry.window, &compiled.kind)
            {
                entry.rows.insert_window_row(arena, features, w, at)?;
            }
            entry.dirty = true;
            entry.online = true;
        }
        Ok(())
    }

    /// The slots of many keys of group `g` (`None` for no key), each loaded from the store
    /// on its first use.
    pub(super) fn resolve(
        &mut self,
        g: usize,
        keys: &[Option<&[u8]>],
    ) -> Result<Vec<Option<Slot>>, Error> {
        let group = &self.groups[g];
        let store = (!self.all_keys_cached).then_some(&self.store);
        let arena = &mut self.arenas[g];
        let slots = self.cache[g].resolve(keys, |_, k| {
            let stored = match store {
                Some(store) => store.get_key(&state_key(group.name(), k))?,
                None => None,
            };
            let rows = match stored {
                Some(b) => KeyRows::decode(&group.codec, &b, arena)?,
                None => KeyRows::default(),
            };
            Ok::<_, Error>(Entry {
                rows,
                window: None,
                dirty: false,
                online: false,
            })
        })?;
        arena.seal()?;
        Ok(slots)
    }
}
