//! The one compiled form of feature groups and sample specs: physical expressions planned by
//! the shared [`ExprCompiler`], used by the batch engine, the streaming joiner and online
//! model inputs alike.
//!
//! A sample is computed in two steps:
//! 1. the **base row**: the event's columns, then each join's features (named `alias.feature`)
//!    as the as-of join and windows give them for the event's time;
//! 2. the **outputs**: the spec's column expressions evaluated over base rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;

use crate::codec::Value;
use crate::expr::{ExprCompiler, ScopeColumn};
use crate::model::{
    Aggregate, Definitions, Entity, FeatureGroup, GroupKind, Join, SampleSpec, Source,
};
use crate::rows::ColumnBuilder;
use crate::schema::spec_schema;
use crate::types::DataType;
use crate::{Error, Result};

/// A planned expression with its output name and type.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    pub name: String,
    pub dtype: DataType,
    pub expr: Arc<dyn PhysicalExpr>,
}

impl CompiledExpr {
    /// Evaluates over a batch whose schema is the one the expression was compiled against.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let out = self.expr.evaluate(batch)?.into_array(batch.num_rows())?;
        if out.data_type() != &self.dtype.to_arrow() {
            return Err(Error::Invalid(format!(
                "expression \"{}\" produced {}, expected {}",
                self.name,
                out.data_type(),
                self.dtype
            )));
        }
        Ok(out)
    }
}

/// A window feature's compiled parts.
#[derive(Debug, Clone)]
pub struct CompiledWindow {
    pub name: String,
    pub agg: Aggregate,
    pub window_us: i64,
    pub dtype: DataType,
    /// `None` for `COUNT(*)`.
    pub input: Option<CompiledExpr>,
    pub filter: Option<CompiledExpr>,
}

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

fn compile_expr(
    c: &ExprCompiler,
    name: &str,
    sql: &str,
    scope: &[ScopeColumn],
) -> Result<CompiledExpr> {
    let schema: DFSchema = ExprCompiler::scope_schema(scope)?;
    let planned = c.plan_text(sql, &schema)?;
    // Function rewrites (COALESCE → CASE, …) and constant folding happen here, once.
    let simplify = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(c.state().config_options()))
        .build();
    let simplified = ExprSimplifier::new(simplify).simplify(planned.expr)?;
    let expr = c.state().create_physical_expr(simplified, &schema)?;
    Ok(CompiledExpr {
        name: name.to_string(),
        dtype: planned.dtype,
        expr,
    })
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
                    .map(|f| compile_expr(c, &f.name, &f.expr, &scope))
                    .collect::<Result<_>>()?,
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
                                .map(|e| compile_expr(c, &f.name, e, &scope))
                                .transpose()?,
                            filter: f
                                .filter
                                .as_ref()
                                .map(|e| compile_expr(c, &f.name, e, &scope))
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
            .map(|col| compile_expr(&c, &col.name, &col.expr, &scope))
            .collect::<Result<Vec<_>>>()?;
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
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.base_schema.clone(), columns)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Evaluates the output columns over base rows.
    pub fn project(&self, base: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .outputs
            .iter()
            .map(|o| o.evaluate(base))
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| Error::Invalid(e.to_string()))
    }
}
