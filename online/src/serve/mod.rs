//! The gRPC services of `fstore serve`: `FeatureService` (online features) and
//! `RegistryService` (registry reads), over one [`OnlineStore`].
//!
//! The registry is reloaded when its `CURRENT` version changes (polled every second): each
//! request takes the state current when it starts, so a new version never fails a request in
//! flight and needs no restart.
//!
//! Handlers work in [`Error`]s; each becomes a `tonic::Status` in one place,
//! [`crate::status::status`], at the edge of the service. [`request`] reads requests,
//! [`response`] encodes values, [`registry`] serves registry reads.

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

mod registry;
mod request;
mod response;

pub use registry::{RegistryService, schema_ipc};
use request::*;
pub use response::to_column;
use response::*;

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

/// What a request at `at` sees for each key of `layout` (`None`: a key with a NULL part, which
/// has no value), in one store round trip.
async fn lookup(
    store: &OnlineStore,
    layout: &GroupLayout,
    keys: &[Option<String>],
    at: i64,
) -> Result<Vec<(KeyStatus, Option<i64>, Vec<Value>)>, Error> {
    let present: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
    let fetched = store.get(&present).await?;
    let mut raw = fetched.iter();
    keys.iter()
        .map(|k| match k {
            Some(key) => seen_at(layout, key, raw.next().flatten(), at),
            None => seen_at(layout, "?", None, at),
        })
        .collect()
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
        out.map(Response::new).map_err(|e| status(&e))
    }

    async fn get_model_inputs(
        &self,
        request: Request<pb::GetModelInputsRequest>,
    ) -> Result<Response<pb::GetModelInputsResponse>, Status> {
        let started = std::time::Instant::now();
        let rows = request.get_ref().rows.len();
        let out = self.model_inputs(request.into_inner()).await;
        self.record("GetModelInputs", &out, started, rows);
        out.map(Response::new).map_err(|e| status(&e))
    }
}

impl FeatureService {
    fn record<T>(
        &self,
        method: &'static str,
        out: &Result<T, Error>,
        started: std::time::Instant,
        keys: usize,
    ) {
        let code = match out {
            Ok(_) => tonic::Code::Ok,
            Err(e) => crate::status::code(e.kind()),
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
    ) -> Result<pb::GetFeaturesResponse, Error> {
        let served = self.shared.current();
        let wanted = resolve(&served, &req.refs)?;
        if key_count(&req) > MAX_KEYS {
            return Err(Error::BadRequest(format!(
                "{} keys in one request; at most {MAX_KEYS}",
                key_count(&req)
            )));
        }
        let at = req.request_time_us.unwrap_or_else(now_us);
        let arrow = match pb::ResponseFormat::try_from(req.format) {
            Ok(f) => f == pb::ResponseFormat::ArrowIpc,
            Err(_) => {
                return Err(Error::BadRequest(format!(
                    "format {} is not a response format: 0 (COLUMNS) or 1 (ARROW_IPC)",
                    req.format
                )));
            }
        };
        let mut groups = Vec::with_capacity(wanted.len());
        for w in &wanted {
            let keys = request_keys(w.layout, &req)?;
            let fetched = self.shared.store.get(&keys).await?;
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
    ) -> Result<pb::GetModelInputsResponse, Error> {
        let served = self.shared.current();
        let defs = &served.defs;
        let binding = defs.binding(&req.model)?;
        let (spec_name, inputs) = (binding.spec.name.clone(), binding.inputs);
        let spec =
            served.specs.get(&spec_name).cloned().ok_or_else(|| {
                Error::Internal(format!("sample spec \"{spec_name}\" not compiled"))
            })?;
        if req.rows.len() > MAX_KEYS {
            return Err(Error::BadRequest(format!(
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
                    return Err(Error::BadRequest(format!(
                        "row {i}: \"{name}\" is not a column of source \"{}\" (known: {})",
                        source.name,
                        known.join(", ")
                    )));
                };
                let dtype = &source.columns[c].dtype;
                events[c][i] = scalar_value(dtype, scalar).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "row {i}: column \"{name}\" is {dtype}, got {scalar:?}"
                    ))
                })?;
            }
        }
        events[spec.ts_column] = vec![Value::Timestamp(at); n];
        let mut features: Vec<Vec<Value>> = Vec::new();
        for join in &spec.joins {
            let layout = served.layouts.get(&join.group.group.name).ok_or_else(|| {
                Error::Internal(format!("no layout for group \"{}\"", join.group.group.name))
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
                        layout.key(&key).map(Some)
                    }
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let looked = lookup(&self.shared.store, layout, &keys, at).await?;
            for f in 0..layout.features.len() {
                features.push(looked.iter().map(|(_, _, v)| v[f].clone()).collect());
            }
        }
        let out = spec
            .samples_from_values(events, features)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let columns = inputs
            .iter()
            .map(|name| {
                let c = spec
                    .spec
                    .columns
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| {
                        Error::Internal(format!("model input \"{name}\" is not a spec column"))
                    })?;
                let values = (0..n)
                    .map(|r| value_at(out.column(c), r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let dtype = &spec.spec.columns[c].dtype;
                Ok(pb::FeatureColumn {
                    name: name.clone(),
                    dtype: dtype.to_string(),
                    values: Some(to_column(dtype, values)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(pb::GetModelInputsResponse {
            registry_version: served.version,
            request_time_us: at,
            spec: spec_name,
            columns,
        })
    }
}
