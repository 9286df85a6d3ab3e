//! The online value codec: one compact binary value per (group, entity key).
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! byte 0        format version (1)
//! bytes 1..9    schema fingerprint: the first 8 bytes of the group's SHA-256 fingerprint
//! bytes 9..17   event time of the row, i64 microseconds since the epoch (UTC)
//! null bitmap   ceil(n/8) bytes, bit i set = field i is NULL (LSB first)
//! fixed part    for each non-NULL fixed-width field in order: BOOLEAN 1 byte (0/1),
//!               INT64 and TIMESTAMP 8 bytes, DOUBLE 8 bytes of its IEEE-754 bits
//! var part      for each non-NULL STRING or LIST field in order:
//!               STRING = LEB128 length + UTF-8 bytes;
//!               LIST   = LEB128 element count + element null bitmap + each non-NULL element
//!                        (fixed-width raw, or variable-width recursively)
//! ```
//!
//! Doubles keep their exact bits (NaN payloads, -0.0). Decoding checks the version, the
//! fingerprint, every length and UTF-8, and reports corruption as an error, never a panic.

use crate::types::DataType;
use crate::{Error, Result};

/// The codec's format version byte.
pub const FORMAT_VERSION: u8 = 1;
const HEADER: usize = 17;

/// One feature value.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Boolean(bool),
    Int64(i64),
    Double(f64),
    String(String),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    List(Vec<Value>),
}

impl PartialEq for Value {
    /// Bitwise for doubles: NaN equals NaN with the same bits, -0.0 differs from 0.0.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Int64(a), Value::Int64(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => {
                a == b
            }
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            _ => false,
        }
    }
}

/// A decoded online value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub event_time: i64,
    pub values: Vec<Value>,
}

/// Encodes and decodes the values of one group version.
#[derive(Debug, Clone)]
pub struct Codec {
    fingerprint: [u8; 8],
    types: Vec<DataType>,
}

impl Codec {
    /// A codec for a schema; `fingerprint_hex` is the group's fingerprint (at least 16 hex digits).
    pub fn new(fingerprint_hex: &str, types: Vec<DataType>) -> Result<Self> {
        let bytes = hex::decode(fingerprint_hex.get(..16).unwrap_or("")).map_err(|e| {
            Error::Invalid(format!("fingerprint \"{fingerprint_hex}\" is not hex: {e}"))
        })?;
        let fingerprint: [u8; 8] = bytes.try_into().map_err(|_| {
            Error::Invalid(format!("fingerprint \"{fingerprint_hex}\" is too short"))
        })?;
        Ok(Codec { fingerprint, types })
    }

    pub fn types(&self) -> &[DataType] {
        &self.types
    }

    /// Encodes a row; the values must match the schema's types (NULL fits any).
    pub fn encode(&self, event_time: i64, values: &[Value]) -> Result<Vec<u8>> {
        if values.len() != self.types.len() {
            return Err(Error::Invalid(format!(
                "row has {} values, schema has {}",
                values.len(),
                self.types.len()
            )));
        }
        let mut out = Vec::with_capacity(HEADER + values.len() * 9);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(&event_time.to_le_bytes());
        let bitmap_at = out.len();
        out.resize(bitmap_at + values.len().div_ceil(8), 0);
        for (i, v) in values.iter().enumerate() {
            if matches!(v, Value::Null) {
                out[bitmap_at + i / 8] |= 1 << (i % 8);
            }
        }
        for (i, (v, t)) in values.iter().zip(&self.types).enumerate() {
            if t.fixed_width().is_some() && !matches!(v, Value::Null) {
                put_fixed(&mut out, t, v).map_err(|e| Error::Invalid(format!("field {i}: {e}")))?;
            }
        }
        for (i, (v, t)) in values.iter().zip(&self.types).enumerate() {
            if t.fixed_width().is_none() && !matches!(v, Value::Null) {
                put_var(&mut out, t, v).map_err(|e| Error::Invalid(format!("field {i}: {e}")))?;
            }
        }
        Ok(out)
    }

