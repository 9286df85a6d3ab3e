//! What an `apply` would change, and whether each change is compatible or breaking.
//!
//! Rules (README "Registry compatibility" documents them for users):
//! - adding any object, adding a feature or an output column (every column is nullable),
//!   changing a TTL, a batch location or a topic, and adding a source column are **compatible**;
//! - dropping or retyping a feature or column, changing a feature's expression, aggregate,
//!   filter or window, a group's entity, source, keys or tie-break columns, a source's event
//!   time, an entity's keys, a spec's source, joins or labels, a model's inputs, and removing an
//!   object are **breaking**;
//! - a breaking change to an existing feature group needs its `VERSION` raised, and `apply`
//!   refuses it otherwise; a lower version is always refused; other breaking changes are
//!   refused unless the caller allows them (`--allow-breaking`).

use std::fmt;

use crate::model::{Definitions, FeatureGroup, GroupKind, Kind, ObjectRef, SampleSpec, Source};
use fstore_core::types::format_duration;

/// Compatible changes keep every reader working; breaking ones do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Compatible,
    Breaking,
}

/// Whether the object is new, gone or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Modify,
}

/// One object's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    pub op: Op,
    pub verdict: Verdict,
    /// What changed, one item per difference.
    pub details: Vec<String>,
    /// Why `apply` refuses this change, if it does.
    pub refusal: Option<String>,
}

/// The diff between the current registry version and new definitions.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn refusals(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.refusal.is_some())
    }
}

/// Compares `old` (the current version, if any) with `new`.
pub fn plan(old: Option<&Definitions>, new: &Definitions, allow_breaking: bool) -> Plan {
    let empty = Definitions::default();
    let old = old.unwrap_or(&empty);
    let mut plan = Plan::default();
    let old_objs = old.objects();
    let new_objs = new.objects();
    for n in &new_objs {
        match old_objs
            .iter()
            .find(|o| o.kind() == n.kind() && o.name() == n.name())
        {
            None => plan.changes.push(Change {
                kind: n.kind(),
                name: n.name().into(),
                op: Op::Add,
                verdict: Verdict::Compatible,
                details: vec![added_detail(n)],
                refusal: None,
            }),
            Some(o) if o.fingerprint() == n.fingerprint() => plan.unchanged += 1,
            Some(o) => plan.changes.push(modified(o, n, allow_breaking)),
        }
    }
    for o in &old_objs {
        if !new_objs
            .iter()
            .any(|n| n.kind() == o.kind() && n.name() == o.name())
        {
            plan.changes.push(Change {
                kind: o.kind(),
                name: o.name().into(),
                op: Op::Remove,
                verdict: Verdict::Breaking,
                details: vec!["removed".into()],
                refusal: (!allow_breaking).then(|| {
                    format!(
                        "removing {} \"{}\" breaks its readers; pass --allow-breaking to remove it",
                        o.kind().label(),
                        o.name()
                    )
                }),
            });
        }
    }
    plan
}

fn added_detail(o: &ObjectRef<'_>) -> String {
    match o {
        ObjectRef::Group(g) => format!("new group, version {}", g.version),
        _ => format!("new {}", o.kind().label()),
    }
}

struct Diff {
    details: Vec<String>,
    breaking: bool,
}

impl Diff {
    fn compatible(&mut self, d: String) {
        self.details.push(d);
    }
    fn breaking(&mut self, d: String) {
        self.details.push(d);
        self.breaking = true;
    }
}

