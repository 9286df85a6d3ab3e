//! The one expression compiler: parses and plans fstore expressions with DataFusion and
//! fstore's functions, so type checking at definition time and evaluation in the batch,
//! streaming and online engines share one implementation.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionConfig;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
use datafusion::sql::sqlparser::ast::ExprWithAlias as SqlExprWithAlias;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Tokenizer;

use crate::encoding::Encoding;
use crate::types::{DataType, UTC};
use crate::{Error, Result};

/// A planned expression with its output name and type.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    pub name: String,
    pub dtype: DataType,
    pub expr: Arc<dyn PhysicalExpr>,
    /// How a model receives the value (for a sample spec's output columns).
    pub encoding: Encoding,
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

/// One column of an expression's scope: an optional qualifier (a table or join alias) and a name.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    pub qualifier: Option<String>,
    pub name: String,
    pub dtype: DataType,
}

/// A planned expression and the fstore type it produces.
#[derive(Debug, Clone)]
pub struct Planned {
    /// DataFusion's logical expression, already cast to the fstore type where needed.
    pub expr: Expr,
    pub dtype: DataType,
}

/// Plans expressions against scopes. Identifiers are case-sensitive.
#[derive(Debug)]
pub struct ExprCompiler {
    state: SessionState,
}

impl Default for ExprCompiler {
    fn default() -> Self {
        Self::new()
    }
}

impl ExprCompiler {
    pub fn new() -> Self {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        for udf in crate::functions::udfs() {
            state
                .register_udf(udf)
                .expect("registering a scalar function cannot fail");
        }
        ExprCompiler { state }
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The DataFusion schema of a scope.
    pub fn scope_schema(scope: &[ScopeColumn]) -> Result<DFSchema> {
        let fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> = scope
            .iter()
            .map(|c| {
                (
                    c.qualifier.as_deref().map(Into::into),
                    Arc::new(Field::new(&c.name, c.dtype.to_arrow(), true)),
                )
            })
            .collect();
        Ok(DFSchema::new_with_metadata(fields, Default::default())?)
    }

    /// Plans an already parsed expression; the result is cast to an fstore type when DataFusion
    /// produces a narrower or differently encoded one (Int32 → INT64, Float32 → DOUBLE,
    /// Utf8View → STRING, other timestamp units → TIMESTAMP).
    pub fn plan(&self, sql: SqlExpr, schema: &DFSchema) -> Result<Planned> {
        let expr = self
            .state
            .create_logical_expr_from_sql_expr(
                SqlExprWithAlias {
                    expr: sql,
                    alias: None,
                },
                schema,
            )
            .map_err(|e| Error::Invalid(clean_message(&e.to_string())))?;
        if expr.exists(|e| {
            Ok(matches!(
                e,
                Expr::AggregateFunction(_) | Expr::WindowFunction(_)
            ))
        })? {
            return Err(Error::Invalid(
                "aggregate and window functions are not allowed here".into(),
            ));
        }
        if expr.is_volatile() {
            return Err(Error::Invalid(
                "non-deterministic functions (random, uuid, …) would make batch and stream samples differ".into(),
            ));
        }
        let arrow_type = expr
            .get_type(schema)
            .map_err(|e| Error::Invalid(clean_message(&e.to_string())))?;
        let (dtype, cast) = to_fstore_type(&arrow_type).ok_or_else(|| {
            Error::Invalid(format!(
                "the expression's type {arrow_type} is not an fstore type; CAST it to one of {}",
                crate::types::TYPE_NAMES
            ))
        })?;
        let expr = if cast {
            expr.cast_to(&dtype.to_arrow(), schema)?
        } else {
            expr
        };
        Ok(Planned { expr, dtype })
    }

    /// Parses canonical SQL text (as stored in the registry) and plans it.
    pub fn plan_text(&self, sql: &str, schema: &DFSchema) -> Result<Planned> {
        self.plan(parse_expr(sql)?, schema)
    }

    /// An Arrow schema with plain (unqualified) fields for a scope, for evaluating engines.
    /// Plans `sql` over `scope` into an expression every engine evaluates: function rewrites
    /// (COALESCE into CASE, …) and constant folding happen here, once.
    pub fn compile(&self, name: &str, sql: &str, scope: &[ScopeColumn]) -> Result<CompiledExpr> {
        let schema: DFSchema = ExprCompiler::scope_schema(scope)?;
        let planned = self.plan_text(sql, &schema)?;
        let simplify = SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(Arc::clone(self.state().config_options()))
            .build();
        let simplified = ExprSimplifier::new(simplify).simplify(planned.expr)?;
        let encoding = Encoding::of(&simplified, &planned.dtype);
        let expr = self.state().create_physical_expr(simplified, &schema)?;
        Ok(CompiledExpr {
            name: name.to_string(),
            dtype: planned.dtype,
            expr,
            encoding,
        })
    }

    pub fn arrow_schema(scope: &[ScopeColumn]) -> Schema {
        Schema::new(
            scope
                .iter()
                .map(|c| Field::new(&c.name, c.dtype.to_arrow(), true))
                .collect::<Vec<_>>(),
        )
    }
}

/// Parses one SQL expression (canonical text from the registry).
pub fn parse_expr(sql: &str) -> Result<SqlExpr> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Invalid(format!("expression {sql:?}: {e}")))?;
    let mut p = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let e = p
        .parse_expr()
        .map_err(|e| Error::Invalid(format!("expression {sql:?}: {e}")))?;
    Ok(e)
}

