//! The rows of one key that window aggregates fold, and the fold itself: the one
//! implementation of "aggregate over `[t - w, t)`" used by the batch engine, online serving and
//! the joiner.
//!
//! Rows are kept in fold order: event time, then the tie order (each feature's aggregate input
//! and filter result, compared as the batch engine sorts them). Online, a window group's value
//! is these rows for the longest window before the latest row, encoded with the group's codec
//! as lists (see [`WindowRows::stored_types`]), so any request time gets the exact aggregate.

use crate::codec::Value;
use crate::expr::CompiledExpr;
use crate::rows::ColumnBuilder;
use crate::semantics::aggregate::{Accumulator, Aggregate};
use crate::semantics::asof::AsOfRule;
use crate::types::DataType;
use crate::{Error, Result};

/// A window feature's compiled parts: `AGG(input) FILTER (WHERE filter) OVER window`.
#[derive(Debug, Clone)]
pub struct CompiledWindow {
    pub name: String,
    pub agg: Aggregate,
    pub window_us: i64,
    pub dtype: DataType,
    /// `None` for `COUNT(*)`.
    pub input: Option<CompiledExpr>,
    pub filter: Option<CompiledExpr>,
}

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
            .map(|(fi, f)| self.fold_feature(fi, f, t, hi))
            .collect()
    }

    /// [`WindowRows::fold`], each feature's aggregate appended to its builder.
    pub fn fold_into(
        &self,
        features: &[CompiledWindow],
        t: i64,
        out: &mut [ColumnBuilder],
    ) -> Result<()> {
        let hi = self.ts.partition_point(|&x| x < t);
        for ((fi, f), b) in features.iter().enumerate().zip(out) {
            b.append(&self.fold_feature(fi, f, t, hi))?;
        }
        Ok(())
    }

    /// Feature `fi`'s aggregate for an event at `t`; `hi` is the first row at or after `t`.
    fn fold_feature(&self, fi: usize, f: &CompiledWindow, t: i64, hi: usize) -> Value {
        let start = t.saturating_sub(f.window_us);
        let lo = self.ts[..hi].partition_point(|&x| x < start);
        let passes = self.passes[fi].as_deref();
        match &self.inputs[fi] {
            // COUNT(*): the rows that pass (what the accumulator counts, without it).
            None if f.agg == Aggregate::Count => {
                let n = match passes {
                    Some(p) => p[lo..hi].iter().filter(|&&pass| pass).count(),
                    None => hi - lo,
                };
                Value::Int64(n as i64)
            }
            inputs => {
                let mut acc = Accumulator::new(f.agg);
                for r in lo..hi {
                    if passes.is_some_and(|p| !p[r]) {
                        continue;
                    }
                    acc.add(inputs.as_ref().map(|v| &v[r]));
                }
                acc.finish()
            }
        }
    }

    /// Drops rows no request at or after `t` can see: those before the as-of rule's horizon
    /// (`t - longest window`).
    pub fn retain_for(&mut self, features: &[CompiledWindow], t: i64) {
        let rule = AsOfRule::windows(features);
        let cut = self.ts.partition_point(|&x| rule.expired(t, x));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DataType;

    fn window(agg: Aggregate, input: bool, filter: bool, window_us: i64) -> CompiledWindow {
        use datafusion::physical_expr::expressions::Column;
        let expr = |dtype: DataType| CompiledExpr {
            name: "x".into(),
            dtype,
            expr: std::sync::Arc::new(Column::new("x", 0)),
            encoding: crate::encoding::Encoding::Dense,
        };
        CompiledWindow {
            name: "f".into(),
            agg,
            window_us,
            dtype: DataType::Int64,
            input: input.then(|| expr(DataType::Int64)),
            filter: filter.then(|| expr(DataType::Boolean)),
        }
    }

    /// Folds of generated rows against a plain count and sum over the rows in `[t - w, t)`.
    #[test]
    fn folds_equal_a_plain_count_and_sum() {
        let features = [
            window(Aggregate::Count, false, false, 5),
            window(Aggregate::Count, false, true, 7),
            window(Aggregate::Sum, true, true, 3),
            window(Aggregate::Count, true, false, 4),
        ];
        let mut rng = crate::xorshift::XorShift::new(0x853c_49e6_748f_ea9b_u64);
        let mut next = |n: u64| rng.below(n);
        for _ in 0..300 {
            let mut rows = WindowRows::empty(&features);
            let n = next(12) as usize;
            let mut ts: Vec<i64> = (0..n).map(|_| next(20) as i64).collect();
            ts.sort_unstable();
            let pass: Vec<bool> = (0..n).map(|_| next(2) == 0).collect();
            let x: Vec<Value> = (0..n)
                .map(|_| match next(4) {
                    0 => Value::Null,
                    v => Value::Int64(v as i64),
                })
                .collect();
            rows.ts = ts.clone();
            rows.passes[1] = Some(pass.clone());
            rows.passes[2] = Some(pass.clone());
            rows.inputs[2] = Some(x.clone());
            rows.inputs[3] = Some(x.clone());
            for t in -2..24 {
                let ts = &ts;
                let within = |w: i64| (0..n).filter(move |&r| ts[r] >= t - w && ts[r] < t);
                let sum: Vec<i64> = within(3)
                    .filter(|&r| pass[r])
                    .filter_map(|r| match x[r] {
                        Value::Int64(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                let want = vec![
                    Value::Int64(within(5).count() as i64),
                    Value::Int64(within(7).filter(|&r| pass[r]).count() as i64),
                    if sum.is_empty() {
                        Value::Null
                    } else {
                        Value::Int64(sum.iter().sum())
                    },
                    Value::Int64(within(4).filter(|&r| x[r] != Value::Null).count() as i64),
                ];
                assert_eq!(rows.fold(&features, t), want, "t = {t}, rows {rows:?}");
                let mut builders: Vec<ColumnBuilder> = features
                    .iter()
                    .map(|f| ColumnBuilder::new(&f.dtype, 1))
                    .collect();
                rows.fold_into(&features, t, &mut builders).unwrap();
                let got: Vec<Value> = builders
                    .iter_mut()
                    .map(|b| crate::rows::value_at(&b.finish().unwrap(), 0).unwrap())
                    .collect();
                assert_eq!(got, want);
            }
        }
    }
}
