//! Operating `fstore serve`: health and reflection services, registry reads, every error a
//! client can cause answered with the right gRPC status and a reason, Prometheus metrics, and
//! a graceful stop on SIGTERM.

use fstore_proto::v1 as pb;
use tonic::Code;

use crate::online_serve::Server;
use crate::support::http_get;

fn key(s: &str) -> pb::EntityKey {
    pb::EntityKey {
        parts: vec![pb::KeyPart {
            value: Some(pb::key_part::Value::StringValue(s.into())),
        }],
    }
}

/// A user_profile request with one key column.
fn columns(strings: Vec<&str>, ints: Vec<i64>) -> pb::GetFeaturesRequest {
    pb::GetFeaturesRequest {
        refs: vec!["user_profile".into()],
        keys: vec![],
        request_time_us: Some(0),
        key_columns: vec![pb::KeyColumn {
            string_values: strings.into_iter().map(String::from).collect(),
            int64_values: ints,
        }],
        format: 0,
    }
}

fn get(refs: &[&str], keys: Vec<pb::EntityKey>) -> pb::GetFeaturesRequest {
    pb::GetFeaturesRequest {
        refs: refs.iter().map(|r| r.to_string()).collect(),
        keys,
        request_time_us: Some(0),
        ..Default::default()
    }
}