/// The fstore type for an Arrow type, and whether a cast is needed to reach it.
fn to_fstore_type(t: &ArrowType) -> Option<(DataType, bool)> {
    let exact = DataType::from_arrow(t).filter(|d| &d.to_arrow() == t);
    if let Some(d) = exact {
        return Some((d, false));
    }
    let d = match t {
        ArrowType::Int8
        | ArrowType::Int16
        | ArrowType::Int32
        | ArrowType::UInt8
        | ArrowType::UInt16
        | ArrowType::UInt32
        | ArrowType::UInt64 => DataType::Int64,
        ArrowType::Float16 | ArrowType::Float32 => DataType::Double,
        ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::String,
        ArrowType::Timestamp(_, tz) if tz.as_deref().is_none_or(|z| z == UTC || z == "+00:00") => {
            DataType::Timestamp
        }
        ArrowType::Null => return None,
        ArrowType::List(f) | ArrowType::LargeList(f) => {
            DataType::List(Box::new(to_fstore_type(f.data_type())?.0))
        }
        _ => return None,
    };
    Some((d, true))
}

/// DataFusion prefixes its messages with the error class; users want the substance.
pub fn clean_message(msg: &str) -> String {
    let mut m = msg.trim();
    // "Function 'f' user-defined coercion failed with: Error during planning: <reason>. No function matches …"
    if let Some(i) = m.rfind("Error during planning: ") {
        m = &m[i + "Error during planning: ".len()..];
    }
    for prefix in [
        "Schema error: ",
        "Optimizer rule",
        "Execution error: ",
        "This feature is not implemented: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    if let Some(i) = m.find(" No function matches") {
        m = m[..i].trim_end_matches('.');
    }
    m.lines().next().unwrap_or(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Vec<ScopeColumn> {
        vec![
            ScopeColumn {
                qualifier: Some("e".into()),
                name: "age".into(),
                dtype: DataType::Int64,
            },
            ScopeColumn {
                qualifier: Some("e".into()),
                name: "city".into(),
                dtype: DataType::String,
            },
            ScopeColumn {
                qualifier: Some("e".into()),
                name: "score".into(),
                dtype: DataType::Double,
            },
        ]
    }

    #[test]
    fn types_of_transforms() {
        let c = ExprCompiler::new();
        let s = ExprCompiler::scope_schema(&scope()).unwrap();
        let t = |sql: &str| c.plan_text(sql, &s).map(|p| p.dtype);
        assert_eq!(t("bucketize(e.age, 18, 25, 35)").unwrap(), DataType::Int64);
        assert_eq!(t("hash_bucket(e.city, 100)").unwrap(), DataType::Int64);
        assert_eq!(t("log1p(e.score)").unwrap(), DataType::Double);
        assert_eq!(t("clip(e.age, 0, 100)").unwrap(), DataType::Int64);
        assert_eq!(t("clip(e.score, 0, 1)").unwrap(), DataType::Double);
        assert_eq!(
            t("CASE WHEN e.age > 30 THEN 'old' ELSE 'young' END").unwrap(),
            DataType::String
        );
        assert_eq!(t("COALESCE(e.score, 0.0) * 2").unwrap(), DataType::Double);
        assert_eq!(t("length(e.city)").unwrap(), DataType::Int64);
        assert_eq!(t("upper(e.city)").unwrap(), DataType::String);
        assert!(t("e.age + e.city").is_err());
        assert!(t("random()").is_err());
        assert!(t("sum(e.age)").is_err());
    }
}
