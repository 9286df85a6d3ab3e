//! Watermarks and the emission frontier, as plain decisions over state (no Kafka here).
//!
//! Every input partition the joiner reads has the greatest event time seen in it. The
//! **watermark** is the least of those, minus the allowed lateness; a partition that has shown
//! no event time yet holds it back (unknown), unless it is idle (see below). The **frontier**
//! is the greatest watermark reached so far and only moves forward:
//!
//! - every label event with event time `< frontier` has had its sample emitted;
//! - a row (label event or feature row) arriving with event time `< frontier` is **late**: it
//!   could change an emitted sample, so it does not take part in samples. It goes to the
//!   dead-letter topic, is counted, and still updates the online store.
//!
//! A row within the lateness of its own partition's greatest event time is never late: the
//! watermark is at most that greatest time minus the lateness.
//!
//! An idle partition (read to its end, and quiet for the idle timeout) does not hold the
//! watermark back; when it gets data again it counts again. A bounded run (`--until-end`)
//! ends by moving the frontier past every event time seen ([`Watermarks::finish`]).

use std::collections::{BTreeMap, BTreeSet};

/// One partition of one input topic.
pub type InputPartition = (String, i32);

/// The watermark state of a joiner instance.
#[derive(Debug, Clone)]
pub struct Watermarks {
    lateness_us: i64,
    inputs: BTreeSet<InputPartition>,
    max_ts: BTreeMap<InputPartition, i64>,
    idle: BTreeSet<InputPartition>,
    frontier: i64,
}

impl Watermarks {
    /// Watermarks over `inputs` with `lateness_us`, resuming at `frontier` with the greatest
    /// event times seen per partition (from a checkpoint; empty at the start).
    pub fn new(
        lateness_us: i64,
        inputs: impl IntoIterator<Item = InputPartition>,
        max_ts: BTreeMap<InputPartition, i64>,
        frontier: i64,
    ) -> Self {
        Watermarks {
            lateness_us,
            inputs: inputs.into_iter().collect(),
            max_ts,
            idle: BTreeSet::new(),
            frontier,
        }
    }

    /// Events before it have been emitted; rows before it are late.
    pub fn frontier(&self) -> i64 {
        self.frontier
    }

    /// The greatest event time seen per partition, for checkpoints.
    pub fn max_ts(&self) -> &BTreeMap<InputPartition, i64> {
        &self.max_ts
    }

    /// Whether a row with event time `ts` is late.
    pub fn is_late(&self, ts: i64) -> bool {
        ts < self.frontier
    }

    /// Records an event time read from `p`; the partition is no longer idle.
    pub fn observe(&mut self, p: &InputPartition, ts: i64) {
        self.idle.remove(p);
        match self.max_ts.get_mut(p) {
            Some(m) => *m = (*m).max(ts),
            None => {
                self.max_ts.insert(p.clone(), ts);
            }
        }
    }

    /// Marks `p` idle (read to its end and quiet) or active again.
    pub fn set_idle(&mut self, p: &InputPartition, idle: bool) {
        if idle {
            self.idle.insert(p.clone());
        } else {
            self.idle.remove(p);
        }
    }

    /// The current watermark: the least greatest-event-time over active partitions, minus the
    /// lateness; `None` while an active partition has shown none. With every partition idle,
    /// the least over those that have shown one.
    pub fn watermark(&self) -> Option<i64> {
        let active: Vec<&InputPartition> = self
            .inputs
            .iter()
            .filter(|p| !self.idle.contains(*p))
            .collect();
        let least = if active.is_empty() {
            self.max_ts.values().min().copied()
        } else {
            let mut least = i64::MAX;
            for p in active {
                least = least.min(*self.max_ts.get(p)?);
            }
            Some(least)
        };
        least.map(|t| t.saturating_sub(self.lateness_us))
    }

    /// Moves the frontier up to the watermark; returns whether it moved.
    pub fn advance(&mut self) -> bool {
        match self.watermark() {
            Some(w) if w > self.frontier => {
                self.frontier = w;
                true
            }
            _ => false,
        }
    }

    /// The end of a bounded run: every event seen is emitted, so the frontier moves past the
    /// greatest event time seen anywhere.
    pub fn finish(&mut self) {
        if let Some(m) = self.max_ts.values().max() {
            self.frontier = self.frontier.max(m.saturating_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, n: i32) -> InputPartition {
        (t.to_string(), n)
    }

    fn marks(lateness: i64) -> Watermarks {
        Watermarks::new(
            lateness,
            [p("a", 0), p("a", 1), p("b", 0)],
            BTreeMap::new(),
            i64::MIN,
        )
    }

    #[test]
    fn every_partition_holds_the_watermark_until_it_has_data() {
        let mut w = marks(10);
        w.observe(&p("a", 0), 100);
        w.observe(&p("a", 1), 200);
        assert_eq!(w.watermark(), None);
        assert!(!w.advance());
        assert!(!w.is_late(i64::MIN + 1));
        w.observe(&p("b", 0), 150);
        assert_eq!(w.watermark(), Some(90));
        assert!(w.advance());
        assert_eq!(w.frontier(), 90);
        assert!(w.is_late(89));
        assert!(!w.is_late(90));
    }

    #[test]
    fn the_frontier_never_goes_back() {
        let mut w = marks(0);
        for (q, t) in [(p("a", 0), 50), (p("a", 1), 60), (p("b", 0), 70)] {
            w.observe(&q, t);
        }
        assert!(w.advance());
        assert_eq!(w.frontier(), 50);
        // An older time on a partition changes nothing.
        w.observe(&p("a", 0), 10);
        assert!(!w.advance());
        assert_eq!(w.frontier(), 50);
    }

    #[test]
    fn rows_within_their_partitions_lateness_are_never_late() {
        let mut w = marks(30);
        for (q, t) in [(p("a", 0), 100), (p("a", 1), 400), (p("b", 0), 250)] {
            w.observe(&q, t);
        }
        w.advance();
        for (q, max) in [(p("a", 0), 100), (p("a", 1), 400), (p("b", 0), 250)] {
            assert!(!w.is_late(max - 30), "{q:?}");
        }
    }

    #[test]
    fn idle_partitions_do_not_hold_the_watermark() {
        let mut w = marks(5);
        w.observe(&p("a", 0), 100);
        w.observe(&p("a", 1), 100);
        assert_eq!(w.watermark(), None);
        w.set_idle(&p("b", 0), true);
        assert_eq!(w.watermark(), Some(95));
        // Data wakes it up; it counts again.
        w.observe(&p("b", 0), 20);
        assert_eq!(w.watermark(), Some(15));
        for q in [p("a", 0), p("a", 1), p("b", 0)] {
            w.set_idle(&q, true);
        }
        assert_eq!(w.watermark(), Some(15), "all idle: still the least");
    }

    #[test]
    fn finishing_moves_past_everything_seen() {
        let mut w = marks(1_000);
        w.observe(&p("a", 0), 7);
        w.finish();
        assert_eq!(w.frontier(), 8);
        assert!(w.is_late(7));
        let mut empty = marks(1);
        empty.finish();
        assert_eq!(empty.frontier(), i64::MIN);
    }
}
