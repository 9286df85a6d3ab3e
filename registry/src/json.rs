//! The JSON row encoding of stream bindings: one JSON object per row, keyed by column name.
//!
//! | type | JSON |
//! | --- | --- |
//! | BOOLEAN | `true` / `false` |
//! | INT64 | an integer (all 64 bits; never through a double) |
//! | DOUBLE | a number; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings (as protobuf's JSON mapping); `-0.0` keeps its sign |
//! | STRING | a string |
//! | TIMESTAMP | an RFC 3339 string (`2024-01-07T02:19:39.533398Z`, any offset, at most microsecond precision) or integer epoch microseconds |
//! | LIST<T> | an array of T |
//!
//! `null` or a missing key is NULL. Keys that are not columns are ignored. The encoder writes
//! timestamps as RFC 3339 with six fractional digits and `Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value as Json};

use crate::codec::Value;
use crate::model::Column;
use crate::types::DataType;

/// Why a JSON row does not decode: the column and the reason, for dead-letter records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Formats epoch microseconds as RFC 3339 UTC with microseconds: `2024-01-07T02:19:39.533398Z`.
pub fn format_timestamp(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => us.to_string(),
    }
}

/// Parses RFC 3339 into epoch microseconds; sub-microsecond digits are an error, not rounded.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("\"{s}\" is not an RFC 3339 timestamp: {e}"))?;
    if t.timestamp_subsec_nanos() % 1000 != 0 {
        return Err(format!("\"{s}\" has sub-microsecond precision"));
    }
    Ok(t.timestamp_micros())
}

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

/// Decodes one value of a type.
pub fn from_json(t: &DataType, j: &Json) -> Result<Value, String> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let bad = || format!("expected {t}, got {}", short(j));
    Ok(match t {
        DataType::Boolean => Value::Boolean(j.as_bool().ok_or_else(bad)?),
        DataType::Int64 => Value::Int64(j.as_i64().ok_or_else(bad)?),
        DataType::Double => match j {
            Json::Number(n) => Value::Double(n.as_f64().ok_or_else(bad)?),
            Json::String(s) => Value::Double(match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                _ => return Err(bad()),
            }),
            _ => return Err(bad()),
        },
        DataType::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
        DataType::Timestamp => match j {
            Json::Number(n) => Value::Timestamp(n.as_i64().ok_or_else(bad)?),
            Json::String(s) => Value::Timestamp(parse_timestamp(s)?),
            _ => return Err(bad()),
        },
        DataType::List(inner) => Value::List(
            j.as_array()
                .ok_or_else(bad)?
                .iter()
                .enumerate()
                .map(|(i, x)| from_json(inner, x).map_err(|e| format!("element {i}: {e}")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn short(j: &Json) -> String {
    let s = j.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// Reads a JSON object straight into the columns' values: a key's value is decoded into its
/// column's type if the key is a column (the last of duplicate keys wins), others are parsed
/// and dropped. Scalars
/// go straight to their type; anything [`from_json`] would not accept fails the whole row, and
/// [`decode_row`] then decodes it the plain way for the error message.
struct RowSeed<'a> {
    columns: &'a [Column],
}

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = vec![Value::Null; self.columns.len()];
        // Rows usually list their fields in column order: the next column is tried first.
        let mut next = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let at = match self.columns.get(next) {
                Some(c) if c.name == key.as_ref() => Some(next),
                _ => self.columns.iter().position(|c| c.name == key.as_ref()),
            };
            next = at.map_or(0, |i| i + 1);
            match at {
                Some(i) => values[i] = map.next_value_seed(ValueSeed(&self.columns[i].dtype))?,
                None => {
                    // Parsed, not skipped: a value the plain decoder rejects (a lone
                    // surrogate, too deep) fails the row here too.
                    map.next_value::<Json>()?;
                }
            }
        }
        Ok(values)
    }
}

/// One column's value, decoded as [`from_json`] decodes it: scalars without an intermediate
/// JSON tree, lists through it.
struct ValueSeed<'a>(&'a DataType);

