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
use crate::rows::{ColumnBuilder, ValueRef};
use crate::types::Column;
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

/// Decodes JSON rows of one source straight into column builders.
///
/// Most rows are flat objects of scalars whose keys and strings need no unescaping: those are
/// scanned in one pass, without building values. Anything else (escapes, lists, nested
/// values, a value of the wrong type, broken JSON, a timestamp in an unusual form) is decoded
/// by [`decode_row`], which also words the error. Both give the same values: the scanner
/// only accepts what it reads exactly as [`decode_row`] does (tested against it).
#[derive(Debug, Clone)]
pub struct RowDecoder {
    columns: Vec<Column>,
    cells: Vec<Cell>,
}

/// A scanned value; strings as byte ranges of the row.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Boolean(bool),
    Int64(i64),
    Double(f64),
    Str(usize, usize),
    Timestamp(i64),
}

impl RowDecoder {
    pub fn new(columns: &[Column]) -> Self {
        RowDecoder {
            columns: columns.to_vec(),
            cells: vec![Cell::Null; columns.len()],
        }
    }

    /// Decodes a row and appends its values, one per builder (in column order); a row that
    /// does not decode appends nothing.
    pub fn decode_into(
        &mut self,
        bytes: &[u8],
        builders: &mut [ColumnBuilder],
    ) -> Result<(), JsonError> {
        if builders.len() != self.columns.len() {
            return Err(JsonError(format!(
                "{} builders for {} columns",
                builders.len(),
                self.columns.len()
            )));
        }
        // JSON outside strings is ASCII: a row that is not UTF-8 as a whole is no JSON, or
        // has a string that is not.
        if let Ok(text) = std::str::from_utf8(bytes)
            && self.scan(text).is_some()
        {
            for (b, c) in builders.iter_mut().zip(&self.cells) {
                let v = match *c {
                    Cell::Null => ValueRef::Null,
                    Cell::Boolean(x) => ValueRef::Boolean(x),
                    Cell::Int64(x) => ValueRef::Int64(x),
                    Cell::Double(x) => ValueRef::Double(x),
                    // Between quotes: on character boundaries.
                    Cell::Str(from, to) => {
                        ValueRef::String(text.get(from..to).ok_or_else(|| {
                            JsonError("a string's bounds are not character bounds".into())
                        })?)
                    }
                    Cell::Timestamp(x) => ValueRef::Timestamp(x),
                };
                // The scanner gives each column a value of its type.
                b.append_ref(v).map_err(|e| JsonError(e.to_string()))?;
            }
            return Ok(());
        }
        let values = decode_row(&self.columns, bytes)?;
        if let Some((c, v)) = self
            .columns
            .iter()
            .zip(&values)
            .zip(builders.iter())
            .find(|((_, v), b)| !b.fits(v))
            .map(|((c, v), _)| (c, v))
        {
            return Err(JsonError(format!(
                "column \"{}\": value {v:?} does not fit type {}",
                c.name, c.dtype
            )));
        }
        for (b, v) in builders.iter_mut().zip(&values) {
            b.append(v).map_err(|e| JsonError(e.to_string()))?;
        }
        Ok(())
    }

