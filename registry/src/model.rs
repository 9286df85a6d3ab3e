//! The registry's objects: entities, sources, feature groups, sample specs and model bindings.
//!
//! Expressions are stored as canonical SQL text whose identifiers are already resolved
//! (qualified where the scope has several tables), so the text alone is the definition and its
//! fingerprint does not change with formatting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use fstore_core::semantics::aggregate::Aggregate;
pub use fstore_core::types::{Column, DataType};

/// A thing features describe (a user, an item, a user×item pair), identified by one or two key
/// columns of type STRING or INT64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub keys: Vec<Column>,
}

/// A table of timestamped rows, read in batch from Parquet and in streaming from a Kafka topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    pub columns: Vec<Column>,
    /// The TIMESTAMP column that orders the rows in event time.
    pub event_time: String,
    /// Parquet file, folder or glob; relative paths are relative to the definitions folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Kafka topic carrying one JSON object per row, keyed by column name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl Source {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Features of one entity, computed from one source and stored together as one online value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureGroup {
    pub name: String,
    /// Bumped by the author for a breaking change; part of the online key.
    pub version: u32,
    pub entity: String,
    pub source: String,
    /// The source columns bound to the entity's key columns, in key order.
    pub keys: Vec<String>,
    #[serde(flatten)]
    pub kind: GroupKind,
}

/// Whether a group holds each key's latest row or sliding-window aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupKind {
    Row(RowGroup),
    Window(WindowGroup),
}

/// Each source row replaces the key's features; the as-of join picks the latest row at or
/// before the event, unless it is older than the TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowGroup {
    /// Microseconds; `None` never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_us: Option<i64>,
    /// Source columns that order rows of one key with the same event time: the greatest wins.
    /// Remaining ties are broken by the total order of the encoded feature values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tie_break: Vec<String>,
    pub features: Vec<RowFeature>,
}

/// A feature of a row group: an expression over one source row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFeature {
    pub name: String,
    pub expr: String,
    #[serde(rename = "type")]
    pub dtype: DataType,
}

/// Sliding-window aggregates over the key's source rows in `[t - window, t)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowGroup {
    pub features: Vec<WindowFeature>,
}

/// A window feature: `AGG(input) FILTER (WHERE filter) OVER window`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowFeature {
    pub name: String,
    pub agg: Aggregate,
    /// `None` for `COUNT(*)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub window_us: i64,
    #[serde(rename = "type")]
    pub dtype: DataType,
}

/// Training samples: one row per label event, joined as of the event time to feature groups,
/// then projected through transforms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSpec {
    pub name: String,
    /// The label/event source (the spine).
    pub source: String,
    pub labels: Vec<String>,
    pub joins: Vec<Join>,
    pub columns: Vec<OutputColumn>,
}

/// A feature group joined to the events on event columns bound to the group's entity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    pub group: String,
    /// The name features of this join are qualified with (the group name unless aliased).
    pub alias: String,
    /// Event columns bound to the entity key columns, in key order.
    pub keys: Vec<String>,
}

/// What an output column of a sample is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ColumnRole {
    /// A column of the event passed through.
    Event { column: String },
    /// The event's event-time column passed through.
    EventTime { column: String },
    /// A label column passed through.
    Label { column: String },
    /// A group feature passed through.
    Feature { join: String, feature: String },
    /// Any other expression.
    Transform,
}

/// An output column: a canonical expression over the event's columns (qualified by the source
/// name) and the joined features (qualified by the join alias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputColumn {
    pub name: String,
    pub expr: String,
    #[serde(rename = "type")]
    pub dtype: DataType,
    #[serde(flatten)]
    pub role: ColumnRole,
}

/// A named model trained on a sample spec: what trainers and GPU inference read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub spec: String,
    /// Spec columns fed to the model, in input order.
    pub inputs: Vec<String>,
    /// Spec columns the model predicts (the spec's labels).
    pub outputs: Vec<String>,
}

/// Every object of one registry version, each kind sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    #[serde(default)]
    pub entities: BTreeMap<String, Entity>,
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    #[serde(default)]
    pub groups: BTreeMap<String, FeatureGroup>,
    #[serde(default)]
    pub specs: BTreeMap<String, SampleSpec>,
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
}

/// The kinds of registry objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Entity,
    Source,
    Group,
    Spec,
    Model,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Entity,
        Kind::Source,
        Kind::Group,
        Kind::Spec,
        Kind::Model,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Entity => "entity",
            Kind::Source => "source",
            Kind::Group => "feature group",
            Kind::Spec => "sample spec",
            Kind::Model => "model",
        }
    }
}

