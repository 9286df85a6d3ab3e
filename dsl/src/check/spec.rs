//! Sample specs and models: a spec joins feature groups to an event source and selects its
//! output columns (event columns, labels, features, and transforms over them); a model
//! names a spec's inputs and takes its labels as outputs.

use fstore_registry::model::{ColumnRole, Join, Model, OutputColumn, SampleSpec, Source};

use super::expr::{base_ref, scope_columns};
use super::names::{GROUP, SOURCE, SPEC};
use super::resolve::resolve_items;
use super::{Checker, ScopeEntry, source_scope, span_pos};
use crate::ast::{JoinClause, Name, SelectItem, Stmt};
use crate::diag::Diagnostic;

impl Checker {
    pub(super) fn spec(&mut self, s: &Stmt) {
        let Stmt::Spec {
            name,
            source,
            joins,
            labels,
            items,
        } = s
        else {
            unreachable!("compile calls spec with spec statements")
        };
        let file = name.pos.file;
        let ok_name = self.check_name(name, "sample spec");
        let Some(src) = self.lookup(&SOURCE, source) else {
            return;
        };
        // The base scope: event columns qualified by the source name, features by join alias.
        let mut scope = source_scope(&src);
        let (out_joins, ok_joins) = self.joins(&src, joins, &mut scope);
        if !(ok_name && ok_joins) {
            return;
        }
        let ok_labels = self.labels(&src, labels);
        let Some(out_names) = self.output_names(items) else {
            return;
        };
        let ok_outputs = self.unique_outputs(items, &out_names);
        if !(ok_labels && ok_outputs) {
            return;
        }
        let (columns, ok_columns) =
            self.output_columns(file, &src, labels, items, &scope, &out_names);
        let ok = ok_columns && self.labels_selected(labels, &columns) && !columns.is_empty();
        if ok {
            self.defs.specs.insert(
                name.value.clone(),
                SampleSpec {
                    name: name.value.clone(),
                    source: src.name.clone(),
                    labels: labels.iter().map(|l| l.value.clone()).collect(),
                    joins: out_joins,
                    columns,
                },
            );
        }
    }

    /// A spec's joins, each group's features added to `scope` under the join's alias; whether
    /// all are valid.
    fn joins(
        &mut self,
        src: &Source,
        joins: &[JoinClause],
        scope: &mut Vec<ScopeEntry>,
    ) -> (Vec<Join>, bool) {
        let mut ok = true;
        let mut out_joins: Vec<Join> = Vec::new();
        for j in joins {
            let Some(group) = self.lookup(&GROUP, &j.group) else {
                ok = false;
                continue;
            };
            let alias = j.alias.as_ref().unwrap_or(&j.group);
            if alias.value == src.name || out_joins.iter().any(|o| o.alias == alias.value) {
                self.error(
                    Diagnostic::new(
                        alias.pos,
                        format!("\"{}\" is already used in this spec", alias.value),
                    )
                    .hint("give the join another name with JOIN group AS alias"),
                );
                ok = false;
                continue;
            }
            let Some(entity) = self.defs.entities.get(&group.entity).cloned() else {
                continue;
            };
            let Some(keys) = self.bind_keys(&entity, src, j.keys.as_deref(), &j.group, "join")
            else {
                ok = false;
                continue;
            };
            for (f, t) in group.features() {
                scope.push(ScopeEntry {
                    qualifier: alias.value.clone(),
                    name: f.to_string(),
                    dtype: t.clone(),
                });
            }
            out_joins.push(Join {
                group: group.name.clone(),
                alias: alias.value.clone(),
                keys,
            });
        }
        (out_joins, ok)
    }

    /// Checks that a spec's labels are columns of its event source.
    fn labels(&mut self, src: &Source, labels: &[Name]) -> bool {
        let mut ok = true;
        for l in labels {
            if !self.is_column_of(src, l, "label", "event source") {
                ok = false;
            }
        }
        ok
    }

    /// The names of a spec's output columns, first, so that transforms can reference one
    /// another; `None` if one has none (each such item is an error).
    fn output_names(&mut self, items: &[SelectItem]) -> Option<Vec<String>> {
        let names: Vec<Option<String>> = items.iter().map(|i| self.item_name(i)).collect();
        names.into_iter().collect()
    }

