//! Reading requests: feature refs resolved against the served registry version, entity keys
//! checked against the entity's key columns, context values; every mistake an [`Error`] the
//! client can act on.

use super::*;

/// The columns of one group to return: all features, or the named ones.
pub(super) struct Wanted<'a> {
    pub(super) layout: &'a GroupLayout,
    /// Indices into the layout's features, in request order.
    pub(super) features: Vec<usize>,
}

/// Resolves `refs` ("group" or "group.feature") into groups of one entity.
pub(super) fn resolve<'a>(v: &'a ServedVersion, refs: &[String]) -> Result<Vec<Wanted<'a>>, Error> {
    if refs.is_empty() {
        return Err(Error::BadRequest(
            "no feature refs: name groups (\"user_profile\") or features (\"user_profile.age\")"
                .into(),
        ));
    }
    let mut out: Vec<Wanted<'a>> = Vec::new();
    for r in refs {
        let (group, feature) = match r.split_once('.') {
            Some((g, f)) => (g, Some(f)),
            None => (r.as_str(), None),
        };
        let Some(layout) = v.layouts.get(group) else {
            let known: Vec<&str> = v
                .layouts
                .keys()
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(Error::NotFound(format!(
                "unknown feature group \"{group}\" (known: {})",
                known.join(", ")
            )));
        };
        let idx: Vec<usize> = match feature {
            None => (0..layout.features.len()).collect(),
            Some(f) => match layout.features.iter().position(|(n, _)| n == f) {
                Some(i) => vec![i],
                None => {
                    let known: Vec<&str> =
                        layout.features.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(Error::NotFound(format!(
                        "unknown feature \"{f}\" in group \"{group}\" (known: {})",
                        known.join(", ")
                    )));
                }
            },
        };
        if let Some(first) = out.first()
            && first.layout.entity.name != layout.entity.name
        {
            return Err(Error::BadRequest(format!(
                "refs mix entities: \"{}\" is keyed by {}, \"{group}\" by {}; one request serves one entity",
                first.layout.group.name, first.layout.entity.name, layout.entity.name
            )));
        }
        match out.iter_mut().find(|w| w.layout.group.name == group) {
            Some(w) => {
                for i in idx {
                    if !w.features.contains(&i) {
                        w.features.push(i);
                    }
                }
            }
            None => out.push(Wanted {
                layout,
                features: idx,
            }),
        }
    }
    Ok(out)
}

/// A request key as key parts of `layout`'s entity.
pub(super) fn key_parts<'a>(
    layout: &GroupLayout,
    i: usize,
    key: &'a pb::EntityKey,
) -> Result<Vec<KeyPart<'a>>, Error> {
    let entity = &layout.entity;
    if key.parts.len() != entity.keys.len() {
        return Err(Error::BadRequest(format!(
            "key {i}: entity \"{}\" has {} key part(s) ({}), got {}",
            entity.name,
            entity.keys.len(),
            entity
                .keys
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            key.parts.len()
        )));
    }
    entity
        .keys
        .iter()
        .zip(&key.parts)
        .map(|(col, part)| match (&col.dtype, &part.value) {
            (DataType::String, Some(pb::key_part::Value::StringValue(s))) => Ok(KeyPart::Str(s)),
            (DataType::Int64, Some(pb::key_part::Value::Int64Value(n))) => Ok(KeyPart::Int(*n)),
            (t, got) => Err(Error::BadRequest(format!(
                "key {i}: \"{}\" of entity \"{}\" is {t}, got {}",
                col.name,
                entity.name,
                match got {
                    Some(pb::key_part::Value::StringValue(_)) => "a string",
                    Some(pb::key_part::Value::Int64Value(_)) => "an int64",
                    None => "nothing",
                }
            ))),
        })
        .collect()
}

/// How many keys a request names, in whichever form it sends them.
pub(super) fn key_count(req: &pb::GetFeaturesRequest) -> usize {
    match req.key_columns.first() {
        None => req.keys.len(),
        Some(c) => c.string_values.len().max(c.int64_values.len()),
    }
}

/// One key column of a columnar request, borrowed.
pub(super) enum KeyValues<'a> {
    Str(&'a [String]),
    Int(&'a [i64]),
}

/// The online keys of `layout` for a request's keys, from either key form.
pub(super) fn request_keys(
    layout: &GroupLayout,
    req: &pb::GetFeaturesRequest,
) -> Result<Vec<String>, Error> {
    if req.key_columns.is_empty() {
        return req
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let parts = key_parts(layout, i, k)?;
                layout.key_of_parts(&parts)
            })
            .collect();
    }
    if !req.keys.is_empty() {
        return Err(Error::BadRequest(
            "the request has both keys and key_columns; send one form".into(),
        ));
    }
    let entity = &layout.entity;
    let names = || {
        entity
            .keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if req.key_columns.len() != entity.keys.len() {
        return Err(Error::BadRequest(format!(
            "entity \"{}\" has {} key column(s) ({}), got {} key_columns",
            entity.name,
            entity.keys.len(),
            names(),
            req.key_columns.len()
        )));
    }
    let n = key_count(req);
    let columns = entity
        .keys
        .iter()
        .zip(&req.key_columns)
        .map(|(col, c)| {
            let (strings, ints) = (c.string_values.len(), c.int64_values.len());
            match &col.dtype {
                DataType::String if ints == 0 && strings == n => {
                    Ok(KeyValues::Str(&c.string_values))
                }
                DataType::Int64 if strings == 0 && ints == n => Ok(KeyValues::Int(&c.int64_values)),
                t => Err(Error::BadRequest(format!(
                    "key column \"{}\" of entity \"{}\" is {t} and needs {n} value(s) like the \
                     first key column; got {strings} string_values and {ints} int64_values",
                    col.name, entity.name
                ))),
            }
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut parts = Vec::with_capacity(columns.len());
    (0..n)
        .map(|i| {
            parts.clear();
            parts.extend(columns.iter().map(|c| match c {
                KeyValues::Str(v) => KeyPart::Str(&v[i]),
                KeyValues::Int(v) => KeyPart::Int(v[i]),
            }));
            layout.key_of_parts(&parts)
        })
        .collect()
}

/// An event column's value from a request scalar.
pub(super) fn scalar_value(dtype: &DataType, s: &pb::Scalar) -> Option<Value> {
    use pb::scalar::Value as S;
    match (dtype, &s.value) {
        (_, None) => Some(Value::Null),
        (DataType::Boolean, Some(S::BoolValue(b))) => Some(Value::Boolean(*b)),
        (DataType::Int64, Some(S::Int64Value(n))) => Some(Value::Int64(*n)),
        (DataType::Double, Some(S::DoubleValue(d))) => Some(Value::Double(*d)),
        (DataType::Double, Some(S::Int64Value(n))) => Some(Value::Double(*n as f64)),
        (DataType::String, Some(S::StringValue(v))) => Some(Value::String(v.clone())),
        (DataType::Timestamp, Some(S::TimestampUs(t) | S::Int64Value(t))) => {
            Some(Value::Timestamp(*t))
        }
        _ => None,
    }
}

/// What a request at `at` sees for `key`, whose stored value is `raw`.
pub(super) fn seen_at(
    layout: &GroupLayout,
    key: &str,
    raw: Option<&[u8]>,
    at: i64,
) -> Result<(KeyStatus, Option<i64>, Vec<Value>), Error> {
    layout
        .values_at(raw, at)
        .map_err(|e| Error::Internal(format!("stored value of {key} does not decode: {e}")))
}
