//! A spec's select list resolved: each column's references to the event source's columns
//! and the joined groups' features, and to the other columns it uses (inlined, with cycles
//! refused).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Ident, visit_expressions, visit_expressions_mut};

use super::expr::{base_ref, canon_ident, forbidden};
use super::{ScopeEntry, ident_pos};
use crate::ast::SelectItem;
use crate::diag::{Diagnostic, Pos, closest, known_hint};

/// Resolves a spec's items (named `names`) over `scope`: each item's expression with every
/// reference resolved, or `None` where one does not resolve, and the diagnostics saying why.
pub(super) fn resolve_items(
    file: usize,
    scope: &[ScopeEntry],
    items: &[SelectItem],
    names: &[String],
) -> (Vec<Option<Expr>>, Vec<Diagnostic>) {
    let mut r = SpecResolver {
        file,
        scope,
        items,
        names,
        memo: vec![None; items.len()],
        stack: Vec::new(),
        diags: Vec::new(),
    };
    let resolved = (0..items.len()).map(|i| r.resolve(i)).collect();
    (resolved, r.diags)
}

/// Resolves spec expressions: base columns, then other transform outputs (inlined), with cycle
/// detection.
struct SpecResolver<'a> {
    file: usize,
    scope: &'a [ScopeEntry],
    items: &'a [SelectItem],
    names: &'a [String],
    memo: Vec<Option<Option<Expr>>>,
    stack: Vec<usize>,
    diags: Vec<Diagnostic>,
}

enum Target {
    Base(ScopeEntry),
    Output(usize),
}

