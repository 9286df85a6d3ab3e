//! Feature groups: a source's rows keyed by an entity, as row features (expressions with a
//! TTL and a tie order) or as window aggregates (each over its own window).

use datafusion::sql::sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments};
use fstore_core::types::format_duration;
use fstore_registry::DataType;
use fstore_registry::model::{
    Aggregate, Entity, FeatureGroup, GroupKind, RowFeature, RowGroup, Source, WindowFeature,
    WindowGroup,
};

use super::names::{ENTITY, SOURCE};
use super::{Checker, ScopeEntry, source_scope, span_pos};
use crate::ast::{At, Name, SelectItem, Stmt};
use crate::diag::{Diagnostic, Pos, closest};

const AGG_NAMES: [&str; 6] = ["count", "sum", "avg", "min", "max", "last"];

/// Where each feature of a group is named, for the checks across them.
type Named = Vec<(String, Pos)>;

/// What a group statement declares, once its source is known.
struct Declared<'s> {
    file: usize,
    source: &'s Source,
    ttl: Option<&'s At<i64>>,
    tie_break: &'s [Name],
    items: &'s [SelectItem],
}

impl Checker {
    pub(super) fn group(&mut self, s: &Stmt) {
        let Stmt::Group {
            name,
            entity: entity_name,
            source: source_name,
            keys,
            ttl,
            version,
            tie_break,
            items,
        } = s
        else {
            unreachable!()
        };
        let file = name.pos.file;
        let ok_name = self.check_name(name, "feature group");
        let entity_def = self.lookup(&ENTITY, entity_name);
        let source_def = self.lookup(&SOURCE, source_name);
        let (Some(entity_def), Some(source_def)) = (entity_def, source_def) else {
            return;
        };
        let Some(key_cols) = self.bind_keys(
            &entity_def,
            &source_def,
            keys.as_deref(),
            entity_name,
            "KEY",
        ) else {
            return;
        };
        let Some(windowed) = self.windowed(items) else {
            return;
        };
        let declared = Declared {
            file,
            source: &source_def,
            ttl: ttl.as_ref(),
            tie_break,
            items,
        };
        let mut names = Named::new();
        let (kind, ok_features) = if windowed {
            self.window_group(&declared, &mut names)
        } else {
            self.row_group(&declared, &mut names)
        };
        let ok_names = self.feature_names(&names, name, &entity_def);
        if ok_name && ok_features && ok_names {
            self.defs.groups.insert(
                name.value.clone(),
                FeatureGroup {
                    name: name.value.clone(),
                    version: version.as_ref().map_or(1, |v| v.value),
                    entity: entity_def.name.clone(),
                    source: source_def.name.clone(),
                    keys: key_cols,
                    kind,
                },
            );
        }
    }

    /// Whether a group's items are window aggregates (all have OVER) or row features (none
    /// has); `None` for no items, or a mix (an error).
    fn windowed(&mut self, items: &[SelectItem]) -> Option<bool> {
        if items.is_empty() {
            return None;
        }
        let windowed = items.iter().any(|i| i.over.is_some());
        if let Some(row) = items.iter().find(|i| windowed && i.over.is_none()) {
            let has_agg = is_aggregate_call(&row.expr);
            self.error(Diagnostic::new(row.pos, if has_agg {
                "this aggregate has no OVER window while others in the group do".to_string()
            } else {
                "a group mixes row features and window aggregates".to_string()
            }).hint("put row features and window aggregates in separate feature groups; each aggregate needs OVER <duration>"));
            return None;
        }
        Some(windowed)
    }

    /// A window group's features, each named in `names`; whether all are valid.
    fn window_group(&mut self, g: &Declared, names: &mut Named) -> (GroupKind, bool) {
        let scope = source_scope(g.source);
        let mut ok = true;
        if let Some(t) = g.ttl {
            self.error(Diagnostic::new(t.pos, "TTL applies to row groups; a window group's values are defined by their windows")
                .hint("remove TTL from this window group"));
            ok = false;
        }
        if let Some(t) = g.tie_break.first() {
            self.error(
                Diagnostic::new(t.pos, "TIE BREAK applies to row groups")
                    .hint("window aggregates accumulate in event time, then tie order"),
            );
            ok = false;
        }
        let mut features = Vec::new();
        for item in g.items {
            if let Some(f) = self.window_feature(g.file, item, &scope) {
                names.push((
                    f.name.clone(),
                    item.alias.as_ref().map_or(item.pos, |a| a.pos),
                ));
                features.push(f);
            } else {
                ok = false;
            }
        }
        (GroupKind::Window(WindowGroup { features }), ok)
    }