#[tokio::test]
async fn serve_reports_health_reflection_registry_errors_and_metrics() {
    let work = tempfile::tempdir().unwrap();
    let registry = crate::support::apply_example(work.path(), "reg");
    let online = format!("rocksdb://{}", work.path().join("online").display());
    let (server, metrics) =
        Server::start_with(&registry, &online, "ops", &["--metrics", "127.0.0.1:0"]);
    let metrics = metrics.unwrap();
    let url = format!("http://{}", server.addr);
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Health.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "fstore.v1.FeatureService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Reflection lists the services.
    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse,
        };
        let mut refl = ServerReflectionClient::new(channel.clone());
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = refl
            .server_reflection_info(tokio_stream_once(req))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection response {resp:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in [
            "fstore.v1.FeatureService",
            "fstore.v1.RegistryService",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
    }

    // Registry reads: objects with fingerprints, a group's Arrow schema as IPC.
    let mut reg = pb::registry_service_client::RegistryServiceClient::connect(url.clone())
        .await
        .unwrap();
    let list = reg
        .list_objects(pb::ListObjectsRequest {
            kinds: vec![pb::ObjectKind::FeatureGroup as i32],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.registry_version, 1);
    let groups: Vec<&str> = list.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(groups, ["item_stats", "user_activity", "user_profile"]);
    assert!(
        list.objects
            .iter()
            .all(|o| o.version == 1 && o.fingerprint.len() == 64)
    );
    let d = reg
        .describe(pb::DescribeRequest {
            name: "group:user_profile".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let schema =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(d.arrow_schema_ipc), None)
            .unwrap()
            .schema();
    let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert!(
        fields.contains(&"age") && fields.contains(&"score"),
        "{fields:?}"
    );
    assert!(d.definition_json.contains("\"user_profile\""));
    let missing = reg
        .describe(pb::DescribeRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let ambiguous = reg
        .describe(pb::DescribeRequest {
            name: "user_profile".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(ambiguous.code(), Code::InvalidArgument);
    assert!(
        ambiguous
            .message()
            .contains("prefix the kind, e.g. group:user_profile")
    );

    // Every client mistake: the right code and a reason naming the thing.
    let mut c = server.client().await;
    let too_many = (0..10_001).map(|i| key(&format!("u{i}"))).collect();
    let int_key = pb::EntityKey {
        parts: vec![pb::KeyPart {
            value: Some(pb::key_part::Value::Int64Value(7)),
        }],
    };
    let two_parts = pb::EntityKey {
        parts: vec![key("a").parts[0].clone(), key("b").parts[0].clone()],
    };
    for (req, code, needle) in [
        (
            get(&["nope"], vec![key("u")]),
            Code::NotFound,
            "unknown feature group \"nope\" (known: item_stats, user_activity, user_profile)",
        ),
        (
            get(&["user_profile.agee"], vec![key("u")]),
            Code::NotFound,
            "unknown feature \"agee\" in group \"user_profile\" (known: age, city, score)",
        ),
        (
            get(&["user_profile"], too_many),
            Code::InvalidArgument,
            "10001 keys in one request; at most 10000",
        ),
        (
            get(&["user_profile"], vec![int_key]),
            Code::InvalidArgument,
            "\"user_id\" of entity \"user\" is STRING, got an int64",
        ),
        (
            get(&["user_profile"], vec![two_parts]),
            Code::InvalidArgument,
            "has 1 key part(s)",
        ),
        (
            get(&["user_profile", "item_stats"], vec![key("u")]),
            Code::InvalidArgument,
            "refs mix entities",
        ),
        (
            get(&[], vec![key("u")]),
            Code::InvalidArgument,
            "no feature refs",
        ),
        (
            columns(vec![], vec![1, 2]),
            Code::InvalidArgument,
            "key column \"user_id\" of entity \"user\" is STRING and needs 2 value(s) like the first key column; got 0 string_values and 2 int64_values",
        ),
        (
            pb::GetFeaturesRequest {
                keys: vec![key("u")],
                ..columns(vec!["u"], vec![])
            },
            Code::InvalidArgument,
            "both keys and key_columns",
        ),
        (
            pb::GetFeaturesRequest {
                key_columns: vec![pb::KeyColumn::default(); 2],
                ..columns(vec![], vec![])
            },
            Code::InvalidArgument,
            "entity \"user\" has 1 key column(s) (user_id), got 2 key_columns",
        ),
        (
            columns(vec!["u"; 10_001], vec![]),
            Code::InvalidArgument,
            "10001 keys in one request; at most 10000",
        ),
        (
            pb::GetFeaturesRequest {
                format: 7,
                ..columns(vec!["u"], vec![])
            },
            Code::InvalidArgument,
            "format 7 is not a response format: 0 (COLUMNS) or 1 (ARROW_IPC)",
        ),
    ] {
        let err = c.get_features(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    let bad_inputs = |model: &str, column: &str, v: pb::scalar::Value| pb::GetModelInputsRequest {
        model: model.into(),
        rows: vec![pb::EventRow {
            columns: [(column.to_string(), pb::Scalar { value: Some(v) })].into(),
        }],
        request_time_us: Some(0),
    };
    for (req, code, needle) in [
        (
            bad_inputs(
                "nope",
                "user_id",
                pb::scalar::Value::StringValue("u".into()),
            ),
            Code::NotFound,
            "unknown model or sample spec \"nope\"",
        ),
        (
            bad_inputs(
                "ctr_model",
                "userid",
                pb::scalar::Value::StringValue("u".into()),
            ),
            Code::InvalidArgument,
            "\"userid\" is not a column of source \"impressions\"",
        ),
        (
            bad_inputs(
                "ctr_model",
                "item_id",
                pb::scalar::Value::StringValue("x".into()),
            ),
            Code::InvalidArgument,
            "column \"item_id\" is INT64",
        ),
    ] {
        let err = c.get_model_inputs(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    // A spec by name serves its feature and transform columns.
    let ok = c
        .get_model_inputs(bad_inputs(
            "ctr",
            "user_id",
            pb::scalar::Value::StringValue("u".into()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.columns.len(), 11);
    assert_eq!(ok.columns[0].name, "age");

    // Metrics count what happened.
    let body = http_get(&metrics);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for needle in [
        "fstore_requests_total{method=\"GetFeatures\",code=\"NotFound\"} 2",
        "fstore_requests_total{method=\"GetFeatures\",code=\"InvalidArgument\"} 10",
        "fstore_requests_total{method=\"GetModelInputs\",code=\"Ok\"} 1",
        "fstore_request_seconds_count{method=\"GetFeatures\"} 12",
        "fstore_store_errors_total 0",
    ] {
        assert!(body.contains(needle), "{needle} not in\n{body}");
    }

    // SIGTERM: a graceful stop, exit 0, even with this test's idle connections left open
    // (the drain timeout bounds the wait).
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A one-message request stream.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::iter(std::iter::once(item))
}