impl SpecResolver<'_> {
    fn resolve(&mut self, i: usize) -> Option<Expr> {
        if let Some(done) = &self.memo[i] {
            return done.clone();
        }
        self.stack.push(i);
        let result = self.resolve_uncached(i);
        self.stack.pop();
        self.memo[i] = Some(result.clone());
        result
    }

    fn lookup(&mut self, parts: &[Ident], fallback: Pos, own: usize) -> Result<Target, Diagnostic> {
        let pos = ident_pos(self.file, &parts[0], fallback);
        match parts {
            [c] => {
                let hits: Vec<&ScopeEntry> =
                    self.scope.iter().filter(|s| s.name == c.value).collect();
                match hits.len() {
                    1 => Ok(Target::Base(hits[0].clone())),
                    0 => match self
                        .names
                        .iter()
                        .position(|n| n == &c.value)
                        .filter(|&j| j != own) // a column's own name never refers to itself
                    {
                        Some(j) if base_ref(&self.items[j].expr, self.scope).is_none() => {
                            Ok(Target::Output(j))
                        }
                        _ => {
                            // Only what a reference can name: base columns and other transforms.
                            let transforms: Vec<&str> = (0..self.items.len())
                                .filter(|&j| j != own && base_ref(&self.items[j].expr, self.scope).is_none())
                                .map(|j| self.names[j].as_str())
                                .collect();
                            let mut known: Vec<String> = self.scope.iter().map(|s| format!("{}.{}", s.qualifier, s.name)).collect();
                            known.extend(transforms.iter().map(|t| t.to_string()));
                            let names: Vec<&str> = self.scope.iter().map(|s| s.name.as_str()).chain(transforms.iter().copied()).collect();
                            let mut hint = format!("columns in scope: {}", known.join(", "));
                            if let Some(c2) = closest(&c.value, names) {
                                hint.push_str(&format!("; did you mean \"{c2}\"?"));
                            }
                            Err(Diagnostic::new(pos, format!("unknown column \"{}\"", c.value)).hint(hint))
                        }
                    },
                    _ => Err(
                        Diagnostic::new(pos, format!("column \"{}\" is ambiguous", c.value)).hint(
                            format!(
                                "qualify it: {}",
                                hits.iter()
                                    .map(|h| format!("{}.{}", h.qualifier, h.name))
                                    .collect::<Vec<_>>()
                                    .join(" or ")
                            ),
                        ),
                    ),
                }
            }
            [q, c] => {
                let in_q: Vec<&ScopeEntry> = self
                    .scope
                    .iter()
                    .filter(|s| s.qualifier == q.value)
                    .collect();
                if in_q.is_empty() {
                    let mut quals: Vec<&str> =
                        self.scope.iter().map(|s| s.qualifier.as_str()).collect();
                    quals.dedup();
                    return Err(Diagnostic::new(
                        pos,
                        format!(
                            "\"{}\" is neither the event source nor a joined group",
                            q.value
                        ),
                    )
                    .hint(known_hint("qualifiers", &q.value, quals)));
                }
                match in_q.iter().find(|s| s.name == c.value) {
                    Some(e) => Ok(Target::Base((*e).clone())),
                    None => Err(Diagnostic::new(
                        ident_pos(self.file, c, fallback),
                        format!("\"{}\" has no column \"{}\"", q.value, c.value),
                    )
                    .hint(known_hint(
                        "columns",
                        &c.value,
                        in_q.iter().map(|s| s.name.as_str()),
                    ))),
                }
            }
            _ => Err(
                Diagnostic::new(pos, "a column reference has at most two parts")
                    .hint("write column or group.column"),
            ),
        }
    }

    fn resolve_uncached(&mut self, i: usize) -> Option<Expr> {
        let item = &self.items[i];
        let fallback = item.pos;
        // Plain references to a base column resolve directly (`age`, `user_profile.age`).
        let mut refs: Vec<Vec<Ident>> = Vec::new();
        let mut errs = Vec::new();
        let _ = visit_expressions(&item.expr, |node: &Expr| {
            if let Some(d) = forbidden(self.file, node, fallback) {
                errs.push(d);
            }
            match node {
                Expr::Identifier(id) => refs.push(vec![id.clone()]),
                Expr::CompoundIdentifier(p) => refs.push(p.clone()),
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        if !errs.is_empty() {
            self.diags.extend(errs);
            return None;
        }
        let mut replacements: BTreeMap<String, Expr> = BTreeMap::new();
        let mut failed = false;
        for parts in refs {
            let key = parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("\u{1}");
            if replacements.contains_key(&key) {
                continue;
            }
            match self.lookup(&parts, fallback, i) {
                Ok(Target::Base(e)) => {
                    replacements.insert(
                        key,
                        Expr::CompoundIdentifier(vec![
                            canon_ident(&e.qualifier),
                            canon_ident(&e.name),
                        ]),
                    );
                }
                Ok(Target::Output(j)) => {
                    if let Some(at) = self.stack.iter().position(|&s| s == j) {
                        let cycle: Vec<&str> = self.stack[at..]
                            .iter()
                            .chain(std::iter::once(&j))
                            .map(|&k| self.names[k].as_str())
                            .collect();
                        self.diags.push(
                            Diagnostic::new(
                                ident_pos(self.file, &parts[0], fallback),
                                format!(
                                    "columns reference each other in a cycle: {}",
                                    cycle.join(" → ")
                                ),
                            )
                            .hint(
                                "a transform may use other transforms, but not itself through them",
                            ),
                        );
                        failed = true;
                        continue;
                    }
                    match self.resolve(j) {
                        Some(e) => {
                            replacements.insert(key, Expr::Nested(Box::new(e)));
                        }
                        None => failed = true,
                    }
                }
                Err(d) => {
                    self.diags.push(d);
                    failed = true;
                }
            }
        }
        if failed {
            return None;
        }
        let mut e = item.expr.clone();
        let _ = visit_expressions_mut(&mut e, |node: &mut Expr| {
            let key = match node {
                Expr::Identifier(id) => id.value.clone(),
                Expr::CompoundIdentifier(p) => p
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join("\u{1}"),
                _ => return ControlFlow::<()>::Continue(()),
            };
            if let Some(r) = replacements.get(&key) {
                *node = r.clone();
            }
            ControlFlow::Continue(())
        });
        Some(e)
    }
}