    /// Decodes a value written by [`Codec::encode`] with the same schema.
    pub fn decode(&self, bytes: &[u8]) -> Result<Row> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(Error::Codec(format!(
                "format version {version}, expected {FORMAT_VERSION}"
            )));
        }
        let fp = r.take(8)?;
        if fp != self.fingerprint {
            return Err(Error::Codec(format!(
                "schema fingerprint {} does not match the group's {}",
                hex::encode(fp),
                hex::encode(self.fingerprint)
            )));
        }
        let event_time = i64::from_le_bytes(r.array()?);
        let bitmap = r.take(self.types.len().div_ceil(8))?;
        let is_null = |i: usize| bitmap[i / 8] & (1 << (i % 8)) != 0;
        let mut values = vec![Value::Null; self.types.len()];
        for (i, t) in self.types.iter().enumerate() {
            if t.fixed_width().is_some() && !is_null(i) {
                values[i] = r.fixed(t)?;
            }
        }
        for (i, t) in self.types.iter().enumerate() {
            if t.fixed_width().is_none() && !is_null(i) {
                values[i] = r.var(t)?;
            }
        }
        if r.pos != bytes.len() {
            return Err(Error::Codec(format!(
                "{} trailing bytes",
                bytes.len() - r.pos
            )));
        }
        Ok(Row { event_time, values })
    }

    /// The event time of an encoded value without decoding the rest (for newer-wins writes).
    pub fn event_time(bytes: &[u8]) -> Result<i64> {
        let raw = bytes
            .get(9..HEADER)
            .ok_or_else(|| Error::Codec(format!("value of {} bytes has no header", bytes.len())))?;
        Ok(i64::from_le_bytes(raw.try_into().expect("8 bytes")))
    }
}

