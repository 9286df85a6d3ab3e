//! fstore's own scalar functions, registered into DataFusion once and used by every engine:
//! batch samples, the streaming joiner and online model inputs evaluate the same code.
//!
//! | function | meaning |
//! | --- | --- |
//! | `bucketize(x, b1, …, bn)` | INT64: how many boundaries are `<= x` (0..=n); boundaries strictly increasing literals; NULL or NaN `x` → NULL |
//! | `hash_bucket(x, n)` | INT64 in `[0, n)`: FNV-1a 64 of `x`'s bytes (STRING: UTF-8; INT64: 8 bytes little-endian) modulo `n`; NULL → NULL |
//! | `log1p(x)` | DOUBLE: `ln(1 + x)`, accurate near 0; NULL → NULL |
//! | `clip(x, lo, hi)` | `x` limited to `[lo, hi]`; INT64 if all three are INT64, else DOUBLE; NaN stays NaN; NULL → NULL; `lo > hi` is an error |

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Every fstore function, ready to register.
pub fn udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(Bucketize::default())),
        Arc::new(ScalarUDF::from(HashBucket::default())),
        Arc::new(ScalarUDF::from(Log1p::default())),
        Arc::new(ScalarUDF::from(Clip::default())),
    ]
}

fn numeric(t: &DataType) -> bool {
    t.is_numeric() || t.is_null()
}

fn float_literal(v: &ColumnarValue, what: &str) -> Result<f64> {
    match v {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(x)) => Ok(x),
            _ => exec_err!("{what} must not be NULL"),
        },
        ColumnarValue::Array(_) => exec_err!("{what} must be a constant"),
    }
}

fn int_literal(v: &ColumnarValue, what: &str) -> Result<i64> {
    match v {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(x)) => Ok(x),
            _ => exec_err!("{what} must not be NULL"),
        },
        ColumnarValue::Array(_) => exec_err!("{what} must be a constant"),
    }
}

/// `bucketize(x, b1, …, bn)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bucketize {
    signature: Signature,
}

impl Default for Bucketize {
    fn default() -> Self {
        Bucketize {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Bucketize {
    fn name(&self) -> &str {
        "bucketize"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() < 2 {
            return plan_err!("bucketize(x, b1, …, bn) needs a value and at least one boundary");
        }
        if let Some(t) = arg_types.iter().find(|t| !numeric(t)) {
            return plan_err!("bucketize takes numbers, got {t}");
        }
        Ok(vec![DataType::Float64; arg_types.len()])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bounds = args.args[1..]
            .iter()
            .map(|b| float_literal(b, "a bucketize boundary"))
            .collect::<Result<Vec<_>>>()?;
        if bounds.iter().any(|b| b.is_nan()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return exec_err!(
                "bucketize boundaries must be strictly increasing numbers, got {bounds:?}"
            );
        }
        let x = args.args[0].to_array(args.number_rows)?;
        let x = x.as_primitive::<Float64Type>();
        let out: Int64Array = x
            .iter()
            .map(|v| {
                v.filter(|v| !v.is_nan())
                    .map(|v| bounds.partition_point(|b| *b <= v) as i64)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// FNV-1a, 64 bits: simple, stable across platforms and languages, documented for trainers.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `hash_bucket(x, n)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HashBucket {
    signature: Signature,
}

impl Default for HashBucket {
    fn default() -> Self {
        HashBucket {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for HashBucket {
    fn name(&self) -> &str {
        "hash_bucket"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [x, n] = arg_types else {
            return plan_err!(
                "hash_bucket(x, n) takes 2 arguments, got {}",
                arg_types.len()
            );
        };
        let x = match x {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
            t if t.is_integer() || t.is_null() => DataType::Int64,
            t => return plan_err!("hash_bucket hashes STRING or INT64 values, got {t}"),
        };
        if !n.is_integer() {
            return plan_err!("hash_bucket's bucket count must be an integer, got {n}");
        }
        Ok(vec![x, DataType::Int64])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = int_literal(&args.args[1], "hash_bucket's bucket count")?;
        if n <= 0 {
            return exec_err!("hash_bucket's bucket count must be positive, got {n}");
        }
        let n = n as u64;
        let x = args.args[0].to_array(args.number_rows)?;
        let out: Int64Array = match x.data_type() {
            DataType::Utf8 => x
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| (fnv1a64(s.as_bytes()) % n) as i64))
                .collect(),
            _ => x
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|i| (fnv1a64(&i.to_le_bytes()) % n) as i64))
                .collect(),
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `log1p(x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Log1p {
    signature: Signature,
}

impl Default for Log1p {
    fn default() -> Self {
        Log1p {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Log1p {
    fn name(&self) -> &str {
        "log1p"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if numeric(t) => Ok(vec![DataType::Float64]),
            [t] => plan_err!("log1p takes a number, got {t}"),
            _ => plan_err!("log1p(x) takes 1 argument, got {}", arg_types.len()),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let x = args.args[0].to_array(args.number_rows)?;
        let out: Float64Array = x.as_primitive::<Float64Type>().unary(f64::ln_1p);
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `clip(x, lo, hi)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Clip {
    signature: Signature,
}

impl Default for Clip {
    fn default() -> Self {
        Clip {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Clip {
    fn name(&self) -> &str {
        "clip"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("clip(x, lo, hi) takes 3 arguments, got {}", arg_types.len());
        }
        if let Some(t) = arg_types.iter().find(|t| !numeric(t)) {
            return plan_err!("clip takes numbers, got {t}");
        }
        let all_int = arg_types.iter().all(|t| t.is_integer() || t.is_null());
        Ok(vec![
            if all_int {
                DataType::Int64
            } else {
                DataType::Float64
            };
            3
        ])
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let x = args.args[0].to_array(args.number_rows)?;
        let out: ArrayRef = if x.data_type() == &DataType::Int64 {
            let (lo, hi) = (
                int_literal(&args.args[1], "clip's lower bound")?,
                int_literal(&args.args[2], "clip's upper bound")?,
            );
            if lo > hi {
                return exec_err!("clip's lower bound {lo} is above its upper bound {hi}");
            }
            Arc::new(
                x.as_primitive::<Int64Type>()
                    .unary::<_, Int64Type>(|v| v.clamp(lo, hi)),
            )
        } else {
            let (lo, hi) = (
                float_literal(&args.args[1], "clip's lower bound")?,
                float_literal(&args.args[2], "clip's upper bound")?,
            );
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return exec_err!("clip's bounds must be ordered numbers, got [{lo}, {hi}]");
            }
            Arc::new(
                x.as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(|v| v.clamp(lo, hi)),
            )
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
