//! Conversions between rows of [`Value`]s and Arrow record batches, for the places that
//! hold rows one at a time (the data generator, the streaming joiner, online serving).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
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

/// A flat value borrowed: what decoders append without building a [`Value`] first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Boolean(bool),
    Int64(i64),
    Double(f64),
    String(&'a str),
    Timestamp(i64),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    /// A flat value's view; a list has none (it is NULL here; [`ColumnBuilder::append`]
    /// takes lists whole).
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null | Value::List(_) => ValueRef::Null,
            Value::Boolean(b) => ValueRef::Boolean(*b),
            Value::Int64(i) => ValueRef::Int64(*i),
            Value::Double(d) => ValueRef::Double(*d),
            Value::String(s) => ValueRef::String(s),
            Value::Timestamp(t) => ValueRef::Timestamp(*t),
        }
    }
}

impl ValueRef<'_> {
    pub fn to_owned(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Boolean(b) => Value::Boolean(b),
            ValueRef::Int64(i) => Value::Int64(i),
            ValueRef::Double(d) => Value::Double(d),
            ValueRef::String(s) => Value::String(s.to_string()),
            ValueRef::Timestamp(t) => Value::Timestamp(t),
        }
    }
}

/// Builds one column of an fstore type from values, one at a time: the one conversion of
/// values to Arrow (flat types through typed builders, lists through scalars).
pub struct ColumnBuilder {
    dtype: DataType,
    inner: Builder,
}

enum Builder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    Double(Float64Builder),
    String(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    List(Vec<ScalarValue>),
}

