//! Semantic checks: names resolve, types agree, nothing is defined twice, no cycles; then
//! compilation into registry objects with canonical, fully resolved expressions.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Spanned, visit_expressions,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use fstore_core::expr::{ExprCompiler, ScopeColumn};
use fstore_core::types::format_duration;
use fstore_registry::DataType;
use fstore_registry::model::*;

use crate::ast::{ColumnDef, Name, SelectItem, Stmt};
use crate::diag::{Diagnostic, Pos, closest, known_hint};

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

const AGG_NAMES: [&str; 6] = ["count", "sum", "avg", "min", "max", "last"];

/// Identifiers as canonical SQL: bare when plain lowercase-safe and not a keyword, else quoted.
fn canon_ident(name: &str) -> Ident {
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

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Records the first definition of each name per kind; reports later ones as duplicates.
    fn first_definition(&mut self, kind: &'static str, name: &Name) -> bool {
        let key = (kind, name.value.clone());
        if let Some(first) = self.first.get(&key).copied() {
            let label = match kind {
                "group" => "feature group",
                "spec" => "sample spec",
                k => k,
            };
            self.error(
                Diagnostic::new(
                    name.pos,
                    format!("{label} \"{}\" is defined twice", name.value),
                )
                .hint(format!(
                    "first defined at {}:{}:{}; rename one of them",
                    self.file_names
                        .get(first.file)
                        .map(String::as_str)
                        .unwrap_or("?"),
                    first.line,
                    first.col
                )),
            );
            return false;
        }
        self.first.insert(key, name.pos);
        true
    }

    fn check_name(&mut self, name: &Name, what: &str) -> bool {
        let ok = name.value.chars().all(|c| !c.is_control())
            && !name.value.contains(':')
            && !name.value.trim().is_empty();
        if !ok {
            self.error(
                Diagnostic::new(
                    name.pos,
                    format!(
                        "{what} name \"{}\" may not contain ':' or control characters",
                        name.value
                    ),
                )
                .hint(
                    "names become online keys ({namespace}:{group}:{version}:{key}) and file names",
                ),
            );
        }
        ok
    }

    fn unique_columns(&mut self, cols: &[ColumnDef], what: &str) -> bool {
        let mut ok = true;
        for (i, c) in cols.iter().enumerate() {
            if cols[..i].iter().any(|p| p.name.value == c.name.value) {
                self.error(
                    Diagnostic::new(
                        c.name.pos,
                        format!("{what} \"{}\" is declared twice", c.name.value),
                    )
                    .hint("column names must be unique"),
                );
                ok = false;
            }
        }
        ok
    }

    fn entity(&mut self, name: &Name, keys: &[ColumnDef]) {
        let mut ok = self.check_name(name, "entity") & self.unique_columns(keys, "key column");
        if keys.len() > 2 {
            self.error(
                Diagnostic::new(
                    keys[2].name.pos,
                    format!(
                        "entity \"{}\" has {} key columns; at most 2 are supported",
                        name.value,
                        keys.len()
                    ),
                )
                .hint("a composite key has two columns, e.g. KEY (user_id STRING, item_id INT64)"),
            );
            ok = false;
        }
        for k in keys {
            if !k.dtype.is_key_type() {
                self.error(Diagnostic::new(
                    k.name.pos,
                    format!(
                        "key column \"{}\" is {}; entity keys are STRING or INT64",
                        k.name.value, k.dtype
                    ),
                ));
                ok = false;
            }
        }
        if ok {
            let keys = keys
                .iter()
                .map(|k| Column {
                    name: k.name.value.clone(),
                    dtype: k.dtype.clone(),
                })
                .collect();
            self.defs.entities.insert(
                name.value.clone(),
                Entity {
                    name: name.value.clone(),
                    keys,
                },
            );
        }
    }

    fn source(
        &mut self,
        name: &Name,
        columns: &[ColumnDef],
        event_time: Option<&Name>,
        batch: Option<&String>,
        topic: Option<&String>,
    ) {
        let mut ok = self.check_name(name, "source") & self.unique_columns(columns, "column");
        let event_time = match event_time {
            None => {
                self.error(
                    Diagnostic::new(
                        name.pos,
                        format!("source \"{}\" has no EVENT TIME", name.value),
                    )
                    .hint("add EVENT TIME ts, naming its TIMESTAMP column"),
                );
                return;
            }
            Some(e) => e,
        };
        match columns.iter().find(|c| c.name.value == event_time.value) {
            None => {
                let known = columns.iter().map(|c| c.name.value.as_str());
                self.error(
                    Diagnostic::new(
                        event_time.pos,
                        format!(
                            "event time column \"{}\" is not a column of source \"{}\"",
                            event_time.value, name.value
                        ),
                    )
                    .hint(known_hint("columns", &event_time.value, known)),
                );
                ok = false;
            }
            Some(c) if c.dtype != DataType::Timestamp => {
                self.error(Diagnostic::new(event_time.pos, format!("event time column \"{}\" is {}, not TIMESTAMP", event_time.value, c.dtype))
                    .hint("windows, TTLs and as-of joins run over a TIMESTAMP column; declare it TIMESTAMP"));
                ok = false;
            }
            Some(_) => {}
        }
        if batch.is_none() && topic.is_none() {
            self.error(Diagnostic::new(name.pos, format!("source \"{}\" has neither BATCH PARQUET nor KAFKA TOPIC", name.value))
                .hint("add BATCH PARQUET 'path' for batch jobs and/or KAFKA TOPIC 'name' for the joiner"));
            ok = false;
        }
        if batch.is_some_and(|b| b.trim().is_empty()) {
            self.error(Diagnostic::new(name.pos, "BATCH PARQUET location is empty"));
            ok = false;
        }
        if ok {
            self.defs.sources.insert(
                name.value.clone(),
                Source {
                    name: name.value.clone(),
                    columns: columns
                        .iter()
                        .map(|c| Column {
                            name: c.name.value.clone(),
                            dtype: c.dtype.clone(),
                        })
                        .collect(),
                    event_time: event_time.value.clone(),
                    batch: batch.cloned(),
                    topic: topic.cloned(),
                },
            );
        }
    }

    fn lookup_entity(&mut self, n: &Name) -> Option<Entity> {
        let e = self.defs.entities.get(&n.value).cloned();
        if e.is_none() && !self.first.contains_key(&("entity", n.value.clone())) {
            let hint = known_hint(
                "entities",
                &n.value,
                self.defs.entities.keys().map(String::as_str),
            );
            self.error(
                Diagnostic::new(n.pos, format!("unknown entity \"{}\"", n.value)).hint(hint),
            );
        }
        e
    }

    fn lookup_source(&mut self, n: &Name) -> Option<Source> {
        let s = self.defs.sources.get(&n.value).cloned();
        if s.is_none() && !self.first.contains_key(&("source", n.value.clone())) {
            let hint = known_hint(
                "sources",
                &n.value,
                self.defs.sources.keys().map(String::as_str),
            );
            self.error(
                Diagnostic::new(n.pos, format!("unknown source \"{}\"", n.value)).hint(hint),
            );
        }
        s
    }

    /// Binds columns of `table` to the entity's keys: the explicit list, or columns named like
    /// the keys. Checks count and types.
    fn bind_keys(
        &mut self,
        entity: &Entity,
        table: &Source,
        explicit: Option<&[Name]>,
        anchor: &Name,
        what: &str,
    ) -> Option<Vec<String>> {
        let names = entity
            .keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let cols: Vec<(String, Pos)> = match explicit {
            Some(list) => {
                if list.len() != entity.keys.len() {
                    self.error(Diagnostic::new(list[0].pos, format!(
                        "{what} binds {} column(s) but entity \"{}\" has {} key column(s) ({names})",
                        list.len(), entity.name, entity.keys.len()
                    )).hint("list one column per entity key, in key order"));
                    return None;
                }
                list.iter().map(|n| (n.value.clone(), n.pos)).collect()
            }
            None => entity
                .keys
                .iter()
                .map(|k| (k.name.clone(), anchor.pos))
                .collect(),
        };
        let mut ok = true;
        for ((col, pos), key) in cols.iter().zip(&entity.keys) {
            match table.column(col) {
                None => {
                    let hint = if explicit.is_none() {
                        format!(
                            "source \"{}\" has no column named like entity key \"{}\"; bind one explicitly with {}",
                            table.name,
                            key.name,
                            if what == "join" {
                                "ON (column)"
                            } else {
                                "KEY (column)"
                            }
                        )
                    } else {
                        known_hint(
                            "columns",
                            col,
                            table.columns.iter().map(|c| c.name.as_str()),
                        )
                    };
                    self.error(Diagnostic::new(*pos, format!("source \"{}\" has no column \"{col}\" for key \"{}\" of entity \"{}\"", table.name, key.name, entity.name)).hint(hint));
                    ok = false;
                }
                Some(c) if c.dtype != key.dtype => {
                    self.error(
                        Diagnostic::new(
                            *pos,
                            format!(
                                "{} column \"{col}\" is {} but key \"{}\" of entity \"{}\" is {}",
                                if what == "join" { "join key" } else { "KEY" },
                                c.dtype,
                                key.name,
                                entity.name,
                                key.dtype
                            ),
                        )
                        .hint("key types must match exactly; CAST in an upstream source if needed"),
                    );
                    ok = false;
                }
                Some(_) => {}
            }
        }
        ok.then(|| cols.into_iter().map(|(c, _)| c).collect())
    }

    fn group(&mut self, s: &Stmt) {
        let Stmt::Group {
            name,
            entity,
            source,
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
        let entity_def = self.lookup_entity(entity);
        let source_def = self.lookup_source(source);
        let (Some(entity_def), Some(source_def)) = (entity_def, source_def) else {
            return;
        };
        let Some(key_cols) =
            self.bind_keys(&entity_def, &source_def, keys.as_deref(), entity, "KEY")
        else {
            return;
        };
        if items.is_empty() {
            return;
        }
        let windowed = items.iter().any(|i| i.over.is_some());
        if let Some(row) = items.iter().find(|i| windowed && i.over.is_none()) {
            let has_agg = is_aggregate_call(&row.expr);
            self.error(Diagnostic::new(row.pos, if has_agg {
                "this aggregate has no OVER window while others in the group do".to_string()
            } else {
                "a group mixes row features and window aggregates".to_string()
            }).hint("put row features and window aggregates in separate feature groups; each aggregate needs OVER <duration>"));
            return;
        }
        let scope: Vec<ScopeEntry> = source_def
            .columns
            .iter()
            .map(|c| ScopeEntry {
                qualifier: source_def.name.clone(),
                name: c.name.clone(),
                dtype: c.dtype.clone(),
            })
            .collect();
        let mut names: Vec<(String, Pos)> = Vec::new();
        let mut ok = ok_name;
        let kind = if windowed {
            if let Some(t) = ttl {
                self.error(Diagnostic::new(t.pos, "TTL applies to row groups; a window group's values are defined by their windows")
                    .hint("remove TTL from this window group"));
                ok = false;
            }
            if let Some(t) = tie_break.first() {
                self.error(
                    Diagnostic::new(t.pos, "TIE BREAK applies to row groups")
                        .hint("window aggregates accumulate in event time, then tie order"),
                );
                ok = false;
            }
            let mut features = Vec::new();
            for item in items {
                if let Some(f) = self.window_feature(file, item, &scope) {
                    names.push((
                        f.name.clone(),
                        item.alias.as_ref().map_or(item.pos, |a| a.pos),
                    ));
                    features.push(f);
                } else {
                    ok = false;
                }
            }
            GroupKind::Window(WindowGroup { features })
        } else {
            let mut tie = Vec::new();
            for t in tie_break {
                if source_def.column(&t.value).is_none() {
                    let hint = known_hint(
                        "columns",
                        &t.value,
                        source_def.columns.iter().map(|c| c.name.as_str()),
                    );
                    self.error(
                        Diagnostic::new(
                            t.pos,
                            format!(
                                "tie-break column \"{}\" is not a column of source \"{}\"",
                                t.value, source_def.name
                            ),
                        )
                        .hint(hint),
                    );
                    ok = false;
                } else {
                    tie.push(t.value.clone());
                }
            }
            let mut features = Vec::new();
            for item in items {
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
                let Some((expr, dtype)) = self.plan_unqualified(file, &item.expr, item.pos, &scope)
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
            GroupKind::Row(RowGroup {
                ttl_us: ttl.as_ref().map(|t| t.value),
                tie_break: tie,
                features,
            })
        };
        for (i, (n, pos)) in names.iter().enumerate() {
            if names[..i].iter().any(|(p, _)| p == n) {
                self.error(
                    Diagnostic::new(
                        *pos,
                        format!(
                            "feature \"{n}\" is defined twice in group \"{}\"",
                            name.value
                        ),
                    )
                    .hint("name it differently with AS"),
                );
                ok = false;
            }
            if entity_def.keys.iter().any(|k| &k.name == n)
                || n == fstore_registry::schema::GROUP_EVENT_TIME
            {
                self.error(Diagnostic::new(*pos, format!("feature \"{n}\" collides with a column every group value carries (the entity keys and event_time)"))
                    .hint("keys are joined on, not stored as features; rename it with AS"));
                ok = false;
            }
        }
        if ok {
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

    /// The output name of an item: its alias, or the column a plain reference names.
    fn item_name(&mut self, item: &SelectItem) -> Option<String> {
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
        let input = match args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if agg == Aggregate::Count => None,
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => {
                self.error(
                    Diagnostic::new(
                        item.pos,
                        format!("{}(*) is not defined; only COUNT takes *", agg.name()),
                    )
                    .hint(format!("write {}(column)", agg.name())),
                );
                return None;
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => {
                if is_aggregate_call(e) {
                    self.error(Diagnostic::new(
                        span_pos(file, e, item.pos),
                        "aggregates cannot be nested",
                    ));
                    return None;
                }
                Some(self.plan_unqualified(file, e, item.pos, scope)?)
            }
            _ => {
                self.error(Diagnostic::new(
                    item.pos,
                    format!("{} takes exactly one argument", agg.name()),
                ));
                return None;
            }
        };
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
        let filter = match &f.filter {
            None => None,
            Some(e) => {
                let (expr, t) = self.plan_unqualified(file, e, item.pos, scope)?;
                if t != DataType::Boolean {
                    self.error(
                        Diagnostic::new(
                            span_pos(file, e.as_ref(), item.pos),
                            format!("FILTER condition is {t}, not BOOLEAN"),
                        )
                        .hint("write FILTER (WHERE clicked) or FILTER (WHERE x > 0)"),
                    );
                    return None;
                }
                Some(expr)
            }
        };
        Some(WindowFeature {
            name,
            agg,
            input: input.map(|(e, _)| e),
            filter,
            window_us: over.value,
            dtype,
        })
    }

    /// Resolves, canonicalizes (unqualified) and plans an expression over one source's columns.
    fn plan_unqualified(
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
        let cols: Vec<ScopeColumn> = scope
            .iter()
            .map(|s| ScopeColumn {
                qualifier: None,
                name: s.name.clone(),
                dtype: s.dtype.clone(),
            })
            .collect();
        self.plan_canonical(e, &cols, span_pos(file, expr, pos))
    }

    /// Plans a canonical expression from its own text, so what is stored is what was checked.
    fn plan_canonical(
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

    fn spec(&mut self, s: &Stmt) {
        let Stmt::Spec {
            name,
            source,
            joins,
            labels,
            items,
        } = s
        else {
            unreachable!()
        };
        let file = name.pos.file;
        let mut ok = self.check_name(name, "sample spec");
        let Some(src) = self.lookup_source(source) else {
            return;
        };
        // The base scope: event columns qualified by the source name, features by join alias.
        let mut scope: Vec<ScopeEntry> = src
            .columns
            .iter()
            .map(|c| ScopeEntry {
                qualifier: src.name.clone(),
                name: c.name.clone(),
                dtype: c.dtype.clone(),
            })
            .collect();
        let mut out_joins: Vec<Join> = Vec::new();
        for j in joins {
            let Some(group) = self.defs.groups.get(&j.group.value).cloned() else {
                if !self.first.contains_key(&("group", j.group.value.clone())) {
                    let hint = known_hint(
                        "feature groups",
                        &j.group.value,
                        self.defs.groups.keys().map(String::as_str),
                    );
                    self.error(
                        Diagnostic::new(
                            j.group.pos,
                            format!("unknown feature group \"{}\"", j.group.value),
                        )
                        .hint(hint),
                    );
                }
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
            let Some(keys) = self.bind_keys(&entity, &src, j.keys.as_deref(), &j.group, "join")
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
        if !ok {
            return;
        }
        for l in labels {
            if src.column(&l.value).is_none() {
                let hint = known_hint(
                    "columns",
                    &l.value,
                    src.columns.iter().map(|c| c.name.as_str()),
                );
                self.error(
                    Diagnostic::new(
                        l.pos,
                        format!(
                            "label \"{}\" is not a column of event source \"{}\"",
                            l.value, src.name
                        ),
                    )
                    .hint(hint),
                );
                ok = false;
            }
        }
        // Output names first, so transforms can reference one another.
        let mut out_names: Vec<Option<String>> = Vec::new();
        for item in items {
            out_names.push(self.item_name(item));
        }
        if out_names.iter().any(Option::is_none) {
            return;
        }
        let out_names: Vec<String> = out_names.into_iter().map(Option::unwrap).collect();
        for (i, n) in out_names.iter().enumerate() {
            if out_names[..i].contains(n) {
                let pos = items[i].alias.as_ref().map_or(items[i].pos, |a| a.pos);
                self.error(
                    Diagnostic::new(pos, format!("output column \"{n}\" is defined twice"))
                        .hint("name one of them differently with AS"),
                );
                ok = false;
            }
        }
        if !ok {
            return;
        }
        let mut r = SpecResolver {
            file,
            scope: &scope,
            items,
            names: &out_names,
            memo: vec![None; items.len()],
            stack: Vec::new(),
            diags: Vec::new(),
        };
        let resolved: Vec<Option<Expr>> = (0..items.len()).map(|i| r.resolve(i)).collect();
        let rdiags = std::mem::take(&mut r.diags);
        self.diags.extend(rdiags);
        let cols: Vec<ScopeColumn> = scope
            .iter()
            .map(|s| ScopeColumn {
                qualifier: Some(s.qualifier.clone()),
                name: s.name.clone(),
                dtype: s.dtype.clone(),
            })
            .collect();
        let mut columns = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(expr) = resolved[i].clone() else {
                ok = false;
                continue;
            };
            let role = match base_ref(&item.expr, &scope) {
                Some(entry) if entry.qualifier == src.name && entry.name == src.event_time => {
                    ColumnRole::EventTime { column: entry.name }
                }
                Some(entry)
                    if entry.qualifier == src.name
                        && labels.iter().any(|l| l.value == entry.name) =>
                {
                    ColumnRole::Label { column: entry.name }
                }
                Some(entry) if entry.qualifier == src.name => {
                    ColumnRole::Event { column: entry.name }
                }
                Some(entry) => ColumnRole::Feature {
                    join: entry.qualifier,
                    feature: entry.name,
                },
                None => ColumnRole::Transform,
            };
            let Some((text, dtype)) =
                self.plan_canonical(expr, &cols, span_pos(file, &item.expr, item.pos))
            else {
                ok = false;
                continue;
            };
            columns.push(OutputColumn {
                name: out_names[i].clone(),
                expr: text,
                dtype,
                role,
            });
        }
        for l in labels {
            if ok
                && !columns
                    .iter()
                    .any(|c| matches!(&c.role, ColumnRole::Label { column } if column == &l.value))
            {
                self.error(
                    Diagnostic::new(
                        l.pos,
                        format!("label \"{}\" is not among the selected columns", l.value),
                    )
                    .hint("add it to AS SELECT so samples carry it"),
                );
                ok = false;
            }
        }
        if columns.is_empty() {
            ok = false;
        }
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

    fn model(&mut self, name: &Name, spec: &Name, inputs: Option<&[Name]>) {
        let ok = self.check_name(name, "model");
        let Some(sp) = self.defs.specs.get(&spec.value).cloned() else {
            if !self.first.contains_key(&("spec", spec.value.clone())) {
                let hint = known_hint(
                    "sample specs",
                    &spec.value,
                    self.defs.specs.keys().map(String::as_str),
                );
                self.error(
                    Diagnostic::new(spec.pos, format!("unknown sample spec \"{}\"", spec.value))
                        .hint(hint),
                );
            }
            return;
        };
        let chosen: Vec<String> = match inputs {
            None => sp.default_inputs(),
            Some(list) => {
                let mut out = Vec::new();
                for n in list {
                    match sp.columns.iter().find(|c| c.name == n.value) {
                        None => {
                            let hint = known_hint(
                                "columns",
                                &n.value,
                                sp.columns.iter().map(|c| c.name.as_str()),
                            );
                            self.error(
                                Diagnostic::new(
                                    n.pos,
                                    format!(
                                        "\"{}\" is not a column of sample spec \"{}\"",
                                        n.value, sp.name
                                    ),
                                )
                                .hint(hint),
                            );
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
            self.defs.models.insert(
                name.value.clone(),
                Model {
                    name: name.value.clone(),
                    spec: sp.name.clone(),
                    inputs: chosen,
                    outputs: sp.labels.clone(),
                },
            );
        }
    }
}

/// Whether an expression is a call to one of the window aggregates.
fn is_aggregate_call(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if AGG_NAMES.iter().any(|a| f.name.to_string().eq_ignore_ascii_case(a)))
}

/// Constructs no fstore engine evaluates per row.
fn forbidden(file: usize, e: &Expr, fallback: Pos) -> Option<Diagnostic> {
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
fn base_ref(e: &Expr, scope: &[ScopeEntry]) -> Option<ScopeEntry> {
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
