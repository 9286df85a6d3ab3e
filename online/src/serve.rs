//! The gRPC services of `fstore serve`: `FeatureService` (online features) and
//! `RegistryService` (registry reads), over one [`OnlineStore`].
//!
//! The registry is reloaded when its `CURRENT` version changes (polled every second): each
//! request takes the state current when it starts, so a new version never fails a request in
//! flight and needs no restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fstore_core::codec::Value;
use fstore_core::rows::value_at;
use fstore_proto::v1 as pb;
use fstore_registry::compiled::CompiledSpec;
use fstore_registry::model::{Definitions, Kind, ObjectRef};
use fstore_registry::{DataType, Registry};
use tonic::{Request, Response, Status};

use crate::keys::KeyPart;
use crate::layout::{GroupLayout, KeyStatus};
use crate::status::status;
use crate::{Error, Fetched, OnlineStore};

/// Keys per `GetFeatures` request.
pub const MAX_KEYS: usize = 10_000;

/// One registry version, ready to serve.
pub struct ServedVersion {
    pub version: u64,
    pub defs: Definitions,
    layouts: HashMap<String, GroupLayout>,
    specs: HashMap<String, Arc<CompiledSpec>>,
}

impl ServedVersion {
    pub fn new(namespace: &str, version: u64, defs: Definitions) -> Result<Self, Error> {
        let layouts = defs
            .groups
            .keys()
            .map(|g| Ok((g.clone(), GroupLayout::new(namespace, &defs, g)?)))
            .collect::<Result<_, Error>>()?;
        let specs = defs
            .specs
            .keys()
            .map(|s| Ok((s.clone(), Arc::new(CompiledSpec::compile(&defs, s)?))))
            .collect::<Result<_, Error>>()?;
        Ok(ServedVersion {
            version,
            defs,
            layouts,
            specs,
        })
    }
}

/// Shared by both services.
pub struct Shared {
    pub registry: PathBuf,
    pub namespace: String,
    pub store: OnlineStore,
    pub metrics: Arc<crate::metrics::Metrics>,
    current: RwLock<Arc<ServedVersion>>,
}

impl Shared {
    /// Loads the registry's current version.
    pub fn open(
        registry: PathBuf,
        namespace: &str,
        store: OnlineStore,
    ) -> Result<Arc<Self>, Error> {
        let snap = Registry::new(&registry).require_current()?;
        let served = ServedVersion::new(namespace, snap.version, snap.definitions)?;
        Ok(Arc::new(Shared {
            registry,
            namespace: namespace.to_string(),
            store,
            metrics: Arc::default(),
            current: RwLock::new(Arc::new(served)),
        }))
    }

    /// The version requests starting now see.
    pub fn current(&self) -> Arc<ServedVersion> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the registry's current version if it changed; returns the new version number.
    pub fn reload(&self) -> Result<Option<u64>, Error> {
        let reg = Registry::new(&self.registry);
        let Some(v) = reg.current_version()? else {
            return Ok(None);
        };
        if v == self.current().version {
            return Ok(None);
        }
        let snap = reg.load(v)?;
        let served = Arc::new(ServedVersion::new(&self.namespace, v, snap.definitions)?);
        match self.current.write() {
            Ok(mut g) => *g = served,
            Err(poisoned) => *poisoned.into_inner() = served,
        }
        Ok(Some(v))
    }

    /// Polls the registry every `every` and swaps in new versions, until the process ends.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let me2 = me.clone();
                match tokio::task::spawn_blocking(move || me2.reload()).await {
                    Ok(Ok(Some(v))) => tracing::info!(version = v, "registry version loaded"),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "registry reload failed; serving the previous version")
                    }
                    Err(e) => tracing::warn!(error = %e, "registry reload task failed"),
                }
            }
        });
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn store_status(e: Error) -> Status {
    crate::status::status(&e)
}

/// The columns of one group to return: all features, or the named ones.
struct Wanted<'a> {
    layout: &'a GroupLayout,
    /// Indices into the layout's features, in request order.
    features: Vec<usize>,
}

