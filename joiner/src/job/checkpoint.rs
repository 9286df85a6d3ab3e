//! The checkpoint: online values of changed keys, garbage collection (keys in memory and a
//! slice of the stored ones), changed keys and events, the outbox, offsets and the frontier
//! committed in one synced batch; then the outbox delivered.

use super::*;

/// A stored key's new value, or its deletion.
pub(super) type KeyChange = (Vec<u8>, Option<Vec<u8>>);

/// Keys in memory a group must have for its changed keys to be encoded on a thread of their
/// own (a thread costs tens of microseconds; a small checkpoint is encoded in less).
pub(super) const PARALLEL_ENCODE_KEYS: usize = 4096;

/// The stored forms of each group's changed keys (`None` for a key left without rows), in
/// key order within a group; clears their dirty flags. Groups with many keys in memory are
/// encoded side by side on scoped threads (a bounded run's checkpoint at its end writes nearly
/// every key).
pub(super) fn encode_dirty(
    cache: &mut [KeyCache],
    groups: &[GroupRt],
    arenas: &[RowArena],
) -> Vec<Result<Vec<KeyChange>, Error>> {
    pub(super) fn encode(
        table: &mut KeyCache,
        group: &GroupRt,
        arena: &RowArena,
    ) -> Result<Vec<KeyChange>, Error> {
        let mut keys = Vec::new();
        for (kb, e) in table.iter_mut().filter(|(_, e)| e.dirty) {
            let key = state_key(group.name(), kb);
            if e.rows.is_empty() {
                keys.push((key, None));
            } else {
                keys.push((key, Some(e.rows.encode(arena, &group.codec)?)));
            }
            e.dirty = false;
        }
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(keys)
    }
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut here = Vec::new();
        // The first large group stays on this thread, as do the small ones.
        let mut large_here = false;
        for ((table, group), arena) in cache.iter_mut().zip(groups).zip(arenas) {
            let large = table.len() >= PARALLEL_ENCODE_KEYS;
            if large && large_here {
                handles.push((group, scope.spawn(move || encode(table, group, arena))));
            } else {
                large_here |= large;
                here.push((table, group, arena));
            }
        }
        let mut done: Vec<_> = here
            .into_iter()
            .map(|(table, group, arena)| encode(table, group, arena))
            .collect();
        done.extend(handles.into_iter().map(|(group, h)| {
            h.join().unwrap_or_else(|_| {
                Err(Error::Internal(format!(
                    "encoding the keys of group \"{}\" panicked",
                    group.name()
                )))
            })
        }));
        done
    })
}

impl Joiner {
    /// Drops rows no future event can join from the keys in memory.
    pub(super) fn collect_garbage(&mut self, frontier: i64) {
        for (g, _, e) in cached(&mut self.cache) {
            let before = e.rows.rows.len();
            e.rows.collect(frontier, self.groups[g].compiled.rule());
            if e.rows.rows.len() != before {
                e.dirty = true;
                e.window = None;
            }
        }
    }

    /// Copies the live rows of arenas mostly holding dead rows into one segment each.
    pub(super) fn compact_arenas(&mut self) -> Result<(), Error> {
        for (g, arena) in self.arenas.iter_mut().enumerate() {
            let live: usize = self.cache[g]
                .iter_mut()
                .map(|(_, e)| e.rows.rows.len())
                .sum();
            if !arena.mostly_dead(live, self.cfg.compact_rows) {
                continue;
            }
            let mut at = Vec::with_capacity(live);
            for (_, e) in self.cache[g].iter_mut() {
                at.extend(e.rows.rows.iter().map(|r| r.at));
            }
            let mut moved = arena.compact(&at)?.into_iter();
            for (_, e) in self.cache[g].iter_mut() {
                for r in &mut e.rows.rows {
                    r.at = moved.next().ok_or_else(|| {
                        Error::Internal("compaction moved fewer rows than live".into())
                    })?;
                }
            }
        }
        if self
            .events
            .mostly_dead(self.pending.len(), self.cfg.compact_rows)
        {
            let at: Vec<RowAt> = self.pending.values().map(|q| q.at).collect();
            let moved = self.events.compact(&at)?;
            for (q, at) in self.pending.values_mut().zip(moved) {
                q.at = at;
            }
        }
        Ok(())
    }