impl ColumnBuilder {
    pub fn new(t: &DataType, capacity: usize) -> Self {
        let inner = match t {
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Double => Builder::Double(Float64Builder::with_capacity(capacity)),
            DataType::String => {
                Builder::String(StringBuilder::with_capacity(capacity, capacity * 8))
            }
            DataType::Timestamp => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC),
            ),
            DataType::List(_) => Builder::List(Vec::with_capacity(capacity)),
        };
        ColumnBuilder {
            dtype: t.clone(),
            inner,
        }
    }

    /// Appends a value; an error if it does not fit the column's type.
    pub fn append(&mut self, v: &Value) -> Result<()> {
        match (&mut self.inner, v) {
            (Builder::List(s), v) => {
                s.push(to_scalar(&self.dtype, v)?);
                Ok(())
            }
            (_, Value::List(_)) => Err(self.misfit(v)),
            (_, v) => self.append_ref(ValueRef::from(v)),
        }
    }

    /// Appends a flat value; an error if it does not fit the column's type.
    pub fn append_ref(&mut self, v: ValueRef<'_>) -> Result<()> {
        match (&mut self.inner, v) {
            (Builder::Boolean(b), ValueRef::Null) => b.append_null(),
            (Builder::Int64(b), ValueRef::Null) => b.append_null(),
            (Builder::Double(b), ValueRef::Null) => b.append_null(),
            (Builder::String(b), ValueRef::Null) => b.append_null(),
            (Builder::Timestamp(b), ValueRef::Null) => b.append_null(),
            (Builder::List(s), ValueRef::Null) => s.push(to_scalar(&self.dtype, &Value::Null)?),
            (Builder::Boolean(b), ValueRef::Boolean(x)) => b.append_value(x),
            (Builder::Int64(b), ValueRef::Int64(x)) => b.append_value(x),
            (Builder::Double(b), ValueRef::Double(x)) => b.append_value(x),
            (Builder::String(b), ValueRef::String(x)) => b.append_value(x),
            (Builder::Timestamp(b), ValueRef::Timestamp(x)) => b.append_value(x),
            (_, v) => return Err(self.misfit(&v.to_owned())),
        }
        Ok(())
    }

    /// The type of the column being built.
    pub fn dtype(&self) -> &DataType {
        &self.dtype
    }

    /// Whether [`ColumnBuilder::append`] takes `v`.
    pub fn fits(&self, v: &Value) -> bool {
        matches!(
            (&self.inner, v),
            (Builder::List(_), Value::Null | Value::List(_))
                | (_, Value::Null)
                | (Builder::Boolean(_), Value::Boolean(_))
                | (Builder::Int64(_), Value::Int64(_))
                | (Builder::Double(_), Value::Double(_))
                | (Builder::String(_), Value::String(_))
                | (Builder::Timestamp(_), Value::Timestamp(_))
        )
    }

    fn misfit(&self, v: &Value) -> Error {
        Error::Invalid(format!("value {v:?} does not fit type {}", self.dtype))
    }

    /// Values appended so far.
    pub fn len(&self) -> usize {
        match &self.inner {
            Builder::Boolean(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::Double(b) => b.len(),
            Builder::String(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::List(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn append_null(&mut self) -> Result<()> {
        self.append(&Value::Null)
    }

    /// The column of the values appended so far; the builder starts over empty.
    pub fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match &mut self.inner {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::String(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::List(s) if s.is_empty() => {
                arrow::array::new_empty_array(&self.dtype.to_arrow())
            }
            Builder::List(s) => ScalarValue::iter_to_array(std::mem::take(s))?,
        })
    }
}

/// A column of values (owned or borrowed) as an Arrow array.
pub fn to_array<V: std::borrow::Borrow<Value>>(
    t: &DataType,
    values: impl IntoIterator<Item = V>,
) -> Result<ArrayRef> {
    let values = values.into_iter();
    let mut b = ColumnBuilder::new(t, values.size_hint().0);
    for v in values {
        b.append(v.borrow())?;
    }
    b.finish()
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
        columns.push(to_array(&t, rows.iter().map(|r| &r[i]))?);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Invalid(e.to_string()))
}

/// One cell of an Arrow array as a value.
pub fn value_at(array: &ArrayRef, row: usize) -> Result<Value> {
    use arrow::datatypes::{
        DataType as A, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    };
    // Flat types straight from their buffers; the rest through scalars.
    let flat = matches!(
        array.data_type(),
        A::Boolean | A::Int64 | A::Float64 | A::Utf8 | A::Timestamp(TimeUnit::Microsecond, _)
    );
    if row >= array.len() {
        return Err(Error::Internal(format!(
            "row {row} of a column of {} rows",
            array.len()
        )));
    }
    if flat {
        if array.is_null(row) {
            return Ok(Value::Null);
        }
        return Ok(match array.data_type() {
            A::Boolean => Value::Boolean(array.as_boolean().value(row)),
            A::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(row)),
            A::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
            A::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
            _ => Value::Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row)),
        });
    }
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
        // Flat cells are read straight from their buffers: the same values as through
        // DataFusion's scalars.
        for c in batch.columns() {
            for r in 0..batch.num_rows() {
                let scalar = scalar_to_value(&ScalarValue::try_from_array(c, r).unwrap()).unwrap();
                assert_eq!(value_at(c, r).unwrap(), scalar, "{} row {r}", c.data_type());
            }
            assert!(value_at(c, batch.num_rows()).is_err());
        }
    }

    #[test]
    fn a_value_of_another_type_is_refused() {
        let mut b = ColumnBuilder::new(&DataType::Int64, 2);
        b.append(&Value::Int64(1)).unwrap();
        let err = b
            .append(&Value::String("1".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not fit type"), "{err}");
        b.append_null().unwrap();
        let a = b.finish().unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.is_null(1));
        // The builder starts over.
        assert_eq!(b.finish().unwrap().len(), 0);
        let mut l = ColumnBuilder::new(&DataType::List(Box::new(DataType::Int64)), 1);
        assert_eq!(l.finish().unwrap().len(), 0);
        l.append_null().unwrap();
        assert!(l.append(&Value::Int64(1)).is_err());
        assert!(l.finish().unwrap().is_null(0));
    }
}