/// Resolves `refs` ("group" or "group.feature") into groups of one entity.
fn resolve<'a>(v: &'a ServedVersion, refs: &[String]) -> Result<Vec<Wanted<'a>>, Status> {
    if refs.is_empty() {
        return Err(Status::invalid_argument(
            "no feature refs: name groups (\"user_profile\") or features (\"user_profile.age\")",
        ));
    }
    let mut out: Vec<Wanted<'a>> = Vec::new();
    for r in refs {
        let (group, feature) = match r.split_once('.') {
            Some((g, f)) => (g, Some(f)),
            None => (r.as_str(), None),
        };
        let Some(layout) = v.layouts.get(group) else {
            let known: Vec<&str> = v
                .layouts
                .keys()
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(Status::not_found(format!(
                "unknown feature group \"{group}\" (known: {})",
                known.join(", ")
            )));
        };
        let idx: Vec<usize> = match feature {
            None => (0..layout.features.len()).collect(),
            Some(f) => match layout.features.iter().position(|(n, _)| n == f) {
                Some(i) => vec![i],
                None => {
                    let known: Vec<&str> =
                        layout.features.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(Status::not_found(format!(
                        "unknown feature \"{f}\" in group \"{group}\" (known: {})",
                        known.join(", ")
                    )));
                }
            },
        };
        if let Some(first) = out.first()
            && first.layout.entity.name != layout.entity.name
        {
            return Err(Status::invalid_argument(format!(
                "refs mix entities: \"{}\" is keyed by {}, \"{group}\" by {}; one request serves one entity",
                first.layout.group.name, first.layout.entity.name, layout.entity.name
            )));
        }
        match out.iter_mut().find(|w| w.layout.group.name == group) {
            Some(w) => {
                for i in idx {
                    if !w.features.contains(&i) {
                        w.features.push(i);
                    }
                }
            }
            None => out.push(Wanted {
                layout,
                features: idx,
            }),
        }
    }
    Ok(out)
}

/// A request key as key parts of `layout`'s entity.
fn key_parts<'a>(
    layout: &GroupLayout,
    i: usize,
    key: &'a pb::EntityKey,
) -> Result<Vec<KeyPart<'a>>, Status> {
    let entity = &layout.entity;
    if key.parts.len() != entity.keys.len() {
        return Err(Status::invalid_argument(format!(
            "key {i}: entity \"{}\" has {} key part(s) ({}), got {}",
            entity.name,
            entity.keys.len(),
            entity
                .keys
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            key.parts.len()
        )));
    }
    entity
        .keys
        .iter()
        .zip(&key.parts)
        .map(|(col, part)| match (&col.dtype, &part.value) {
            (DataType::String, Some(pb::key_part::Value::StringValue(s))) => Ok(KeyPart::Str(s)),
            (DataType::Int64, Some(pb::key_part::Value::Int64Value(n))) => Ok(KeyPart::Int(*n)),
            (t, got) => Err(Status::invalid_argument(format!(
                "key {i}: \"{}\" of entity \"{}\" is {t}, got {}",
                col.name,
                entity.name,
                match got {
                    Some(pb::key_part::Value::StringValue(_)) => "a string",
                    Some(pb::key_part::Value::Int64Value(_)) => "an int64",
                    None => "nothing",
                }
            ))),
        })
        .collect()
}

/// How many keys a request names, in whichever form it sends them.
fn key_count(req: &pb::GetFeaturesRequest) -> usize {
    match req.key_columns.first() {
        None => req.keys.len(),
        Some(c) => c.string_values.len().max(c.int64_values.len()),
    }
}

