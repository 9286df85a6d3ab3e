//! An online store outage: with its Redis stopped, `fstore serve` answers UNAVAILABLE naming
//! the cause (no panic, no hang); once Redis is back, requests succeed again without a restart.
//! The test runs its own redis-server (the binary scripts/setup.sh installs) so it can stop it.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fstore_core::codec::Value;
use fstore_online::OnlineStore;
use fstore_online::layout::GroupLayout;
use fstore_proto::v1 as pb;

use crate::online_serve::Server;

fn start_redis(port: u16, dir: &std::path::Path) -> Child {
    crate::support::start_redis(port, dir, &[])
}

async fn request(server: &Server) -> Result<pb::GetFeaturesResponse, tonic::Status> {
    server
        .client()
        .await
        .get_features(pb::GetFeaturesRequest {
            refs: vec!["user_profile".into()],
            keys: vec![pb::EntityKey {
                parts: vec![pb::KeyPart {
                    value: Some(pb::key_part::Value::StringValue("u1".into())),
                }],
            }],
            request_time_us: Some(1_000),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn put(url: &str, registry: &std::path::Path) {
    let defs = fstore_registry::Registry::new(registry)
        .require_current()
        .unwrap()
        .definitions;
    let layout = GroupLayout::new("outage", &defs, "user_profile").unwrap();
    let value = layout
        .encode(
            500,
            &[
                Value::Int64(42),
                Value::String("Zürich".into()),
                Value::Double(0.5),
            ],
        )
        .unwrap();
    let store = OnlineStore::open(url).await.unwrap();
    store
        .put_newer(vec![(
            layout.key(&[Value::String("u1".into())]).unwrap(),
            value,
        )])
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_outage_gives_unavailable_then_recovers() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("FSTORE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "redis-server is required (scripts/setup.sh installs it)"
        );
        eprintln!("skipped: no redis-server binary");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = crate::support::apply_example(work.path(), "reg");
    let port = crate::support::free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let mut redis = start_redis(port, work.path());
    put(&url, &registry).await;
    let server = Server::start(&registry, &url, "outage");
    let ok = request(&server).await.unwrap();
    assert_eq!(ok.groups[0].status, vec![pb::KeyStatus::Found as i32]);

    redis.kill().unwrap();
    redis.wait().unwrap();
    let t0 = Instant::now();
    let err = request(&server).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{port}")),
        "the cause names the store: {}",
        err.message()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "UNAVAILABLE took {:?}",
        t0.elapsed()
    );

    // Back (empty, as it kept nothing on disk): the server reconnects by itself.
    let mut redis = start_redis(port, work.path());
    put(&url, &registry).await;
    let t0 = Instant::now();
    loop {
        match request(&server).await {
            Ok(r) => {
                assert_eq!(r.groups[0].status, vec![pb::KeyStatus::Found as i32]);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                assert!(t0.elapsed() < Duration::from_secs(20), "no recovery: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    redis.kill().unwrap();
    let _ = redis.wait();
}
