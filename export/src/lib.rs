//! What a model consumes, described once from the registry, and rendered for the layers around
//! it: an Arrow schema with per-field metadata, a TensorFlow feature spec, a Python input module,
//! Triton's `input`/`output` blocks, and a graph schema for graph samplers.
//!
//! A model's **inputs** are spec columns in the model's input order, each with the encoding
//! its compiled expression was given ([`fstore_core::encoding`]: dense, categorical with its
//! id count, text or sequence).
//!
//! Its **outputs** are the spec's labels. The same description feeds every format, so a trainer
//! reading samples and a server asking `GetModelInputs` agree on names, order and defaults.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use serde::Serialize;
use serde_json::{Value as Json, json};

use fstore_core::types::DataType;
use fstore_registry::compiled::CompiledSpec;
use fstore_registry::model::{
    Binding, ColumnRole, Definitions, ObjectRef, OutputColumn, SampleSpec,
};
use fstore_registry::{Error, Result};

pub use fstore_core::encoding::Encoding;

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Origin {
    /// A feature of a joined group.
    Feature {
        join: String,
        group: String,
        feature: String,
    },
    /// A transform over the event and the features.
    Transform { expr: String },
    /// A column of the label event.
    Event { column: String },
}

/// One model input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Input {
    pub name: String,
    /// Position in the model's input order.
    pub index: usize,
    #[serde(rename = "type")]
    pub dtype: DataType,
    #[serde(flatten)]
    pub origin: Origin,
    pub encoding: Encoding,
    /// What a NULL becomes in the model's input.
    pub default: Json,
}

/// One model output (a label of the spec).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: DataType,
}

/// A model's inputs and outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    /// The model (or the spec, exported as a model of all its features and transforms).
    pub model: String,
    pub spec: String,
    pub registry_version: u64,
    pub spec_fingerprint: String,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
}

fn default_of(e: &Encoding) -> Json {
    match e {
        Encoding::Dense => json!(0.0),
        Encoding::Categorical { missing_id, .. } => json!(missing_id),
        Encoding::Text => json!(""),
        Encoding::Sequence => json!([]),
    }
}

fn spec_columns<'a>(spec: &'a SampleSpec, names: &[String]) -> Result<Vec<&'a OutputColumn>> {
    names
        .iter()
        .map(|n| {
            spec.columns.iter().find(|c| &c.name == n).ok_or_else(|| {
                Error::Invalid(format!(
                    "\"{n}\" is not a column of sample spec \"{}\"",
                    spec.name
                ))
            })
        })
        .collect()
}

impl Signature {
    /// The signature of a model, or of a spec (all its feature and transform columns).
    pub fn of(defs: &Definitions, name: &str, registry_version: u64) -> Result<Self> {
        let Binding {
            model,
            spec,
            inputs,
            outputs,
        } = defs.binding(name)?;
        // Encodings were decided when the spec's columns were compiled.
        let compiled = CompiledSpec::compile(defs, &spec.name)?;
        let inputs = spec_columns(spec, &inputs)?
            .into_iter()
            .enumerate()
            .map(|(index, c)| {
                let origin = match &c.role {
                    ColumnRole::Feature { join, feature } => Origin::Feature {
                        join: join.clone(),
                        group: spec
                            .joins
                            .iter()
                            .find(|j| &j.alias == join)
                            .map_or_else(|| join.clone(), |j| j.group.clone()),
                        feature: feature.clone(),
                    },
                    ColumnRole::Transform => Origin::Transform {
                        expr: c.expr.clone(),
                    },
                    ColumnRole::Event { column }
                    | ColumnRole::EventTime { column }
                    | ColumnRole::Label { column } => Origin::Event {
                        column: column.clone(),
                    },
                };
                let encoding = compiled
                    .outputs
                    .iter()
                    .find(|o| o.name == c.name)
                    .map_or(Encoding::Dense, |o| o.encoding.clone());
                Input {
                    name: c.name.clone(),
                    index,
                    dtype: c.dtype.clone(),
                    origin,
                    default: default_of(&encoding),
                    encoding,
                }
            })
            .collect();
        let outputs = spec_columns(spec, &outputs)?
            .into_iter()
            .map(|c| Output {
                name: c.name.clone(),
                dtype: c.dtype.clone(),
            })
            .collect();
        Ok(Signature {
            model,
            spec: spec.name.clone(),
            registry_version,
            spec_fingerprint: ObjectRef::Spec(spec).fingerprint(),
            inputs,
            outputs,
        })
    }

