//! The semantic contract, one function per rule (see docs/semantics.md):
//! - [`order`]: the order of one key's rows (event time, then the tie order);
//! - [`asof`]: the as-of rule — which row an event joins, TTL expiry, the lookback before an
//!   event and the retention of state;
//! - [`window`]: the rows a window group folds and the fold over `[t - w, t)`;
//! - [`aggregate`]: each aggregate's accumulation in fold order.

pub mod aggregate;
pub mod asof;
pub mod order;
pub mod window;
