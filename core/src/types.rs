//! The column types of fstore and their Arrow forms.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType as ArrowType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

/// A column type as definitions spell it: `BOOLEAN`, `INT64`, `DOUBLE`, `STRING`, `TIMESTAMP`
/// (microseconds, UTC) and `LIST<T>` of any of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataType {
    Boolean,
    Int64,
    Double,
    String,
    Timestamp,
    List(Box<DataType>),
}

/// The timezone every fstore timestamp carries.
pub const UTC: &str = "UTC";

impl DataType {
    /// The Arrow type: `Timestamp(Microsecond, "UTC")` for TIMESTAMP, `Utf8` for STRING,
    /// `List<item>` (nullable items) for lists.
    pub fn to_arrow(&self) -> ArrowType {
        match self {
            DataType::Boolean => ArrowType::Boolean,
            DataType::Int64 => ArrowType::Int64,
            DataType::Double => ArrowType::Float64,
            DataType::String => ArrowType::Utf8,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            DataType::List(inner) => {
                ArrowType::List(Arc::new(Field::new("item", inner.to_arrow(), true)))
            }
        }
    }

    /// The fstore type of an Arrow type, if fstore can hold it. Narrower integers and floats
    /// are not accepted: a source column's Parquet type must match its declaration.
    pub fn from_arrow(t: &ArrowType) -> Option<DataType> {
        Some(match t {
            ArrowType::Boolean => DataType::Boolean,
            ArrowType::Int64 => DataType::Int64,
            ArrowType::Float64 => DataType::Double,
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::String,
            ArrowType::Timestamp(TimeUnit::Microsecond, _) => DataType::Timestamp,
            ArrowType::List(f) | ArrowType::LargeList(f) => {
                DataType::List(Box::new(DataType::from_arrow(f.data_type())?))
            }
            _ => return None,
        })
    }

    /// Types whose values have a fixed width in the online codec.
    pub fn fixed_width(&self) -> Option<usize> {
        match self {
            DataType::Boolean => Some(1),
            DataType::Int64 | DataType::Double | DataType::Timestamp => Some(8),
            DataType::String | DataType::List(_) => None,
        }
    }

    /// Entity keys may only be STRING or INT64.
    pub fn is_key_type(&self) -> bool {
        matches!(self, DataType::String | DataType::Int64)
    }

    /// Types that SUM and AVG accept.
    pub fn is_numeric(&self) -> bool {
        matches!(self, DataType::Int64 | DataType::Double)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::Int64 => f.write_str("INT64"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::String => f.write_str("STRING"),
            DataType::Timestamp => f.write_str("TIMESTAMP"),
            DataType::List(inner) => write!(f, "LIST<{inner}>"),
        }
    }
}

/// The type names definitions accept, for hints.
pub const TYPE_NAMES: &str = "BOOLEAN, INT64, DOUBLE, STRING, TIMESTAMP, LIST<T>";

impl FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let upper = s.to_ascii_uppercase();
        if let Some(inner) = upper
            .strip_prefix("LIST<")
            .and_then(|r| r.strip_suffix('>'))
        {
            return Ok(DataType::List(Box::new(inner.parse()?)));
        }
        Ok(match upper.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "INT64" | "BIGINT" => DataType::Int64,
            "DOUBLE" | "FLOAT64" => DataType::Double,
            "STRING" | "VARCHAR" | "TEXT" => DataType::String,
            "TIMESTAMP" => DataType::Timestamp,
            _ => return Err(format!("unknown type \"{s}\" (known: {TYPE_NAMES})")),
        })
    }
}

impl From<DataType> for String {
    fn from(t: DataType) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for DataType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Microseconds in each duration unit that definitions accept.
pub fn duration_unit_micros(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_uppercase().as_str() {
        "MICROSECOND" | "MICROSECONDS" => 1,
        "MILLISECOND" | "MILLISECONDS" => 1_000,
        "SECOND" | "SECONDS" => 1_000_000,
        "MINUTE" | "MINUTES" => 60_000_000,
        "HOUR" | "HOURS" => 3_600_000_000,
        "DAY" | "DAYS" => 86_400_000_000,
        "WEEK" | "WEEKS" => 7 * 86_400_000_000,
        _ => return None,
    })
}

/// Formats a duration in microseconds with the largest unit that divides it: `7 DAYS`, `90 MINUTES`.
pub fn format_duration(us: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (86_400_000_000, "DAY"),
        (3_600_000_000, "HOUR"),
        (60_000_000, "MINUTE"),
        (1_000_000, "SECOND"),
        (1_000, "MILLISECOND"),
        (1, "MICROSECOND"),
    ];
    for (size, name) in UNITS {
        if us != 0 && us % size == 0 {
            let n = us / size;
            return format!("{n} {name}{}", if n == 1 { "" } else { "S" });
        }
    }
    "0 SECONDS".into()
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: DataType,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for s in [
            "BOOLEAN",
            "INT64",
            "DOUBLE",
            "STRING",
            "TIMESTAMP",
            "LIST<INT64>",
            "LIST<LIST<STRING>>",
        ] {
            let t: DataType = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
            assert_eq!(DataType::from_arrow(&t.to_arrow()), Some(t));
        }
        assert!("INT32".parse::<DataType>().is_err());
    }

    #[test]
    fn durations_format_with_largest_unit() {
        assert_eq!(format_duration(7 * 86_400_000_000), "7 DAYS");
        assert_eq!(format_duration(86_400_000_000), "1 DAY");
        assert_eq!(format_duration(90 * 60_000_000), "90 MINUTES");
        assert_eq!(format_duration(1), "1 MICROSECOND");
    }
}