fn modified(o: &ObjectRef<'_>, n: &ObjectRef<'_>, allow_breaking: bool) -> Change {
    let mut d = Diff {
        details: Vec::new(),
        breaking: false,
    };
    let mut refusal = None;
    match (o, n) {
        (ObjectRef::Entity(a), ObjectRef::Entity(b)) => {
            if a.keys != b.keys {
                d.breaking(format!(
                    "keys changed from ({}) to ({})",
                    keys(&a.keys),
                    keys(&b.keys)
                ));
            }
        }
        (ObjectRef::Source(a), ObjectRef::Source(b)) => diff_source(a, b, &mut d),
        (ObjectRef::Group(a), ObjectRef::Group(b)) => {
            diff_group(a, b, &mut d);
            if b.version < a.version {
                refusal = Some(format!(
                    "version {} is lower than the registered version {}",
                    b.version, a.version
                ));
            } else if b.version > a.version {
                d.compatible(format!("version {} → {}", a.version, b.version));
            } else if d.breaking {
                refusal = Some(format!(
                    "a breaking change to feature group \"{}\" needs a new version: set VERSION {} (online values of version {} stay readable by their readers)",
                    b.name,
                    a.version + 1,
                    a.version
                ));
            }
        }
        (ObjectRef::Spec(a), ObjectRef::Spec(b)) => diff_spec(a, b, &mut d),
        (ObjectRef::Model(a), ObjectRef::Model(b)) => {
            if a.spec != b.spec {
                d.breaking(format!(
                    "spec changed from \"{}\" to \"{}\"",
                    a.spec, b.spec
                ));
            }
            if a.inputs != b.inputs {
                d.breaking(format!(
                    "inputs changed from ({}) to ({})",
                    a.inputs.join(", "),
                    b.inputs.join(", ")
                ));
            }
            if a.outputs != b.outputs {
                d.breaking(format!(
                    "outputs changed from ({}) to ({})",
                    a.outputs.join(", "),
                    b.outputs.join(", ")
                ));
            }
        }
        _ => unreachable!("objects are matched by kind"),
    }
    if d.details.is_empty() {
        d.compatible("definition reformatted".into());
    }
    let is_group = matches!(n, ObjectRef::Group(_));
    if refusal.is_none() && d.breaking && !is_group && !allow_breaking {
        refusal = Some(format!(
            "breaking change to {} \"{}\"; pass --allow-breaking to apply it",
            n.kind().label(),
            n.name()
        ));
    }
    let version_bumped =
        matches!((o, n), (ObjectRef::Group(a), ObjectRef::Group(b)) if b.version > a.version);
    Change {
        kind: n.kind(),
        name: n.name().into(),
        op: Op::Modify,
        // A group whose version was raised is a new group version: compatible for readers of the old one.
        verdict: if d.breaking && !version_bumped {
            Verdict::Breaking
        } else {
            Verdict::Compatible
        },
        details: d.details,
        refusal,
    }
}

fn keys(c: &[crate::model::Column]) -> String {
    c.iter()
        .map(|c| format!("{} {}", c.name, c.dtype))
        .collect::<Vec<_>>()
        .join(", ")
}

fn diff_source(a: &Source, b: &Source, d: &mut Diff) {
    for c in &a.columns {
        match b.column(&c.name) {
            None => d.breaking(format!("column \"{}\" dropped", c.name)),
            Some(nc) if nc.dtype != c.dtype => d.breaking(format!(
                "column \"{}\" retyped {} → {}",
                c.name, c.dtype, nc.dtype
            )),
            _ => {}
        }
    }
    for c in &b.columns {
        if a.column(&c.name).is_none() {
            d.compatible(format!("column \"{}\" {} added", c.name, c.dtype));
        }
    }
    if a.event_time != b.event_time {
        d.breaking(format!(
            "event time column \"{}\" → \"{}\"",
            a.event_time, b.event_time
        ));
    }
    if a.batch != b.batch {
        d.compatible(format!("batch location {:?} → {:?}", a.batch, b.batch));
    }
    if a.topic != b.topic {
        d.compatible(format!("topic {:?} → {:?}", a.topic, b.topic));
    }
}

