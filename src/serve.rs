//! `fstore serve` (the gRPC server) and `fstore get` (a small client for operators).

use std::path::Path;
use std::time::Duration;

use fstore_online::OnlineStore;
use fstore_online::serve::{FeatureService, RegistryService, Shared};
use fstore_proto::v1 as pb;

use crate::exit::CliError;
use crate::sample::parse_time;

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::internal(e)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(internal)
}

/// Arguments of `fstore serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Online store: redis://host:port/db or rocksdb:///path.
    #[arg(
        long,
        env = "FSTORE_ONLINE",
        default_value = "rocksdb://.fstore/online"
    )]
    pub online: String,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:6570")]
    pub listen: String,
    /// Key namespace in the store.
    #[arg(long, default_value = "fstore")]
    pub namespace: String,
    /// Also serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long)]
    pub metrics: Option<String>,
    /// On SIGTERM/Ctrl-C, how long requests in flight may take to finish (and idle clients to
    /// leave) before the server exits anyway, e.g. 10s, 500ms.
    #[arg(long, default_value = "10s", value_parser = parse_grace)]
    pub drain_timeout: Duration,
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration like 10s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("\"{s}\": unit must be ms, s or m")),
    }
}

pub fn serve(registry: &Path, args: ServeArgs) -> Result<(), CliError> {
    runtime()?.block_on(async {
        let store = OnlineStore::open(&args.online)
            .await
            .map_err(CliError::from)?;
        let shared = Shared::open(registry.to_path_buf(), &args.namespace, store)
            .map_err(|e| CliError::user(e.to_string()))?;
        shared.watch(Duration::from_secs(1));
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| CliError::user(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener.local_addr().map_err(internal)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::feature_service_server::FeatureServiceServer<FeatureService>>()
            .await;
        health
            .set_serving::<pb::registry_service_server::RegistryServiceServer<RegistryService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(internal)?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(internal)?;
        println!(
            "serving registry version {} from {} on {addr}",
            shared.current().version,
            shared.store.describe()
        );
        if let Some(m) = &args.metrics {
            let ml = tokio::net::TcpListener::bind(m)
                .await
                .map_err(|e| CliError::user(format!("cannot listen on {m} for metrics: {e}")))?;
            let maddr = ml.local_addr().map_err(internal)?;
            let metrics = shared.metrics.clone();
            tokio::spawn(crate::metrics_http::serve(
                ml,
                std::sync::Arc::new(move || metrics.render()),
            ));
            println!("metrics on http://{maddr}/metrics");
        }
        tracing::info!(%addr, store = %shared.store.describe(), "serving");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // The signal starts the drain: health turns NOT_SERVING so balancers move away, new
        // connections are refused, requests in flight finish; after the drain timeout the
        // server stops even if clients keep idle connections open.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let drain = {
            let health = health.clone();
            async move {
                shutdown_signal().await;
                health
                    .set_not_serving::<pb::feature_service_server::FeatureServiceServer<FeatureService>>()
                    .await;
                let _ = stop_tx.send(true);
            }
        };
        let grace = args.drain_timeout;
        let forced = async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        };
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(pb::feature_service_server::FeatureServiceServer::new(
                FeatureService {
                    shared: shared.clone(),
                },
            ))
            .add_service(pb::registry_service_server::RegistryServiceServer::new(
                RegistryService { shared },
            ))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                drain,
            );
        tokio::select! {
            done = server => done.map_err(internal)?,
            _ = forced => tracing::warn!(timeout = ?grace, "clients still connected after the drain timeout; stopping"),
        }
        println!("stopped");
        Ok(())
    })
}

