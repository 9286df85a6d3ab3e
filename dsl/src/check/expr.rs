//! Expressions over a scope of columns: references resolved and written canonically, then
//! planned by the shared expression compiler, so that what is stored is what was checked.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Ident, visit_expressions_mut};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use fstore_core::expr::{ExprCompiler, ScopeColumn};
use fstore_registry::DataType;

use super::{Checker, ScopeEntry, ident_pos, span_pos};
use crate::diag::{Diagnostic, Pos, known_hint};

impl Checker {
    /// Resolves, canonicalizes (unqualified) and plans an expression over one source's columns.
    pub(super) fn plan_unqualified(
        &mut self,
        file: usize,
        expr: &Expr,
        pos: Pos,
        scope: &[ScopeEntry],
    ) -> Option<(String, DataType)> {
        let mut e = expr.clone();
        let mut errs = Vec::new();
        let _ = visit_expressions_mut(&mut e, |node: &mut Expr| {
            if let Some(d) = forbidden(file, node, pos) {
                errs.push(d);
                return ControlFlow::<()>::Continue(());
            }
            let parts: Vec<Ident> = match node {
                Expr::Identifier(i) => vec![i.clone()],
                Expr::CompoundIdentifier(p) => p.clone(),
                _ => return ControlFlow::Continue(()),
            };
            let ipos = ident_pos(file, &parts[0], pos);
            let col = match parts.as_slice() {
                [c] => c,
                [q, c] if q.value == scope[0].qualifier => c,
                [q, _] => {
                    errs.push(
                        Diagnostic::new(
                            ipos,
                            format!("\"{}\" is not the source of this group", q.value),
                        )
                        .hint(format!(
                            "columns here come from source \"{}\"; write them unqualified",
                            scope[0].qualifier
                        )),
                    );
                    return ControlFlow::Continue(());
                }
                _ => {
                    errs.push(
                        Diagnostic::new(ipos, format!("\"{}\" has too many parts", node))
                            .hint("write column or source.column"),
                    );
                    return ControlFlow::Continue(());
                }
            };
            if scope.iter().any(|s| s.name == col.value) {
                *node = Expr::Identifier(canon_ident(&col.value));
            } else {
                let cpos = ident_pos(file, col, pos);
                errs.push(
                    Diagnostic::new(
                        cpos,
                        format!(
                            "unknown column \"{}\" in source \"{}\"",
                            col.value, scope[0].qualifier
                        ),
                    )
                    .hint(known_hint(
                        "columns",
                        &col.value,
                        scope.iter().map(|s| s.name.as_str()),
                    )),
                );
            }
            ControlFlow::Continue(())
        });
        if !errs.is_empty() {
            self.diags.extend(errs);
            return None;
        }
        let cols = scope_columns(scope, false);
        self.plan_canonical(e, &cols, span_pos(file, expr, pos))
    }

    /// Plans a canonical expression from its own text, so what is stored is what was checked.
    pub(super) fn plan_canonical(
        &mut self,
        e: Expr,
        scope: &[ScopeColumn],
        pos: Pos,
    ) -> Option<(String, DataType)> {
        let text = e.to_string();
        let result = ExprCompiler::scope_schema(scope)
            .and_then(|schema| self.compiler.plan_text(&text, &schema));
        match result {
            Ok(p) => Some((text, p.dtype)),
            Err(err) => {
                self.error(Diagnostic::new(pos, format!("type error: {err}")).hint(
                    "check the argument types; see README \"Expressions\" for the functions",
                ));
                None
            }
        }
    }
}

/// A scope's columns as the expression compiler takes them, qualified or not.
pub(super) fn scope_columns(scope: &[ScopeEntry], qualified: bool) -> Vec<ScopeColumn> {
    scope
        .iter()
        .map(|s| ScopeColumn {
            qualifier: qualified.then(|| s.qualifier.clone()),
            name: s.name.clone(),
            dtype: s.dtype.clone(),
        })
        .collect()
}

/// Identifiers as canonical SQL: bare when plain lowercase-safe and not a keyword, else quoted.
pub(super) fn canon_ident(name: &str) -> Ident {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !ALL_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name));
    if plain {
        Ident::new(name)
    } else {
        Ident::with_quote('"', name)
    }
}

/// Constructs no fstore engine evaluates per row.
pub(super) fn forbidden(file: usize, e: &Expr, fallback: Pos) -> Option<Diagnostic> {
    let what = match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => "subqueries",
        Expr::Function(f) if f.over.is_some() => "SQL window functions (OVER (…))",
        _ => return None,
    };
    Some(
        Diagnostic::new(
            span_pos(file, e, fallback),
            format!("{what} are not allowed in feature expressions"),
        )
        .hint("expressions see one joined row; aggregates over time belong in window groups"),
    )
}

/// The base column a plain reference names, if the expression is one.
pub(super) fn base_ref(e: &Expr, scope: &[ScopeEntry]) -> Option<ScopeEntry> {
    match e {
        Expr::Identifier(i) => {
            let hits: Vec<&ScopeEntry> = scope.iter().filter(|s| s.name == i.value).collect();
            (hits.len() == 1).then(|| hits[0].clone())
        }
        Expr::CompoundIdentifier(p) if p.len() == 2 => scope
            .iter()
            .find(|s| s.qualifier == p[0].value && s.name == p[1].value)
            .cloned(),
        _ => None,
    }
}
