//! The as-of rule: which row of a key an event at `t` joins, when that row is too old, and how
//! far before `t` a key's rows still matter.
//!
//! One [`AsOfRule`] per feature group answers all of it, so the batch engine (its pick and the
//! lookback it reads before a job's start), the joiner (its pick and the state its garbage
//! collection keeps) and the online store (expiry at a request time, the rows a window group
//! keeps) cannot disagree:
//! - a **row group** joins the latest row with event time `<= t` (ties broken by the tie order,
//!   [`crate::semantics::order`]); a row more than the TTL older than `t` gives NULL features
//!   (a row exactly TTL old still counts);
//! - a **window group** folds every row in `[t - w, t)`; the longest window bounds what matters.

use crate::semantics::window::CompiledWindow;

/// How a feature group's rows reach an event at time `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOfRule {
    /// The latest row at or before `t`, unless older than the TTL.
    Latest { ttl_us: Option<i64> },
    /// The rows in `[t - w, t)`, `longest_us` the longest window `w`.
    Window { longest_us: i64 },
}

/// What the as-of rule gives one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf<R> {
    /// The key has no row at or before the event.
    NoRow,
    /// The key's latest row is older than the TTL: the features are NULL.
    Expired,
    /// The row the event joins.
    Found(R),
}

impl AsOfRule {
    /// The rule of a window group with these features.
    pub fn windows(features: &[CompiledWindow]) -> Self {
        AsOfRule::Window {
            longest_us: features.iter().map(|f| f.window_us).max().unwrap_or(0),
        }
    }

    /// How long before an event its rows can matter: the TTL, or the longest window; `None`
    /// for a row group without TTL (any earlier row can be the latest).
    pub fn lookback_us(&self) -> Option<i64> {
        match *self {
            AsOfRule::Latest { ttl_us } => ttl_us,
            AsOfRule::Window { longest_us } => Some(longest_us),
        }
    }

    /// The earliest event time a row may have and still reach an event at `t` or later: what
    /// a batch job reads before its first event, what a window group's state keeps. `None`
    /// when every earlier row may.
    pub fn horizon(&self, t: i64) -> Option<i64> {
        self.lookback_us().map(|l| t.saturating_sub(l))
    }

    /// Whether a row at `row_ts <= t` is too old for an event at `t`: only a row group with a
    /// TTL expires rows.
    pub fn expired(&self, t: i64, row_ts: i64) -> bool {
        match *self {
            AsOfRule::Latest { ttl_us } => ttl_us.is_some_and(|ttl| t.saturating_sub(row_ts) > ttl),
            AsOfRule::Window { longest_us } => row_ts < t.saturating_sub(longest_us),
        }
    }

    /// What an event at `t` gets from `candidate`, the key's latest row at or before `t`
    /// (its event time and the row), if any.
    pub fn pick<R>(&self, t: i64, candidate: Option<(i64, R)>) -> AsOf<R> {
        match candidate {
            None => AsOf::NoRow,
            Some((ts, _)) if self.expired(t, ts) => AsOf::Expired,
            Some((_, r)) => AsOf::Found(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_inclusive() {
        let rule = |ttl| AsOfRule::Latest { ttl_us: ttl };
        assert!(!rule(Some(10)).expired(100, 90));
        assert!(rule(Some(10)).expired(101, 90));
        assert!(!rule(None).expired(i64::MAX, i64::MIN));
        assert!(rule(Some(0)).expired(i64::MAX, i64::MIN));
        assert_eq!(rule(Some(10)).pick(101, Some((90, ()))), AsOf::Expired);
        assert_eq!(rule(Some(10)).pick(100, Some((90, 7))), AsOf::Found(7));
        assert_eq!(rule(None).pick::<()>(100, None), AsOf::NoRow);
    }

    #[test]
    fn horizon_bounds_what_reaches_an_event() {
        let w = AsOfRule::Window { longest_us: 5 };
        assert_eq!(w.horizon(10), Some(5));
        // [t - w, t): the lower bound is inclusive.
        assert!(!w.expired(10, 5));
        assert!(w.expired(10, 4));
        assert_eq!(AsOfRule::Latest { ttl_us: None }.horizon(10), None);
        assert_eq!(
            AsOfRule::Latest { ttl_us: Some(3) }.horizon(i64::MIN),
            Some(i64::MIN)
        );
        // For a row group, a row reaches the event exactly when it is at or after the horizon.
        let r = AsOfRule::Latest { ttl_us: Some(3) };
        for ts in 0..20 {
            assert_eq!(r.expired(10, ts), ts < r.horizon(10).unwrap());
        }
    }
}
