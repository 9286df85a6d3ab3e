//! The window aggregates, implemented once for every engine.
//!
//! An aggregate folds the rows of one key whose event time lies in `[t - w, t)`, in the defined
//! row order (event time, then the tie order: the bytes of the row's encoded aggregate inputs),
//! keeping only rows whose FILTER is true:
//!
//! | aggregate | result |
//! | --- | --- |
//! | `COUNT(*)` | rows; 0 for an empty window |
//! | `COUNT(x)` | rows with non-NULL x; 0 for an empty window |
//! | `SUM(x)` | left fold `((x1 + x2) + x3) …` over non-NULL x in row order (INT64 wraps on overflow); NULL if none |
//! | `AVG(x)` | the left fold of x as DOUBLE divided by their count; NULL if none |
//! | `MIN(x)`, `MAX(x)` | over non-NULL x; DOUBLE by IEEE total order (-NaN < -∞ < … < -0.0 < 0.0 < … < ∞ < NaN); NULL if none |
//! | `LAST(x)` | x of the last row in order (NULL if that x is NULL or the window is empty) |
//!
//! Folding in a fixed order makes floating-point results bit-identical wherever they are
//! computed; no engine may use a running sum with subtraction instead.

use std::cmp::Ordering;

use crate::codec::Value;
use serde::{Deserialize, Serialize};

use crate::types::DataType;

/// The aggregates window features use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Aggregate {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Last,
}

impl Aggregate {
    pub const ALL: [Aggregate; 6] = [
        Aggregate::Count,
        Aggregate::Sum,
        Aggregate::Avg,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Last,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "COUNT",
            Aggregate::Sum => "SUM",
            Aggregate::Avg => "AVG",
            Aggregate::Min => "MIN",
            Aggregate::Max => "MAX",
            Aggregate::Last => "LAST",
        }
    }

    pub fn parse(name: &str) -> Option<Aggregate> {
        Aggregate::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The result type for an input type, or why the input does not fit.
    pub fn result_type(self, input: Option<&DataType>) -> Result<DataType, String> {
        match (self, input) {
            (Aggregate::Count, _) => Ok(DataType::Int64),
            (_, None) => Err(format!(
                "{}(*) is not defined; only COUNT(*) takes *",
                self.name()
            )),
            (Aggregate::Sum, Some(t)) if t.is_numeric() => Ok(t.clone()),
            (Aggregate::Avg, Some(t)) if t.is_numeric() => Ok(DataType::Double),
            (Aggregate::Min | Aggregate::Max, Some(t))
                if matches!(
                    t,
                    DataType::Int64
                        | DataType::Double
                        | DataType::String
                        | DataType::Timestamp
                        | DataType::Boolean
                ) =>
            {
                Ok(t.clone())
            }
            (Aggregate::Last, Some(t)) => Ok(t.clone()),
            (_, Some(t)) => Err(format!("{} does not accept {t}", self.name())),
        }
    }
}

/// Total order of values of one type, for MIN and MAX.
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::Int64(x), Value::Int64(y)) | (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::List(x), Value::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = cmp_values(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Folds one aggregate over rows given in the defined order.
#[derive(Debug, Clone)]
pub struct Accumulator {
    agg: Aggregate,
    count: i64,
    acc: Value,
    float_sum: Option<f64>,
}

impl Accumulator {
    pub fn new(agg: Aggregate) -> Self {
        Accumulator {
            agg,
            count: 0,
            acc: Value::Null,
            float_sum: None,
        }
    }

    /// Adds a row that passed the filter. `input` is `None` for `COUNT(*)`.
    pub fn add(&mut self, input: Option<&Value>) {
        let Some(v) = input else {
            self.count += 1;
            return;
        };
        if self.agg == Aggregate::Last {
            self.acc = v.clone();
            return;
        }
        if matches!(v, Value::Null) {
            return;
        }
        self.count += 1;
        match self.agg {
            Aggregate::Count | Aggregate::Last => {}
            Aggregate::Sum => {
                self.acc = match (&self.acc, v) {
                    (Value::Null, v) => v.clone(),
                    (Value::Int64(a), Value::Int64(b)) => Value::Int64(a.wrapping_add(*b)),
                    (Value::Double(a), Value::Double(b)) => Value::Double(a + b),
                    (a, _) => a.clone(),
                }
            }
            Aggregate::Avg => {
                let x = match v {
                    Value::Int64(i) => *i as f64,
                    Value::Double(d) => *d,
                    _ => return,
                };
                self.float_sum = Some(match self.float_sum {
                    None => x,
                    Some(s) => s + x,
                });
            }
            Aggregate::Min | Aggregate::Max => {
                let better = match &self.acc {
                    Value::Null => true,
                    cur => {
                        let o = cmp_values(v, cur);
                        if self.agg == Aggregate::Min {
                            o == Ordering::Less
                        } else {
                            o == Ordering::Greater
                        }
                    }
                };
                if better {
                    self.acc = v.clone();
                }
            }
        }
    }

    /// The aggregate's value.
    pub fn finish(&self) -> Value {
        match self.agg {
            Aggregate::Count => Value::Int64(self.count),
            Aggregate::Avg => match self.float_sum {
                Some(s) if self.count > 0 => Value::Double(s / self.count as f64),
                _ => Value::Null,
            },
            _ => self.acc.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(agg: Aggregate, xs: &[Value]) -> Value {
        let mut a = Accumulator::new(agg);
        for x in xs {
            a.add(Some(x));
        }
        a.finish()
    }

    #[test]
    fn aggregates_follow_the_documented_rules() {
        let d = Value::Double;
        assert_eq!(fold(Aggregate::Count, &[]), Value::Int64(0));
        assert_eq!(
            fold(Aggregate::Count, &[Value::Null, d(1.0)]),
            Value::Int64(1)
        );
        assert_eq!(fold(Aggregate::Sum, &[]), Value::Null);
        assert_eq!(fold(Aggregate::Sum, &[d(-0.0)]), d(-0.0));
        assert_eq!(
            fold(Aggregate::Sum, &[d(0.1), d(0.2), d(0.3)]),
            d((0.1 + 0.2) + 0.3)
        );
        assert_eq!(
            fold(Aggregate::Sum, &[Value::Int64(i64::MAX), Value::Int64(1)]),
            Value::Int64(i64::MIN)
        );
        assert_eq!(
            fold(
                Aggregate::Avg,
                &[Value::Int64(1), Value::Null, Value::Int64(2)]
            ),
            d(1.5)
        );
        assert_eq!(
            fold(Aggregate::Max, &[d(1.0), d(f64::NAN), d(2.0)]),
            d(f64::NAN)
        );
        assert_eq!(fold(Aggregate::Min, &[d(0.0), d(-0.0)]), d(-0.0));
        assert_eq!(fold(Aggregate::Last, &[d(1.0), Value::Null]), Value::Null);
        assert_eq!(fold(Aggregate::Last, &[Value::Null, d(1.0)]), d(1.0));
        let mut star = Accumulator::new(Aggregate::Count);
        star.add(None);
        star.add(None);
        assert_eq!(star.finish(), Value::Int64(2));
    }
}