/// One key column of a columnar request, borrowed.
enum KeyValues<'a> {
    Str(&'a [String]),
    Int(&'a [i64]),
}

/// The online keys of `layout` for a request's keys, from either key form.
fn request_keys(layout: &GroupLayout, req: &pb::GetFeaturesRequest) -> Result<Vec<String>, Status> {
    if req.key_columns.is_empty() {
        return req
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let parts = key_parts(layout, i, k)?;
                layout.key_of_parts(&parts).map_err(store_status)
            })
            .collect();
    }
    if !req.keys.is_empty() {
        return Err(Status::invalid_argument(
            "the request has both keys and key_columns; send one form",
        ));
    }
    let entity = &layout.entity;
    let names = || {
        entity
            .keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if req.key_columns.len() != entity.keys.len() {
        return Err(Status::invalid_argument(format!(
            "entity \"{}\" has {} key column(s) ({}), got {} key_columns",
            entity.name,
            entity.keys.len(),
            names(),
            req.key_columns.len()
        )));
    }
    let n = key_count(req);
    let columns = entity
        .keys
        .iter()
        .zip(&req.key_columns)
        .map(|(col, c)| {
            let (strings, ints) = (c.string_values.len(), c.int64_values.len());
            match &col.dtype {
                DataType::String if ints == 0 && strings == n => {
                    Ok(KeyValues::Str(&c.string_values))
                }
                DataType::Int64 if strings == 0 && ints == n => Ok(KeyValues::Int(&c.int64_values)),
                t => Err(Status::invalid_argument(format!(
                    "key column \"{}\" of entity \"{}\" is {t} and needs {n} value(s) like the \
                     first key column; got {strings} string_values and {ints} int64_values",
                    col.name, entity.name
                ))),
            }
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let mut parts = Vec::with_capacity(columns.len());
    (0..n)
        .map(|i| {
            parts.clear();
            parts.extend(columns.iter().map(|c| match c {
                KeyValues::Str(v) => KeyPart::Str(&v[i]),
                KeyValues::Int(v) => KeyPart::Int(v[i]),
            }));
            layout.key_of_parts(&parts).map_err(store_status)
        })
        .collect()
}

/// A typed column of `values` (all of type `dtype`), which it takes over.
pub fn to_column(dtype: &DataType, values: Vec<Value>) -> pb::Column {
    let mut c = empty_column(dtype, values.len());
    for v in values {
        push_value(&mut c, dtype, v);
    }
    c
}

/// A column of `dtype` with room for `rows` values.
fn empty_column(dtype: &DataType, rows: usize) -> pb::Column {
    let mut c = pb::Column {
        valid: Vec::with_capacity(rows),
        ..Default::default()
    };
    match dtype {
        DataType::Boolean => c.bool_values.reserve(rows),
        DataType::Int64 | DataType::Timestamp => c.int64_values.reserve(rows),
        DataType::Double => c.double_values.reserve(rows),
        DataType::String => c.string_values.reserve(rows),
        DataType::List(inner) => {
            c.offsets.reserve(rows + 1);
            c.offsets.push(0);
            c.elements = Some(Box::new(empty_column(inner, 0)));
        }
    }
    c
}

/// Appends one value (of type `dtype`, or NULL) to a column made by [`empty_column`].
fn push_value(c: &mut pb::Column, dtype: &DataType, v: Value) {
    c.valid.push(!matches!(v, Value::Null));
    match dtype {
        DataType::Boolean => c.bool_values.push(matches!(v, Value::Boolean(true))),
        DataType::Int64 | DataType::Timestamp => c.int64_values.push(match v {
            Value::Int64(n) | Value::Timestamp(n) => n,
            _ => 0,
        }),
        DataType::Double => c.double_values.push(match v {
            Value::Double(d) => d,
            _ => 0.0,
        }),
        DataType::String => c.string_values.push(match v {
            Value::String(s) => s,
            _ => String::new(),
        }),
        DataType::List(inner) => {
            let elements = c
                .elements
                .get_or_insert_with(|| Box::new(empty_column(inner, 0)));
            if let Value::List(items) = v {
                for item in items {
                    push_value(elements, inner, item);
                }
            }
            c.offsets.push(elements.valid.len() as u32);
        }
    }
}

/// Walks the requested keys: what a request at `at` sees for each (status, event time, the
/// group's values, which `row` may take), in request order.
fn each_key(
    w: &Wanted<'_>,
    keys: &[String],
    fetched: &Fetched,
    at: i64,
    mut row: impl FnMut(KeyStatus, Option<i64>, &mut [Value]),
) -> Result<(), Status> {
    for (key, raw) in keys.iter().zip(fetched.iter()) {
        let (st, t, mut values) = seen_at(w.layout, key, raw, at)?;
        row(st, t, &mut values);
    }
    Ok(())
}

/// One group's rows as protobuf columns, built key by key from the keys' stored values.
fn group_columns(
    w: &Wanted<'_>,
    keys: &[String],
    fetched: &Fetched,
    at: i64,
) -> Result<pb::GroupValues, Status> {
    let layout = w.layout;
    let n = keys.len();
    let mut status = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut columns: Vec<pb::Column> = w
        .features
        .iter()
        .map(|&f| empty_column(&layout.features[f].1, n))
        .collect();
    each_key(w, keys, fetched, at, |st, t, values| {
        status.push(status_pb(st) as i32);
        times.push(t.unwrap_or(0));
        // Each feature index appears once (resolve dedups), so values can move out.
        for (c, &f) in columns.iter_mut().zip(&w.features) {
            let v = std::mem::replace(&mut values[f], Value::Null);
            push_value(c, &layout.features[f].1, v);
        }
    })?;
    let features = w
        .features
        .iter()
        .zip(columns)
        .map(|(&f, values)| pb::FeatureColumn {
            name: feature_name(layout, f),
            dtype: layout.features[f].1.to_string(),
            values: Some(values),
        })
        .collect();
    Ok(pb::GroupValues {
        status,
        event_time_us: times,
        features,
        ..group_values(layout)
    })
}

/// A group's response header, its rows not yet filled in.
fn group_values(layout: &GroupLayout) -> pb::GroupValues {
    pb::GroupValues {
        group: layout.group.name.clone(),
        version: layout.group.version,
        ..Default::default()
    }
}

fn feature_name(layout: &GroupLayout, f: usize) -> String {
    format!("{}.{}", layout.group.name, layout.features[f].0)
}

/// One group's rows as an Arrow IPC stream (`GroupValues.arrow_ipc`): `status`, `event_time`
/// and the wanted features, each through the registry's one value-to-Arrow encoding.
fn group_arrow(
    w: &Wanted<'_>,
    keys: &[String],
    fetched: &Fetched,
    at: i64,
) -> Result<pb::GroupValues, Status> {
    use arrow::array::{ArrayRef, UInt8Array};
    use arrow::datatypes::{Field, Schema};
    use fstore_core::rows::ColumnBuilder;
    let layout = w.layout;
    let n = keys.len();
    let mut status = Vec::with_capacity(n);
    // Values go straight into the registry's column builders, the one value-to-Arrow path.
    let mut times = ColumnBuilder::new(&DataType::Timestamp, n);
    let mut columns: Vec<ColumnBuilder> = w
        .features
        .iter()
        .map(|&f| ColumnBuilder::new(&layout.features[f].1, n))
        .collect();
    let mut failed = None;
    each_key(w, keys, fetched, at, |st, t, values| {
        status.push(status_pb(st) as u8);
        let mut put = |b: &mut ColumnBuilder, v: &Value| {
            if let Err(e) = b.append(v) {
                failed.get_or_insert(e);
            }
        };
        put(&mut times, &t.map_or(Value::Null, Value::Timestamp));
        for (c, &f) in columns.iter_mut().zip(&w.features) {
            put(c, &values[f]);
        }
    })?;
    let encode = |e: fstore_core::Error| Status::internal(format!("arrow encoding: {e}"));
    if let Some(e) = failed {
        return Err(encode(e));
    }
    let mut fields = vec![
        Field::new("status", arrow::datatypes::DataType::UInt8, false),
        Field::new("event_time", DataType::Timestamp.to_arrow(), true),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from(status)),
        times.finish().map_err(encode)?,
    ];
    for (&f, mut b) in w.features.iter().zip(columns) {
        let dtype = &layout.features[f].1;
        fields.push(Field::new(feature_name(layout, f), dtype.to_arrow(), true));
        arrays.push(b.finish().map_err(encode)?);
    }
    let ipc = arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .and_then(|batch| {
            let mut buf = Vec::with_capacity(64 + n * 8 * (2 + w.features.len()));
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema())?;
            writer.write(&batch)?;
            writer.finish()?;
            drop(writer);
            Ok(buf)
        })
        .map_err(|e| Status::internal(format!("arrow encoding: {e}")))?;
    Ok(pb::GroupValues {
        arrow_ipc: ipc,
        ..group_values(layout)
    })
}

