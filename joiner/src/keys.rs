//! One feature group's keys in memory: each entity key's bytes and entry in a slab, found
//! through an open-addressing table of hashes.
//!
//! A slot (an entry's place in the slab) stays valid until the table is cleared, so a step
//! can resolve all its keys first and use their entries afterwards. Resolving many keys at
//! once overlaps their memory loads: the table prefetches the index lines of keys a few
//! places ahead and, before it compares any key, the slots they point to. Each key's lookup
//! otherwise waits on two or three cache misses in a row, and with tens of thousands of keys
//! per group those misses are most of the time a join spends.

use std::hash::BuildHasher;

use prefetch_index::prefetch_index;

/// An entity key's bytes ([`crate::store::KeyColumns::write`]); short keys (most) inline.
pub type KeyBytes = smallvec::SmallVec<[u8; 24]>;

/// An entry's place in its table.
pub type Slot = u32;

/// How many keys ahead a batched walk prefetches.
pub const AHEAD: usize = 8;

const MIN_INDEX: usize = 64;

/// Keys in memory with their entries.
pub struct KeyTable<E, S = foldhash::fast::RandomState> {
    hasher: S,
    /// Linear probing, at most half full. 0 is empty; otherwise the hash's high 32 bits
    /// (a tag that settles most comparisons without reading the key) and the slot + 1.
    index: Vec<u64>,
    slots: Vec<(KeyBytes, E)>,
}

impl<E, S: Default> Default for KeyTable<E, S> {
    fn default() -> Self {
        KeyTable {
            hasher: S::default(),
            index: vec![0; MIN_INDEX],
            slots: Vec::new(),
        }
    }
}

fn tag(hash: u64) -> u64 {
    hash >> 32
}

impl<E, S: BuildHasher> KeyTable<E, S> {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops every key; slots handed out before are no longer valid.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.index = vec![0; MIN_INDEX];
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// Where a key's probe starts.
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// Loads the index line a key's probe starts at.
    pub fn prefetch_hash(&self, hash: u64) {
        prefetch_index(&self.index, self.home(hash));
    }

    /// Loads an entry's key and the start of the entry.
    pub fn prefetch_slot(&self, slot: Slot) {
        prefetch_index(&self.slots, slot as usize);
    }

    /// The first slot whose tag matches, from the index alone (the key is not compared).
    fn candidate(&self, hash: u64) -> Option<Slot> {
        let mut pos = self.home(hash);
        loop {
            let v = self.index[pos];
            if v == 0 {
                return None;
            }
            if v >> 32 == tag(hash) {
                return Some((v as u32) - 1);
            }
            pos = (pos + 1) & self.mask();
        }
    }

    /// The slot of `key`; `hash` is [`KeyTable::hash`] of it.
    fn find(&self, hash: u64, key: &[u8]) -> Option<Slot> {
        let mut pos = self.home(hash);
        loop {
            let v = self.index[pos];
            if v == 0 {
                return None;
            }
            let slot = (v as u32) - 1;
            if v >> 32 == tag(hash) && self.slots[slot as usize].0.as_slice() == key {
                return Some(slot);
            }
            pos = (pos + 1) & self.mask();
        }
    }