impl<'de> serde::de::DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        use serde::Deserialize;
        match self.0 {
            DataType::List(_) => {
                let j = Json::deserialize(d)?;
                from_json(self.0, &j).map_err(serde::de::Error::custom)
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a JSON value of type {}", self.0)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        match self.0 {
            DataType::Boolean => Ok(Value::Boolean(b)),
            _ => Err(E::custom("type")),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        match self.0 {
            DataType::Int64 => Ok(Value::Int64(n)),
            DataType::Timestamp => Ok(Value::Timestamp(n)),
            DataType::Double => Ok(Value::Double(n as f64)),
            _ => Err(E::custom("type")),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        match (self.0, i64::try_from(n)) {
            (DataType::Int64, Ok(n)) => Ok(Value::Int64(n)),
            (DataType::Timestamp, Ok(n)) => Ok(Value::Timestamp(n)),
            (DataType::Double, _) => Ok(Value::Double(n as f64)),
            _ => Err(E::custom("type")),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<Value, E> {
        match self.0 {
            DataType::Double => Ok(Value::Double(x)),
            _ => Err(E::custom("type")),
        }
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        match self.0 {
            DataType::String => Ok(Value::String(s.to_owned())),
            DataType::Double => match s {
                "NaN" => Ok(Value::Double(f64::NAN)),
                "Infinity" => Ok(Value::Double(f64::INFINITY)),
                "-Infinity" => Ok(Value::Double(f64::NEG_INFINITY)),
                _ => Err(E::custom("type")),
            },
            DataType::Timestamp => parse_timestamp(s).map(Value::Timestamp).map_err(E::custom),
            _ => Err(E::custom("type")),
        }
    }
}

/// Decodes a JSON object into values in schema order (missing keys are NULL).
pub fn decode_row(columns: &[Column], bytes: &[u8]) -> Result<Vec<Value>, JsonError> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let fast = RowSeed { columns }
        .deserialize(&mut de)
        .and_then(|values| de.end().map(|()| values));
    if let Ok(values) = fast {
        return Ok(values);
    }
    // Not an object, not JSON, or a value of the wrong type: say which.
    decode_row_slow(columns, bytes)
}

fn decode_row_slow(columns: &[Column], bytes: &[u8]) -> Result<Vec<Value>, JsonError> {
    let j: Json = serde_json::from_slice(bytes).map_err(|e| JsonError(format!("not JSON: {e}")))?;
    let Json::Object(m) = j else {
        return Err(JsonError(format!(
            "expected a JSON object, got {}",
            short(&j)
        )));
    };
    columns
        .iter()
        .map(|c| match m.get(&c.name) {
            None => Ok(Value::Null),
            Some(v) => {
                from_json(&c.dtype, v).map_err(|e| JsonError(format!("column \"{}\": {e}", c.name)))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<Column> {
        [
            ("b", DataType::Boolean),
            ("i", DataType::Int64),
            ("d", DataType::Double),
            ("s", DataType::String),
            ("t", DataType::Timestamp),
            ("l", DataType::List(Box::new(DataType::Double))),
        ]
        .into_iter()
        .map(|(n, t)| Column {
            name: n.into(),
            dtype: t,
        })
        .collect()
    }

    #[test]
    fn round_trips_special_values() {
        let row = vec![
            Value::Boolean(true),
            Value::Int64(-9_007_199_254_740_993),
            Value::Double(-0.0),
            Value::String("Quote\"Back\\slash 🏙️".into()),
            Value::Timestamp(1_704_593_979_533_398),
            Value::List(vec![
                Value::Double(f64::NAN),
                Value::Double(f64::NEG_INFINITY),
                Value::Null,
            ]),
        ];
        let text = encode_row(&cols(), &row);
        assert!(
            text.contains("\"t\":\"2024-01-07T02:19:39.533398Z\""),
            "{text}"
        );
        assert!(text.contains("\"d\":-0.0"), "{text}");
        let back = decode_row(&cols(), text.as_bytes()).unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn accepts_epoch_micros_and_offsets_and_reports_bad_fields() {
        let v = decode_row(&cols(), br#"{"t": 1704593979533398, "extra": 1}"#).unwrap();
        assert_eq!(v[4], Value::Timestamp(1_704_593_979_533_398));
        assert!(v[0] == Value::Null);
        let v = decode_row(&cols(), br#"{"t": "2024-01-07T03:19:39.533398+01:00"}"#).unwrap();
        assert_eq!(v[4], Value::Timestamp(1_704_593_979_533_398));
        let e = decode_row(&cols(), br#"{"i": "12"}"#).unwrap_err();
        assert_eq!(e.0, "column \"i\": expected INT64, got \"12\"");
        assert!(decode_row(&cols(), br#"{"i": 1.5}"#).is_err());
        assert!(
            decode_row(&cols(), br#"{"t": "2024-01-07T02:19:39.5333981Z"}"#)
                .unwrap_err()
                .0
                .contains("sub-microsecond")
        );
        assert!(
            decode_row(&cols(), b"[1]")
                .unwrap_err()
                .0
                .contains("JSON object")
        );
        assert!(
            decode_row(&cols(), b"{\"i\":")
                .unwrap_err()
                .0
                .starts_with("not JSON")
        );
    }

    #[test]
    fn the_fast_decoder_agrees_with_the_plain_one() {
        let inputs = [
            r#"{"b":true,"i":1,"d":2.5,"s":"x","t":"2024-01-07T02:19:39.533398Z","l":[1,"NaN",null]}"#,
            r#"{"i":1,"i":2,"zz":{"deep":[1,2,{"a":null}]},"s":null}"#,
            r#"{"i":"1"}"#,
            r#"{"t":"yesterday"}"#,
            r#"{"d":"Infinity","l":[]}"#,
            r#"{"s":"\u00e9\"","unknown":"ignored","b":false}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"i":1"#,
            r#"{"i":1} trailing"#,
            r#""#,
            r#"{}"#,
            r#"{"i":9223372036854775807,"d":-0.0}"#,
            r#"{"i":1.5}"#,
            r#"{"b":1}"#,
            r#"{"i":9223372036854775808}"#,
            r#"{"i":-9223372036854775808,"t":-1}"#,
            r#"{"i":1e3}"#,
            r#"{"i":-0,"d":-0}"#,
            r#"{"d":3,"t":18446744073709551615}"#,
            r#"{"d":1e400}"#,
            r#"{"d":"nan"}"#,
            r#"{"d":0.1,"i":2,"d":0.30000000000000004}"#,
            r#"{"t":1.5}"#,
            r#"{"t":"2024-01-07T02:19:39Z","s":"\ud83c\udfd9"}"#,
            r#"{"b":"true"}"#,
            r#"{"s":5}"#,
            r#"{"s":["a"]}"#,
            r#"{"b":{"x":1}}"#,
            r#"{"i":"x","i":1}"#,
            r#"{"i":1,"i":"x"}"#,
            r#"{"l":[1,2,"Infinity"],"l":null}"#,
            r#"{"l":"x"}"#,
            r#"{"l":[true]}"#,
            r#"{"s":"\ud800"}"#,
            r#"{"zz":"\ud800","i":1}"#,
            r#"{"zz":[1,"\udfff"],"i":1}"#,
            r#"{"l":null,"t":1,"s":"a","d":1,"i":2,"b":true}"#,
            r#"{"b":true,"b":false,"i":1,"zz":0,"i":3,"d":2,"b":null}"#,
        ];
        let deep = format!(r#"{{"i":1,"zz":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        for input in inputs.iter().copied().chain([deep.as_str()]) {
            assert_eq!(
                decode_row(&cols(), input.as_bytes()),
                decode_row_slow(&cols(), input.as_bytes()),
                "{input}"
            );
        }
    }
}