fn status_pb(s: KeyStatus) -> pb::KeyStatus {
    match s {
        KeyStatus::Found => pb::KeyStatus::Found,
        KeyStatus::NotFound => pb::KeyStatus::NotFound,
        KeyStatus::Expired => pb::KeyStatus::Expired,
    }
}

/// What a request at `at` sees for each key of `layout` (`None`: a key with a NULL part, which
/// has no value), in one store round trip.
async fn lookup(
    store: &OnlineStore,
    layout: &GroupLayout,
    keys: &[Option<String>],
    at: i64,
) -> Result<Vec<(KeyStatus, Option<i64>, Vec<Value>)>, Status> {
    let present: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
    let fetched = store.get(&present).await.map_err(store_status)?;
    let mut raw = fetched.iter();
    keys.iter()
        .map(|k| match k {
            Some(key) => seen_at(layout, key, raw.next().flatten(), at),
            None => seen_at(layout, "?", None, at),
        })
        .collect()
}

/// What a request at `at` sees for `key`, whose stored value is `raw`.
fn seen_at(
    layout: &GroupLayout,
    key: &str,
    raw: Option<&[u8]>,
    at: i64,
) -> Result<(KeyStatus, Option<i64>, Vec<Value>), Status> {
    layout
        .values_at(raw, at)
        .map_err(|e| Status::internal(format!("stored value of {key} does not decode: {e}")))
}

