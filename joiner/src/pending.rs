//! Label events queued for their samples, released in event-id order (event time, partition,
//! offset) once the frontier passes them.
//!
//! A partition's events come in offset order and nearly in event-time order (shuffled within
//! the lateness at most), so each partition keeps its own queue sorted by id: an event
//! almost always goes at or near the back, and the frontier releases a prefix of each queue.
//! One ordered map over all partitions would put every insert and release through a search
//! of hundreds of thousands of entries when one partition's messages run ahead of another's.

use std::collections::VecDeque;

use crate::store::EventId;

/// Queued events with a value each, per partition in id order.
#[derive(Debug)]
pub struct PendingEvents<V> {
    /// Per partition seen: its number and its events in id order.
    parts: Vec<(i32, VecDeque<(EventId, V)>)>,
    len: usize,
}

impl<V> Default for PendingEvents<V> {
    fn default() -> Self {
        PendingEvents {
            parts: Vec::new(),
            len: 0,
        }
    }
}

impl<V> PendingEvents<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn part(&self, partition: i32) -> Option<&VecDeque<(EventId, V)>> {
        self.parts
            .iter()
            .find(|(p, _)| *p == partition)
            .map(|(_, q)| q)
    }

    fn part_mut(&mut self, partition: i32) -> Option<&mut VecDeque<(EventId, V)>> {
        self.parts
            .iter_mut()
            .find(|(p, _)| *p == partition)
            .map(|(_, q)| q)
    }

    /// Queues `v` for event `id`; an event queued already has its value replaced, and the
    /// old one is returned.
    pub fn insert(&mut self, id: EventId, v: V) -> Option<V> {
        if self.part(id.1).is_none() {
            self.parts.push((id.1, VecDeque::new()));
        }
        let q = self.part_mut(id.1)?;
        // Mostly after the last one.
        if q.back().is_none_or(|(last, _)| *last < id) {
            q.push_back((id, v));
            self.len += 1;
            return None;
        }
        match q.binary_search_by(|(e, _)| e.cmp(&id)) {
            Ok(i) => Some(std::mem::replace(&mut q[i].1, v)),
            Err(i) => {
                q.insert(i, (id, v));
                self.len += 1;
                None
            }
        }
    }

    pub fn get(&self, id: &EventId) -> Option<&V> {
        let q = self.part(id.1)?;
        let i = q.binary_search_by(|(e, _)| e.cmp(id)).ok()?;
        Some(&q[i].1)
    }

    pub fn get_mut(&mut self, id: &EventId) -> Option<&mut V> {
        let q = self.part_mut(id.1)?;
        let i = q.binary_search_by(|(e, _)| e.cmp(id)).ok()?;
        Some(&mut q[i].1)
    }

    /// Takes the events before event time `t`, in id order.
    pub fn take_before(&mut self, t: i64) -> Vec<(EventId, V)> {
        let mut out = Vec::new();
        let mut runs = 0;
        for (_, q) in &mut self.parts {
            let n = q.partition_point(|(e, _)| e.0 < t);
            if n > 0 {
                out.extend(q.drain(..n));
                runs += 1;
            }
        }
        self.len -= out.len();
        if runs > 1 {
            // Sorted runs, one per partition: the stable sort merges them.
            out.sort_by_key(|a| a.0);
        }
        out
    }

    /// The values, in no particular order (the same for `values` and `values_mut`).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.parts
            .iter()
            .flat_map(|(_, q)| q.iter().map(|(_, v)| v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.parts
            .iter_mut()
            .flat_map(|(_, q)| q.iter_mut().map(|(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Against an ordered map: inserts nearly in time order per partition, repeats,
    /// lookups and releases at a moving frontier.
    #[test]
    fn behaves_like_an_ordered_map() {
        let mut rng = fstore_core::xorshift::XorShift::new(0x2545_f491_4f6c_dd1d_u64);
        let mut next = |n: u64| rng.below(n);
        for _ in 0..50 {
            let mut q: PendingEvents<u64> = PendingEvents::default();
            let mut m: BTreeMap<EventId, u64> = BTreeMap::new();
            let parts = 1 + next(4) as i32;
            let mut offsets = vec![0i64; parts as usize];
            let mut clock = 0i64;
            let mut frontier = i64::MIN;
            let mut ids: Vec<EventId> = Vec::new();
            for step in 0..200u64 {
                for _ in 0..next(20) {
                    let p = next(parts as u64) as i32;
                    let id = match next(10) {
                        // An event read again.
                        0 if !ids.is_empty() => ids[next(ids.len() as u64) as usize],
                        _ => {
                            clock += next(3) as i64;
                            let o = &mut offsets[p as usize];
                            *o += 1;
                            // Shuffled within a lateness of 10, equal times included.
                            (clock - next(10) as i64, p, *o)
                        }
                    };
                    ids.push(id);
                    let v = step * 1000 + next(1000);
                    assert_eq!(q.insert(id, v), m.insert(id, v));
                }
                for id in ids.iter().rev().take(5) {
                    assert_eq!(q.get(id), m.get(id));
                }
                if let Some(v) = q.get_mut(&(clock, 0, 1)) {
                    *v += 1;
                }
                if let Some(v) = m.get_mut(&(clock, 0, 1)) {
                    *v += 1;
                }
                if next(3) == 0 {
                    frontier = frontier.max(clock - next(15) as i64);
                    let later = m.split_off(&(frontier, i32::MIN, i64::MIN));
                    let want: Vec<(EventId, u64)> =
                        std::mem::replace(&mut m, later).into_iter().collect();
                    assert_eq!(q.take_before(frontier), want);
                }
                assert_eq!(q.len(), m.len());
                let mut got: Vec<u64> = q.values().copied().collect();
                let mut want: Vec<u64> = m.values().copied().collect();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want);
            }
        }
    }
}