    /// The values of a flat row (UTF-8) into `self.cells`; `None` for anything the scanner
    /// leaves to [`decode_row`].
    fn scan(&mut self, text: &str) -> Option<()> {
        self.cells.fill(Cell::Null);
        let bytes = text.as_bytes();
        let mut p = Scan {
            text,
            b: bytes,
            i: 0,
        };
        p.ws();
        p.eat(b'{')?;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            let mut next = 0;
            loop {
                let (kf, kt) = p.string()?;
                let key = &bytes[kf..kt];
                p.ws();
                p.eat(b':')?;
                p.ws();
                let at = match self.columns.get(next) {
                    Some(c) if c.name.as_bytes() == key => Some(next),
                    _ => self.columns.iter().position(|c| c.name.as_bytes() == key),
                };
                next = at.map_or(0, |i| i + 1);
                match at {
                    Some(i) => self.cells[i] = p.value(&self.columns[i].dtype)?,
                    // An unknown key is dropped, but its value must be JSON.
                    None => p.skip_scalar()?,
                }
                p.ws();
                match p.next()? {
                    b',' => p.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        p.ws();
        (p.i == bytes.len()).then_some(())
    }
}

/// The scanner's cursor.
struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string without escapes or control characters: its bytes' range.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let from = self.i;
        let len = self.b[from..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let to = from + len;
        if self.b[to] != b'"' {
            return None;
        }
        self.i = to + 1;
        Some((from, to))
    }

    /// A number as JSON writes it: its text, and whether it is an integer (no fraction or
    /// exponent).
    fn number(&mut self) -> Option<(&str, bool)> {
        let from = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.digits();
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digit()?;
            self.digits();
            integer = false;
        }
        // The next byte ends the value (else the text is not JSON).
        if let Some(c) = self.peek()
            && !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
        {
            return None;
        }
        Some((self.text.get(from..self.i)?, integer))
    }

    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// An integer of up to 18 digits (so it fits an i64), never `-0` (JSON's `-0` is a
    /// double).
    fn small_integer(text: &str) -> Option<i64> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.len() > 18 || text == "-0" {
            return None;
        }
        text.parse().ok()
    }

    /// A scalar of type `t` (or null).
    fn value(&mut self, t: &DataType) -> Option<Cell> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(Cell::Null)
            }
            b't' if *t == DataType::Boolean => {
                self.literal(b"true")?;
                Some(Cell::Boolean(true))
            }
            b'f' if *t == DataType::Boolean => {
                self.literal(b"false")?;
                Some(Cell::Boolean(false))
            }
            b'"' => {
                let (from, to) = self.string()?;
                match t {
                    DataType::String => Some(Cell::Str(from, to)),
                    DataType::Timestamp => fast_timestamp(&self.b[from..to]).map(Cell::Timestamp),
                    DataType::Double => match &self.b[from..to] {
                        b"NaN" => Some(Cell::Double(f64::NAN)),
                        b"Infinity" => Some(Cell::Double(f64::INFINITY)),
                        b"-Infinity" => Some(Cell::Double(f64::NEG_INFINITY)),
                        _ => None,
                    },
                    _ => None,
                }
            }
            b'-' | b'0'..=b'9' => {
                let (text, integer) = self.number()?;
                match t {
                    DataType::Int64 if integer => Self::small_integer(text).map(Cell::Int64),
                    DataType::Timestamp if integer => {
                        Self::small_integer(text).map(Cell::Timestamp)
                    }
                    DataType::Double if integer => {
                        Self::small_integer(text).map(|n| Cell::Double(n as f64))
                    }
                    // Correctly rounded, as serde_json's float_roundtrip parse; out of range
                    // is left to it (an error there).
                    DataType::Double if text.len() <= 32 => text
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite())
                        .map(Cell::Double),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The value of a key that is not a column: a scalar, checked as JSON and dropped.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'"' => self.string().map(|_| ()),
            b'-' | b'0'..=b'9' => {
                let (text, integer) = self.number()?;
                // A number too large for serde_json is an error there.
                (integer || text.parse::<f64>().is_ok_and(f64::is_finite)).then_some(())
            }
            _ => None,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` as epoch microseconds, when it is a
/// valid time of at most microsecond precision; `None` for anything else (left to
/// [`parse_timestamp`], which accepts more forms and words the errors).
fn fast_timestamp(s: &[u8]) -> Option<i64> {
    fn num(s: &[u8]) -> Option<i64> {
        s.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    }
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' {
        return None;
    }
    if s[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(&s[0..4])?, num(&s[5..7])?, num(&s[8..10])?);
    let (hour, minute, second) = (num(&s[11..13])?, num(&s[14..16])?, num(&s[17..19])?);
    let mut i = 19;
    let mut micros = 0;
    if s[i] == b'.' {
        let from = i + 1;
        let len = s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        let frac = &s[from..from + len];
        // Digits past the microsecond must be zero (else the timestamp is refused).
        if frac.iter().skip(6).any(|&c| c != b'0') {
            return None;
        }
        let six = &frac[..len.min(6)];
        micros = num(six)? * 10i64.pow(6 - six.len() as u32);
        i = from + len;
    }
    let offset_minutes = match s.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
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

    /// Decodes through [`RowDecoder`]: the values appended, or the error.
    fn scanned(columns: &[Column], input: &[u8]) -> Result<Vec<Value>, JsonError> {
        let mut builders: Vec<ColumnBuilder> = columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.dtype, 1))
            .collect();
        let result = RowDecoder::new(columns).decode_into(input, &mut builders);
        let arrays: Vec<_> = builders.iter_mut().map(|b| b.finish().unwrap()).collect();
        match result {
            Ok(()) => {
                assert!(arrays.iter().all(|a| a.len() == 1), "one value per column");
                Ok(arrays
                    .iter()
                    .map(|a| crate::rows::value_at(a, 0).unwrap())
                    .collect())
            }
            Err(e) => {
                assert!(arrays.iter().all(|a| a.is_empty()), "nothing appended");
                Err(e)
            }
        }
    }

    #[test]
    fn the_scanner_agrees_with_the_decoder_on_edge_cases() {
        let inputs = [
            r#"{"b":true,"i":1,"d":2.5,"s":"x","t":"2024-01-07T02:19:39.533398Z"}"#,
            r#" { "b" : false , "i" : -12 , "d" : -0.0 , "s" : "" } "#,
            "{\"i\":\t1\n,\r\"d\":1e-400}",
            r#"{"d":-0}"#,
            r#"{"i":-0}"#,
            r#"{"i":00}"#,
            r#"{"i":01}"#,
            r#"{"i":1x}"#,
            r#"{"i":-}"#,
            r#"{"d":1.}"#,
            r#"{"d":.5}"#,
            r#"{"d":1e}"#,
            r#"{"d":1E+2,"i":123456789012345678}"#,
            r#"{"i":1234567890123456789}"#,
            r#"{"d":12345678901234567890123456789}"#,
            r#"{"d":0.1000000000000000055511151231257827021181583404541015625}"#,
            r#"{"d":2.2250738585072011e-308}"#,
            r#"{"d":4.9e-324,"s":"é"}"#,
            r#"{"d":1.7976931348623157e308}"#,
            r#"{"d":1.7976931348623159e308}"#,
            r#"{"d":"NaN","b":null,"i":null}"#,
            r#"{"b":tru}"#,
            r#"{"b":true,}"#,
            r#"{,}"#,
            r#"{"s":"a\u0000"}"#,
            "{\"s\":\"a\u{1}\"}",
            r#"{"s":"tab	in"}"#,
            r#"{"s":"x","zz":1.5e999}"#,
            r#"{"zz":-0,"zz2":[1],"i":2}"#,
            r#"{"zz":true,"yy":null,"xx":"q","i":2}"#,
            r#"{"t":"2024-02-29T00:00:00Z"}"#,
            r#"{"t":"2023-02-29T00:00:00Z"}"#,
            r#"{"t":"2024-01-07T02:19:60Z"}"#,
            r#"{"t":"2024-01-07t02:19:39Z"}"#,
            r#"{"t":"2024-01-07 02:19:39Z"}"#,
            r#"{"t":"2024-01-07T02:19:39z"}"#,
            r#"{"t":"2024-01-07T02:19:39.123456789Z"}"#,
            r#"{"t":"2024-01-07T02:19:39.123456000Z"}"#,
            r#"{"t":"2024-01-07T02:19:39.1234567890Z"}"#,
            r#"{"t":"2024-01-07T02:19:39.Z"}"#,
            r#"{"t":"2024-01-07T02:19:39-00:00"}"#,
            r#"{"t":"2024-01-07T02:19:39+23:59"}"#,
            r#"{"t":"2024-01-07T02:19:39+24:00"}"#,
            r#"{"t":"0000-01-01T00:00:00Z"}"#,
            r#"{"t":"9999-12-31T23:59:59.999999Z"}"#,
            r#"{"t":"1969-12-31T23:59:59.999999Z"}"#,
            r#"{"t":"+2024-01-07T02:19:39Z"}"#,
            r#"{"t":123456789012345678}"#,
            "{\"s\":\"\u{1F3D9}\"}",
        ];
        for input in inputs.iter().map(|s| s.as_bytes()).chain([
            &b"{\"s\":\"\xff\"}"[..],
            &b"{\"\xff\":1}"[..],
            &b"{\"s\":\"\xe9t\xc3\"}"[..],
        ]) {
            assert_eq!(
                scanned(&cols(), input),
                decode_row(&cols(), input),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn the_scanner_reads_flat_rows_itself() {
        let mut d = RowDecoder::new(&cols());
        for row in [
            r#"{"b":true,"i":1,"d":2.5,"s":"x","t":"2024-01-07T02:19:39.533398Z"}"#,
            r#"{"t":1704593979533398,"unknown":"é","s":null,"d":-1e-3,"i":-7}"#,
            r#" {} "#,
        ] {
            assert!(d.scan(row).is_some(), "{row}");
        }
        for row in [
            r#"{"l":[1]}"#,
            r#"{"s":"a\"b"}"#,
            r#"{"i":"1"}"#,
            r#"{"zz":{}}"#,
        ] {
            assert!(d.scan(row).is_none(), "{row}");
        }
    }

    #[test]
    fn fast_timestamps_are_those_chrono_reads() {
        let mut rng = crate::xorshift::XorShift::new(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = |n: u64| rng.below(n);
        let mut fast = 0;
        for _ in 0..200_000 {
            let frac = match next(4) {
                0 => String::new(),
                1 => format!(".{:06}", next(1_000_000)),
                2 => format!(".{}", next(1000)),
                _ => format!(".{:09}", next(1_000_000_000)),
            };
            let offset = match next(3) {
                0 => "Z".to_string(),
                _ => format!(
                    "{}{:02}:{:02}",
                    if next(2) == 0 { '+' } else { '-' },
                    next(26),
                    next(62)
                ),
            };
            let s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{offset}",
                next(10_000),
                next(14),
                next(33),
                next(25),
                next(61),
                next(62)
            );
            match fast_timestamp(s.as_bytes()) {
                Some(t) => {
                    fast += 1;
                    assert_eq!(parse_timestamp(&s), Ok(t), "{s}");
                }
                None => {
                    // Left to chrono: only invalid times or forms the scanner does not read.
                    if let Ok(t) = parse_timestamp(&s) {
                        let valid_form = s.len() >= 20 && !s.contains(":60");
                        assert!(
                            !valid_form || frac.len() > 7,
                            "{s} ({t}) reads with chrono but not fast"
                        );
                    }
                }
            }
        }
        assert!(fast > 20_000, "{fast}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Rows with every kind of value in varied spellings, and the same rows damaged:
        /// the scanner and the decoder agree on the values or the error.
        #[test]
        fn the_scanner_agrees_with_the_decoder(
            fields in proptest::collection::vec((0usize..8, 0usize..16, 0u64..u64::MAX, 0usize..4), 0..9),
            damage in proptest::option::of((0usize..200, 0u8..=255)),
        ) {
            let names = ["b", "i", "d", "s", "t", "l", "zz", "i"];
            let mut text = String::from("{");
            for (n, (name, kind, x, ws)) in fields.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                let pad = [" ", "", "\n", "\t "][*ws];
                let x = *x;
                let value = match kind {
                    0 => "null".to_string(),
                    1 => (x % 2 == 0).to_string(),
                    2 => (x as i64 >> (x % 64)).to_string(),
                    3 => format!("{}", f64::from_bits(x)),
                    4 => format!("{:e}", f64::from_bits(x)),
                    5 => format!("{}.{}", x % 1000, x % 7),
                    6 => format!("\"{}\"", ["", "a", "é", "日本", "\\n", "x\\u0041"][(x % 6) as usize]),
                    7 => format!("\"{}\"", format_timestamp((x % (1 << 50)) as i64 - (1 << 49))),
                    8 => format!("\"2024-0{}-{}T0{}:00:00{}Z\"", x % 10, 10 + x % 25, x % 10, [".5", "", ".1234567", ".000000100"][(x % 4) as usize]),
                    9 => ["\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"nan\""][(x % 4) as usize].to_string(),
                    10 => format!("[{}]", x % 3),
                    11 => "{}".to_string(),
                    12 => format!("{}", x),
                    13 => format!("-{}", x % 100),
                    14 => format!("{}e{}", x % 100, (x % 700) as i64 - 350),
                    _ => format!("\"2024-01-07T02:19:39+0{}:{}0\"", x % 10, x % 7),
                };
                text.push_str(&format!("{pad}\"{}\"{pad}:{pad}{value}{pad}", names[*name]));
            }
            text.push('}');
            let mut bytes = text.into_bytes();
            if let Some((at, b)) = damage
                && !bytes.is_empty()
            {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            proptest::prop_assert_eq!(scanned(&cols(), &bytes), decode_row(&cols(), &bytes));
        }
    }
}
