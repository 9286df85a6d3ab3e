//! Prometheus metrics of `fstore serve`: requests by method and gRPC code, latency histograms
//! by method, store errors, rendered in the text exposition format (the binary serves them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency bucket bounds, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    keys: AtomicU64,
    store_errors: AtomicU64,
}

impl Metrics {
    /// Records one finished request.
    pub fn request(&self, method: &'static str, code: tonic::Code, took: Duration, keys: usize) {
        let code = format!("{code:?}");
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method, code)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(method).or_default();
            let s = took.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += s;
        }
        self.keys.fetch_add(keys as u64, Ordering::Relaxed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP fstore_requests_total gRPC requests by method and status code.\n");
        out.push_str("# TYPE fstore_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((m, c), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "fstore_requests_total{{method=\"{m}\",code=\"{c}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP fstore_request_seconds gRPC request latency by method.\n");
        out.push_str("# TYPE fstore_request_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (m, h) in l.iter() {
                for (b, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "fstore_request_seconds_bucket{{method=\"{m}\",le=\"{b}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "fstore_request_seconds_bucket{{method=\"{m}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "fstore_request_seconds_sum{{method=\"{m}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "fstore_request_seconds_count{{method=\"{m}\"}} {}",
                    h.count
                );
            }
        }
        let mut counter = |name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        counter(
            "fstore_keys_total",
            "Entity keys (or event rows) requested.",
            &self.keys,
        );
        counter(
            "fstore_store_errors_total",
            "Online store operations that failed.",
            &self.store_errors,
        );
        out
    }
}
