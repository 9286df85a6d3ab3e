//! What every kind of definition shares: one definition per name, names that can be keys
//! and file names, unique columns, and lookups of what a statement refers to.

use std::collections::BTreeMap;

use fstore_registry::model::{Definitions, Entity, FeatureGroup, SampleSpec, Source};

use super::Checker;
use crate::ast::{ColumnDef, Name};
use crate::diag::{Diagnostic, known_hint};

/// A kind of definition a statement can refer to by name.
pub(super) struct Kind<T: 'static> {
    /// The kind as [`Checker::first_definition`] records it.
    key: &'static str,
    /// The kind in messages, singular and plural.
    one: &'static str,
    many: &'static str,
    /// Where the definitions of the kind are, by name.
    defined: fn(&Definitions) -> &BTreeMap<String, T>,
}

impl<T> Kind<T> {
    const fn new(
        key: &'static str,
        one: &'static str,
        many: &'static str,
        defined: fn(&Definitions) -> &BTreeMap<String, T>,
    ) -> Self {
        Kind {
            key,
            one,
            many,
            defined,
        }
    }
}

pub(super) const ENTITY: Kind<Entity> = Kind::new("entity", "entity", "entities", |d| &d.entities);
pub(super) const SOURCE: Kind<Source> = Kind::new("source", "source", "sources", |d| &d.sources);
pub(super) const GROUP: Kind<FeatureGroup> =
    Kind::new("group", "feature group", "feature groups", |d| &d.groups);
pub(super) const SPEC: Kind<SampleSpec> =
    Kind::new("spec", "sample spec", "sample specs", |d| &d.specs);

impl Checker {
    /// Records the first definition of each name per kind; reports later ones as duplicates.
    pub(super) fn first_definition(&mut self, kind: &'static str, name: &Name) -> bool {
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

    pub(super) fn check_name(&mut self, name: &Name, what: &str) -> bool {
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

    pub(super) fn unique_columns(&mut self, cols: &[ColumnDef], what: &str) -> bool {
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

    /// The definition of kind `kind` that `n` names. If there is none, says so, unless a
    /// definition of that name was refused (its own errors are reported).
    pub(super) fn lookup<T: Clone>(&mut self, kind: &Kind<T>, n: &Name) -> Option<T> {
        let found = (kind.defined)(&self.defs).get(&n.value).cloned();
        if found.is_none() && !self.first.contains_key(&(kind.key, n.value.clone())) {
            let known = (kind.defined)(&self.defs).keys().map(String::as_str);
            let hint = known_hint(kind.many, &n.value, known);
            self.error(
                Diagnostic::new(n.pos, format!("unknown {} \"{}\"", kind.one, n.value)).hint(hint),
            );
        }
        found
    }

    /// Whether `n` names a column of `source`; if not, says so (`{what} "n" is not a column
    /// of {of} "source"`), hinting the closest.
    pub(super) fn is_column_of(&mut self, source: &Source, n: &Name, what: &str, of: &str) -> bool {
        if source.column(&n.value).is_some() {
            return true;
        }
        let message = format!(
            "{what} \"{}\" is not a column of {of} \"{}\"",
            n.value, source.name
        );
        self.unknown_column(n, message, source.columns.iter().map(|c| c.name.as_str()));
        false
    }

    /// Reports `message` at `n`, a name that is none of `columns`, hinting the closest.
    pub(super) fn unknown_column<'c>(
        &mut self,
        n: &Name,
        message: String,
        columns: impl Iterator<Item = &'c str> + Clone,
    ) {
        let hint = known_hint("columns", &n.value, columns);
        self.error(Diagnostic::new(n.pos, message).hint(hint));
    }
}
