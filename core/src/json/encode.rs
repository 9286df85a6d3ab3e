//! Rows to JSON: one object per row, the columns in schema order.

use serde_json::{Map, Number, Value as Json};

use super::time::format_timestamp;
use crate::codec::Value;
use crate::types::Column;

/// Encodes one value.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int64(i) => Json::Number((*i).into()),
        Value::Double(d) if d.is_nan() => Json::String("NaN".into()),
        Value::Double(d) if d.is_infinite() => {
            Json::String(if *d > 0.0 { "Infinity" } else { "-Infinity" }.into())
        }
        Value::Double(d) => Json::Number(Number::from_f64(*d).expect("finite")),
        Value::String(s) => Json::String(s.clone()),
        Value::Timestamp(t) => Json::String(format_timestamp(*t)),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
    }
}

/// Encodes a row as a JSON object with the columns in schema order.
pub fn encode_row(columns: &[Column], values: &[Value]) -> String {
    let mut m = Map::new();
    for (c, v) in columns.iter().zip(values) {
        m.insert(c.name.clone(), to_json(v));
    }
    Json::Object(m).to_string()
}
