use super::*;

use serde_json::Value as Json;

use super::scan::short;
use super::time::fast_timestamp;
use crate::codec::Value;
use crate::rows::ColumnBuilder;
use crate::types::{Column, DataType};

/// The plain reading of a row, to check the scanner against: serde_json's tree of the whole
/// text, then each column's value by the table in the module's overview.
fn decode_row_slow(columns: &[Column], bytes: &[u8]) -> Result<Vec<Value>, JsonError> {
    let j: Json = serde_json::from_slice(bytes).map_err(|e| JsonError(format!("not JSON: {e}")))?;
    let Json::Object(m) = j else {
        return Err(JsonError(format!(
            "expected a JSON object, got {}",
            short(&j.to_string())
        )));
    };
    columns
        .iter()
        .map(|c| match m.get(&c.name) {
            None => Ok(Value::Null),
            Some(v) => plain_value(&c.dtype, v)
                .map_err(|e| JsonError(format!("column \"{}\": {e}", c.name))),
        })
        .collect()
}

/// One value of a type from serde_json's tree.
fn plain_value(t: &DataType, j: &Json) -> Result<Value, String> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let bad = || format!("expected {t}, got {}", short(&j.to_string()));
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
                .map(|(i, x)| plain_value(inner, x).map_err(|e| format!("element {i}: {e}")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

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
        proptest::prop_assert_eq!(decode_row(&cols(), &bytes), decode_row_slow(&cols(), &bytes));
    }
}