    /// A row group's features, each named in `names`, and its TTL and tie order; whether all
    /// are valid.
    fn row_group(&mut self, g: &Declared, names: &mut Named) -> (GroupKind, bool) {
        let scope = source_scope(g.source);
        let (tie, mut ok) = self.tie_break(g.source, g.tie_break);
        let mut features = Vec::new();
        for item in g.items {
            if is_aggregate_call(&item.expr) {
                self.error(
                    Diagnostic::new(item.pos, "an aggregate in a row group needs a window")
                        .hint("write e.g. COUNT(*) OVER 7 DAYS AS n_7d in a window group"),
                );
                ok = false;
                continue;
            }
            let Some(fname) = self.item_name(item) else {
                ok = false;
                continue;
            };
            let Some((expr, dtype)) = self.plan_unqualified(g.file, &item.expr, item.pos, &scope)
            else {
                ok = false;
                continue;
            };
            names.push((
                fname.clone(),
                item.alias.as_ref().map_or(item.pos, |a| a.pos),
            ));
            features.push(RowFeature {
                name: fname,
                expr,
                dtype,
            });
        }
        let kind = GroupKind::Row(RowGroup {
            ttl_us: g.ttl.map(|t| t.value),
            tie_break: tie,
            features,
        });
        (kind, ok)
    }

    /// The tie-break columns of a row group, which must be the source's; whether all are.
    fn tie_break(&mut self, source: &Source, tie_break: &[Name]) -> (Vec<String>, bool) {
        let mut ok = true;
        let mut tie = Vec::new();
        for t in tie_break {
            if self.is_column_of(source, t, "tie-break column", "source") {
                tie.push(t.value.clone());
            } else {
                ok = false;
            }
        }
        (tie, ok)
    }

    /// Checks a group's feature names: each once, and none a column every group value
    /// carries (the entity's keys, the event time).
    fn feature_names(&mut self, names: &Named, group: &Name, entity: &Entity) -> bool {
        let mut ok = true;
        for (i, (n, pos)) in names.iter().enumerate() {
            if names[..i].iter().any(|(p, _)| p == n) {
                self.error(
                    Diagnostic::new(
                        *pos,
                        format!(
                            "feature \"{n}\" is defined twice in group \"{}\"",
                            group.value
                        ),
                    )
                    .hint("name it differently with AS"),
                );
                ok = false;
            }
            if entity.keys.iter().any(|k| &k.name == n)
                || n == fstore_registry::schema::GROUP_EVENT_TIME
            {
                self.error(Diagnostic::new(*pos, format!("feature \"{n}\" collides with a column every group value carries (the entity keys and event_time)"))
                    .hint("keys are joined on, not stored as features; rename it with AS"));
                ok = false;
            }
        }
        ok
    }