fn put_fixed(out: &mut Vec<u8>, t: &DataType, v: &Value) -> Result<(), String> {
    match (t, v) {
        (DataType::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
        (DataType::Int64, Value::Int64(x)) | (DataType::Timestamp, Value::Timestamp(x)) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (DataType::Double, Value::Double(x)) => out.extend_from_slice(&x.to_bits().to_le_bytes()),
        _ => return Err(format!("value {v:?} does not fit type {t}")),
    }
    Ok(())
}

fn put_var(out: &mut Vec<u8>, t: &DataType, v: &Value) -> Result<(), String> {
    match (t, v) {
        (DataType::String, Value::String(s)) => {
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        (DataType::List(inner), Value::List(items)) => {
            put_len(out, items.len());
            let at = out.len();
            out.resize(at + items.len().div_ceil(8), 0);
            for (i, item) in items.iter().enumerate() {
                if matches!(item, Value::Null) {
                    out[at + i / 8] |= 1 << (i % 8);
                }
            }
            for item in items.iter().filter(|v| !matches!(v, Value::Null)) {
                if inner.fixed_width().is_some() {
                    put_fixed(out, inner, item)?
                } else {
                    put_var(out, inner, item)?
                }
            }
        }
        _ => return Err(format!("value {v:?} does not fit type {t}")),
    }
    Ok(())
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                Error::Codec(format!(
                    "truncated: need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.buf.len() - self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A LEB128 length of at most `per_byte` units per remaining byte: bytes for strings, 8
    /// elements per byte for lists (each needs at least its null bit). Bounds allocations.
    fn len(&mut self, per_byte: usize) -> Result<usize> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let room = (self.buf.len() - self.pos).saturating_mul(per_byte);
                return usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= room)
                    .ok_or_else(|| {
                        Error::Codec(format!(
                            "length {n} at offset {} exceeds the value",
                            self.pos
                        ))
                    });
            }
        }
        Err(Error::Codec("length varint longer than 64 bits".into()))
    }

    fn fixed(&mut self, t: &DataType) -> Result<Value> {
        Ok(match t {
            DataType::Boolean => match self.u8()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(Error::Codec(format!("boolean byte {b}"))),
            },
            DataType::Int64 => Value::Int64(i64::from_le_bytes(self.array()?)),
            DataType::Timestamp => Value::Timestamp(i64::from_le_bytes(self.array()?)),
            DataType::Double => Value::Double(f64::from_bits(u64::from_le_bytes(self.array()?))),
            DataType::String | DataType::List(_) => {
                unreachable!("variable-width type in fixed part")
            }
        })
    }

    fn var(&mut self, t: &DataType) -> Result<Value> {
        match t {
            DataType::String => {
                let n = self.len(1)?;
                let s = std::str::from_utf8(self.take(n)?)
                    .map_err(|e| Error::Codec(format!("string is not UTF-8: {e}")))?;
                Ok(Value::String(s.to_owned()))
            }
            DataType::List(inner) => {
                let n = self.len(8)?;
                let bitmap = self.take(n.div_ceil(8))?;
                let mut items = Vec::with_capacity(n.min(self.buf.len()));
                for i in 0..n {
                    if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                        items.push(Value::Null);
                    } else if inner.fixed_width().is_some() {
                        items.push(self.fixed(inner)?);
                    } else {
                        items.push(self.var(inner)?);
                    }
                }
                Ok(Value::List(items))
            }
            _ => unreachable!("fixed-width type in variable part"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FP: &str = "0123456789abcdef0123456789abcdef";

    fn leaf_type() -> impl Strategy<Value = DataType> {
        prop_oneof![
            Just(DataType::Boolean),
            Just(DataType::Int64),
            Just(DataType::Double),
            Just(DataType::String),
            Just(DataType::Timestamp),
        ]
    }

    fn any_type() -> impl Strategy<Value = DataType> {
        leaf_type().prop_recursive(2, 4, 1, |inner| {
            inner.prop_map(|t| DataType::List(Box::new(t)))
        })
    }

    fn special_double() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(f64::from_bits(0x7ff8_0000_dead_beef)),
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            any::<f64>(),
        ]
    }

    fn value_of(t: DataType) -> BoxedStrategy<Value> {
        let non_null: BoxedStrategy<Value> = match t {
            DataType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
            DataType::Int64 => prop_oneof![
                Just(i64::MIN),
                Just(i64::MAX),
                Just((1 << 53) + 1),
                any::<i64>()
            ]
            .prop_map(Value::Int64)
            .boxed(),
            DataType::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
            DataType::Double => special_double().prop_map(Value::Double).boxed(),
            DataType::String => prop_oneof![
                Just(String::new()),
                Just("Москва 🏙️ \"q\\".to_string()),
                ".*"
            ]
            .prop_map(Value::String)
            .boxed(),
            DataType::List(inner) => prop::collection::vec(value_of(*inner), 0..6)
                .prop_map(Value::List)
                .boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 4 => non_null].boxed()
    }

    fn schema_and_row() -> impl Strategy<Value = (Vec<DataType>, Vec<Value>)> {
        prop::collection::vec(any_type(), 0..20).prop_flat_map(|types| {
            let values: Vec<_> = types.iter().cloned().map(value_of).collect();
            (Just(types), values)
        })
    }

    proptest! {
        #[test]
        fn round_trips_every_type((types, values) in schema_and_row(), ts in any::<i64>()) {
            let codec = Codec::new(FP, types).unwrap();
            let bytes = codec.encode(ts, &values).unwrap();
            prop_assert_eq!(Codec::event_time(&bytes).unwrap(), ts);
            let row = codec.decode(&bytes).unwrap();
            prop_assert_eq!(row.event_time, ts);
            prop_assert_eq!(row.values, values);
        }

        #[test]
        fn decoding_garbage_never_panics((types, _v) in schema_and_row(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let codec = Codec::new(FP, types).unwrap();
            let _ = codec.decode(&bytes);
            let mut with_header = vec![FORMAT_VERSION];
            with_header.extend_from_slice(&hex::decode(&FP[..16]).unwrap());
            with_header.extend_from_slice(&bytes);
            let _ = codec.decode(&with_header);
        }

        #[test]
        fn truncated_values_are_errors((types, values) in schema_and_row(), cut in any::<prop::sample::Index>()) {
            let codec = Codec::new(FP, types).unwrap();
            let bytes = codec.encode(7, &values).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(codec.decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn wrong_fingerprint_is_reported() {
        let a = Codec::new(FP, vec![DataType::Int64]).unwrap();
        let b = Codec::new("ffffffffffffffff", vec![DataType::Int64]).unwrap();
        let bytes = a.encode(1, &[Value::Int64(5)]).unwrap();
        let err = b.decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("schema fingerprint"), "{err}");
    }

    #[test]
    fn value_is_compact() {
        // 3 fields: int, double, short string: header 17 + bitmap 1 + 16 fixed + 1+5 var.
        let c = Codec::new(
            FP,
            vec![DataType::Int64, DataType::Double, DataType::String],
        )
        .unwrap();
        let bytes = c
            .encode(
                0,
                &[
                    Value::Int64(1),
                    Value::Double(0.5),
                    Value::String("Paris".into()),
                ],
            )
            .unwrap();
        assert_eq!(bytes.len(), 17 + 1 + 16 + 6);
        let nulls = c
            .encode(0, &[Value::Null, Value::Null, Value::Null])
            .unwrap();
        assert_eq!(nulls.len(), 18);
    }

    #[test]
    fn mistyped_value_is_an_error_not_a_panic() {
        let c = Codec::new(FP, vec![DataType::Int64]).unwrap();
        assert!(c.encode(0, &[Value::String("x".into())]).is_err());
        assert!(c.encode(0, &[]).is_err());
    }
}
