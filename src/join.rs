//! `fstore join`: the streaming joiner, with the online store wired in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use fstore_core::json::format_timestamp;
use fstore_joiner::{
    Instance, JoinConfig, Joiner, OnlineUpdate, OnlineValue, OnlineWriter, SinkTarget, Summary,
};
use fstore_online::OnlineStore;
use fstore_online::layout::GroupLayout;
use fstore_registry::Registry;
use fstore_registry::model::Definitions;

use crate::exit::CliError;

/// Arguments of `fstore join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The sample spec to compute.
    pub spec: String,
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = "FSTORE_KAFKA_BROKERS")]
    pub brokers: String,
    /// Folder of the joiner's state (RocksDB): key state, pending events, checkpoints.
    #[arg(long)]
    pub state: PathBuf,
    /// Where samples go: kafka://TOPIC (JSON, keyed by the event's key) or parquet://DIR
    /// (dated Parquet files like `fstore sample`).
    #[arg(long)]
    pub sink: String,
    /// Also keep an online store fresh: redis://… or rocksdb:///… (newer values win).
    #[arg(long)]
    pub online: Option<String>,
    /// Key namespace in the online store.
    #[arg(long, default_value = "fstore")]
    pub namespace: String,
    /// How late (in event time) a row may arrive behind its partition's newest and still be
    /// joined, e.g. 30s, 10m, 1h.
    #[arg(long, default_value = "1m")]
    pub lateness: String,
    /// Process the messages present at the start, emit every sample, commit, exit 0.
    #[arg(long)]
    pub until_end: bool,
    /// Dead-letter topic (default: fstore-SPEC-dead-letter).
    #[arg(long)]
    pub dead_letter: Option<String>,
    /// Read a source from another topic: NAME=TOPIC. Repeatable.
    #[arg(long = "topic", value_name = "NAME=TOPIC")]
    pub topics: Vec<String>,
    /// How often state, offsets and output are committed together, e.g. 5s, 500ms.
    #[arg(long, default_value = "5s")]
    pub checkpoint_interval: String,
    /// A partition quiet this long stops holding the watermark back (not with --until-end).
    #[arg(long, default_value = "30s")]
    pub idle_timeout: String,
    /// This instance's share of the partitions: I/N (see README, scaling out).
    #[arg(long, default_value = "0/1")]
    pub instance: String,
    /// A source every instance reads whole (not partitioned like the events). Repeatable.
    #[arg(long)]
    pub broadcast: Vec<String>,
    /// Joiner threads in this process, one per core to use (at most 256). Each is an instance
    /// of its own (thread t of instance I/N is instance I+N×t of N×T) with its own state
    /// sub-folder `thread-t`, so sources not keyed like the events need --broadcast, and a
    /// state folder keeps the thread count it was started with.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// An extra librdkafka setting for every client, KEY=VALUE (e.g. security.protocol=SSL).
    /// Repeatable.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// Messages read per step at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_batch: usize,
    /// Rows held in memory per group (and for queued events), live and dead, before a
    /// checkpoint copies the live ones together once most are dead: less memory for more
    /// copying.
    #[arg(long, default_value_t = 65_536)]
    pub compact_rows: usize,
    /// Also serve Prometheus metrics on http://ADDR/metrics (as of the last checkpoint).
    #[arg(long)]
    pub metrics: Option<String>,
    /// Dead-letter rows whose event time is further ahead of this machine's clock (e.g. a
    /// timestamp in nanoseconds), e.g. 1h, 1d; `off` accepts any.
    #[arg(long, default_value = "1d")]
    pub max_future: String,
}

/// The joiner's counters in the Prometheus text format.
fn render(s: &fstore_joiner::Summary) -> String {
    use std::fmt::Write as _;
    let c = &s.counters;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        "fstore_join_messages_total",
        "Messages read from the source topics.",
        c.messages,
    );
    counter(
        "fstore_join_events_total",
        "Label events taken on time.",
        c.events,
    );
    counter("fstore_join_samples_total", "Samples emitted.", c.samples);
    counter(
        "fstore_join_rows_total",
        "Feature rows applied to state.",
        c.rows,
    );
    counter(
        "fstore_join_late_total",
        "Rows behind the frontier (dead-lettered).",
        c.late,
    );
    counter(
        "fstore_join_checkpoints_total",
        "Checkpoints committed.",
        s.checkpoints,
    );
    let _ = writeln!(
        out,
        "# HELP fstore_join_dead_letters_total Dead letters by kind.\n# TYPE fstore_join_dead_letters_total counter"
    );
    for (kind, n) in &c.dead_letters {
        let _ = writeln!(out, "fstore_join_dead_letters_total{{kind=\"{kind}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP fstore_join_pending_events Label events waiting for the frontier.\n# TYPE fstore_join_pending_events gauge\nfstore_join_pending_events {}",
        s.pending
    );
    if s.frontier != i64::MIN {
        let _ = writeln!(
            out,
            "# HELP fstore_join_frontier_seconds Event time before which every sample is out (Unix seconds).\n# TYPE fstore_join_frontier_seconds gauge\nfstore_join_frontier_seconds {}",
            s.frontier as f64 / 1e6
        );
    }
    out
}

