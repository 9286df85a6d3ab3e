//! Arrow schemas of sources, feature groups and sample specs: what Parquet files, samples and
//! served values look like. Every field is nullable.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::Result;
use crate::model::{Column, Definitions, FeatureGroup, ObjectRef, SampleSpec, Source};
use fstore_core::types::DataType;

/// The column a feature group's schema uses for the event time of each key's value.
pub const GROUP_EVENT_TIME: &str = "event_time";

fn schema(fields: impl IntoIterator<Item = (String, DataType)>, obj: ObjectRef<'_>) -> SchemaRef {
    let fields: Vec<Field> = fields
        .into_iter()
        .map(|(n, t)| Field::new(n, t.to_arrow(), true))
        .collect();
    let meta = HashMap::from([
        ("fstore.kind".to_string(), obj.kind().label().to_string()),
        ("fstore.name".to_string(), obj.name().to_string()),
        ("fstore.fingerprint".to_string(), obj.fingerprint()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, meta))
}

fn cols(c: &[Column]) -> impl Iterator<Item = (String, DataType)> + '_ {
    c.iter().map(|c| (c.name.clone(), c.dtype.clone()))
}

/// The schema of a source's rows.
pub fn source_schema(s: &Source) -> SchemaRef {
    schema(cols(&s.columns), ObjectRef::Source(s))
}

/// The schema of a group's values: the entity key columns, `event_time`, then the features.
pub fn group_schema(defs: &Definitions, g: &FeatureGroup) -> Result<SchemaRef> {
    let entity = defs.entity(&g.entity)?;
    let mut fields: Vec<(String, DataType)> = cols(&entity.keys).collect();
    fields.push((GROUP_EVENT_TIME.into(), DataType::Timestamp));
    fields.extend(
        g.features()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone())),
    );
    Ok(schema(fields, ObjectRef::Group(g)))
}

/// The schema of a sample spec's rows, in output order.
pub fn spec_schema(s: &SampleSpec) -> SchemaRef {
    schema(
        s.columns.iter().map(|c| (c.name.clone(), c.dtype.clone())),
        ObjectRef::Spec(s),
    )
}

/// The schema of any object that has rows; `None` for entities and models.
pub fn object_schema(defs: &Definitions, obj: &ObjectRef<'_>) -> Result<Option<SchemaRef>> {
    Ok(match obj {
        ObjectRef::Source(s) => Some(source_schema(s)),
        ObjectRef::Group(g) => Some(group_schema(defs, g)?),
        ObjectRef::Spec(s) => Some(spec_schema(s)),
        ObjectRef::Entity(_) | ObjectRef::Model(_) => None,
    })
}

/// Renders a schema as aligned `name  TYPE` lines in fstore's type names.
pub fn render_schema(schema: &Schema) -> String {
    let rows: Vec<(String, String, String)> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = DataType::from_arrow(f.data_type())
                .map(|t| t.to_string())
                .unwrap_or_else(|| f.data_type().to_string());
            (f.name().to_string(), t, f.data_type().to_string())
        })
        .collect();
    let nw = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let tw = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(n, t, a)| format!("  {n:nw$}  {t:tw$}  arrow {a}\n"))
        .collect()
}
