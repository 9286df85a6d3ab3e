//! Semantic checks: names resolve, types agree, nothing is defined twice, no cycles; then
//! compilation into registry objects with canonical, fully resolved expressions.
//!
//! [`compile`] checks the statements kind by kind, so that what a statement names is defined
//! before it: entities and sources (`sources`), feature groups (`group`), then sample
//! specs and models (`spec`). `names` holds what every kind shares (duplicate definitions,
//! valid names, lookups of what a statement refers to); `expr` plans expressions over one
//! source's columns, and `resolve` resolves a spec's select list, where columns may refer to
//! one another.

mod expr;
mod group;
mod names;
mod resolve;
mod sources;
mod spec;

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{Ident, Spanned};
use fstore_core::expr::ExprCompiler;
use fstore_registry::DataType;
use fstore_registry::model::{Definitions, Source};

use crate::ast::Stmt;
use crate::diag::{Diagnostic, Pos};

/// Compiles parsed statements (from every file) into definitions, or reports every error found.
/// `file_names` are the files' display names, indexed like the positions.
pub fn compile(
    stmts: &[(usize, Stmt)],
    file_names: Vec<String>,
) -> Result<Definitions, Vec<Diagnostic>> {
    let mut c = Checker {
        file_names,
        diags: Vec::new(),
        defs: Definitions::default(),
        compiler: ExprCompiler::new(),
        first: HashMap::new(),
    };
    for kind in ["entity", "source", "group", "spec", "model"] {
        for (_, s) in stmts {
            let k = match s {
                Stmt::Entity { .. } => "entity",
                Stmt::Source { .. } => "source",
                Stmt::Group { .. } => "group",
                Stmt::Spec { .. } => "spec",
                Stmt::Model { .. } => "model",
            };
            if k != kind || !c.first_definition(kind, s.name()) {
                continue;
            }
            match s {
                Stmt::Entity { name, keys } => c.entity(name, keys),
                Stmt::Source {
                    name,
                    columns,
                    event_time,
                    batch,
                    topic,
                } => c.source(
                    name,
                    columns,
                    event_time.as_ref(),
                    batch.as_ref().map(|b| &b.value),
                    topic.as_ref().map(|t| &t.value),
                ),
                Stmt::Group { .. } => c.group(s),
                Stmt::Spec { .. } => c.spec(s),
                Stmt::Model { name, spec, inputs } => c.model(name, spec, inputs.as_deref()),
            }
        }
    }
    if c.diags.is_empty() {
        Ok(c.defs)
    } else {
        Err(c.diags)
    }
}

struct Checker {
    file_names: Vec<String>,
    diags: Vec<Diagnostic>,
    defs: Definitions,
    compiler: ExprCompiler,
    first: HashMap<(&'static str, String), Pos>,
}

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

fn span_pos(file: usize, e: &impl Spanned, fallback: Pos) -> Pos {
    pos_of(file, e.span(), fallback)
}

fn pos_of(file: usize, s: datafusion::sql::sqlparser::tokenizer::Span, fallback: Pos) -> Pos {
    if s.start.line == 0 {
        fallback
    } else {
        Pos::from_span(file, s)
    }
}

fn ident_pos(file: usize, i: &Ident, fallback: Pos) -> Pos {
    pos_of(file, i.span, fallback)
}

/// A column an expression may reference.
#[derive(Clone)]
struct ScopeEntry {
    qualifier: String,
    name: String,
    dtype: DataType,
}

/// A source's columns, qualified by the source's name.
fn source_scope(source: &Source) -> Vec<ScopeEntry> {
    source
        .columns
        .iter()
        .map(|c| ScopeEntry {
            qualifier: source.name.clone(),
            name: c.name.clone(),
            dtype: c.dtype.clone(),
        })
        .collect()
}
