//! The one compiled form of feature groups and sample specs: physical expressions planned by
//! the shared [`ExprCompiler`], used by the batch engine, the streaming joiner and online
//! model inputs alike.
//!
//! A sample is computed in two steps:
//! 1. the **base row**: the event's columns, then each join's features (named `alias.feature`)
//!    as the as-of join and windows give them for the event's time;
//! 2. the **outputs**: the spec's column expressions evaluated over base rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use fstore_core::codec::Value;
pub use fstore_core::expr::CompiledExpr;
use fstore_core::expr::{ExprCompiler, ScopeColumn};
use fstore_core::rows::ColumnBuilder;
use fstore_core::semantics::asof::AsOfRule;
pub use fstore_core::semantics::window::CompiledWindow;
use fstore_core::types::DataType;

use crate::model::{Definitions, Entity, FeatureGroup, GroupKind, Join, SampleSpec, Source};
use crate::schema::spec_schema;
use crate::{Error, Result};

/// How a group turns source rows into feature values.
#[derive(Debug, Clone)]
pub enum CompiledGroupKind {
    Row {
        ttl_us: Option<i64>,
        tie_break: Vec<usize>,
        features: Vec<CompiledExpr>,
    },
    Window {
        features: Vec<CompiledWindow>,
    },
}

impl CompiledGroupKind {
    /// The as-of rule of a group of this kind.
    pub fn rule(&self) -> AsOfRule {
        match self {
            CompiledGroupKind::Row { ttl_us, .. } => AsOfRule::Latest { ttl_us: *ttl_us },
            CompiledGroupKind::Window { features } => AsOfRule::windows(features),
        }
    }
}

/// A feature group compiled against its source's schema.
#[derive(Debug, Clone)]
pub struct CompiledGroup {
    pub group: FeatureGroup,
    pub entity: Entity,
    pub source: Source,
    /// The source rows' Arrow schema, as readers produce it (no metadata).
    pub source_schema: SchemaRef,
    /// Source column indices of the entity key, in key order.
    pub key_columns: Vec<usize>,
    pub ts_column: usize,
    pub kind: CompiledGroupKind,
}

/// A join of a compiled group to the events.
#[derive(Debug, Clone)]
pub struct CompiledJoin {
    pub join: Join,
    /// Event column indices bound to the entity key, in key order.
    pub event_keys: Vec<usize>,
    pub group: Arc<CompiledGroup>,
}

/// A sample spec, compiled.
#[derive(Debug, Clone)]
pub struct CompiledSpec {
    pub spec: SampleSpec,
    pub source: Source,
    pub source_schema: SchemaRef,
    pub ts_column: usize,
    pub joins: Vec<CompiledJoin>,
    /// Event columns, then each join's features named `alias.feature`.
    pub base_schema: SchemaRef,
    pub outputs: Vec<CompiledExpr>,
    pub output_schema: SchemaRef,
}

