//! Progress of a long job: a redrawn line on a terminal, a structured log line every ten
//! seconds otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Reports `done()` steps of job `name`. With `total = Some((steps, units))` the work has
    /// `steps` steps and is shown in `units` of `unit` (e.g. each event passes several joins:
    /// shown as events), with a bar and an ETA; without, as a count and a rate.
    pub fn start(
        name: &str,
        unit: &'static str,
        done: impl Fn() -> u64 + Send + 'static,
        total: Option<(u64, u64)>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let (flag, name) = (stop.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let every = if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(10)
            };
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let steps = done();
                let (n, frac, units) = match total {
                    Some((all, units)) => {
                        let frac = steps.min(all) as f64 / all.max(1) as f64;
                        ((frac * units as f64) as u64, Some(frac), Some(units))
                    }
                    None => (steps, None, None),
                };
                let secs = started.elapsed().as_secs_f64();
                let rate = n as f64 / secs.max(1e-9);
                let eta = units
                    .filter(|_| rate > 0.0)
                    .map(|u| u.saturating_sub(n) as f64 / rate);
                if tty {
                    let bar = frac
                        .map(|f| {
                            let filled = (f * 30.0) as usize;
                            format!(
                                "[{}{}] {:>3.0}%  ",
                                "#".repeat(filled),
                                "-".repeat(30 - filled),
                                f * 100.0
                            )
                        })
                        .unwrap_or_default();
                    let of = units.map(|u| format!("/{u}")).unwrap_or_default();
                    let eta = eta.map(|s| format!("  ETA {s:.0}s")).unwrap_or_default();
                    eprint!("\r{name} {bar}{n}{of} {unit}  {rate:.0} {unit}/s{eta}   ");
                } else {
                    tracing::info!(
                        job = %name,
                        unit,
                        done = n,
                        total = units,
                        per_s = rate.round(),
                        eta_s = eta.map(f64::round),
                        "progress"
                    );
                }
            }
            if tty {
                eprint!("\r{}\r", " ".repeat(100));
            }
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops reporting and clears the line.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
