//! Conversions between rows of [`Value`]s and Arrow record batches, for the places that
//! hold rows one at a time (the data generator, the streaming joiner, online serving).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, SchemaRef};
use datafusion::common::ScalarValue;

use crate::codec::Value;
use crate::types::{DataType, UTC};
use crate::{Error, Result};

/// A value as a DataFusion scalar of the fstore type's Arrow type.
pub fn to_scalar(t: &DataType, v: &Value) -> Result<ScalarValue> {
    let null = || ScalarValue::try_from(&t.to_arrow()).map_err(Error::from);
    Ok(match (t, v) {
        (_, Value::Null) => null()?,
        (DataType::Boolean, Value::Boolean(b)) => ScalarValue::Boolean(Some(*b)),
        (DataType::Int64, Value::Int64(i)) => ScalarValue::Int64(Some(*i)),
        (DataType::Double, Value::Double(d)) => ScalarValue::Float64(Some(*d)),
        (DataType::String, Value::String(s)) => ScalarValue::Utf8(Some(s.clone())),
        (DataType::Timestamp, Value::Timestamp(t)) => {
            ScalarValue::TimestampMicrosecond(Some(*t), Some(UTC.into()))
        }
        (DataType::List(inner), Value::List(items)) => {
            let scalars = items
                .iter()
                .map(|i| to_scalar(inner, i))
                .collect::<Result<Vec<_>>>()?;
            let values = if scalars.is_empty() {
                arrow::array::new_empty_array(&inner.to_arrow())
            } else {
                ScalarValue::iter_to_array(scalars)?
            };
            ScalarValue::List(Arc::new(arrow::array::ListArray::new(
                Arc::new(Field::new("item", inner.to_arrow(), true)),
                arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
                values,
                None,
            )))
        }
        (t, v) => return Err(Error::Invalid(format!("value {v:?} does not fit type {t}"))),
    })
}

/// A column of values as an Arrow array.
pub fn to_array(t: &DataType, values: impl IntoIterator<Item = Value>) -> Result<ArrayRef> {
    use arrow::array::TimestampMicrosecondBuilder;
    use arrow::array::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
    let mismatch = |v: &Value| Error::Invalid(format!("value {v:?} does not fit type {t}"));
    // Flat types through typed builders; lists through scalars.
    match t {
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Boolean(x) => b.append_value(x),
                    v => return Err(mismatch(&v)),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Int64(x) => b.append_value(x),
                    v => return Err(mismatch(&v)),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        DataType::Double => {
            let mut b = Float64Builder::new();
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Double(x) => b.append_value(x),
                    v => return Err(mismatch(&v)),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        DataType::String => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::String(x) => b.append_value(x),
                    v => return Err(mismatch(&v)),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        DataType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone(UTC);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Timestamp(x) => b.append_value(x),
                    v => return Err(mismatch(&v)),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        DataType::List(_) => {}
    }
    let scalars = values
        .into_iter()
        .map(|v| to_scalar(t, &v))
        .collect::<Result<Vec<_>>>()?;
    if scalars.is_empty() {
        return Ok(arrow::array::new_empty_array(&t.to_arrow()));
    }
    Ok(ScalarValue::iter_to_array(scalars)?)
}

/// Rows (each in schema order) as a record batch of `schema`, whose fields must be fstore types.
pub fn rows_to_batch(schema: &SchemaRef, rows: &[Vec<Value>]) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let t = DataType::from_arrow(f.data_type()).ok_or_else(|| {
            Error::Invalid(format!(
                "field \"{}\" has non-fstore type {}",
                f.name(),
                f.data_type()
            ))
        })?;
        columns.push(to_array(&t, rows.iter().map(|r| r[i].clone()))?);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Invalid(e.to_string()))
}

/// One cell of an Arrow array as a value.
pub fn value_at(array: &ArrayRef, row: usize) -> Result<Value> {
    let s = ScalarValue::try_from_array(array, row)?;
    scalar_to_value(&s)
}

fn scalar_to_value(s: &ScalarValue) -> Result<Value> {
    if s.is_null() {
        return Ok(Value::Null);
    }
    Ok(match s {
        ScalarValue::Boolean(Some(b)) => Value::Boolean(*b),
        ScalarValue::Int64(Some(i)) => Value::Int64(*i),
        ScalarValue::Float64(Some(d)) => Value::Double(*d),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        ScalarValue::TimestampMicrosecond(Some(t), _) => Value::Timestamp(*t),
        ScalarValue::List(l) => {
            let values = l.value(0);
            Value::List(
                (0..values.len())
                    .map(|i| value_at(&values, i))
                    .collect::<Result<_>>()?,
            )
        }
        other => {
            return Err(Error::Invalid(format!(
                "{} is not an fstore type",
                other.data_type()
            )));
        }
    })
}

/// Every row of a batch as values.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>> {
    (0..batch.num_rows())
        .map(|r| batch.columns().iter().map(|c| value_at(c, r)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Schema;

    #[test]
    fn rows_round_trip_through_arrow() {
        let types = [
            DataType::Boolean,
            DataType::Int64,
            DataType::Double,
            DataType::String,
            DataType::Timestamp,
            DataType::List(Box::new(DataType::String)),
        ];
        let schema: SchemaRef = Arc::new(Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("c{i}"), t.to_arrow(), true))
                .collect::<Vec<_>>(),
        ));
        let rows = vec![
            vec![
                Value::Boolean(true),
                Value::Int64(i64::MIN),
                Value::Double(-0.0),
                Value::String("".into()),
                Value::Timestamp(-1),
                Value::List(vec![]),
            ],
            vec![
                Value::Null,
                Value::Null,
                Value::Double(f64::NAN),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::Boolean(false),
                Value::Int64(1 << 60),
                Value::Null,
                Value::String("東京".into()),
                Value::Timestamp(1),
                Value::List(vec![Value::Null, Value::String("a".into())]),
            ],
        ];
        let batch = rows_to_batch(&schema, &rows).unwrap();
        assert_eq!(batch_to_rows(&batch).unwrap(), rows);
    }
}
