//! Rules changed while running: a new set is loaded and compiled off the
//! hot path and swapped in at once; a set with any problem never goes live.
//!
//! - The workers take the current set ([`LiveRules`]) with each batch, under
//!   the lock that numbers the batches, so sets change in input order: a
//!   batch is detected wholly with one set, and in-flight batches finish
//!   on the set they started with.
//! - The writer sees each batch's set and, at the first batch of a new one,
//!   carries correlation windows and anomaly baselines over to it for
//!   rules whose id and logic did not change; windows and baselines of
//!   changed or removed rules are dropped (docs/correlation.md).
//! - A reload is asked for by SIGHUP, `POST /reload` or a change in a rule
//!   folder; one runs at a time.

use super::health::Health;
use super::metrics::Metrics;
use super::Rules;
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

/// The rule set the pipeline runs now; replaced whole by a reload.
pub struct LiveRules {
    current: ArcSwap<Rules>,
}

impl LiveRules {
    /// Live rules starting with `rules`.
    pub fn new(rules: Rules) -> LiveRules {
        LiveRules {
            current: ArcSwap::from_pointee(rules),
        }
    }

    /// The set running now.
    pub fn load(&self) -> Arc<Rules> {
        self.current.load_full()
    }

    fn store(&self, rules: Rules) {
        self.current.store(Arc::new(rules));
    }
}

/// Loads and compiles the rules again: the set and how many rule documents
/// it leaves out, or the problems that keep it from going live
/// (`file:line:col: message`).
pub type RuleLoader = Box<dyn Fn() -> Result<(Rules, usize), Vec<String>> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new set runs.
    Reloaded {
        /// Detection rules and filters compiled.
        rules: usize,
        /// Correlation rules.
        correlations: usize,
        /// Anomaly jobs.
        jobs: usize,
    },
    /// The new set had problems: the old one still runs.
    Rejected {
        /// Every problem, at `file:line:col`.
        problems: Vec<String>,
    },
}

impl ReloadOutcome {
    /// The JSON `POST /reload` answers with.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ReloadOutcome::Reloaded {
                rules,
                correlations,
                jobs,
            } => serde_json::json!({
                "result": "reloaded",
                "rules": rules,
                "correlations": correlations,
                "anomaly_jobs": jobs,
            }),
            ReloadOutcome::Rejected { problems } => serde_json::json!({
                "result": "rejected",
                "reason": "the new rule set has problems; the running set is kept",
                "problems": problems,
            }),
        }
    }
}

/// Reloads the rules on request.
pub struct Reloader {
    live: Arc<LiveRules>,
    load: RuleLoader,
    metrics: Option<Arc<Metrics>>,
    health: Health,
    /// One reload at a time: two at once would race to be the last stored.
    running: Mutex<()>,
}

impl Reloader {
    /// A reloader swapping into `live` what `load` produces.
    pub fn new(
        live: Arc<LiveRules>,
        load: RuleLoader,
        metrics: Option<Arc<Metrics>>,
        health: Health,
    ) -> Reloader {
        Reloader {
            live,
            load,
            metrics,
            health,
            running: Mutex::new(()),
        }
    }

    /// Loads, compiles and swaps in the rules; `trigger` says why, for the
    /// log. Blocking (compiling a large corpus takes seconds): call it off
    /// the async runtime.
    pub fn reload(&self, trigger: &str) -> ReloadOutcome {
        let _one = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let outcome = match (self.load)() {
            Ok((rules, rejected)) => {
                let counts = rules.counts();
                let outcome = ReloadOutcome::Reloaded {
                    rules: counts.detection,
                    correlations: counts.correlation,
                    jobs: counts.anomaly_jobs,
                };
                self.health.set_rules(counts);
                if let Some(m) = &self.metrics {
                    m.rules_loaded.set(counts.total() as i64);
                    m.rules_rejected.set(rejected as i64);
                }
                self.live.store(rules);
                outcome
            }
            Err(problems) => ReloadOutcome::Rejected { problems },
        };
        let result = match &outcome {
            ReloadOutcome::Reloaded {
                rules,
                correlations,
                jobs,
            } => {
                tracing::info!(
                    trigger,
                    rules,
                    correlations,
                    anomaly_jobs = jobs,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "rules reloaded"
                );
                "reloaded"
            }
            ReloadOutcome::Rejected { problems } => {
                for p in problems {
                    tracing::error!(trigger, "rule reload: {p}");
                }
                tracing::error!(
                    trigger,
                    problems = problems.len(),
                    "rule reload rejected: the running rules are kept"
                );
                "rejected"
            }
        };
        if let Some(m) = &self.metrics {
            m.rules_reload.with_label_values(&[result]).inc();
            if result == "reloaded" {
                m.rules_last_reload
                    .set(chrono::Utc::now().timestamp() as f64);
            }
        }
        outcome
    }
}

/// How long rule files must be quiet before a change is reloaded: an
/// editor's save or a `git pull` is a burst of events, reloaded once.
pub const WATCH_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Watches rule files and folders (`paths`) and reloads once changes have
/// been quiet for [`WATCH_DEBOUNCE`]. Folders are watched recursively for
/// `.yml`/`.yaml` files; a single file through its folder (editors replace
/// a file rather than write it in place). Watching stops when the returned
/// watcher is dropped; a path that cannot be watched is logged and skipped.
pub fn watch(
    paths: &[std::path::PathBuf],
    reloader: Arc<Reloader>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::{RecursiveMode, Watcher};
    let files: Vec<std::path::PathBuf> = paths.iter().filter(|p| p.is_file()).cloned().collect();
    let watched_files = files.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| is_rule_change(&e, &watched_files)) {
            let _ = tx.send(());
        }
    })?;
    for path in paths {
        let (target, mode) = match path.is_file() {
            true => (
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new(".")),
                RecursiveMode::NonRecursive,
            ),
            false => (path.as_path(), RecursiveMode::Recursive),
        };
        match watcher.watch(target, mode) {
            Ok(()) => tracing::info!(path = %path.display(), "watching for rule changes"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot watch for rule changes; reload with SIGHUP or POST /reload")
            }
        }
    }
    std::thread::Builder::new()
        .name("tocsin-rule-watch".into())
        .spawn(move || {
            // Ends when the watcher, which holds the sender, is dropped.
            while rx.recv().is_ok() {
                while rx.recv_timeout(WATCH_DEBOUNCE).is_ok() {}
                reloader.reload("rule files changed");
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(watcher)
}

/// A change to a rule file: created, written, renamed or removed, a
/// `.yml`/`.yaml` file or one of the files watched by name.
fn is_rule_change(event: &notify::Event, files: &[std::path::PathBuf]) -> bool {
    use notify::EventKind;
    matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    ) && event
        .paths
        .iter()
        .any(|p| files.contains(p) || p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
}
