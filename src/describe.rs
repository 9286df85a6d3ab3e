//! `fstore describe` and `fstore list`: human-readable views of registry objects.

use std::fmt::Write;

use fstore_core::types::format_duration;
use fstore_registry::Snapshot;
use fstore_registry::model::{ColumnRole, FeatureGroup, GroupKind, Kind, ObjectRef, SampleSpec};
use fstore_registry::schema::{object_schema, render_schema};

use crate::exit::CliError;

fn kind_by_word(word: &str) -> Option<Kind> {
    Some(match word {
        "entity" => Kind::Entity,
        "source" => Kind::Source,
        "group" | "feature_group" => Kind::Group,
        "spec" | "sample_spec" => Kind::Spec,
        "model" => Kind::Model,
        _ => return None,
    })
}

/// Renders every object named `query` (or `kind:name`).
pub fn describe(snap: &Snapshot, query: &str, json: bool) -> Result<String, CliError> {
    let found = find(snap, query)?;
    let mut out = String::new();
    for (i, obj) in found.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if json {
            let v: serde_json::Value =
                serde_json::from_str(&obj.canonical_json()).expect("canonical json parses");
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).expect("json renders")
            )
            .unwrap();
        } else {
            render(&mut out, snap, obj)?;
        }
    }
    Ok(out)
}

/// The objects `query` names (`name` or `kind:name`); an error if there are none.
fn find<'s>(snap: &'s Snapshot, query: &str) -> Result<Vec<ObjectRef<'s>>, CliError> {
    let defs = &snap.definitions;
    let (kind, name) = match query.split_once(':') {
        Some((k, n)) => match kind_by_word(k) {
            Some(kind) => (Some(kind), n),
            None => {
                return Err(CliError::user(format!(
                    "unknown kind \"{k}\" (known: entity, source, group, spec, model)"
                )));
            }
        },
        None => (None, query),
    };
    let found: Vec<ObjectRef<'_>> = defs
        .find(name)
        .into_iter()
        .filter(|o| kind.is_none_or(|k| o.kind() == k))
        .collect();
    if found.is_empty() {
        let names: Vec<String> = defs
            .objects()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        return Err(CliError::user(format!(
            "no object \"{query}\" in registry version {} (known: {})",
            snap.version,
            names.join(", ")
        )));
    }
    Ok(found)
}

/// One object for people: a header line, what its kind declares, and its Arrow schema.
fn render(out: &mut String, snap: &Snapshot, obj: &ObjectRef<'_>) -> Result<(), CliError> {
    writeln!(
        out,
        "{} {}  (registry version {}, fingerprint {})",
        obj.kind().label(),
        obj.name(),
        snap.version,
        &obj.fingerprint()[..16]
    )
    .unwrap();
    match obj {
        ObjectRef::Entity(e) => {
            for k in &e.keys {
                writeln!(out, "  key {} {}", k.name, k.dtype).unwrap();
            }
        }
        ObjectRef::Source(s) => {
            writeln!(out, "  event time: {}", s.event_time).unwrap();
            if let Some(b) = &s.batch {
                writeln!(
                    out,
                    "  batch: {} ({})",
                    b,
                    snap.resolve_location(b).display()
                )
                .unwrap();
            }
            if let Some(t) = &s.topic {
                writeln!(out, "  kafka topic: {t} (JSON values)").unwrap();
            }
        }
        ObjectRef::Group(g) => render_group(out, g),
        ObjectRef::Spec(s) => render_spec(out, s),
        ObjectRef::Model(m) => {
            writeln!(out, "  sample spec: {}", m.spec).unwrap();
            writeln!(out, "  inputs: {}", m.inputs.join(", ")).unwrap();
            writeln!(out, "  outputs: {}", m.outputs.join(", ")).unwrap();
        }
    }
    if let Some(schema) = object_schema(&snap.definitions, obj)? {
        writeln!(out, "  arrow schema:").unwrap();
        out.push_str(
            &render_schema(&schema)
                .replace("\n  ", "\n    ")
                .replacen("  ", "    ", 1),
        );
    }
    Ok(())
}

/// A feature group's entity, source and features.
fn render_group(out: &mut String, g: &FeatureGroup) {
    writeln!(
        out,
        "  version {} on entity {} (keys: {}) from source {}",
        g.version,
        g.entity,
        g.keys.join(", "),
        g.source
    )
    .unwrap();
    match &g.kind {
        GroupKind::Row(r) => {
            writeln!(
                out,
                "  row group, TTL {}",
                r.ttl_us
                    .map(format_duration)
                    .unwrap_or_else(|| "none".into())
            )
            .unwrap();
            if !r.tie_break.is_empty() {
                writeln!(out, "  tie break: {}", r.tie_break.join(", ")).unwrap();
            }
            for f in &r.features {
                writeln!(out, "  feature {} {} = {}", f.name, f.dtype, f.expr).unwrap();
            }
        }
        GroupKind::Window(w) => {
            writeln!(out, "  window group over [t - w, t)").unwrap();
            for f in &w.features {
                let filter = f
                    .filter
                    .as_ref()
                    .map(|x| format!(" FILTER (WHERE {x})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  feature {} {} = {}({}){filter} OVER {}",
                    f.name,
                    f.dtype,
                    f.agg.name(),
                    f.input.as_deref().unwrap_or("*"),
                    format_duration(f.window_us)
                )
                .unwrap();
            }
        }
    }
}

/// A sample spec's events, joins and columns with their roles.
fn render_spec(out: &mut String, s: &SampleSpec) {
    writeln!(
        out,
        "  events from {}; labels: {}",
        s.source,
        s.labels.join(", ")
    )
    .unwrap();
    for j in &s.joins {
        writeln!(
            out,
            "  join {} as {} on ({})",
            j.group,
            j.alias,
            j.keys.join(", ")
        )
        .unwrap();
    }
    for c in &s.columns {
        let role = match &c.role {
            ColumnRole::Event { .. } => "event".to_string(),
            ColumnRole::EventTime { .. } => "event time".to_string(),
            ColumnRole::Label { .. } => "label".to_string(),
            ColumnRole::Feature { join, feature } => format!("feature {join}.{feature}"),
            ColumnRole::Transform => format!("transform {}", c.expr),
        };
        writeln!(out, "  column {} {}  [{role}]", c.name, c.dtype).unwrap();
    }
}

/// One line per object.
pub fn list(snap: &Snapshot) -> String {
    let mut out = format!(
        "registry version {} ({} objects)\n",
        snap.version,
        snap.definitions.objects().len()
    );
    for o in snap.definitions.objects() {
        let extra = match &o {
            ObjectRef::Group(g) => format!(" v{}", g.version),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:13} {}{extra}  {}",
            o.kind().label(),
            o.name(),
            &o.fingerprint()[..16]
        )
        .unwrap();
    }
    out
}
