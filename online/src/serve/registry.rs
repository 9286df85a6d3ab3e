//! `RegistryService`: the served registry version's objects and their Arrow schemas.

use super::*;

/// Registry reads.
pub struct RegistryService {
    pub shared: Arc<Shared>,
}

pub(super) fn kind_to_pb(k: Kind) -> pb::ObjectKind {
    match k {
        Kind::Entity => pb::ObjectKind::Entity,
        Kind::Source => pb::ObjectKind::Source,
        Kind::Group => pb::ObjectKind::FeatureGroup,
        Kind::Spec => pb::ObjectKind::SampleSpec,
        Kind::Model => pb::ObjectKind::Model,
    }
}

pub(super) fn summary(o: &ObjectRef<'_>) -> pb::ObjectSummary {
    pb::ObjectSummary {
        kind: kind_to_pb(o.kind()) as i32,
        name: o.name().to_string(),
        fingerprint: o.fingerprint(),
        version: match o {
            ObjectRef::Group(g) => g.version,
            _ => 0,
        },
    }
}

#[tonic::async_trait]
impl pb::registry_service_server::RegistryService for RegistryService {
    async fn list_objects(
        &self,
        request: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ListObjectsResponse>, Status> {
        let kinds = request.into_inner().kinds;
        let served = self.shared.current();
        let objects = served
            .defs
            .objects()
            .iter()
            .filter(|o| kinds.is_empty() || kinds.contains(&(kind_to_pb(o.kind()) as i32)))
            .map(summary)
            .collect();
        Ok(Response::new(pb::ListObjectsResponse {
            registry_version: served.version,
            objects,
        }))
    }

    async fn describe(
        &self,
        request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        describe(&self.shared.current(), request.into_inner().name)
            .map(Response::new)
            .map_err(|e| status(&e))
    }
}

/// The object `name` (`kind:name` to pick one kind) of the served version.
fn describe(served: &ServedVersion, name: String) -> Result<pb::DescribeResponse, Error> {
    let objects = served.defs.objects();
    let (kind, plain) = match name.split_once(':') {
        Some((k, n)) => (Some(k), n),
        None => (None, name.as_str()),
    };
    let found: Vec<&ObjectRef<'_>> = objects
        .iter()
        .filter(|o| {
            o.name() == plain
                && kind.is_none_or(|k| {
                    let label = o.kind().label();
                    k == label || label.ends_with(k)
                })
        })
        .collect();
    let obj = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::NotFound(format!(
                "no object named \"{name}\" in registry version {}",
                served.version
            )));
        }
        many => {
            return Err(Error::BadRequest(format!(
                "\"{name}\" names {} objects ({}); prefix the kind, e.g. group:{plain}",
                many.len(),
                many.iter()
                    .map(|o| o.kind().label())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let schema = fstore_registry::schema::object_schema(&served.defs, obj)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let ipc = match schema {
        None => Vec::new(),
        Some(s) => schema_ipc(&s).map_err(|e| Error::Internal(e.to_string()))?,
    };
    Ok(pb::DescribeResponse {
        registry_version: served.version,
        object: Some(summary(obj)),
        definition_json: obj.canonical_json(),
        arrow_schema_ipc: ipc,
    })
}

/// An Arrow schema as an IPC stream holding only the schema message.
pub fn schema_ipc(schema: &arrow::datatypes::Schema) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, schema)?;
        w.finish()?;
    }
    Ok(buf)
}