    /// Checks that no two output columns share a name.
    fn unique_outputs(&mut self, items: &[SelectItem], names: &[String]) -> bool {
        let mut ok = true;
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                let pos = items[i].alias.as_ref().map_or(items[i].pos, |a| a.pos);
                self.error(
                    Diagnostic::new(pos, format!("output column \"{n}\" is defined twice"))
                        .hint("name one of them differently with AS"),
                );
                ok = false;
            }
        }
        ok
    }

    /// A spec's output columns: each item resolved over `scope`, given its role and planned;
    /// whether all are valid.
    fn output_columns(
        &mut self,
        file: usize,
        src: &Source,
        labels: &[Name],
        items: &[SelectItem],
        scope: &[ScopeEntry],
        names: &[String],
    ) -> (Vec<OutputColumn>, bool) {
        let (resolved, diags) = resolve_items(file, scope, items, names);
        self.diags.extend(diags);
        let cols = scope_columns(scope, true);
        let mut ok = true;
        let mut columns = Vec::new();
        for ((item, expr), name) in items.iter().zip(resolved).zip(names) {
            let Some(expr) = expr else {
                ok = false;
                continue;
            };
            let role = column_role(item, scope, src, labels);
            let Some((text, dtype)) =
                self.plan_canonical(expr, &cols, span_pos(file, &item.expr, item.pos))
            else {
                ok = false;
                continue;
            };
            columns.push(OutputColumn {
                name: name.clone(),
                expr: text,
                dtype,
                role,
            });
        }
        (columns, ok)
    }

    /// Checks that each label is among a spec's output columns, stopping at the first that is
    /// not.
    fn labels_selected(&mut self, labels: &[Name], columns: &[OutputColumn]) -> bool {
        for l in labels {
            let selected = |c: &OutputColumn| matches!(&c.role, ColumnRole::Label { column } if column == &l.value);
            if !columns.iter().any(selected) {
                self.error(
                    Diagnostic::new(
                        l.pos,
                        format!("label \"{}\" is not among the selected columns", l.value),
                    )
                    .hint("add it to AS SELECT so samples carry it"),
                );
                return false;
            }
        }
        true
    }

    pub(super) fn model(&mut self, name: &Name, spec: &Name, inputs: Option<&[Name]>) {
        let ok = self.check_name(name, "model");
        let Some(sp) = self.lookup(&SPEC, spec) else {
            return;
        };
        let chosen: Vec<String> = match inputs {
            None => sp.default_inputs(),
            Some(list) => {
                let mut out = Vec::new();
                for n in list {
                    match sp.columns.iter().find(|c| c.name == n.value) {
                        None => {
                            let message = format!(
                                "\"{}\" is not a column of sample spec \"{}\"",
                                n.value, sp.name
                            );
                            let known = sp.columns.iter().map(|c| c.name.as_str());
                            self.unknown_column(n, message, known);
                        }
                        Some(c) if matches!(c.role, ColumnRole::Label { .. }) => {
                            self.error(Diagnostic::new(
                                n.pos,
                                format!(
                                    "\"{}\" is a label; a model cannot take its label as an input",
                                    n.value
                                ),
                            ));
                        }
                        Some(_) if out.contains(&n.value) => {
                            self.error(Diagnostic::new(
                                n.pos,
                                format!("input \"{}\" is listed twice", n.value),
                            ));
                        }
                        Some(_) => out.push(n.value.clone()),
                    }
                }
                out
            }
        };
        if chosen.is_empty() {
            self.error(
                Diagnostic::new(name.pos, format!("model \"{}\" has no inputs", name.value))
                    .hint("list them with INPUTS (…) or select features in the spec"),
            );
            return;
        }
        if ok {
            let model = Model {
                name: name.value.clone(),
                spec: sp.name.clone(),
                inputs: chosen,
                outputs: sp.labels.clone(),
            };
            self.defs.models.insert(model.name.clone(), model);
        }
    }
}

/// What an output column is: a plain reference to the event time, a label, another event
/// column or a joined feature; anything else is a transform.
fn column_role(
    item: &SelectItem,
    scope: &[ScopeEntry],
    src: &Source,
    labels: &[Name],
) -> ColumnRole {
    match base_ref(&item.expr, scope) {
        Some(entry) if entry.qualifier == src.name && entry.name == src.event_time => {
            ColumnRole::EventTime { column: entry.name }
        }
        Some(entry)
            if entry.qualifier == src.name && labels.iter().any(|l| l.value == entry.name) =>
        {
            ColumnRole::Label { column: entry.name }
        }
        Some(entry) if entry.qualifier == src.name => ColumnRole::Event { column: entry.name },
        Some(entry) => ColumnRole::Feature {
            join: entry.qualifier,
            feature: entry.name,
        },
        None => ColumnRole::Transform,
    }
}
