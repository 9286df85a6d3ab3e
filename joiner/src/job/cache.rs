//! The keys in memory: each group's key table of entries (a key's rows, its window rows, its
//! dirty flags), and the prefetching walks over them.

use super::*;

pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One group's keys in memory.
pub(super) type KeyCache = KeyTable<Entry>;

/// Every key in memory with its group.
pub(super) fn cached(
    cache: &mut [KeyCache],
) -> impl Iterator<Item = (usize, &KeyBytes, &mut Entry)> {
    cache
        .iter_mut()
        .enumerate()
        .flat_map(|(g, keys)| keys.iter_mut().map(move |(k, e)| (g, k, e)))
}

/// A key's rows in memory.
pub(super) struct Entry {
    pub(super) rows: KeyRows,
    /// A window group's on-time rows as folds read them: built by the first fold, kept up to
    /// date by inserts, dropped when garbage collection removes rows.
    pub(super) window: Option<WindowRows>,
    /// Changed since the last checkpoint.
    pub(super) dirty: bool,
    /// Its online value changed since the last checkpoint.
    pub(super) online: bool,
}

pub(super) fn prefetch_ref<T>(r: &T) {
    prefetch_index(std::slice::from_ref(r), 0);
}

/// For a walk over the entries of `slots`, at `i`, loads in three stages what the walk
/// reads, each stage reading only lines the one before loaded: the entry `2 × AHEAD` on
/// (its own lines); the last rows, fold times and per-feature fold arrays of the entry
/// `AHEAD` on; the fold inputs and filter results of the entry `AHEAD / 2` on.
pub(super) fn prefetch_ahead(table: &KeyCache, slots: &[Option<Slot>], i: usize) {
    if let Some(&Some(s)) = slots.get(i + 2 * AHEAD) {
        let e = table.get(s);
        prefetch_ref(&e.rows);
        prefetch_ref(&e.window);
    }
    if let Some(&Some(s)) = slots.get(i + AHEAD) {
        let e = table.get(s);
        let rows = &e.rows.rows;
        for i in rows.len().saturating_sub(4)..rows.len() {
            prefetch_index(rows, i);
        }
        if let Some(w) = &e.window {
            prefetch_index(&w.ts, 0);
            prefetch_index(&w.ts, w.ts.len().saturating_sub(1));
            prefetch_index(&w.passes, 0);
            prefetch_index(&w.inputs, 0);
        }
    }
    if let Some(&Some(s)) = slots.get(i + AHEAD / 2)
        && let Some(w) = &table.get(s).window
    {
        for p in w.passes.iter().flatten() {
            prefetch_index(p, 0);
        }
        for v in w.inputs.iter().flatten() {
            prefetch_index(v, v.len().saturating_sub(1));
        }
    }
}

/// The entity keys of many rows, their bytes in one buffer.
#[derive(Default)]
pub(super) struct KeyBatch {
    pub(super) bytes: Vec<u8>,
    /// Per row, where its key's bytes end, or `None` for a key with a NULL part.
    pub(super) ends: Vec<Option<usize>>,
}

impl KeyBatch {
    /// Adds the key of row `row` of `columns`; a key with a NULL part is no key (it resolves
    /// to no entry, and `push` returns false).
    pub(super) fn push(&mut self, columns: &KeyColumns<'_>, row: usize) -> bool {
        let whole = columns.write(row, &mut self.bytes);
        self.ends.push(whole.then_some(self.bytes.len()));
        whole
    }

    pub(super) fn keys(&self) -> Vec<Option<&[u8]>> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|end| {
                end.map(|end| {
                    let k = &self.bytes[start..end];
                    start = end;
                    k
                })
            })
            .collect()
    }
}