    /// A pending event as stored.
    pub(super) fn pending_event(&self, id: EventId, at: RowAt) -> Result<PendingEvent, Error> {
        Ok(PendingEvent {
            ts: id.0,
            partition: id.1,
            offset: id.2,
            key: self.events.bytes(at).map(<[u8]>::to_vec),
            values: self.events.values(at)?,
        })
    }

    /// Collects the garbage of stored keys that are not in memory, a slice per checkpoint,
    /// walking the whole store over and over. Returns the changes to commit.
    pub(super) fn sweep(&mut self, frontier: i64) -> Result<Vec<KeyChange>, Error> {
        let stored = self
            .store
            .scan_from(CF_KEYS, self.sweep_from.as_deref(), SWEEP_KEYS)?;
        self.sweep_from = match stored.last() {
            Some((k, _)) if stored.len() == SWEEP_KEYS => {
                let mut next = k.to_vec();
                next.push(0);
                Some(next)
            }
            _ => None,
        };
        let mut changes = Vec::new();
        for (k, v) in stored {
            let Some(z) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let Some(g) = self
                .groups
                .iter()
                .position(|g| g.name().as_bytes() == &k[..z])
            else {
                continue;
            };
            if self.cache[g].contains_key(&k[z + 1..]) {
                continue;
            }
            // Event times decide: the rows kept are copied as stored.
            let mut rows = KeyRows::decode_times(&v)?;
            let before = rows.rows.len();
            rows.collect(frontier, self.groups[g].compiled.rule());
            if rows.is_empty() {
                changes.push((k.to_vec(), None));
            } else if rows.rows.len() != before {
                changes.push((k.to_vec(), Some(rows.encode_kept(&v)?)));
            }
        }
        Ok(changes)
    }

