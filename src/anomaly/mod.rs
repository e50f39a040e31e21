//! ML anomaly jobs: what nobody wrote a rule for.
//!
//! A job ([`job`]) selects events with a Sigma detection, groups them per
//! entity (`by`/`over` fields) and bucket of event time, and measures one
//! function per bucket. When a bucket closes, each entity's value is
//! compared with its baseline ([`model`]: linfa Gaussian mixtures, or value
//! frequencies for `rare`), the model's surprise is turned into a 0-100
//! score against the job's own history ([`normalize`]), and the job's
//! anomaly rule decides whether it becomes an `ANOMALY DETECTED` alert
//! ([`detector`]). Baselines retrain as buckets close and persist in a
//! model directory ([`store`]); `tocsin train` builds them from files.
//!
//! Data flow: the detection workers turn job matches into [`Sample`]s; the
//! ordered writer stage owns the [`detector::Detector`].

pub(crate) mod config;
pub(crate) mod describe;
pub(crate) mod detector;
pub mod exchange;
pub(crate) mod model;
pub(crate) mod normalize;
pub(crate) mod poisson;
pub mod reorder;
pub(crate) mod season;
pub mod store;

use crate::detect::Engine;
use crate::event::Event;
use crate::sigma::{LoadedAnomalyJob, RuleProblem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::sigma::anomaly::{AnomalyJob, AnomalyRule, Function};
pub use config::AnomalyConfig;
pub use detector::{Anomaly, Detector};
pub use reorder::{SampleLateReport, SampleReorder};

/// Separates entity field values in an entity key.
const KEY_SEPARATOR: char = '\u{1f}';

/// The loaded jobs, resolved against the compiled engine.
#[derive(Debug, Default)]
pub struct AnomalySet {
    jobs: Vec<Arc<AnomalyJob>>,
    /// Engine rule index -> (job, whether it is the ratio numerator).
    by_rule: HashMap<usize, (usize, bool)>,
}

/// One job match, on its way to the job's bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of the job in its [`AnomalySet`].
    pub job: usize,
    /// The event also matched the ratio numerator.
    pub numerator: bool,
    /// Entity field values joined by U+001F.
    pub entity: Box<str>,
    /// The job's `field` as text, for functions that read one.
    pub value: Option<String>,
    /// The event's time, which picks the bucket.
    pub time: DateTime<Utc>,
    /// Where the event came from; the alert points at the bucket's last one.
    pub origin: crate::event::Origin,
}

/// An actual or typical value, as the alert shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Measure {
    /// A measured number: a count, sum, mean or share.
    Number(f64),
    /// A field value, for `rare`.
    Text(String),
}

impl std::fmt::Display for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Measure::Text(t) => f.write_str(t),
            Measure::Number(n) if (n - n.round()).abs() < 1e-9 && n.abs() < 1e15 => {
                write!(f, "{}", n.round() as i64)
            }
            Measure::Number(n) if n.abs() >= 100.0 => write!(f, "{n:.0}"),
            Measure::Number(n) if n.abs() >= 1.0 => write!(f, "{n:.1}"),
            Measure::Number(n) => write!(f, "{n:.3}"),
        }
    }
}