    /// The output name of an item: its alias, or the column a plain reference names.
    pub(super) fn item_name(&mut self, item: &SelectItem) -> Option<String> {
        if let Some(a) = &item.alias {
            return Some(a.value.clone());
        }
        match &item.expr {
            Expr::Identifier(i) => Some(i.value.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
            _ => {
                self.error(
                    Diagnostic::new(item.pos, "this expression needs a name")
                        .hint("add AS name after it"),
                );
                None
            }
        }
    }

    fn window_feature(
        &mut self,
        file: usize,
        item: &SelectItem,
        scope: &[ScopeEntry],
    ) -> Option<WindowFeature> {
        let over = item.over.as_ref().expect("window items have OVER");
        let Expr::Function(f) = &item.expr else {
            self.error(
                Diagnostic::new(item.pos, "OVER follows an aggregate call")
                    .hint("write AGG(x) [FILTER (WHERE …)] OVER 7 DAYS AS name"),
            );
            return None;
        };
        let fname = f.name.to_string();
        let Some(agg) = Aggregate::parse(&fname) else {
            self.error(
                Diagnostic::new(item.pos, format!("\"{fname}\" is not a window aggregate")).hint(
                    format!(
                        "window aggregates are COUNT, SUM, AVG, MIN, MAX, LAST{}",
                        closest(&fname.to_lowercase(), AGG_NAMES)
                            .map(|c| format!("; did you mean {}?", c.to_uppercase()))
                            .unwrap_or_default()
                    ),
                ),
            );
            return None;
        };
        let Some(name) = item.alias.as_ref().map(|a| a.value.clone()) else {
            self.error(
                Diagnostic::new(item.pos, "a window aggregate needs a name").hint(format!(
                    "add AS name, e.g. AS {}_{}",
                    fname.to_lowercase(),
                    format_duration(over.value).replace(' ', "_").to_lowercase()
                )),
            );
            return None;
        };
        if f.over.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            self.error(
                Diagnostic::new(item.pos, "SQL window clauses are not supported here")
                    .hint("write AGG(x) OVER 7 DAYS"),
            );
            return None;
        }
        let args = match &f.args {
            FunctionArguments::List(l) => {
                if l.duplicate_treatment.is_some() || !l.clauses.is_empty() {
                    self.error(Diagnostic::new(
                        item.pos,
                        format!(
                            "{} supports no DISTINCT, ORDER BY or other clauses",
                            agg.name()
                        ),
                    ));
                    return None;
                }
                l.args.clone()
            }
            _ => Vec::new(),
        };
        let input = self.window_input(file, item, agg, &args, scope)?;
        let dtype = match agg.result_type(input.as_ref().map(|(_, t)| t)) {
            Ok(t) => t,
            Err(msg) => {
                self.error(
                    Diagnostic::new(item.pos, msg)
                        .hint("SUM and AVG take INT64 or DOUBLE; MIN and MAX take scalars"),
                );
                return None;
            }
        };
        let filter = self.window_filter(file, item, f.filter.as_deref(), scope)?;
        Some(WindowFeature {
            name,
            agg,
            input: input.map(|(e, _)| e),
            filter,
            window_us: over.value,
            dtype,
        })
    }

    /// The input of a window aggregate: the planned expression of its one argument, `None` for
    /// COUNT(*); `None` outside for an error.
    fn window_input(
        &mut self,
        file: usize,
        item: &SelectItem,
        agg: Aggregate,
        args: &[FunctionArg],
        scope: &[ScopeEntry],
    ) -> Option<Option<(String, DataType)>> {
        match args {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if agg == Aggregate::Count => {
                Some(None)
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => {
                self.error(
                    Diagnostic::new(
                        item.pos,
                        format!("{}(*) is not defined; only COUNT takes *", agg.name()),
                    )
                    .hint(format!("write {}(column)", agg.name())),
                );
                None
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => {
                if is_aggregate_call(e) {
                    self.error(Diagnostic::new(
                        span_pos(file, e, item.pos),
                        "aggregates cannot be nested",
                    ));
                    return None;
                }
                Some(Some(self.plan_unqualified(file, e, item.pos, scope)?))
            }
            _ => {
                self.error(Diagnostic::new(
                    item.pos,
                    format!("{} takes exactly one argument", agg.name()),
                ));
                None
            }
        }
    }

    /// The FILTER condition of a window aggregate, planned: a BOOLEAN; `None` outside for an
    /// error.
    fn window_filter(
        &mut self,
        file: usize,
        item: &SelectItem,
        filter: Option<&Expr>,
        scope: &[ScopeEntry],
    ) -> Option<Option<String>> {
        match filter {
            None => Some(None),
            Some(e) => {
                let (expr, t) = self.plan_unqualified(file, e, item.pos, scope)?;
                if t != DataType::Boolean {
                    self.error(
                        Diagnostic::new(
                            span_pos(file, e, item.pos),
                            format!("FILTER condition is {t}, not BOOLEAN"),
                        )
                        .hint("write FILTER (WHERE clicked) or FILTER (WHERE x > 0)"),
                    );
                    return None;
                }
                Some(Some(expr))
            }
        }
    }
}

/// Whether an expression is a call to one of the window aggregates.
pub(super) fn is_aggregate_call(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if AGG_NAMES.iter().any(|a| f.name.to_string().eq_ignore_ascii_case(a)))
}