    /// Commits state, offsets and output together (see the module docs).
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        self.usable()?;
        let result = self.commit_checkpoint();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// A joiner that stopped on an error may hold a half-applied step or a half-made
    /// checkpoint: it refuses to go on (its state folder, opened again, resumes correctly).
    pub(super) fn usable(&self) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Internal(
                "this joiner stopped on an error; open its state folder again to go on".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn commit_checkpoint(&mut self) -> Result<(), Error> {
        self.write_online()?;
        let frontier = self.marks.frontier();
        self.collect_garbage(frontier);
        let swept = self.sweep(frontier)?;

        // Keys go into the batch in key order: the memtable takes sorted inserts fastest.
        let mut keys = swept;
        for changed in encode_dirty(&mut self.cache, &self.groups, &self.arenas) {
            keys.extend(changed?);
        }
        let mut events = Vec::with_capacity(self.new_events.len() + self.event_changes.len());
        for id in std::mem::take(&mut self.new_events) {
            if let Some(q) = self.pending.get(&id)
                && !q.stored
            {
                let e = self.pending_event(id, q.at)?.encode(&self.event_codec)?;
                if let Some(q) = self.pending.get_mut(&id) {
                    q.stored = true;
                }
                events.push((event_key(id).to_vec(), Some(e)));
            }
        }
        for (id, change) in std::mem::take(&mut self.event_changes) {
            match self.pending.get(&id) {
                Some(q) if change == EventChange::Put => events.push((
                    event_key(id).to_vec(),
                    Some(self.pending_event(id, q.at)?.encode(&self.event_codec)?),
                )),
                _ => events.push((event_key(id).to_vec(), None)),
            }
        }
        let mut b = self.store.batch();
        for (cf, mut changes) in [(CF_KEYS, keys), (CF_EVENTS, events)] {
            // Stable: of two changes to one key, the later stays the later.
            changes.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in &changes {
                match v {
                    Some(v) => b.put(cf, k, v)?,
                    None => b.delete(cf, k)?,
                }
            }
        }
        let msgs = std::mem::take(&mut self.out_msgs);
        let first = self.cp.outbox_next;
        for (i, m) in msgs.iter().enumerate() {
            b.put(CF_OUTBOX, &(first + i as u64).to_be_bytes(), &m.encode())?;
        }
        self.cp.outbox_next = first + msgs.len() as u64;
        self.cp.seq += 1;
        self.cp.frontier = self.marks.frontier();
        self.cp.max_ts = BTreeMap::new();
        for ((t, p), ts) in self.marks.max_ts() {
            self.cp.max_ts.entry(t.clone()).or_default().insert(*p, *ts);
        }
        b.put_checkpoint(&self.cp)?;
        // The sample files are finished (their last rows encoded on the writer's thread while
        // the batch is built) and in place before the checkpoint that counts them commits.
        let files = match &mut self.writer {
            Some(w) => w.finish()?,
            None => Vec::new(),
        };
        if let Err(e) = b.commit(true) {
            for f in files {
                if let Err(re) = std::fs::remove_file(&f) {
                    tracing::warn!(file = %f.display(), error = %re, "cannot remove the file of a failed checkpoint; the next start removes it");
                }
            }
            return Err(e);
        }
        if !msgs.is_empty() {
            let next = self.outlet.deliver(&msgs)?;
            self.record_delivered(next);
            let mut b = self.store.batch();
            for i in 0..msgs.len() as u64 {
                b.delete(CF_OUTBOX, &(first + i).to_be_bytes())?;
            }
            b.put_checkpoint(&self.cp)?;
            b.commit(false)?;
        }
        if self.cache.iter().map(KeyCache::len).sum::<usize>() > CACHE_KEYS {
            self.cache.iter_mut().for_each(KeyCache::clear);
            self.all_keys_cached = false;
            self.arenas.iter_mut().for_each(RowArena::clear);
        }
        self.compact_arenas()?;
        self.last_checkpoint = Instant::now();
        self.publish_status();
        tracing::debug!(seq = self.cp.seq, frontier = %format_timestamp(self.cp.frontier), pending = self.pending.len(), "checkpoint");
        Ok(())
    }

    /// Writes the online values of keys whose rows changed.
    pub(super) fn write_online(&mut self) -> Result<(), Error> {
        let Some(writer) = self.online.as_mut() else {
            return Ok(());
        };
        let mut per_group: Vec<Vec<OnlineUpdate>> =
            (0..self.groups.len()).map(|_| Vec::new()).collect();
        for (g, table) in self.cache.iter_mut().enumerate() {
            let arena = &self.arenas[g];
            for (kb, e) in table.iter_mut().filter(|(_, e)| e.online) {
                e.online = false;
                let Some(latest) = e.rows.latest() else {
                    continue;
                };
                let value = match &self.groups[g].compiled.kind {
                    CompiledGroupKind::Row { .. } => OnlineValue::Row {
                        ts: latest.ts,
                        values: arena.values(latest.at)?,
                    },
                    CompiledGroupKind::Window { features } => {
                        let mut w = e.rows.window_rows(arena, features, true)?;
                        w.retain_for(features, latest.ts);
                        OnlineValue::Window(w)
                    }
                };
                per_group[g].push(OnlineUpdate {
                    key: entity_key_values(kb)?,
                    value,
                });
            }
        }
        for (g, updates) in per_group.into_iter().enumerate() {
            if !updates.is_empty() {
                writer
                    .write(self.groups[g].name(), updates)
                    .map_err(Error::Online)?;
            }
        }
        Ok(())
    }
}
