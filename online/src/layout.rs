//! How one feature group version lives online: its keys and its values' codec. The
//! materializer, the joiner and the server all go through this, so they agree byte for byte.

use fstore_registry::DataType;
use fstore_registry::codec::{Codec, Row, Value};
use fstore_registry::model::{Definitions, Entity, FeatureGroup, GroupKind};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::keys::online_key;

/// The fingerprint values carry: of the features' names and types in stored order, so a
/// compatible change to the group (its TTL, say) keeps reading the stored values, and a value
/// of another schema is refused.
pub fn value_fingerprint(features: &[(String, DataType)]) -> String {
    let mut h = Sha256::new();
    for (name, dtype) in features {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(dtype.to_string().as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Keys and values of one feature group version in one namespace.
#[derive(Debug, Clone)]
pub struct GroupLayout {
    pub namespace: String,
    pub group: FeatureGroup,
    pub entity: Entity,
    /// Features in stored order.
    pub features: Vec<(String, DataType)>,
    codec: Codec,
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
        let codec = Codec::new(
            &value_fingerprint(&features),
            features.iter().map(|(_, t)| t.clone()).collect(),
        )?;
        Ok(GroupLayout {
            namespace: namespace.to_string(),
            group,
            entity,
            features,
            codec,
        })
    }

    /// The TTL of a row group; `None` for no TTL or a window group.
    pub fn ttl_us(&self) -> Option<i64> {
        match &self.group.kind {
            GroupKind::Row(r) => r.ttl_us,
            GroupKind::Window(_) => None,
        }
    }

    /// The online key of an entity key.
    pub fn key(&self, key: &[Value]) -> Result<String, Error> {
        online_key(
            &self.namespace,
            &self.group.name,
            self.group.version,
            &self.entity,
            key,
        )
    }

    pub fn encode(&self, event_time: i64, values: &[Value]) -> Result<Vec<u8>, Error> {
        Ok(self.codec.encode(event_time, values)?)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Row, Error> {
        Ok(self.codec.decode(bytes)?)
    }
}
