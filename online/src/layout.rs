//! How one feature group version lives online: its keys, its values' codec, and what a request
//! at time T sees. The materializer, the joiner and the server all go through this, so they
//! agree byte for byte.
//!
//! A row group stores each key's latest row: its features and event time. A window group
//! stores each key's rows within its longest window before the latest one, in fold order
//! ([`WindowRows`]), so a request at any time T gets the exact aggregate over `[T - w, T)`;
//! the cost is those rows per key (e.g. a 7-day count over 40 events a day keeps about 280
//! event times and filter flags per key, some 2.5 KiB).

use fstore_core::codec::{Codec, Value};
use fstore_core::expr::ExprCompiler;
use fstore_core::semantics::asof::{AsOf, AsOfRule};
use fstore_core::semantics::window::WindowRows;
use fstore_registry::DataType;
use fstore_registry::compiled::{CompiledGroup, CompiledGroupKind, CompiledWindow};
use fstore_registry::model::{Definitions, Entity, FeatureGroup, GroupKind};
use sha2::{Digest, Sha256};

use crate::Error;

/// The fingerprint values carry: of the stored fields' labels and types in order, so a
/// compatible change to the group (its TTL, say) keeps reading the stored values, and a value
/// of another schema is refused.
pub fn value_fingerprint(fields: &[(String, DataType)]) -> String {
    let mut h = Sha256::new();
    for (name, dtype) in fields {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(dtype.to_string().as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// What is stored per key.
#[derive(Debug, Clone)]
pub enum Stored {
    /// The latest row's features; `ttl_us` decides EXPIRED.
    Row { ttl_us: Option<i64> },
    /// The rows window aggregates fold.
    Window { features: Vec<CompiledWindow> },
}

/// What a request sees for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Found,
    NotFound,
    /// A row group's value older than its TTL at the request time: features NULL.
    Expired,
}

/// Keys and values of one feature group version in one namespace.
#[derive(Debug, Clone)]
pub struct GroupLayout {
    pub namespace: String,
    pub group: FeatureGroup,
    pub entity: Entity,
    /// Served features in order.
    pub features: Vec<(String, DataType)>,
    pub stored: Stored,
    codec: Codec,
    /// `{namespace}:{group}:{version}:`, which every key starts with.
    key_prefix: String,
}

impl GroupLayout {
    pub fn new(namespace: &str, defs: &Definitions, group: &str) -> Result<Self, Error> {
        let group = defs.group(group)?.clone();
        let entity = defs.entity(&group.entity)?.clone();
        let features: Vec<(String, DataType)> = group
            .features()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let (stored, fields) = match &group.kind {
            GroupKind::Row(r) => (Stored::Row { ttl_us: r.ttl_us }, features.clone()),
            GroupKind::Window(_) => {
                let compiled = CompiledGroup::compile(defs, &group, &ExprCompiler::new())?;
                let CompiledGroupKind::Window { features: windows } = compiled.kind else {
                    return Err(Error::Internal(format!(
                        "group \"{}\" did not compile to windows",
                        group.name
                    )));
                };
                let mut labels = vec!["ts".to_string()];
                for f in &windows {
                    if f.input.is_some() {
                        labels.push(format!("{}.input", f.name));
                    }
                    if f.filter.is_some() {
                        labels.push(format!("{}.filter", f.name));
                    }
                }
                let fields = labels
                    .into_iter()
                    .zip(WindowRows::stored_types(&windows))
                    .collect();
                (Stored::Window { features: windows }, fields)
            }
        };
        let codec = Codec::new(
            &value_fingerprint(&fields),
            fields.iter().map(|(_, t)| t.clone()).collect(),
        )?;
        Ok(GroupLayout {
            key_prefix: crate::keys::key_prefix(namespace, &group.name, group.version),
            namespace: namespace.to_string(),
            group,
            entity,
            features,
            stored,
            codec,
        })
    }

    /// The online key of an entity key.
    pub fn key(&self, key: &[Value]) -> Result<String, Error> {
        self.key_of_parts(&crate::keys::parts_of(key))
    }

    /// [`GroupLayout::key`] of borrowed key parts.
    pub fn key_of_parts(&self, key: &[crate::keys::KeyPart<'_>]) -> Result<String, Error> {
        crate::keys::online_key_after(&self.key_prefix, &self.entity, key)
    }

    /// A row group's value: the row's event time and features.
    pub fn encode(&self, event_time: i64, values: &[Value]) -> Result<Vec<u8>, Error> {
        Ok(self.codec.encode(event_time, values)?)
    }

    /// A window group's value; its event time is the latest row's.
    pub fn encode_window(&self, rows: &WindowRows) -> Result<Vec<u8>, Error> {
        let latest = rows.ts.last().copied().unwrap_or(i64::MIN);
        Ok(self.codec.encode(latest, &rows.to_values())?)
    }

    /// What a request at `at` sees for a key whose stored value is `stored`: its status, the
    /// value's event time, and the features (as the as-of join gives an event at `at`).
    pub fn values_at(
        &self,
        stored: Option<&[u8]>,
        at: i64,
    ) -> Result<(KeyStatus, Option<i64>, Vec<Value>), Error> {
        match (&self.stored, stored) {
            (Stored::Row { .. }, None) => Ok((
                KeyStatus::NotFound,
                None,
                vec![Value::Null; self.features.len()],
            )),
            (Stored::Row { ttl_us }, Some(b)) => {
                let row = self.codec.decode(b)?;
                let rule = AsOfRule::Latest { ttl_us: *ttl_us };
                match rule.pick(at, Some((row.event_time, row.values))) {
                    AsOf::Found(values) => Ok((KeyStatus::Found, Some(row.event_time), values)),
                    _ => Ok((
                        KeyStatus::Expired,
                        Some(row.event_time),
                        vec![Value::Null; self.features.len()],
                    )),
                }
            }
            (Stored::Window { features }, None) => Ok((
                KeyStatus::NotFound,
                None,
                WindowRows::empty(features).fold(features, at),
            )),
            (Stored::Window { features }, Some(b)) => {
                let row = self.codec.decode(b)?;
                let rows = WindowRows::from_values(features, row.values)?;
                Ok((
                    KeyStatus::Found,
                    Some(row.event_time),
                    rows.fold(features, at),
                ))
            }
        }
    }
}
