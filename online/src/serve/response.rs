//! Writing responses: a group's values per key as protobuf columns or an Arrow IPC batch, with
//! each key's status and event time.

use super::*;

/// A typed column of `values` (all of type `dtype`), which it takes over.
pub fn to_column(dtype: &DataType, values: Vec<Value>) -> pb::Column {
    let mut c = empty_column(dtype, values.len());
    for v in values {
        push_value(&mut c, dtype, v);
    }
    c
}

/// A column of `dtype` with room for `rows` values.
pub(super) fn empty_column(dtype: &DataType, rows: usize) -> pb::Column {
    let mut c = pb::Column {
        valid: Vec::with_capacity(rows),
        ..Default::default()
    };
    match dtype {
        DataType::Boolean => c.bool_values.reserve(rows),
        DataType::Int64 | DataType::Timestamp => c.int64_values.reserve(rows),
        DataType::Double => c.double_values.reserve(rows),
        DataType::String => c.string_values.reserve(rows),
        DataType::List(inner) => {
            c.offsets.reserve(rows + 1);
            c.offsets.push(0);
            c.elements = Some(Box::new(empty_column(inner, 0)));
        }
    }
    c
}

/// Appends one value (of type `dtype`, or NULL) to a column made by [`empty_column`].
pub(super) fn push_value(c: &mut pb::Column, dtype: &DataType, v: Value) {
    c.valid.push(!matches!(v, Value::Null));
    match dtype {
        DataType::Boolean => c.bool_values.push(matches!(v, Value::Boolean(true))),
        DataType::Int64 | DataType::Timestamp => c.int64_values.push(match v {
            Value::Int64(n) | Value::Timestamp(n) => n,
            _ => 0,
        }),
        DataType::Double => c.double_values.push(match v {
            Value::Double(d) => d,
            _ => 0.0,
        }),
        DataType::String => c.string_values.push(match v {
            Value::String(s) => s,
            _ => String::new(),
        }),
        DataType::List(inner) => {
            let elements = c
                .elements
                .get_or_insert_with(|| Box::new(empty_column(inner, 0)));
            if let Value::List(items) = v {
                for item in items {
                    push_value(elements, inner, item);
                }
            }
            c.offsets.push(elements.valid.len() as u32);
        }
    }
}

/// Walks the requested keys: what a request at `at` sees for each (status, event time, the
/// group's values, which `row` may take), in request order.
pub(super) fn each_key(
    w: &Wanted<'_>,
    keys: &[String],
    fetched: &Fetched,
    at: i64,
    mut row: impl FnMut(KeyStatus, Option<i64>, &mut [Value]),
) -> Result<(), Error> {
    for (key, raw) in keys.iter().zip(fetched.iter()) {
        let (st, t, mut values) = seen_at(w.layout, key, raw, at)?;
        row(st, t, &mut values);
    }
    Ok(())
}

/// One group's rows as protobuf columns, built key by key from the keys' stored values.
pub(super) fn group_columns(
    w: &Wanted<'_>,
    keys: &[String],
    fetched: &Fetched,
    at: i64,
) -> Result<pb::GroupValues, Error> {
    let layout = w.layout;
    let n = keys.len();
    let mut status = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut columns: Vec<pb::Column> = w
        .features
        .iter()
        .map(|&f| empty_column(&layout.features[f].1, n))
        .collect();
    each_key(w, keys, fetched, at, |st, t, values| {
        status.push(status_pb(st) as i32);
        times.push(t.unwrap_or(0));
        // Each feature index appears once (resolve dedups), so values can move out.
        for (c, &f) in columns.iter_mut().zip(&w.features) {
            let v = std::mem::replace(&mut values[f], Value::Null);
            push_value(c, &layout.features[f].1, v);
        }
    })?;
    let features = w
        .features
        .iter()
        .zip(columns)
        .map(|(&f, values)| pb::FeatureColumn {
            name: feature_name(layout, f),
            dtype: layout.features[f].1.to_string(),
            values: Some(values),
        })
        .collect();
    Ok(pb::GroupValues {
        status,
        event_time_us: times,
        features,
        ..group_values(layout)
    })
}

/// A group's response header, its rows not yet filled in.
pub(super) fn group_values(layout: &GroupLayout) -> pb::GroupValues {
    pb::GroupValues {
        group: layout.group.name.clone(),
        version: layout.group.version,
        ..Default::default()
    }
}

pub(super) fn feature_name(layout: &GroupLayout, f: usize) -> String {
    format!("{}.{}", layout.group.name, layout.features[f].0)
}

/// One group's rows as an Arrow IPC stream (`GroupValues.arrow_ipc`): `status`, `event_time`
/// and the wanted features, each through the registry's one value-to-Arrow encoding.
pub(super) fn group_arrow(
    w: &Wanted<'_>,
    keys: &[String],
    fetched: &Fetched,
    at: i64,
) -> Result<pb::GroupValues, Error> {
    use arrow::array::{ArrayRef, UInt8Array};
    use arrow::datatypes::{Field, Schema};
    use fstore_core::rows::ColumnBuilder;
    let layout = w.layout;
    let n = keys.len();
    let mut status = Vec::with_capacity(n);
    // Values go straight into the registry's column builders, the one value-to-Arrow path.
    let mut times = ColumnBuilder::new(&DataType::Timestamp, n);
    let mut columns: Vec<ColumnBuilder> = w
        .features
        .iter()
        .map(|&f| ColumnBuilder::new(&layout.features[f].1, n))
        .collect();
    let mut failed = None;
    each_key(w, keys, fetched, at, |st, t, values| {
        status.push(status_pb(st) as u8);
        let mut put = |b: &mut ColumnBuilder, v: &Value| {
            if let Err(e) = b.append(v) {
                failed.get_or_insert(e);
            }
        };
        put(&mut times, &t.map_or(Value::Null, Value::Timestamp));
        for (c, &f) in columns.iter_mut().zip(&w.features) {
            put(c, &values[f]);
        }
    })?;
    let encode = |e: fstore_core::Error| Error::Internal(format!("arrow encoding: {e}"));
    if let Some(e) = failed {
        return Err(encode(e));
    }
    let mut fields = vec![
        Field::new("status", arrow::datatypes::DataType::UInt8, false),
        Field::new("event_time", DataType::Timestamp.to_arrow(), true),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from(status)),
        times.finish().map_err(encode)?,
    ];
    for (&f, mut b) in w.features.iter().zip(columns) {
        let dtype = &layout.features[f].1;
        fields.push(Field::new(feature_name(layout, f), dtype.to_arrow(), true));
        arrays.push(b.finish().map_err(encode)?);
    }
    let ipc = arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .and_then(|batch| {
            let mut buf = Vec::with_capacity(64 + n * 8 * (2 + w.features.len()));
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema())?;
            writer.write(&batch)?;
            writer.finish()?;
            drop(writer);
            Ok(buf)
        })
        .map_err(|e| Error::Internal(format!("arrow encoding: {e}")))?;
    Ok(pb::GroupValues {
        arrow_ipc: ipc,
        ..group_values(layout)
    })
}

pub(super) fn status_pb(s: KeyStatus) -> pb::KeyStatus {
    match s {
        KeyStatus::Found => pb::KeyStatus::Found,
        KeyStatus::NotFound => pb::KeyStatus::NotFound,
        KeyStatus::Expired => pb::KeyStatus::Expired,
    }
}
