//! Entities and sources: their key and column declarations, and the binding of a source's
//! columns to an entity's keys (for groups and for joins).

use fstore_registry::DataType;
use fstore_registry::model::{Column, Entity, Source};

use super::Checker;
use crate::ast::{ColumnDef, Name};
use crate::diag::{Diagnostic, Pos, known_hint};

impl Checker {
    pub(super) fn entity(&mut self, name: &Name, keys: &[ColumnDef]) {
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
            let entity = Entity {
                name: name.value.clone(),
                keys: declared(keys),
            };
            self.defs.entities.insert(entity.name.clone(), entity);
        }
    }

    pub(super) fn source(
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
                    columns: declared(columns),
                    event_time: event_time.value.clone(),
                    batch: batch.cloned(),
                    topic: topic.cloned(),
                },
            );
        }
    }

    /// Binds columns of `table` to the entity's keys: the explicit list, or columns named like
    /// the keys. Checks count and types.
    pub(super) fn bind_keys(
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
}

/// Declared columns as the registry holds them.
fn declared(columns: &[ColumnDef]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name.value.clone(),
            dtype: c.dtype.clone(),
        })
        .collect()
}