    /// The description as JSON (the `json` format, and what the other formats embed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("signatures serialize")
    }

    /// The sample schema (every spec column, in sample order) with per-field metadata:
    /// `fstore.role`, `fstore.type`, and for model inputs `fstore.input_index`,
    /// `fstore.encoding`, `fstore.default`, `fstore.num_ids`, `fstore.missing_id`,
    /// `fstore.hash_buckets`, `fstore.boundaries`, `fstore.group`, `fstore.feature`,
    /// `fstore.transform`; outputs carry `fstore.output`.
    pub fn arrow_schema(&self, spec: &SampleSpec) -> Schema {
        let fields: Vec<Field> = spec
            .columns
            .iter()
            .map(|c| {
                let mut meta: BTreeMap<String, String> = BTreeMap::new();
                let role = match &c.role {
                    ColumnRole::Event { .. } => "event",
                    ColumnRole::EventTime { .. } => "event_time",
                    ColumnRole::Label { .. } => "label",
                    ColumnRole::Feature { .. } => "feature",
                    ColumnRole::Transform => "transform",
                };
                meta.insert("fstore.role".into(), role.into());
                meta.insert("fstore.type".into(), c.dtype.to_string());
                if let Some(i) = self.inputs.iter().find(|i| i.name == c.name) {
                    meta.insert("fstore.input_index".into(), i.index.to_string());
                    meta.insert("fstore.default".into(), i.default.to_string());
                    match &i.origin {
                        Origin::Feature { group, feature, .. } => {
                            meta.insert("fstore.group".into(), group.clone());
                            meta.insert("fstore.feature".into(), feature.clone());
                        }
                        Origin::Transform { expr } => {
                            meta.insert("fstore.transform".into(), expr.clone());
                        }
                        Origin::Event { column } => {
                            meta.insert("fstore.event_column".into(), column.clone());
                        }
                    }
                    let (kind, extra) = match &i.encoding {
                        Encoding::Dense => ("dense", vec![]),
                        Encoding::Text => ("text", vec![]),
                        Encoding::Sequence => ("sequence", vec![]),
                        Encoding::Categorical {
                            num_ids,
                            missing_id,
                            hash_buckets,
                            boundaries,
                        } => {
                            let mut v = vec![
                                ("fstore.num_ids", num_ids.to_string()),
                                ("fstore.missing_id", missing_id.to_string()),
                            ];
                            if let Some(n) = hash_buckets {
                                v.push(("fstore.hash_buckets", n.to_string()));
                            }
                            if let Some(b) = boundaries {
                                v.push(("fstore.boundaries", json!(b).to_string()));
                            }
                            ("categorical", v)
                        }
                    };
                    meta.insert("fstore.encoding".into(), kind.into());
                    for (k, v) in extra {
                        meta.insert(k.into(), v);
                    }
                }
                if self.outputs.iter().any(|o| o.name == c.name) {
                    meta.insert("fstore.output".into(), "true".into());
                }
                Field::new(&c.name, c.dtype.to_arrow(), true)
                    .with_metadata(meta.into_iter().collect())
            })
            .collect();
        let meta = [
            ("fstore.model", self.model.clone()),
            ("fstore.spec", self.spec.clone()),
            ("fstore.registry_version", self.registry_version.to_string()),
            ("fstore.spec_fingerprint", self.spec_fingerprint.clone()),
            (
                "fstore.inputs",
                json!(self.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()).to_string(),
            ),
            (
                "fstore.outputs",
                json!(self.outputs.iter().map(|o| &o.name).collect::<Vec<_>>()).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Schema::new_with_metadata(fields, meta)
    }

    /// The schema as an Arrow IPC stream holding only the schema message.
    pub fn arrow_ipc(&self, spec: &SampleSpec) -> Result<Vec<u8>> {
        let schema = Arc::new(self.arrow_schema(spec));
        let mut buf = Vec::new();
        {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &schema)
                .map_err(|e| Error::Internal(e.to_string()))?;
            w.finish().map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(buf)
    }

    /// The schema as JSON: fields with name, Arrow type, nullability and metadata.
    pub fn arrow_json(&self, spec: &SampleSpec) -> String {
        let schema = self.arrow_schema(spec);
        let fields: Vec<Json> = schema
            .fields()
            .iter()
            .map(|f| {
                json!({
                    "name": f.name(),
                    "type": f.data_type().to_string(),
                    "nullable": f.is_nullable(),
                    "metadata": f.metadata().iter().collect::<BTreeMap<_, _>>(),
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({
            "fields": fields,
            "metadata": schema.metadata().iter().collect::<BTreeMap<_, _>>(),
        }))
        .expect("json")
    }

    /// A feature spec for `tf.io.parse_example`-style readers: per input a `FixedLenFeature`
    /// (shape `[]`, dtype, default) or a `VarLenFeature` for sequences; labels likewise.
    pub fn tf_spec(&self) -> String {
        let feature = |dtype: &DataType, enc: Option<&Encoding>, default: Option<&Json>| {
            let tf_dtype = match (enc, dtype) {
                (Some(Encoding::Categorical { .. }), _) => "int64",
                (Some(Encoding::Dense), _) => "float32",
                (_, DataType::String) => "string",
                (_, DataType::Boolean | DataType::Int64 | DataType::Timestamp) => "int64",
                (_, DataType::Double) => "float32",
                (_, DataType::List(inner)) => match inner.as_ref() {
                    DataType::String => "string",
                    DataType::Double => "float32",
                    _ => "int64",
                },
            };
            match (enc, dtype) {
                (Some(Encoding::Sequence), _) | (None, DataType::List(_)) => json!({
                    "type": "VarLenFeature",
                    "dtype": tf_dtype,
                }),
                _ => {
                    let mut f = json!({"type": "FixedLenFeature", "shape": [], "dtype": tf_dtype});
                    if let Some(d) = default {
                        f["default_value"] = d.clone();
                    }
                    f
                }
            }
        };
        let inputs: serde_json::Map<String, Json> = self
            .inputs
            .iter()
            .map(|i| {
                (
                    i.name.clone(),
                    feature(&i.dtype, Some(&i.encoding), Some(&i.default)),
                )
            })
            .collect();
        let labels: serde_json::Map<String, Json> = self
            .outputs
            .iter()
            .map(|o| (o.name.clone(), feature(&o.dtype, None, None)))
            .collect();
        serde_json::to_string_pretty(&json!({
            "model": self.model,
            "spec": self.spec,
            "spec_fingerprint": self.spec_fingerprint,
            "features": inputs,
            "labels": labels,
            "input_order": self.inputs.iter().map(|i| &i.name).collect::<Vec<_>>(),
        }))
        .expect("json")
    }

    /// Triton's `input` and `output` blocks (protobuf text format of `ModelConfig`): one input
    /// per model input in order, as the Python module's `to_inputs` and `from_model_inputs`
    /// give them (dense FP32, categorical INT64, text BYTES, sequences of variable length);
    /// one output per label, a score (FP32).
    pub fn triton(&self) -> String {
        let mut out = format!(
            "# Inputs of model \"{}\" (spec \"{}\", registry version {}, spec fingerprint {}),\n# generated by `fstore export --format triton`. Names and order match GetModelInputs.\n",
            self.model, self.spec, self.registry_version, self.spec_fingerprint
        );
        out.push_str("input [\n");
        for (n, i) in self.inputs.iter().enumerate() {
            let (t, dims) = match &i.encoding {
                Encoding::Dense => ("TYPE_FP32", "[ 1 ]"),
                Encoding::Categorical { .. } => ("TYPE_INT64", "[ 1 ]"),
                Encoding::Text => ("TYPE_STRING", "[ 1 ]"),
                Encoding::Sequence => (
                    match &i.dtype {
                        DataType::List(inner) if **inner == DataType::String => "TYPE_STRING",
                        DataType::List(inner) if **inner == DataType::Double => "TYPE_FP32",
                        _ => "TYPE_INT64",
                    },
                    "[ -1 ]",
                ),
            };
            let sep = if n + 1 < self.inputs.len() { "," } else { "" };
            let _ = writeln!(
                out,
                "  {{\n    name: \"{}\"\n    data_type: {t}\n    dims: {dims}\n  }}{sep}",
                i.name
            );
        }
        out.push_str("]\noutput [\n");
        for (n, o) in self.outputs.iter().enumerate() {
            let sep = if n + 1 < self.outputs.len() { "," } else { "" };
            let _ = writeln!(
                out,
                "  {{\n    name: \"{}\"\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n  }}{sep}",
                o.name
            );
        }
        out.push_str("]\n");
        out
    }
}

/// A graph schema for graph samplers: node types are the entities a spec joins, with their
/// groups' features; an edge type is the spec's event source when it references two entities
/// (its first two distinct ones: source → destination), with its other columns as edge features.
pub fn graph_schema(defs: &Definitions, spec_name: &str, registry_version: u64) -> Result<Json> {
    let spec = defs.spec(spec_name)?;
    let source = defs.source(&spec.source)?;
    let mut nodes: Vec<(String, Json)> = Vec::new();
    let mut ends: Vec<(String, Vec<String>)> = Vec::new();
    for j in &spec.joins {
        let g = defs.group(&j.group)?;
        let entity = defs.entity(&g.entity)?;
        if !ends.iter().any(|(e, _)| e == &entity.name) {
            ends.push((entity.name.clone(), j.keys.clone()));
        }
        let features: Vec<Json> = g
            .features()
            .into_iter()
            .map(|(f, t)| json!({"name": format!("{}.{f}", g.name), "group": g.name, "feature": f, "type": t.to_string()}))
            .collect();
        match nodes.iter_mut().find(|(n, _)| n == &entity.name) {
            Some((_, node)) => {
                if let Some(list) = node["features"].as_array_mut() {
                    for f in features {
                        if !list.contains(&f) {
                            list.push(f);
                        }
                    }
                }
            }
            None => nodes.push((
                entity.name.clone(),
                json!({
                    "type": entity.name,
                    "keys": entity.keys.iter().map(|k| json!({"name": k.name, "type": k.dtype.to_string()})).collect::<Vec<_>>(),
                    "features": features,
                    "table": format!("nodes/{}.parquet", entity.name),
                }),
            )),
        }
    }
    let mut edges = Vec::new();
    if ends.len() >= 2 {
        let (src, dst) = (&ends[0], &ends[1]);
        let key_cols: Vec<&String> = src.1.iter().chain(&dst.1).collect();
        edges.push(json!({
            "type": source.name,
            "source": {"node": src.0, "columns": src.1},
            "destination": {"node": dst.0, "columns": dst.1},
            "event_time": source.event_time,
            "features": source.columns.iter()
                .filter(|c| !key_cols.contains(&&c.name) && c.name != source.event_time)
                .map(|c| json!({"name": c.name, "type": c.dtype.to_string()}))
                .collect::<Vec<_>>(),
            "table": format!("edges/{}.parquet", source.name),
        }));
    }
    Ok(json!({
        "spec": spec.name,
        "registry_version": registry_version,
        "spec_fingerprint": ObjectRef::Spec(spec).fingerprint(),
        "nodes": nodes.into_iter().map(|(_, n)| n).collect::<Vec<_>>(),
        "edges": edges,
    }))
}

/// The Python input module's code (see [`Signature::python_module`]).
const PYTHON_TEMPLATE: &str = include_str!("../templates/model_inputs.py");

impl Signature {
    /// A Python module (numpy + pyarrow) that reads sample Parquet into model inputs in this
    /// signature's order, and converts `GetModelInputs` responses the same way.
    pub fn python_module(&self, module: &str) -> String {
        let mut table = String::new();
        for i in &self.inputs {
            let what = match &i.encoding {
                Encoding::Dense => "dense".to_string(),
                Encoding::Categorical { num_ids, .. } => format!("categorical, {num_ids} ids"),
                Encoding::Text => "text".to_string(),
                Encoding::Sequence => "sequence".to_string(),
            };
            let origin = match &i.origin {
                Origin::Feature { group, feature, .. } => format!("{group}.{feature}"),
                Origin::Transform { expr } => expr.clone(),
                Origin::Event { column } => format!("event column {column}"),
            };
            let _ = writeln!(
                table,
                "    {:>2}. {} ({}, {what}, default {}): {origin}",
                i.index, i.name, i.dtype, i.default
            );
        }
        PYTHON_TEMPLATE
            .replace("{MODEL}", &self.model)
            .replace("{SPEC}", &self.spec)
            .replace("{MODULE}", module)
            .replace("{VERSION}", &self.registry_version.to_string())
            .replace("{FINGERPRINT}", &self.spec_fingerprint)
            .replace("{INPUT_TABLE}", &table)
            // A JSON string literal is a Python string literal with the same meaning.
            .replace(
                "{SIGNATURE}",
                &serde_json::to_string(&serde_json::to_string(self).expect("signatures serialize"))
                    .expect("strings serialize"),
            )
    }
}
