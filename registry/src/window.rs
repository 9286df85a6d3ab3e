//! The rows of one key that window aggregates fold, and the fold itself: the one
//! implementation of "aggregate over `[t - w, t)`" used by the batch engine, online serving and
//! the joiner.
//!
//! Rows are kept in fold order: event time, then the tie order (each feature's aggregate input
//! and filter result, compared as the batch engine sorts them). Online, a window group's value
//! is these rows for the longest window before the latest row, encoded with the group's codec
//! as lists (see [`WindowRows::stored_types`]), so any request time gets the exact aggregate.

use crate::aggregate::Accumulator;
use crate::codec::Value;
use crate::compiled::CompiledWindow;
use crate::types::DataType;
use crate::{Error, Result};

/// One key's rows in fold order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowRows {
    /// Event times, non-decreasing.
    pub ts: Vec<i64>,
    /// Per feature: each row's aggregate input; `None` for `COUNT(*)`.
    pub inputs: Vec<Option<Vec<Value>>>,
    /// Per feature: whether each row passes its FILTER; `None` without one.
    pub passes: Vec<Option<Vec<bool>>>,
}

impl WindowRows {
    /// No rows, shaped for `features`.
    pub fn empty(features: &[CompiledWindow]) -> Self {
        WindowRows {
            ts: Vec::new(),
            inputs: features
                .iter()
                .map(|f| f.input.as_ref().map(|_| Vec::new()))
                .collect(),
            passes: features
                .iter()
                .map(|f| f.filter.as_ref().map(|_| Vec::new()))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Each feature's aggregate for an event at `t`: over the rows with event time in
    /// `[t - window, t)`, in stored order, those passing the filter.
    pub fn fold(&self, features: &[CompiledWindow], t: i64) -> Vec<Value> {
        let hi = self.ts.partition_point(|&x| x < t);
        features
            .iter()
            .enumerate()
            .map(|(fi, f)| {
                let start = t.saturating_sub(f.window_us);
                let lo = self.ts[..hi].partition_point(|&x| x < start);
                let mut acc = Accumulator::new(f.agg);
                for r in lo..hi {
                    if let Some(p) = &self.passes[fi]
                        && !p[r]
                    {
                        continue;
                    }
                    acc.add(self.inputs[fi].as_ref().map(|v| &v[r]));
                }
                acc.finish()
            })
            .collect()
    }

    /// Drops rows no request at or after `t` can see: those before `t - longest window`.
    pub fn retain_for(&mut self, features: &[CompiledWindow], t: i64) {
        let longest = features.iter().map(|f| f.window_us).max().unwrap_or(0);
        let cut = self.ts.partition_point(|&x| x < t.saturating_sub(longest));
        if cut == 0 {
            return;
        }
        self.ts.drain(..cut);
        for v in self.inputs.iter_mut().flatten() {
            v.drain(..cut);
        }
        for p in self.passes.iter_mut().flatten() {
            p.drain(..cut);
        }
    }

    /// The codec types of a window group's online value: the event times, then per feature
    /// its inputs (if any) and filter results (if any), each a list over the rows.
    pub fn stored_types(features: &[CompiledWindow]) -> Vec<DataType> {
        let mut t = vec![DataType::List(Box::new(DataType::Timestamp))];
        for f in features {
            if let Some(i) = &f.input {
                t.push(DataType::List(Box::new(i.dtype.clone())));
            }
            if f.filter.is_some() {
                t.push(DataType::List(Box::new(DataType::Boolean)));
            }
        }
        t
    }

    /// The values to encode, matching [`WindowRows::stored_types`].
    pub fn to_values(&self) -> Vec<Value> {
        let mut out = vec![Value::List(
            self.ts.iter().map(|&t| Value::Timestamp(t)).collect(),
        )];
        for (inputs, passes) in self.inputs.iter().zip(&self.passes) {
            if let Some(v) = inputs {
                out.push(Value::List(v.clone()));
            }
            if let Some(p) = passes {
                out.push(Value::List(p.iter().map(|&b| Value::Boolean(b)).collect()));
            }
        }
        out
    }

    /// Reads values written by [`WindowRows::to_values`] for the same features.
    pub fn from_values(features: &[CompiledWindow], values: Vec<Value>) -> Result<Self> {
        let bad = |what: &str| Error::Codec(format!("window rows: {what}"));
        let mut it = values.into_iter();
        let list = |v: Option<Value>| match v {
            Some(Value::List(items)) => Ok(items),
            _ => Err(bad("expected a list")),
        };
        let ts = list(it.next())?
            .into_iter()
            .map(|v| match v {
                Value::Timestamp(t) => Ok(t),
                _ => Err(bad("event time is not a timestamp")),
            })
            .collect::<Result<Vec<i64>>>()?;
        let mut rows = WindowRows::empty(features);
        for (fi, f) in features.iter().enumerate() {
            if f.input.is_some() {
                rows.inputs[fi] = Some(list(it.next())?);
            }
            if f.filter.is_some() {
                rows.passes[fi] = Some(
                    list(it.next())?
                        .into_iter()
                        .map(|v| matches!(v, Value::Boolean(true)))
                        .collect(),
                );
            }
        }
        if ts.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("event times out of order"));
        }
        let n = ts.len();
        let same_len = rows.inputs.iter().flatten().all(|v| v.len() == n)
            && rows.passes.iter().flatten().all(|p| p.len() == n);
        if !same_len || it.next().is_some() {
            return Err(bad("lists of different lengths"));
        }
        rows.ts = ts;
        Ok(rows)
    }
}