/// A reference to any object, for listings, diffs and fingerprints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ObjectRef<'a> {
    Entity(&'a Entity),
    Source(&'a Source),
    Group(&'a FeatureGroup),
    Spec(&'a SampleSpec),
    Model(&'a Model),
}

impl ObjectRef<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            ObjectRef::Entity(_) => Kind::Entity,
            ObjectRef::Source(_) => Kind::Source,
            ObjectRef::Group(_) => Kind::Group,
            ObjectRef::Spec(_) => Kind::Spec,
            ObjectRef::Model(_) => Kind::Model,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ObjectRef::Entity(o) => &o.name,
            ObjectRef::Source(o) => &o.name,
            ObjectRef::Group(o) => &o.name,
            ObjectRef::Spec(o) => &o.name,
            ObjectRef::Model(o) => &o.name,
        }
    }

    /// The object's canonical JSON: field order fixed by the model, maps sorted.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("registry objects serialize")
    }

    /// Hex SHA-256 of the canonical JSON, prefixed with the kind so equal bodies of different
    /// kinds differ.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.kind().label().as_bytes());
        h.update([0]);
        h.update(self.canonical_json().as_bytes());
        hex::encode(h.finalize())
    }
}

impl Definitions {
    /// Every object, kinds in dependency order, names sorted.
    pub fn objects(&self) -> Vec<ObjectRef<'_>> {
        let mut out = Vec::new();
        out.extend(self.entities.values().map(ObjectRef::Entity));
        out.extend(self.sources.values().map(ObjectRef::Source));
        out.extend(self.groups.values().map(ObjectRef::Group));
        out.extend(self.specs.values().map(ObjectRef::Spec));
        out.extend(self.models.values().map(ObjectRef::Model));
        out
    }

    /// Objects with this name, of any kind.
    pub fn find(&self, name: &str) -> Vec<ObjectRef<'_>> {
        self.objects()
            .into_iter()
            .filter(|o| o.name() == name)
            .collect()
    }

    /// A fingerprint of the whole set of definitions.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for o in self.objects() {
            h.update(o.fingerprint().as_bytes());
        }
        hex::encode(h.finalize())
    }

    pub fn group(&self, name: &str) -> crate::Result<&FeatureGroup> {
        self.groups
            .get(name)
            .ok_or_else(|| unknown("feature group", name, self.groups.keys()))
    }

    pub fn spec(&self, name: &str) -> crate::Result<&SampleSpec> {
        self.specs
            .get(name)
            .ok_or_else(|| unknown("sample spec", name, self.specs.keys()))
    }

    pub fn source(&self, name: &str) -> crate::Result<&Source> {
        self.sources
            .get(name)
            .ok_or_else(|| unknown("source", name, self.sources.keys()))
    }

    pub fn entity(&self, name: &str) -> crate::Result<&Entity> {
        self.entities
            .get(name)
            .ok_or_else(|| unknown("entity", name, self.entities.keys()))
    }

    pub fn model(&self, name: &str) -> crate::Result<&Model> {
        self.models
            .get(name)
            .ok_or_else(|| unknown("model", name, self.models.keys()))
    }

    /// What a model consumes, by the model's name or by a spec's name (which stands for a
    /// model of all the spec's default inputs, predicting its labels).
    pub fn binding(&self, name: &str) -> crate::Result<Binding<'_>> {
        if let Some(m) = self.models.get(name) {
            return Ok(Binding {
                model: m.name.clone(),
                spec: self.spec(&m.spec)?,
                inputs: m.inputs.clone(),
                outputs: m.outputs.clone(),
            });
        }
        match self.specs.get(name) {
            Some(spec) => Ok(Binding {
                model: spec.name.clone(),
                spec,
                inputs: spec.default_inputs(),
                outputs: spec.labels.clone(),
            }),
            None => {
                let mut known: Vec<&String> = self.models.keys().chain(self.specs.keys()).collect();
                known.sort_unstable();
                Err(unknown("model or sample spec", name, known.into_iter()))
            }
        }
    }
}

/// A model's view of its sample spec: which columns go in, in order, and which come out.
#[derive(Debug, Clone)]
pub struct Binding<'a> {
    pub model: String,
    pub spec: &'a SampleSpec,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl SampleSpec {
    /// A model's inputs when it lists none: the spec's feature and transform columns, in
    /// column order.
    pub fn default_inputs(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| matches!(c.role, ColumnRole::Feature { .. } | ColumnRole::Transform))
            .map(|c| c.name.clone())
            .collect()
    }
}

fn unknown<'a>(
    kind: &'static str,
    name: &str,
    known: impl Iterator<Item = &'a String>,
) -> crate::Error {
    crate::Error::Unknown {
        kind,
        name: name.to_string(),
        known: known.cloned().collect(),
    }
}

impl FeatureGroup {
    /// The feature names and types, in stored order.
    pub fn features(&self) -> Vec<(&str, &DataType)> {
        match &self.kind {
            GroupKind::Row(r) => r
                .features
                .iter()
                .map(|f| (f.name.as_str(), &f.dtype))
                .collect(),
            GroupKind::Window(w) => w
                .features
                .iter()
                .map(|f| (f.name.as_str(), &f.dtype))
                .collect(),
        }
    }

    pub fn ttl_us(&self) -> Option<i64> {
        match &self.kind {
            GroupKind::Row(r) => r.ttl_us,
            GroupKind::Window(_) => None,
        }
    }
}