/// Ctrl-C or SIGTERM: stop accepting, finish requests in flight, exit.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Arguments of `fstore get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// A feature group ("user_profile") or feature ("user_profile.age").
    pub group: String,
    /// Entity keys; a composite key's parts joined by ':'. Parts that parse as integers are
    /// sent as INT64 unless --string-keys.
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// The server: host:port.
    #[arg(long, default_value = "127.0.0.1:6570")]
    pub server: String,
    /// Request time (YYYY-MM-DD or RFC 3339); now by default.
    #[arg(long)]
    pub at: Option<String>,
    /// Send every key part as a string.
    #[arg(long)]
    pub string_keys: bool,
    /// Print JSON (one object per key).
    #[arg(long)]
    pub json: bool,
}

fn column_json(c: &pb::Column, dtype: &str, i: usize) -> serde_json::Value {
    use serde_json::Value as J;
    if !c.valid.get(i).copied().unwrap_or(false) {
        return J::Null;
    }
    if let Some(inner) = dtype
        .strip_prefix("LIST<")
        .and_then(|d| d.strip_suffix('>'))
    {
        let (a, b) = (c.offsets[i] as usize, c.offsets[i + 1] as usize);
        let el = c.elements.as_deref().cloned().unwrap_or_default();
        return J::Array((a..b).map(|j| column_json(&el, inner, j)).collect());
    }
    match dtype {
        "BOOLEAN" => J::Bool(c.bool_values[i]),
        "INT64" => J::from(c.int64_values[i]),
        "TIMESTAMP" => J::String(fstore_core::json::format_timestamp(c.int64_values[i])),
        "DOUBLE" => {
            let d = c.double_values[i];
            if d.is_finite() {
                J::from(d)
            } else {
                J::String(d.to_string())
            }
        }
        _ => J::String(c.string_values.get(i).cloned().unwrap_or_default()),
    }
}

pub fn get(args: GetArgs) -> Result<(), CliError> {
    let at = args.at.as_deref().map(parse_time).transpose()?;
    let keys: Vec<pb::EntityKey> = args
        .keys
        .iter()
        .map(|k| pb::EntityKey {
            parts: k
                .split(':')
                .map(|p| pb::KeyPart {
                    value: Some(match p.parse::<i64>() {
                        Ok(n) if !args.string_keys => pb::key_part::Value::Int64Value(n),
                        _ => pb::key_part::Value::StringValue(p.to_string()),
                    }),
                })
                .collect(),
        })
        .collect();
    let resp = runtime()?.block_on(async {
        let url = format!("http://{}", args.server);
        let mut client = pb::feature_service_client::FeatureServiceClient::connect(url)
            .await
            .map_err(|e| CliError::user(format!("cannot reach {}: {e}", args.server)))?;
        client
            .get_features(pb::GetFeaturesRequest {
                refs: vec![args.group.clone()],
                keys,
                request_time_us: at,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| CliError {
                kind: fstore_online::status::kind_of(s.code()),
                message: format!("{:?}: {}", s.code(), s.message()),
            })
    })?;
    for g in &resp.groups {
        for (i, key) in args.keys.iter().enumerate() {
            let status = pb::KeyStatus::try_from(g.status[i])
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("KEY_STATUS_")
                        .to_string()
                })
                .unwrap_or_else(|_| g.status[i].to_string());
            let mut obj = serde_json::Map::new();
            obj.insert("key".into(), key.clone().into());
            obj.insert("group".into(), g.group.clone().into());
            obj.insert("status".into(), status.into());
            if g.status[i] != pb::KeyStatus::NotFound as i32 {
                obj.insert(
                    "event_time".into(),
                    fstore_core::json::format_timestamp(g.event_time_us[i]).into(),
                );
            }
            for f in &g.features {
                let c = f.values.clone().unwrap_or_default();
                obj.insert(f.name.clone(), column_json(&c, &f.dtype, i));
            }
            if args.json {
                println!("{}", serde_json::Value::Object(obj));
            } else {
                let fields: Vec<String> = obj
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{k}={s}"),
                        v => format!("{k}={v}"),
                    })
                    .collect();
                println!("{}", fields.join("  "));
            }
        }
    }
    Ok(())
}
