//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A service endpoint from the environment. Without it the test is skipped with a message,
/// unless `FSTORE_REQUIRE_SERVICES=1`, where a missing service is a failure.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("FSTORE_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!(
                    "{var} is not set but FSTORE_REQUIRE_SERVICES=1: run the suite with scripts/test.sh"
                );
            }
            eprintln!("skipped: {var} is not set (scripts/test.sh starts the servers)");
            None
        }
    }
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
}

pub use crate::contract_dir::contract_dir;

/// Runs the fstore binary.
pub fn fstore(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fstore"))
        .args(args)
        .current_dir(cwd)
        .env_remove("FSTORE_REGISTRY")
        .output()
        .expect("fstore runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Copies a folder of definitions (only `*.sql`) into `to`.
pub fn copy_defs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sql") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Replaces `from` with `to` in a file, asserting `from` is there.
pub fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(
        s.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

/// Fails with the first differing cells, sorted, if any.
pub fn assert_no_diffs(mut diffs: Vec<String>, cells: usize) {
    diffs.sort();
    let shown: Vec<&str> = diffs.iter().take(30).map(String::as_str).collect();
    assert!(
        diffs.is_empty(),
        "{} of {cells} cells differ:\n{}",
        diffs.len(),
        shown.join("\n")
    );
}

/// The response (status line, headers and body) of a plain HTTP GET.
pub fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `fstore apply` of the example's definitions into `work/NAME`; returns the registry path.
pub fn apply_example(work: &Path, name: &str) -> PathBuf {
    apply(work, &repo().join("examples/ctr"), name)
}

/// `fstore apply DEFS` into the registry `work/name`; returns its path.
pub fn apply(work: &Path, defs: &Path, name: &str) -> PathBuf {
    let registry = work.join(name);
    let out = fstore(
        &[
            "apply",
            defs.to_str().unwrap(),
            "--registry",
            registry.to_str().unwrap(),
        ],
        work,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    registry
}

/// Creates topics (name, partitions) on the broker; each must be new.
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1)))
        .collect();
    let created = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("broker answers create_topics");
    assert!(
        created.iter().all(Result::is_ok),
        "topics created: {created:?}"
    );
}

/// A redis-server of the test's own on 127.0.0.1 (no persistence, data in `dir`), listening
/// on `port` (with `args` it may instead speak TLS there); returns once the port accepts.
/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_redis(port: u16, dir: &Path, args: &[&std::ffi::OsStr]) -> std::process::Child {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    if args.is_empty() {
        cmd.args(["--port", &port.to_string()]);
    }
    let child = cmd
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/setup.sh installs it)");
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}