/// An event column's value from a request scalar.
fn scalar_value(dtype: &DataType, s: &pb::Scalar) -> Option<Value> {
    use pb::scalar::Value as S;
    match (dtype, &s.value) {
        (_, None) => Some(Value::Null),
        (DataType::Boolean, Some(S::BoolValue(b))) => Some(Value::Boolean(*b)),
        (DataType::Int64, Some(S::Int64Value(n))) => Some(Value::Int64(*n)),
        (DataType::Double, Some(S::DoubleValue(d))) => Some(Value::Double(*d)),
        (DataType::Double, Some(S::Int64Value(n))) => Some(Value::Double(*n as f64)),
        (DataType::String, Some(S::StringValue(v))) => Some(Value::String(v.clone())),
        (DataType::Timestamp, Some(S::TimestampUs(t) | S::Int64Value(t))) => {
            Some(Value::Timestamp(*t))
        }
        _ => None,
    }
}

/// Online features.
pub struct FeatureService {
    pub shared: Arc<Shared>,
}

#[tonic::async_trait]
impl pb::feature_service_server::FeatureService for FeatureService {
    async fn get_features(
        &self,
        request: Request<pb::GetFeaturesRequest>,
    ) -> Result<Response<pb::GetFeaturesResponse>, Status> {
        let started = std::time::Instant::now();
        let keys = key_count(request.get_ref());
        let out = self.features(request.into_inner()).await;
        self.record("GetFeatures", &out, started, keys);
        out.map(Response::new)
    }

    async fn get_model_inputs(
        &self,
        request: Request<pb::GetModelInputsRequest>,
    ) -> Result<Response<pb::GetModelInputsResponse>, Status> {
        let started = std::time::Instant::now();
        let rows = request.get_ref().rows.len();
        let out = self.model_inputs(request.into_inner()).await;
        self.record("GetModelInputs", &out, started, rows);
        out.map(Response::new)
    }
}