fn diff_group(a: &FeatureGroup, b: &FeatureGroup, d: &mut Diff) {
    if a.entity != b.entity {
        d.breaking(format!("entity \"{}\" → \"{}\"", a.entity, b.entity));
    }
    if a.source != b.source {
        d.breaking(format!("source \"{}\" → \"{}\"", a.source, b.source));
    }
    if a.keys != b.keys {
        d.breaking(format!(
            "key columns ({}) → ({})",
            a.keys.join(", "),
            b.keys.join(", ")
        ));
    }
    match (&a.kind, &b.kind) {
        (GroupKind::Row(ra), GroupKind::Row(rb)) => {
            if ra.ttl_us != rb.ttl_us {
                let f = |t: Option<i64>| t.map(format_duration).unwrap_or_else(|| "none".into());
                d.compatible(format!("TTL {} → {}", f(ra.ttl_us), f(rb.ttl_us)));
            }
            if ra.tie_break != rb.tie_break {
                d.breaking(format!(
                    "tie-break columns ({}) → ({})",
                    ra.tie_break.join(", "),
                    rb.tie_break.join(", ")
                ));
            }
            diff_named(
                &ra.features,
                &rb.features,
                |f| (&f.name, &f.dtype),
                |x, y| x.expr != y.expr,
                "expression",
                d,
            );
        }
        (GroupKind::Window(wa), GroupKind::Window(wb)) => diff_named(
            &wa.features,
            &wb.features,
            |f| (&f.name, &f.dtype),
            |x, y| {
                (x.agg, &x.input, &x.filter, x.window_us)
                    != (y.agg, &y.input, &y.filter, y.window_us)
            },
            "aggregate or window",
            d,
        ),
        _ => d.breaking("changed between a row group and a window group".into()),
    }
}

fn diff_named<T>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> (&String, &fstore_core::types::DataType),
    body_changed: impl Fn(&T, &T) -> bool,
    what: &str,
    d: &mut Diff,
) {
    for x in a {
        let (name, t) = key(x);
        match b.iter().find(|y| key(y).0 == name) {
            None => d.breaking(format!("feature \"{name}\" dropped")),
            Some(y) => {
                if key(y).1 != t {
                    d.breaking(format!("feature \"{name}\" retyped {t} → {}", key(y).1));
                }
                if body_changed(x, y) {
                    d.breaking(format!("feature \"{name}\" {what} changed"));
                }
            }
        }
    }
    for y in b {
        let (name, t) = key(y);
        if !a.iter().any(|x| key(x).0 == name) {
            d.compatible(format!("feature \"{name}\" {t} added"));
        }
    }
}

fn diff_spec(a: &SampleSpec, b: &SampleSpec, d: &mut Diff) {
    if a.source != b.source {
        d.breaking(format!("event source \"{}\" → \"{}\"", a.source, b.source));
    }
    if a.labels != b.labels {
        d.breaking(format!(
            "labels ({}) → ({})",
            a.labels.join(", "),
            b.labels.join(", ")
        ));
    }
    if a.joins != b.joins {
        d.breaking("joins changed".into());
    }
    for c in &a.columns {
        match b.columns.iter().find(|n| n.name == c.name) {
            None => d.breaking(format!("column \"{}\" dropped", c.name)),
            Some(n) => {
                if n.dtype != c.dtype {
                    d.breaking(format!(
                        "column \"{}\" retyped {} → {}",
                        c.name, c.dtype, n.dtype
                    ));
                }
                if n.expr != c.expr {
                    d.breaking(format!("column \"{}\" expression changed", c.name));
                }
            }
        }
    }
    for n in &b.columns {
        if !a.columns.iter().any(|c| c.name == n.name) {
            d.compatible(format!("column \"{}\" {} added", n.name, n.dtype));
        }
    }
    let order = |s: &SampleSpec| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let (oa, ob) = (order(a), order(b));
    let common_a: Vec<_> = oa.iter().filter(|n| ob.contains(n)).collect();
    let common_b: Vec<_> = ob.iter().filter(|n| oa.contains(n)).collect();
    if common_a != common_b {
        d.breaking("column order changed".into());
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .changes
            .iter()
            .map(|c| c.kind.label().len() + c.name.len() + 1)
            .max()
            .unwrap_or(0);
        for c in &self.changes {
            let sign = match c.op {
                Op::Add => '+',
                Op::Remove => '-',
                Op::Modify => '~',
            };
            let verdict = match c.verdict {
                Verdict::Compatible => "compatible",
                Verdict::Breaking => "BREAKING",
            };
            let label = format!("{} {}", c.kind.label(), c.name);
            writeln!(
                f,
                "  {sign} {label:width$}  {verdict}: {}",
                c.details.join("; ")
            )?;
            if let Some(r) = &c.refusal {
                writeln!(f, "      refused: {r}")?;
            }
        }
        write!(f, "  = {} unchanged", self.unchanged)
    }
}