/// The plain Arrow schema of a source's rows.
pub fn plain_source_schema(s: &Source) -> SchemaRef {
    Arc::new(Schema::new(
        s.columns
            .iter()
            .map(|c| Field::new(&c.name, c.dtype.to_arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

fn column_index(s: &Source, name: &str) -> Result<usize> {
    s.columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| Error::Invalid(format!("source \"{}\" has no column \"{name}\"", s.name)))
}

impl CompiledGroup {
    pub fn compile(defs: &Definitions, group: &FeatureGroup, c: &ExprCompiler) -> Result<Self> {
        let source = defs.source(&group.source)?.clone();
        let entity = defs.entity(&group.entity)?.clone();
        let scope: Vec<ScopeColumn> = source
            .columns
            .iter()
            .map(|col| ScopeColumn {
                qualifier: None,
                name: col.name.clone(),
                dtype: col.dtype.clone(),
            })
            .collect();
        let key_columns = group
            .keys
            .iter()
            .map(|k| column_index(&source, k))
            .collect::<Result<Vec<_>>>()?;
        let ts_column = column_index(&source, &source.event_time)?;
        let kind = match &group.kind {
            GroupKind::Row(r) => CompiledGroupKind::Row {
                ttl_us: r.ttl_us,
                tie_break: r
                    .tie_break
                    .iter()
                    .map(|t| column_index(&source, t))
                    .collect::<Result<_>>()?,
                features: r
                    .features
                    .iter()
                    .map(|f| c.compile(&f.name, &f.expr, &scope))
                    .collect::<fstore_core::Result<_>>()?,
            },
            GroupKind::Window(w) => CompiledGroupKind::Window {
                features: w
                    .features
                    .iter()
                    .map(|f| {
                        Ok(CompiledWindow {
                            name: f.name.clone(),
                            agg: f.agg,
                            window_us: f.window_us,
                            dtype: f.dtype.clone(),
                            input: f
                                .input
                                .as_ref()
                                .map(|e| c.compile(&f.name, e, &scope))
                                .transpose()?,
                            filter: f
                                .filter
                                .as_ref()
                                .map(|e| c.compile(&f.name, e, &scope))
                                .transpose()?,
                        })
                    })
                    .collect::<Result<_>>()?,
            },
        };
        Ok(CompiledGroup {
            group: group.clone(),
            entity,
            source_schema: plain_source_schema(&source),
            source,
            key_columns,
            ts_column,
            kind,
        })
    }

    /// How the group's rows reach an event: its as-of rule.
    pub fn rule(&self) -> AsOfRule {
        self.kind.rule()
    }

    /// The features' names and types, in stored order.
    pub fn features(&self) -> Vec<(String, DataType)> {
        self.group
            .features()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    }
}

impl CompiledSpec {
    /// Compiles a spec of `defs` by name.
    pub fn compile(defs: &Definitions, name: &str) -> Result<Self> {
        let c = ExprCompiler::new();
        let spec = defs.spec(name)?.clone();
        let source = defs.source(&spec.source)?.clone();
        let mut scope: Vec<ScopeColumn> = source
            .columns
            .iter()
            .map(|col| ScopeColumn {
                qualifier: Some(source.name.clone()),
                name: col.name.clone(),
                dtype: col.dtype.clone(),
            })
            .collect();
        let mut base_fields: Vec<Field> = source
            .columns
            .iter()
            .map(|col| Field::new(&col.name, col.dtype.to_arrow(), true))
            .collect();
        let mut joins = Vec::new();
        for j in &spec.joins {
            let group = Arc::new(CompiledGroup::compile(defs, defs.group(&j.group)?, &c)?);
            for (f, t) in group.features() {
                base_fields.push(Field::new(format!("{}.{f}", j.alias), t.to_arrow(), true));
                scope.push(ScopeColumn {
                    qualifier: Some(j.alias.clone()),
                    name: f,
                    dtype: t,
                });
            }
            let event_keys = j
                .keys
                .iter()
                .map(|k| column_index(&source, k))
                .collect::<Result<_>>()?;
            joins.push(CompiledJoin {
                join: j.clone(),
                event_keys,
                group,
            });
        }
        let outputs = spec
            .columns
            .iter()
            .map(|col| c.compile(&col.name, &col.expr, &scope))
            .collect::<fstore_core::Result<Vec<_>>>()?;
        for (o, col) in outputs.iter().zip(&spec.columns) {
            if o.dtype != col.dtype {
                return Err(Error::Invalid(format!(
                    "column \"{}\" compiles to {}, registry says {}",
                    col.name, o.dtype, col.dtype
                )));
            }
        }
        Ok(CompiledSpec {
            output_schema: spec_schema(&spec),
            ts_column: column_index(&source, &source.event_time)?,
            source_schema: plain_source_schema(&source),
            base_schema: Arc::new(Schema::new(base_fields)),
            spec,
            source,
            joins,
            outputs,
        })
    }

    /// Samples from values held row by row (the joiner's events, online requests): `events`
    /// holds the event source's columns and `features` every join's feature columns in base
    /// schema order, each as one value per event.
    pub fn samples_from_values(
        &self,
        events: Vec<Vec<Value>>,
        features: Vec<Vec<Value>>,
    ) -> Result<RecordBatch> {
        self.project(&self.base_from_values(events, features)?)
    }

    /// The base rows of [`CompiledSpec::samples_from_values`], before the outputs.
    pub fn base_from_values(
        &self,
        events: Vec<Vec<Value>>,
        features: Vec<Vec<Value>>,
    ) -> Result<RecordBatch> {
        let mut builders = self.base_builders(events.first().map_or(0, Vec::len));
        if events.len() + features.len() != builders.len() {
            return Err(Error::Internal(format!(
                "{} event and {} feature columns for a base schema of {}",
                events.len(),
                features.len(),
                builders.len()
            )));
        }
        for (b, values) in builders.iter_mut().zip(events.into_iter().chain(features)) {
            for v in &values {
                b.append(v)?;
            }
        }
        self.base_from_builders(&mut builders)
    }

    /// One builder per base column, in base schema order: the event source's columns, then
    /// every join's features.
    pub fn base_builders(&self, capacity: usize) -> Vec<ColumnBuilder> {
        self.source
            .columns
            .iter()
            .map(|c| c.dtype.clone())
            .chain(
                self.joins
                    .iter()
                    .flat_map(|j| j.group.features().into_iter().map(|(_, t)| t)),
            )
            .map(|t| ColumnBuilder::new(&t, capacity))
            .collect()
    }

    /// The base rows appended to [`CompiledSpec::base_builders`]; they start over empty.
    pub fn base_from_builders(&self, builders: &mut [ColumnBuilder]) -> Result<RecordBatch> {
        let columns = builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<fstore_core::Result<Vec<_>>>()?;
        RecordBatch::try_new(self.base_schema.clone(), columns)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Evaluates the output columns over base rows.
    pub fn project(&self, base: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .outputs
            .iter()
            .map(|o| o.evaluate(base))
            .collect::<fstore_core::Result<Vec<_>>>()?;
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| Error::Invalid(e.to_string()))
    }
}