impl FeatureService {
    fn record<T>(
        &self,
        method: &'static str,
        out: &Result<T, Status>,
        started: std::time::Instant,
        keys: usize,
    ) {
        let code = match out {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        if code == tonic::Code::Unavailable {
            self.shared.metrics.store_error();
        }
        self.shared
            .metrics
            .request(method, code, started.elapsed(), keys);
    }

    async fn features(
        &self,
        req: pb::GetFeaturesRequest,
    ) -> Result<pb::GetFeaturesResponse, Status> {
        let served = self.shared.current();
        let wanted = resolve(&served, &req.refs)?;
        if key_count(&req) > MAX_KEYS {
            return Err(Status::invalid_argument(format!(
                "{} keys in one request; at most {MAX_KEYS}",
                key_count(&req)
            )));
        }
        let at = req.request_time_us.unwrap_or_else(now_us);
        let arrow = match pb::ResponseFormat::try_from(req.format) {
            Ok(f) => f == pb::ResponseFormat::ArrowIpc,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "format {} is not a response format: 0 (COLUMNS) or 1 (ARROW_IPC)",
                    req.format
                )));
            }
        };
        let mut groups = Vec::with_capacity(wanted.len());
        for w in &wanted {
            let keys = request_keys(w.layout, &req)?;
            let fetched = self.shared.store.get(&keys).await.map_err(store_status)?;
            groups.push(if arrow {
                group_arrow(w, &keys, &fetched, at)?
            } else {
                group_columns(w, &keys, &fetched, at)?
            });
        }
        Ok(pb::GetFeaturesResponse {
            registry_version: served.version,
            request_time_us: at,
            groups,
        })
    }

    async fn model_inputs(
        &self,
        req: pb::GetModelInputsRequest,
    ) -> Result<pb::GetModelInputsResponse, Status> {
        let served = self.shared.current();
        let defs = &served.defs;
        let binding = defs
            .binding(&req.model)
            .map_err(|e| status(&Error::from(e)))?;
        let (spec_name, inputs) = (binding.spec.name.clone(), binding.inputs);
        let spec =
            served.specs.get(&spec_name).cloned().ok_or_else(|| {
                Status::internal(format!("sample spec \"{spec_name}\" not compiled"))
            })?;
        if req.rows.len() > MAX_KEYS {
            return Err(Status::invalid_argument(format!(
                "{} rows in one request; at most {MAX_KEYS}",
                req.rows.len()
            )));
        }
        let at = req.request_time_us.unwrap_or_else(now_us);
        let n = req.rows.len();
        // The events: request columns by name, the event time set to the request time.
        let source = &spec.source;
        let mut events: Vec<Vec<Value>> = vec![vec![Value::Null; n]; source.columns.len()];
        for (i, row) in req.rows.iter().enumerate() {
            for (name, scalar) in &row.columns {
                let Some(c) = source.columns.iter().position(|c| &c.name == name) else {
                    let known: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(Status::invalid_argument(format!(
                        "row {i}: \"{name}\" is not a column of source \"{}\" (known: {})",
                        source.name,
                        known.join(", ")
                    )));
                };
                let dtype = &source.columns[c].dtype;
                events[c][i] = scalar_value(dtype, scalar).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "row {i}: column \"{name}\" is {dtype}, got {scalar:?}"
                    ))
                })?;
            }
        }
        events[spec.ts_column] = vec![Value::Timestamp(at); n];
        let mut features: Vec<Vec<Value>> = Vec::new();
        for join in &spec.joins {
            let layout = served.layouts.get(&join.group.group.name).ok_or_else(|| {
                Status::internal(format!("no layout for group \"{}\"", join.group.group.name))
            })?;
            let keys = (0..n)
                .map(|i| {
                    let key: Vec<Value> = join
                        .event_keys
                        .iter()
                        .map(|&c| events[c][i].clone())
                        .collect();
                    if key.iter().any(|v| matches!(v, Value::Null)) {
                        Ok(None)
                    } else {
                        layout.key(&key).map(Some).map_err(store_status)
                    }
                })
                .collect::<Result<Vec<_>, Status>>()?;
            let looked = lookup(&self.shared.store, layout, &keys, at).await?;
            for f in 0..layout.features.len() {
                features.push(looked.iter().map(|(_, _, v)| v[f].clone()).collect());
            }
        }
        let out = spec
            .samples_from_values(events, features)
            .map_err(|e| Status::internal(e.to_string()))?;
        let columns = inputs
            .iter()
            .map(|name| {
                let c = spec
                    .spec
                    .columns
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| {
                        Status::internal(format!("model input \"{name}\" is not a spec column"))
                    })?;
                let values = (0..n)
                    .map(|r| value_at(out.column(c), r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Status::internal(e.to_string()))?;
                let dtype = &spec.spec.columns[c].dtype;
                Ok(pb::FeatureColumn {
                    name: name.clone(),
                    dtype: dtype.to_string(),
                    values: Some(to_column(dtype, values)),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(pb::GetModelInputsResponse {
            registry_version: served.version,
            request_time_us: at,
            spec: spec_name,
            columns,
        })
    }
}

/// Registry reads.
pub struct RegistryService {
    pub shared: Arc<Shared>,
}

fn kind_to_pb(k: Kind) -> pb::ObjectKind {
    match k {
        Kind::Entity => pb::ObjectKind::Entity,
        Kind::Source => pb::ObjectKind::Source,
        Kind::Group => pb::ObjectKind::FeatureGroup,
        Kind::Spec => pb::ObjectKind::SampleSpec,
        Kind::Model => pb::ObjectKind::Model,
    }
}

fn summary(o: &ObjectRef<'_>) -> pb::ObjectSummary {
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
        let name = request.into_inner().name;
        let served = self.shared.current();
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
                return Err(Status::not_found(format!(
                    "no object named \"{name}\" in registry version {}",
                    served.version
                )));
            }
            many => {
                return Err(Status::invalid_argument(format!(
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
            .map_err(|e| Status::internal(e.to_string()))?;
        let ipc = match schema {
            None => Vec::new(),
            Some(s) => schema_ipc(&s).map_err(|e| Status::internal(e.to_string()))?,
        };
        Ok(Response::new(pb::DescribeResponse {
            registry_version: served.version,
            object: Some(summary(obj)),
            definition_json: obj.canonical_json(),
            arrow_schema_ipc: ipc,
        }))
    }
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