    /// Adds a key that is not in the table; `hash` is [`KeyTable::hash`] of it (growing
    /// the index hashes every key again).
    fn insert(&mut self, hash: u64, key: &[u8], entry: E) -> Slot {
        if (self.slots.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let slot = Slot::try_from(self.slots.len())
            .ok()
            .filter(|&s| s < Slot::MAX)
            .expect("fewer than 2^32 - 1 keys in memory");
        self.slots.push((KeyBytes::from_slice(key), entry));
        self.place(hash, slot);
        slot
    }

    fn place(&mut self, hash: u64, slot: Slot) {
        let mut pos = self.home(hash);
        while self.index[pos] != 0 {
            pos = (pos + 1) & self.mask();
        }
        self.index[pos] = (tag(hash) << 32) | u64::from(slot + 1);
    }

    fn grow(&mut self) {
        self.index = vec![0; self.index.len() * 2];
        for slot in 0..self.slots.len() {
            let hash = self.hash(&self.slots[slot].0);
            self.place(hash, slot as Slot);
        }
    }

    /// Finds many keys, overlapping their loads; `missing(i, key)` makes the entry of key
    /// `i` when it is not in the table (once per distinct key, in order). `keys[i]` is `None`
    /// for an entry not wanted (its slot is `None`).
    pub fn resolve<'k, Err>(
        &mut self,
        keys: &[Option<&'k [u8]>],
        mut missing: impl FnMut(usize, &'k [u8]) -> Result<E, Err>,
    ) -> Result<Vec<Option<Slot>>, Err> {
        let hashes: Vec<u64> = keys.iter().map(|k| k.map_or(0, |k| self.hash(k))).collect();
        // Tag matches from the index alone, their slots loading meanwhile.
        let mut candidates = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            if let Some(Some(_)) = keys.get(i + AHEAD) {
                self.prefetch_hash(hashes[i + AHEAD]);
            }
            let c = k.and_then(|_| self.candidate(hashes[i]));
            if let Some(s) = c {
                self.prefetch_slot(s);
            }
            candidates.push(c);
        }
        let mut slots = Vec::with_capacity(keys.len());
        for (i, ((k, c), &hash)) in keys.iter().zip(candidates).zip(&hashes).enumerate() {
            let Some(k) = *k else {
                slots.push(None);
                continue;
            };
            let slot = match c {
                Some(s) if self.slots[s as usize].0.as_slice() == k => s,
                _ => match self.find(hash, k) {
                    Some(s) => s,
                    None => {
                        let e = missing(i, k)?;
                        self.insert(hash, k, e)
                    }
                },
            };
            slots.push(Some(slot));
        }
        Ok(slots)
    }

    pub fn get(&self, slot: Slot) -> &E {
        &self.slots[slot as usize].1
    }

    pub fn get_mut(&mut self, slot: Slot) -> &mut E {
        &mut self.slots[slot as usize].1
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.find(self.hash(key), key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&KeyBytes, &E)> {
        self.slots.iter().map(|(k, e)| (k, e))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&KeyBytes, &mut E)> {
        self.slots.iter_mut().map(|(k, e)| (&*k, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn value(k: &[u8]) -> u64 {
        k.iter().fold(k.len() as u64, |a, &b| {
            a.wrapping_mul(31).wrapping_add(u64::from(b))
        })
    }

    /// Against a std map: random keys, repeats, growth, clear; resolve in batches.
    #[test]
    fn finds_what_a_map_finds() {
        let mut t: KeyTable<u64> = KeyTable::default();
        let mut m: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut rng = fstore_core::xorshift::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        for round in 0..30 {
            let n = (next() % 3000) as usize;
            let keys: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let k = next() % 5000;
                    // Short keys inline, long ones spilled.
                    let len = if k % 7 == 0 { 40 } else { 1 + (k % 9) as usize };
                    let mut b = k.to_be_bytes().to_vec();
                    b.resize(len, (k % 251) as u8);
                    b
                })
                .collect();
            let wanted: Vec<Option<&[u8]>> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (i % 11 != 3).then_some(k.as_slice()))
                .collect();
            let mut made = 0u64;
            let slots = t
                .resolve(&wanted, |i, k| {
                    assert_eq!(wanted[i], Some(k));
                    made += 1;
                    Ok::<_, ()>(value(k))
                })
                .unwrap();
            let before = m.len();
            for (k, s) in wanted.iter().zip(&slots) {
                match (k, s) {
                    (None, None) => {}
                    (Some(k), Some(s)) => {
                        let v = *m.entry(k.to_vec()).or_insert(value(k));
                        assert_eq!(*t.get(*s), v);
                        assert_eq!(t.slots[*s as usize].0.as_slice(), *k);
                    }
                    other => panic!("wanted and resolved disagree: {other:?}"),
                }
            }
            assert_eq!(
                made as usize,
                m.len() - before,
                "one entry made per new key"
            );
            assert_eq!(t.len(), m.len());
            for k in m.keys() {
                assert!(t.contains_key(k));
            }
            assert!(!t.contains_key(b"absent key, longer than any"));
            if round % 10 == 9 {
                t.clear();
                m.clear();
                assert!(t.is_empty());
            }
        }
    }

    /// Every key hashes alike: one home, one tag.
    #[derive(Default)]
    struct Same;

    impl std::hash::Hasher for Same {
        fn finish(&self) -> u64 {
            0xdead_beef_0000_0005
        }
        fn write(&mut self, _: &[u8]) {}
    }

    impl BuildHasher for Same {
        type Hasher = Same;
        fn build_hasher(&self) -> Same {
            Same
        }
    }

    /// With every tag matching, each key is still found by its bytes: through `resolve`'s
    /// candidates (the first tag match is usually another key), repeats in one batch, and
    /// growth in the middle of one.
    #[test]
    fn tags_that_collide_are_told_apart_by_the_key() {
        let mut t: KeyTable<usize, Same> = KeyTable::default();
        let names: Vec<Vec<u8>> = (0..200).map(|i| format!("key {i}").into_bytes()).collect();
        for round in 0..3 {
            // Forward, then backward with repeats: later keys' candidates are earlier keys.
            let batch: Vec<Option<&[u8]>> = if round % 2 == 0 {
                names.iter().map(|n| Some(n.as_slice())).collect()
            } else {
                names
                    .iter()
                    .rev()
                    .chain(names.iter().step_by(7))
                    .map(|n| Some(n.as_slice()))
                    .collect()
            };
            let slots = t
                .resolve(&batch, |i, k| {
                    assert_eq!(round, 0, "every key is made in the first round");
                    assert_eq!(batch[i], Some(k));
                    Ok::<_, ()>(i)
                })
                .unwrap();
            for (k, s) in batch.iter().zip(&slots) {
                let s = s.expect("a slot for every key");
                assert_eq!(t.slots[s as usize].0.as_slice(), k.unwrap());
                let made_as = names.iter().position(|n| Some(n.as_slice()) == *k).unwrap();
                assert_eq!(*t.get(s), made_as);
            }
            assert_eq!(t.len(), names.len());
        }
        assert!(!t.contains_key(b"key 200"));
    }
}