fn pairs(list: &[String], what: &str) -> Result<Vec<(String, String)>, CliError> {
    list.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| CliError::user(format!("{what} \"{s}\": expected NAME=VALUE")))
        })
        .collect()
}

/// Writes the joiner's online values through the group layouts `fstore serve` reads.
struct StoreWriter {
    rt: tokio::runtime::Runtime,
    store: OnlineStore,
    layouts: BTreeMap<String, GroupLayout>,
}

impl OnlineWriter for StoreWriter {
    fn write(&mut self, group: &str, updates: Vec<OnlineUpdate>) -> Result<(), String> {
        let layout = self
            .layouts
            .get(group)
            .ok_or_else(|| format!("no layout for group \"{group}\""))?;
        let entries = updates
            .into_iter()
            .map(|u| {
                let key = layout.key(&u.key).map_err(|e| e.to_string())?;
                let value = match &u.value {
                    OnlineValue::Row { ts, values } => layout.encode(*ts, values),
                    OnlineValue::Window(rows) => layout.encode_window(rows),
                }
                .map_err(|e| e.to_string())?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        for chunk in entries.chunks(1000) {
            self.rt
                .block_on(self.store.put_newer(chunk.to_vec()))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn online_writer(
    url: &str,
    namespace: &str,
    defs: &Definitions,
    spec: &str,
) -> Result<StoreWriter, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::internal)?;
    let store = rt
        .block_on(OnlineStore::open(url))
        .map_err(CliError::from)?;
    let mut layouts = BTreeMap::new();
    for j in &defs.spec(spec)?.joins {
        let layout = GroupLayout::new(namespace, defs, &j.group).map_err(CliError::from)?;
        layouts.insert(j.group.clone(), layout);
    }
    Ok(StoreWriter { rt, store, layouts })
}

/// SIGTERM or Ctrl-C sets the flag; the joiner commits and exits at its next step.
fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    crate::in_background(async move {
        crate::serve::shutdown_signal().await;
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

/// Joiner threads per process at most.
const MAX_THREADS: u32 = 256;

/// The file in a state folder that records its thread count (absent: one thread, the folder
/// itself holding the state).
const THREADS_FILE: &str = "THREADS";

/// The joiners of this process: with one thread the state folder itself; otherwise one
/// instance per thread, in sub-folders `thread-0`, `thread-1`, … Thread t of instance I/N is
/// instance I + N·t of N·T, so the process owns the same partitions whatever its thread count
/// (p mod N = I), and instances of one job may run different thread counts.
fn thread_configs(cfg: &JoinConfig, threads: u32) -> Result<Vec<JoinConfig>, CliError> {
    if threads == 0 || threads > MAX_THREADS {
        return Err(CliError::user(format!(
            "--threads {threads}: expected 1 to {MAX_THREADS}"
        )));
    }
    let count = cfg.instance.count.checked_mul(threads).ok_or_else(|| {
        CliError::user(format!(
            "--instance {}/{} with --threads {threads}: too many instances",
            cfg.instance.index, cfg.instance.count
        ))
    })?;
    let dir = &cfg.state_dir;
    // A state folder keeps its thread count: its partitions are split that way.
    let recorded = dir.join(THREADS_FILE);
    let started_with = match std::fs::read_to_string(&recorded) {
        Ok(text) => Some(text.trim().parse::<u32>().map_err(|_| {
            CliError::user(format!(
                "{} does not hold a thread count: {text:?}",
                recorded.display()
            ))
        })?),
        Err(_) if dir.join("CURRENT").exists() => Some(1),
        Err(_) => None,
    };
    if let Some(n) = started_with
        && n != threads
    {
        return Err(CliError::user(format!(
            "state folder {} was started with --threads {n}; its partitions are split that way: pass --threads {n}, or start over with a new --state folder and a new sink (a new state folder reads every partition from the beginning)",
            dir.display()
        )));
    }
    if threads == 1 {
        return Ok(vec![cfg.clone()]);
    }
    if started_with.is_none() {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&recorded, format!("{threads}\n")))
            .map_err(|e| {
                CliError::user(format!("cannot create state folder {}: {e}", dir.display()))
            })?;
    }
    Ok((0..threads)
        .map(|t| JoinConfig {
            instance: Instance {
                index: cfg.instance.index + cfg.instance.count * t,
                count,
            },
            state_dir: dir.join(format!("thread-{t}")),
            ..cfg.clone()
        })
        .collect())
}

/// Runs `work` for each item on its own thread and returns the results in order. A thread
/// that fails or panics sets `stop`, so the others wind down; a panic becomes an error.
fn on_threads<I: Send, R: Send>(
    items: Vec<I>,
    stop: &AtomicBool,
    what: &str,
    work: impl Fn(I) -> Result<R, CliError> + Sync,
) -> Vec<Result<R, CliError>> {
    let panicked = |t: usize| CliError::internal(format!("{what} on thread {t} panicked"));
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .into_iter()
            .enumerate()
            .map(|(t, item)| {
                std::thread::Builder::new()
                    .name(format!("join-{t}"))
                    .spawn_scoped(scope, move || {
                        // Caught here, not at the join, so the others are told at once.
                        let r =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item)))
                                .unwrap_or_else(|_| Err(panicked(t)));
                        if r.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        r
                    })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(t, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Err(panicked(t))),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    Err(CliError::internal(format!(
                        "cannot start thread {t} for {what}: {e}"
                    )))
                }
            })
            .collect()
    })
}

