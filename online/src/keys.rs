//! Online keys: `{namespace}:{group}:{version}:{key}`.
//!
//! The entity key part is the key columns' values joined by `:`; STRING parts are
//! percent-escaped for `%` and `:` (so composite keys stay unambiguous), INT64 parts are decimal.
//! Keys of one group share the prefix `{namespace}:{group}:{version}:`, which Redis Cluster
//! hash tags or RocksDB prefix iteration can use.

use fstore_core::codec::Value;
use fstore_registry::DataType;
use fstore_registry::model::Entity;

use crate::Error;

/// Escapes `%` and `:` in a string key part.
fn escape(s: &str, out: &mut String) {
    if !s.contains(['%', ':']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
}

/// One part of an entity key, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum KeyPart<'a> {
    Str(&'a str),
    Int(i64),
    /// A value of another type (or NULL): refused with its description.
    Other(&'a Value),
}

/// The online key of one entity key of a group version.
pub fn online_key(
    namespace: &str,
    group: &str,
    version: u32,
    entity: &Entity,
    key: &[Value],
) -> Result<String, Error> {
    online_key_of_parts(namespace, group, version, entity, &parts_of(key))
}

/// Key values as key parts (borrowed).
pub fn parts_of(key: &[Value]) -> Vec<KeyPart<'_>> {
    key.iter()
        .map(|v| match v {
            Value::String(s) => KeyPart::Str(s),
            Value::Int64(n) => KeyPart::Int(*n),
            other => KeyPart::Other(other),
        })
        .collect()
}

/// [`online_key`] of borrowed parts (no copies on the serving path).
pub fn online_key_of_parts(
    namespace: &str,
    group: &str,
    version: u32,
    entity: &Entity,
    key: &[KeyPart<'_>],
) -> Result<String, Error> {
    online_key_after(&key_prefix(namespace, group, version), entity, key)
}

/// What every key of a group version starts with: `{namespace}:{group}:{version}:`.
pub fn key_prefix(namespace: &str, group: &str, version: u32) -> String {
    format!("{namespace}:{group}:{version}:")
}

/// The online key of `key`'s parts after a group version's [`key_prefix`].
pub fn online_key_after(
    prefix: &str,
    entity: &Entity,
    key: &[KeyPart<'_>],
) -> Result<String, Error> {
    use std::fmt::Write as _;
    if key.len() != entity.keys.len() {
        return Err(Error::BadKey(format!(
            "entity \"{}\" has {} key column(s), got {} value(s)",
            entity.name,
            entity.keys.len(),
            key.len()
        )));
    }
    let mut out = String::with_capacity(prefix.len() + 24 * key.len());
    out.push_str(prefix);
    for (i, (col, v)) in entity.keys.iter().zip(key).enumerate() {
        if i > 0 {
            out.push(':');
        }
        match (&col.dtype, v) {
            (DataType::String, KeyPart::Str(s)) => escape(s, &mut out),
            (DataType::Int64, KeyPart::Int(n)) => {
                let _ = write!(out, "{n}");
            }
            (t, v) => {
                let got = match v {
                    KeyPart::Str(s) => format!("{:?}", Value::String(s.to_string())),
                    KeyPart::Int(n) => format!("{:?}", Value::Int64(*n)),
                    KeyPart::Other(v) => format!("{v:?}"),
                };
                return Err(Error::BadKey(format!(
                    "key \"{}\" of entity \"{}\" is {t}, got {got}",
                    col.name, entity.name
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_registry::model::Column;

    fn user_item() -> Entity {
        Entity {
            name: "user_item".into(),
            keys: vec![
                Column {
                    name: "user_id".into(),
                    dtype: DataType::String,
                },
                Column {
                    name: "item_id".into(),
                    dtype: DataType::Int64,
                },
            ],
        }
    }

    #[test]
    fn composite_keys_are_unambiguous() {
        let e = user_item();
        let k = |u: &str, i: i64| {
            online_key(
                "ns",
                "g",
                2,
                &e,
                &[Value::String(u.into()), Value::Int64(i)],
            )
            .unwrap()
        };
        assert_eq!(k("u1", 7), "ns:g:2:u1:7");
        assert_eq!(k("a:b", 1), "ns:g:2:a%3Ab:1");
        assert_ne!(k("a:1", 2), k("a", 12));
        assert_eq!(k("100%", -5), "ns:g:2:100%25:-5");
    }

    #[test]
    fn wrong_keys_are_errors() {
        let e = user_item();
        assert!(online_key("ns", "g", 1, &e, &[Value::String("u".into())]).is_err());
        assert!(online_key("ns", "g", 1, &e, &[Value::Int64(1), Value::Int64(2)]).is_err());
        assert!(online_key("ns", "g", 1, &e, &[Value::Null, Value::Int64(2)]).is_err());
    }
}
