//! The writer's anomaly side: the detector, its model directory, its metrics.

use super::metrics::Metrics;
use crate::anomaly::{
    store, Anomaly, AnomalySet, Detector, Sample, SampleLateReport, SampleReorder,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where anomaly models are loaded from at start and saved to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFiles {
    /// Loaded at start (none: every job learns from scratch).
    pub load_from: Option<PathBuf>,
    /// Saved while running and at the end (none: not saved).
    pub save_to: Option<PathBuf>,
    /// How often changed models are saved while running.
    pub save_interval: Duration,
}

pub(super) struct AnomalyStage {
    detector: Detector,
    load_from: Option<PathBuf>,
    save_to: Option<PathBuf>,
    save_every: Duration,
    last_save: Instant,
    metrics: Option<Arc<Metrics>>,
    /// A scan: samples kept to run late ones again in event-time order.
    reorder: Option<SampleReorder>,
    /// Set at the end by a scan's reorder.
    reorder_report: Option<SampleLateReport>,
}

impl AnomalyStage {
    /// The detector with every job's saved model that is usable; a model
    /// that is not is logged and its job learns from the stream instead.
    /// `reorder_limit`: a scan, which keeps up to this many samples to run
    /// late ones again in event-time order (see [`SampleReorder`]).
    pub(super) fn new(
        set: Arc<AnomalySet>,
        files: &ModelFiles,
        metrics: Option<Arc<Metrics>>,
        reorder_limit: Option<usize>,
    ) -> Self {
        AnomalyStage {
            detector: starting_detector(set, files.load_from.as_deref()),
            load_from: files.load_from.clone(),
            save_to: files.save_to.clone(),
            save_every: files.save_interval,
            last_save: Instant::now(),
            metrics,
            reorder: reorder_limit.map(SampleReorder::new),
            reorder_report: None,
        }
    }

    /// Runs the jobs of `set` from now on (a reload): unchanged jobs keep
    /// their buckets and baselines; new or changed ones load a saved model
    /// when there is a usable one, else learn from the stream. Returns how
    /// many start afresh.
    pub(super) fn replace_jobs(&mut self, set: Arc<AnomalySet>) -> usize {
        let started = self.detector.replace_jobs(set);
        if let Some(dir) = &self.load_from {
            load_models_of(&mut self.detector, dir, &started);
        }
        started.len()
    }

    pub(super) fn set(&self) -> &Arc<AnomalySet> {
        self.detector.set()
    }

    pub(super) fn observe(&mut self, sample: Sample) -> Vec<Anomaly> {
        let load_from = self.load_from.as_deref();
        let out = match &mut self.reorder {
            Some(reorder) => reorder.observe(&mut self.detector, sample, |set| {
                starting_detector(set, load_from)
            }),
            None => self.detector.observe(sample),
        };
        self.record();
        out
    }

    /// Samples that arrived after their bucket closed, per job, and whether
    /// a scan ran them again in order.
    pub(super) fn late_report(&self) -> SampleLateReport {
        self.reorder_report
            .clone()
            .unwrap_or_else(|| SampleLateReport {
                by_job: self.detector.late_by_job(),
                replayed: None,
            })
    }

    pub(super) fn finish(&mut self) -> Vec<Anomaly> {
        let load_from = self.load_from.as_deref();
        let out = match self.reorder.take() {
            Some(reorder) => {
                let (out, report) =
                    reorder.finish(&mut self.detector, |set| starting_detector(set, load_from));
                self.reorder_report = Some(report);
                out
            }
            None => self.detector.finish(),
        };
        self.record();
        self.save();
        out
    }

    /// Saves changed models when `save_interval` has passed.
    pub(super) fn save_if_due(&mut self) {
        if self.last_save.elapsed() >= self.save_every {
            self.save();
        }
    }

    fn save(&mut self) {
        self.last_save = Instant::now();
        let Some(dir) = &self.save_to else { return };
        save_models(&mut self.detector, dir);
    }

    fn record(&mut self) {
        let recorded = record_stats(self.metrics.as_deref(), &mut self.detector);
        if let Some(m) = self.metrics.as_deref().filter(|_| recorded) {
            m.anomaly_entities.set(self.detector.entities() as i64);
        }
    }
}

/// Moves what a detector did since the last call into the metrics (and
/// out of the detector, where it would pile up); true when buckets closed
/// or samples came late (the caller updates `tocsin_anomaly_entities`).
pub(super) fn record_stats(metrics: Option<&Metrics>, detector: &mut Detector) -> bool {
    let stats = detector.take_stats();
    let Some(m) = metrics else { return false };
    if stats.scores.is_empty() && stats.late_samples == 0 {
        return false;
    }
    let set = detector.set().clone();
    let name = |j: usize| set.get(j).map_or("?", |job| job.name());
    for (j, score) in stats.scores {
        m.anomaly_scores
            .with_label_values(&[name(j)])
            .observe(score);
    }
    for (j, secs) in stats.training_seconds {
        m.anomaly_training_seconds
            .with_label_values(&[name(j)])
            .observe(secs);
    }
    m.anomaly_late_samples.inc_by(stats.late_samples);
    true
}

/// A detector of `set` with every usable saved model of `load_from`.
fn starting_detector(set: Arc<AnomalySet>, load_from: Option<&std::path::Path>) -> Detector {
    let mut detector = Detector::new(set);
    if let Some(dir) = load_from {
        load_models(&mut detector, dir);
    }
    detector
}

/// Loads each job's model from `dir`; problems are logged, never fatal.
pub fn load_models(detector: &mut Detector, dir: &std::path::Path) {
    let all: Vec<usize> = (0..detector.set().len()).collect();
    load_models_of(detector, dir, &all);
}

/// [`load_models`] for the jobs at `jobs` only.
fn load_models_of(detector: &mut Detector, dir: &std::path::Path, jobs: &[usize]) {
    let set = detector.set().clone();
    for &j in jobs {
        let Some(job) = set.jobs().get(j) else {
            continue;
        };
        match store::load(dir, job) {
            Ok(Some(model)) => {
                tracing::info!(
                    job = job.name(),
                    entities = model.entities(),
                    "anomaly model loaded"
                );
                detector.restore(j, model);
            }
            Ok(None) => {
                tracing::info!(
                    job = job.name(),
                    "no saved anomaly model: learning from the stream"
                );
            }
            Err(e) => {
                // Kept aside, not overwritten: it may be a newer version's model.
                let path = store::model_path(dir, job);
                let aside = path.with_extension("json.rejected");
                let moved = std::fs::rename(&path, &aside).is_ok();
                tracing::error!(
                    job = job.name(),
                    error = %e,
                    moved_to = %if moved { aside.display().to_string() } else { "-".into() },
                    "anomaly model unusable: retraining from the stream"
                );
            }
        }
    }
}

/// Saves every job whose model changed; failures are logged.
pub fn save_models(detector: &mut Detector, dir: &std::path::Path) {
    let set = detector.set().clone();
    for j in detector.take_changed() {
        let (Some(job), Some(model)) = (set.get(j), detector.model(j)) else {
            continue;
        };
        if let Err(e) = store::save(dir, job, model) {
            tracing::error!(job = job.name(), error = %e, "saving the anomaly model");
        }
    }
}