/// Turns transparent huge pages off for this process. The joiner's heap grows by many small
/// allocations and returns memory as state is collected: with huge pages each first touch
/// of a 2 MiB page makes the kernel zero all of it, which cost the join loop about a
/// quarter of its time on the benchmark (and more, the less memory the machine had free).
/// Lookups do not get faster with huge pages (measured: no difference).
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off");
    }
}

/// Runs the joiners, one per thread; one failing stops the others (they commit and exit).
fn run_all(joiners: Vec<Joiner>, stop: &AtomicBool) -> Result<Summary, CliError> {
    let summaries = on_threads(joiners, stop, "the joiner", |mut j| {
        j.run(stop).map_err(CliError::from)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Summary::merge(&summaries))
}

pub fn run(registry: &Path, args: JoinArgs) -> Result<(), CliError> {
    let started = Instant::now();
    no_huge_pages();
    let snap = Registry::new(registry).require_current()?;
    let defs = &snap.definitions;
    defs.spec(&args.spec)?;
    let cfg = JoinConfig {
        spec: args.spec.clone(),
        brokers: args.brokers.clone(),
        state_dir: args.state.clone(),
        sink: SinkTarget::parse(&args.sink).map_err(CliError::from)?,
        dead_letter_topic: args
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("fstore-{}-dead-letter", args.spec)),
        lateness_us: fstore_joiner::config::parse_duration(&args.lateness)
            .map_err(|e| CliError::user(format!("--lateness: {e}")))?,
        until_end: args.until_end,
        topics: pairs(&args.topics, "--topic")?.into_iter().collect(),
        checkpoint_interval: fstore_joiner::config::parse_std_duration(&args.checkpoint_interval)
            .map_err(|e| CliError::user(format!("--checkpoint-interval: {e}")))?,
        idle_timeout: fstore_joiner::config::parse_std_duration(&args.idle_timeout)
            .map_err(|e| CliError::user(format!("--idle-timeout: {e}")))?,
        instance: Instance::parse(&args.instance).map_err(CliError::from)?,
        broadcast: args.broadcast.iter().cloned().collect::<BTreeSet<_>>(),
        kafka_options: pairs(&args.kafka_options, "--kafka-option")?,
        max_batch: args.max_batch.max(1),
        compact_rows: args.compact_rows,
        max_future_us: match args.max_future.as_str() {
            "off" => None,
            s => Some(
                fstore_joiner::config::parse_duration(s)
                    .map_err(|e| CliError::user(format!("--max-future: {e}")))?,
            ),
        },
    };
    if cfg.lateness_us < 0 {
        return Err(CliError::user("--lateness must not be negative"));
    }
    let configs = thread_configs(&cfg, args.threads)?;
    let stop = stop_flag();
    let opening = Instant::now();
    let mut onlines = Vec::with_capacity(configs.len());
    for _ in &configs {
        let online: Option<Box<dyn OnlineWriter>> = match &args.online {
            Some(url) => Some(Box::new(online_writer(
                url,
                &args.namespace,
                defs,
                &args.spec,
            )?)),
            None => None,
        };
        onlines.push(online);
    }
    // Opened side by side: each asks the broker for its partitions and end offsets.
    let version = snap.version;
    let joiners = on_threads(
        configs.into_iter().zip(onlines).collect(),
        &stop,
        "opening the joiner",
        |(c, online)| Joiner::open(c, defs, version, online).map_err(CliError::from),
    )
    .into_iter()
    .collect::<Result<Vec<Joiner>, CliError>>()?;
    if let Some(addr) = &args.metrics {
        let statuses: Vec<_> = joiners.iter().map(Joiner::status).collect();
        let bound = crate::metrics_http::spawn(
            addr,
            Arc::new(move || {
                let now: Vec<_> = statuses
                    .iter()
                    .filter_map(|s| s.lock().ok().map(|s| s.clone()))
                    .collect();
                render(&Summary::merge(&now))
            }),
        )
        .map_err(|e| CliError::user(format!("cannot listen on {addr} for metrics: {e}")))?;
        println!("metrics on http://{bound}/metrics");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    tracing::info!(spec = %args.spec, sink = %args.sink, until_end = args.until_end, threads = joiners.len(), "joiner started");
    let opened = opening.elapsed();
    let summary = run_all(joiners, &stop)?;
    let c = &summary.counters;
    let dead: u64 = c.dead_letters.values().sum();
    println!(
        "join {}: {} messages, {} events, {} samples, {} dead letters, {} late; frontier {}, {} events pending, {} checkpoints ({:.2?})",
        args.spec,
        c.messages,
        c.events,
        c.samples,
        dead,
        c.late,
        if summary.frontier == i64::MIN {
            "not set".to_string()
        } else {
            format_timestamp(summary.frontier)
        },
        summary.pending,
        summary.checkpoints,
        started.elapsed()
    );
    println!(
        "  time{}: open {:.2}s, {}",
        match args.threads {
            1 => String::new(),
            n => format!(" (summed over {n} threads)"),
        },
        opened.as_secs_f64(),
        summary
            .phase_seconds
            .iter()
            .map(|(p, t)| format!("{p} {t:.2}s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (kind, n) in &c.dead_letters {
        println!("  dead letters {kind}: {n}");
    }
    for (alias, n) in &c.no_row {
        println!(
            "  join {alias}: {n} events without a row, {} expired by TTL",
            c.expired.get(alias).copied().unwrap_or(0)
        );
    }
    tracing::info!(
        spec = %args.spec,
        messages = c.messages,
        events = c.events,
        samples = c.samples,
        dead_letters = dead,
        late = c.late,
        seconds = started.elapsed().as_secs_f64(),
        "joiner stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(instance: Instance, state_dir: PathBuf) -> JoinConfig {
        JoinConfig {
            spec: "ctr".into(),
            brokers: "localhost:9092".into(),
            state_dir,
            sink: SinkTarget::parse("parquet:///tmp/out").unwrap(),
            dead_letter_topic: "dead".into(),
            lateness_us: 0,
            until_end: true,
            topics: BTreeMap::new(),
            checkpoint_interval: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
            instance,
            broadcast: BTreeSet::new(),
            kafka_options: Vec::new(),
            max_batch: 1,
            compact_rows: 1,
            max_future_us: None,
        }
    }

    /// Whatever their thread counts, the instances of a job own every partition exactly once,
    /// and each process owns the partitions of its instance.
    #[test]
    fn threads_split_an_instances_partitions_and_nothing_else() {
        let work = tempfile::tempdir().unwrap();
        for counts in [[1, 1], [2, 1], [1, 3], [4, 2]] {
            let mut owner: BTreeMap<i32, Vec<(u32, u32)>> = BTreeMap::new();
            for (i, &threads) in counts.iter().enumerate() {
                let i = i as u32;
                let dir = work.path().join(format!("{counts:?}-{i}"));
                let cfg = config(Instance { index: i, count: 2 }, dir);
                for (t, c) in thread_configs(&cfg, threads).unwrap().iter().enumerate() {
                    for p in 0..48 {
                        if c.instance.owns(p) {
                            assert_eq!(p % 2, i as i32, "{counts:?}: partition {p}");
                            owner.entry(p).or_default().push((i, t as u32));
                        }
                    }
                }
            }
            assert_eq!(owner.len(), 48, "{counts:?}: every partition owned");
            assert!(
                owner.values().all(|o| o.len() == 1),
                "{counts:?}: owned once: {owner:?}"
            );
        }
    }

    #[test]
    fn thread_counts_are_bounded_and_kept() {
        let work = tempfile::tempdir().unwrap();
        let cfg = config(Instance::SOLE, work.path().join("state"));
        for bad in [0, MAX_THREADS + 1] {
            assert!(thread_configs(&cfg, bad).is_err());
        }
        let huge = config(
            Instance {
                index: 0,
                count: u32::MAX,
            },
            work.path().join("huge"),
        );
        assert!(
            thread_configs(&huge, 2)
                .unwrap_err()
                .message
                .contains("too many")
        );
        assert_eq!(thread_configs(&cfg, 3).unwrap().len(), 3);
        let again = thread_configs(&cfg, 2).unwrap_err();
        assert!(
            again.message.contains("was started with --threads 3"),
            "{}",
            again.message
        );
        assert!(thread_configs(&cfg, 1).is_err());
    }
}
