//! How a model receives a value: the encoding of each model input, derived once, when an
//! expression is compiled, from its planned form (so a categorical id stays categorical through
//! aliases, casts to INT64, `COALESCE` and `CASE` with literal ids), and read by every export.
//!
//! - `dense`: BOOLEAN, INT64, DOUBLE and TIMESTAMP values as one float each; NULL becomes 0;
//! - `categorical`: an INT64 id from `hash_bucket(x, n)` (ids `0..n`) or `bucketize(x, b1…bk)`
//!   (ids `0..=k`) with literal arguments; NULL becomes the extra id `missing_id` (n, or k + 1),
//!   which `num_ids` counts;
//! - `text`: STRING values as they are; NULL becomes the empty string;
//! - `sequence`: LIST values, variable length; NULL becomes the empty list.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use serde::Serialize;

use crate::types::DataType;

/// How a model receives an input.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    Dense,
    Categorical {
        /// Ids `0..num_ids`, the missing id included.
        num_ids: i64,
        /// The id a NULL value gets.
        missing_id: i64,
        /// `hash_bucket(x, n)`: n.
        #[serde(skip_serializing_if = "Option::is_none")]
        hash_buckets: Option<i64>,
        /// `bucketize(x, b1…bk)`: the boundaries.
        #[serde(skip_serializing_if = "Option::is_none")]
        boundaries: Option<Vec<f64>>,
    },
    Text,
    Sequence,
}

impl Encoding {
    /// The encoding of a value of `dtype` computed by `expr` (planned and simplified).
    pub fn of(expr: &Expr, dtype: &DataType) -> Self {
        if *dtype == DataType::Int64
            && let Some(c) = categorical(expr)
        {
            return c;
        }
        match dtype {
            DataType::String => Encoding::Text,
            DataType::List(_) => Encoding::Sequence,
            _ => Encoding::Dense,
        }
    }
}

fn literal_number(e: &Expr) -> Option<f64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int64(Some(n)) => Some(*n as f64),
            ScalarValue::Int32(Some(n)) => Some(f64::from(*n)),
            ScalarValue::Float64(Some(x)) => Some(*x),
            ScalarValue::Float32(Some(x)) => Some(f64::from(*x)),
            _ => None,
        },
        Expr::Cast(c) => literal_number(&c.expr),
        Expr::TryCast(c) => literal_number(&c.expr),
        _ => None,
    }
}

/// The ids `expr` gives, if it is categorical: fstore's bucket functions with literal
/// arguments, through value-keeping wrappers.
fn categorical(expr: &Expr) -> Option<Encoding> {
    match expr {
        Expr::Alias(a) => categorical(&a.expr),
        Expr::Cast(c) => categorical(&c.expr),
        Expr::TryCast(c) => categorical(&c.expr),
        Expr::ScalarFunction(f) => {
            let args: Vec<Option<f64>> = f.args.iter().map(literal_number).collect();
            match (f.func.name(), args.as_slice()) {
                ("hash_bucket", [_, Some(n)]) if *n >= 1.0 && n.fract() == 0.0 => {
                    let n = *n as i64;
                    Some(Encoding::Categorical {
                        num_ids: n + 1,
                        missing_id: n,
                        hash_buckets: Some(n),
                        boundaries: None,
                    })
                }
                ("bucketize", [_, rest @ ..])
                    if !rest.is_empty() && rest.iter().all(Option::is_some) =>
                {
                    let b: Vec<f64> = rest.iter().flatten().copied().collect();
                    let k = b.len() as i64;
                    Some(Encoding::Categorical {
                        num_ids: k + 2,
                        missing_id: k + 1,
                        hash_buckets: None,
                        boundaries: Some(b),
                    })
                }
                _ => None,
            }
        }
        // COALESCE (planned as CASE) and CASE: categorical when every branch is the same
        // categorical id or a literal id within its range.
        Expr::Case(case) => {
            let branches: Vec<&Expr> = case
                .when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref())
                .collect();
            let found = branches.iter().find_map(|b| categorical(b))?;
            let Encoding::Categorical { num_ids, .. } = &found else {
                return None;
            };
            let fits = |b: &&Expr| match categorical(b) {
                Some(c) => c == found,
                None => {
                    matches!(b, Expr::Literal(ScalarValue::Null, _))
                        || literal_number(b)
                            .is_some_and(|n| n.fract() == 0.0 && n >= 0.0 && n < *num_ids as f64)
                }
            };
            branches.iter().all(fits).then_some(found)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{ExprCompiler, ScopeColumn};

    fn encoding(sql: &str) -> Encoding {
        let scope = [
            ("city", DataType::String),
            ("a", DataType::Double),
            ("x", DataType::Int64),
            ("l", DataType::List(Box::new(DataType::Int64))),
        ]
        .map(|(name, dtype)| ScopeColumn {
            qualifier: None,
            name: name.into(),
            dtype,
        });
        ExprCompiler::new()
            .compile("c", sql, &scope)
            .unwrap()
            .encoding
    }

    fn hash(n: i64) -> Encoding {
        Encoding::Categorical {
            num_ids: n + 1,
            missing_id: n,
            hash_buckets: Some(n),
            boundaries: None,
        }
    }

    #[test]
    fn categorical_ids_are_found_through_the_planned_expression() {
        assert_eq!(encoding("hash_bucket(COALESCE(city, ''), 64)"), hash(64));
        assert_eq!(
            encoding("bucketize(a, -1.5, 0, 10)"),
            Encoding::Categorical {
                num_ids: 5,
                missing_id: 4,
                hash_buckets: None,
                boundaries: Some(vec![-1.5, 0.0, 10.0])
            }
        );
        // Wrapped in what keeps the ids: still categorical.
        assert_eq!(encoding("CAST(hash_bucket(city, 8) AS BIGINT)"), hash(8));
        assert_eq!(encoding("COALESCE(hash_bucket(city, 8), 0)"), hash(8));
        assert_eq!(
            encoding("CASE WHEN x > 0 THEN hash_bucket(city, 8) ELSE 7 END"),
            hash(8)
        );
        // Not a literal bucket count, ids out of range, or arithmetic on ids: a number.
        assert_eq!(encoding("hash_bucket(city, x)"), Encoding::Dense);
        assert_eq!(
            encoding("COALESCE(hash_bucket(city, 8), 9)"),
            Encoding::Dense
        );
        // NULL given its missing id is the same categorical input.
        assert_eq!(encoding("COALESCE(hash_bucket(city, 8), 8)"), hash(8));
        assert_eq!(encoding("bucketize(a, 1) + 1"), Encoding::Dense);
        assert_eq!(
            encoding("CASE WHEN x > 0 THEN hash_bucket(city, 8) ELSE hash_bucket(city, 9) END"),
            Encoding::Dense
        );
        assert_eq!(encoding("upper(city)"), Encoding::Text);
        assert_eq!(encoding("l"), Encoding::Sequence);
        assert_eq!(encoding("x > 1"), Encoding::Dense);
    }
}