impl AnomalySet {
    /// Finds each job's detection rule(s) in the engine. A job whose rule
    /// did not compile was reported by the engine already and is left out.
    pub fn build(loaded: Vec<LoadedAnomalyJob>, engine: &Engine) -> (AnomalySet, Vec<RuleProblem>) {
        let mut set = AnomalySet::default();
        let mut problems = Vec::new();
        let index: HashMap<&str, usize> = engine
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.rule.meta.id.as_str(), i))
            .collect();
        for LoadedAnomalyJob { job, file } in loaded {
            if set.find(job.name()).is_some() {
                problems.push(RuleProblem {
                    file,
                    pos: job.rule.pos,
                    message: format!("duplicate anomaly job name `{}`", job.name()),
                    limit: None,
                });
                continue;
            }
            let Some(&main) = index.get(job.rule.meta.id.as_str()) else {
                continue;
            };
            let numerator = match &job.numerator_rule {
                Some(r) => match index.get(r.meta.id.as_str()) {
                    Some(&i) => Some(i),
                    None => continue,
                },
                None => None,
            };
            let j = set.jobs.len();
            set.by_rule.insert(main, (j, false));
            if let Some(n) = numerator {
                set.by_rule.insert(n, (j, true));
            }
            set.jobs.push(Arc::new(job));
        }
        (set, problems)
    }

    /// The set with only the named job (for training it alone).
    pub fn only(&self, name: &str) -> Option<AnomalySet> {
        let j = self.find(name)?;
        Some(AnomalySet {
            jobs: vec![self.jobs[j].clone()],
            by_rule: self
                .by_rule
                .iter()
                .filter(|(_, (job, _))| *job == j)
                .map(|(&rule, &(_, numerator))| (rule, (0, numerator)))
                .collect(),
        })
    }

    /// True when no job is loaded.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// How many jobs are loaded.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Every job, indexed as [`Sample::job`] numbers them.
    pub fn jobs(&self) -> &[Arc<AnomalyJob>] {
        &self.jobs
    }

    /// The job at index `job`; None past the end.
    pub fn get(&self, job: usize) -> Option<&Arc<AnomalyJob>> {
        self.jobs.get(job)
    }

    /// The job with this name (or id).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.jobs
            .iter()
            .position(|j| j.name() == name || j.rule.meta.id == name)
    }

    /// Engine rules that are job detections (one per job, two for `ratio`).
    pub fn detection_rules(&self) -> usize {
        self.by_rule.len()
    }

    /// Whether an engine rule belongs to a job (and so does not alert itself).
    pub fn owns(&self, rule: usize) -> bool {
        self.by_rule.contains_key(&rule)
    }

    /// The sample a match of `rule` on `event` makes, if `rule` is a job's
    /// and the event names the entity (and carries the field, if read).
    pub fn sample(&self, rule: usize, event: &Event) -> Option<Sample> {
        let &(j, numerator) = self.by_rule.get(&rule)?;
        let job = &self.jobs[j];
        let mut entity = String::new();
        for (i, field) in job.entity_fields().enumerate() {
            let value = event.get(field).and_then(crate::event::scalar_text)?;
            if i > 0 {
                entity.push(KEY_SEPARATOR);
            }
            entity.push_str(&value);
        }
        let value = match &job.spec.field {
            Some(f) if !numerator => Some(
                event
                    .get(f)
                    .and_then(crate::event::scalar_text)?
                    .into_owned(),
            ),
            _ => None,
        };
        Some(Sample {
            job: j,
            numerator,
            entity: entity.into_boxed_str(),
            value,
            time: event.time,
            origin: event.origin.clone(),
        })
    }
}

/// A set of one `high_count by user every 10m` job (job `j`), with a short
/// history, no seasons and a rule that alerts from a score of 80; `spec`
/// changes it further.
#[cfg(test)]
pub(crate) fn test_job(spec: impl FnOnce(&mut crate::sigma::anomaly::JobSpec)) -> Arc<AnomalySet> {
    use crate::sigma::anomaly::Seasonality;
    use crate::sigma::rule::{parse_document, Document};
    use crate::sigma::yaml::parse_documents;
    let text = "title: J\nid: j\nlogsource: {product: test}\ndetection:\n  s: {a: 1}\n  condition: s\nanomaly:\n  function: high_count\n  by: user\n  bucket_span: 10m\n";
    let docs = parse_documents(text, &Default::default()).unwrap();
    let Ok(Document::AnomalyJob(mut j)) = parse_document(&docs[0], &Default::default()) else {
        panic!()
    };
    j.spec.min_history = 8;
    // Hours of streams shorter than a day: seasons have their own tests.
    j.spec.seasonality = Seasonality::None;
    j.spec.alert = AnomalyRule {
        min_score: 80.0,
        count: 1,
        within: crate::vocab::Span::from_secs(3600),
    };
    spec(&mut j.spec);
    Arc::new(AnomalySet {
        jobs: vec![Arc::new(*j)],
        by_rule: HashMap::new(),
    })
}

/// `user=alice, host=web1` from an entity key; `all` for a job without entity fields.
pub fn describe_entity(job: &AnomalyJob, key: &str) -> Vec<(String, String)> {
    job.entity_fields()
        .zip(key.split(KEY_SEPARATOR))
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

/// FNV-1a: a value hash that stays the same across builds and platforms,
/// because value counts keyed by it are saved with the models.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
