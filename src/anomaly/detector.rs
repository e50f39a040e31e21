//! Buckets, baselines and anomaly rules: the stateful part of anomaly jobs.
//!
//! Buckets are aligned to the epoch (`bucket_span` 10m -> :00, :10, ...) in
//! event time. A bucket closes when the newest event time of the job's own
//! events passes its end plus the job's `latency`; samples for a closed
//! bucket are late and dropped (counted). Each entity's value is scored
//! before it joins the baseline, so a burst is never compared with itself.
//!
//! Which baseline scores a bucket:
//! * the entity's own mixture, once it has `min_history` buckets;
//! * otherwise (a new entity, or any entity of an `over` job) the
//!   population's mixture over the values of all entities, once it has
//!   enough values. A brand-new user failing a hundred logins is compared
//!   with how often users fail; a quiet new one scores low.
//!
//! Nothing is scored before either baseline exists.

use super::model::{Mixture, Scale, ValueCounts, MAX_SURPRISE};
use super::normalize::Normalizer;
use super::season::{HoursSeen, Seasons, SlotMeans, MIN_EXPLAINED, UNSEEN_HOUR_VARIANCE};
use super::{describe_entity, stable_hash, AnomalySet, Measure, Sample};
use crate::sigma::anomaly::{AnomalyJob, Function, Side};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Values the population baseline keeps (a deterministic reservoir).
const POPULATION_RESERVOIR: usize = 2000;
/// Values the population needs before it scores anyone.
const POPULATION_MIN: usize = 30;

/// A scored bucket that the job's anomaly rule turned into an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// Index of the job in its [`AnomalySet`].
    pub job: usize,
    /// Entity field names and values.
    pub entity: Vec<(String, String)>,
    /// Start of the scored bucket, aligned to the epoch.
    pub bucket_start: DateTime<Utc>,
    /// End of the scored bucket: its start plus the job's `bucket_span`.
    pub bucket_end: DateTime<Utc>,
    /// 0-100, normalized against the job's history.
    pub score: f64,
    /// The model's raw output: -log10 of the tail probability.
    pub surprise: f64,
    /// The bucket's measured value; for `rare`, the rarest value seen.
    pub actual: Measure,
    /// What the baseline expects; for `rare`, the most frequent value.
    pub typical: Measure,
    /// `entity` or `population`: which baseline scored it.
    pub baseline: &'static str,
    /// The season whose usual value `typical` is (`10:00-11:00 UTC,
    /// weekdays`), when the entity's baseline follows a rhythm.
    pub season: Option<String>,
    /// Events of the entity in the bucket.
    pub events: u64,
    /// Anomalies of this entity at or above the rule's score within its window.
    pub anomalies_in_window: usize,
    /// The entity's last event in the bucket.
    pub origin: Option<crate::event::Origin>,
}

/// What the detector did, for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectorStats {
    /// Scores of buckets closed since the last call, per job.
    pub scores: Vec<(usize, f64)>,
    pub late_samples: u64,
    /// Seconds spent refitting baselines, per job.
    pub training_seconds: Vec<(usize, f64)>,
}

/// Per-entity accumulator of an open bucket.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Acc {
    events: u64,
    numerator: u64,
    sum: f64,
    numeric: u64,
    distinct: HashSet<u64>,
    /// rare: value hash -> (text, events).
    values: HashMap<u64, (String, u32)>,
    origin: Option<crate::event::Origin>,
}

/// An entity's baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityModel {
    /// Bucket values on the modelled scale, oldest first.
    history: VecDeque<f32>,
    fit: Option<Mixture>,
    since_fit: u32,
    /// Buckets the entity was active in.
    buckets: u64,
    /// rare: the entity's value frequencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<ValueCounts>,
    /// rare: the frequencies of the values' shapes (digits masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shapes: Option<ValueCounts>,
    /// The season slot of each history value (parallel to `history`).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    slots: VecDeque<u16>,
    /// Running means per season slot.
    #[serde(default, skip_serializing_if = "SlotMeans::is_empty")]
    season: SlotMeans,
    /// Whether the seasonal offsets explain enough of the history to be
    /// used, as decided at the last fit.
    #[serde(default)]
    seasonal: bool,
}

/// The population baseline of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Population {
    reservoir: Vec<f32>,
    seen: u64,
    fit: Option<Mixture>,
    fitted_at: u64,
    /// rare: value frequencies across all entities.
    values: ValueCounts,
    /// rare: how many entities have used each value (bounded by
    /// [`MAX_POPULATION_VALUES`]), and how many entities have values at all.
    #[serde(default)]
    users: HashMap<u64, u32>,
    #[serde(default)]
    entities_with_values: u64,
    /// rare: the frequencies of the values' shapes across all entities.
    #[serde(default, skip_serializing_if = "ValueCounts::is_empty")]
    shapes: ValueCounts,
    /// Running means per season slot over all entities: a new entity's
    /// rhythm until it has its own.
    #[serde(default, skip_serializing_if = "SlotMeans::is_empty")]
    season: SlotMeans,
    /// Buckets closed per hour of the period.
    #[serde(default, skip_serializing_if = "HoursSeen::is_empty")]
    hours: HoursSeen,
}

/// Values whose users the population counts; past it new values are not
/// counted (they stay "used by nobody", which errs towards alerting).
const MAX_POPULATION_VALUES: usize = 65_536;

/// The share of entities using a value from which a value is common: one
/// more entity taking it up is not rare (Elastic's `freq_rare` idea).
const COMMON_SHARE: f64 = 0.1;

/// What a new version of a known value adds to the surprise of its shape
/// (one in ten): `Chrome/121` after `Chrome/120`, `app-2.4.1.exe` after
/// `app-2.4.0.exe`. Software updates are announced this way every day; an
/// attack tool's user agent or a program never run has a shape nobody had.
const NEW_VERSION_SURPRISE: f64 = 1.0;

/// Other entities needed before their share says anything: a tenth of
/// fewer than ten is not a tenth.
const MIN_OTHERS: u64 = 10;

/// Everything a job learned: saved in the model directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobModel {
    pub entities: HashMap<String, EntityModel>,
    pub population: Population,
    pub normalizer: Normalizer,
    /// Buckets closed so far.
    pub buckets_closed: u64,
}

impl JobModel {
    pub fn entities(&self) -> usize {
        self.entities.len()
    }
}

/// A job's live state.
#[derive(Debug)]
struct JobState {
    job: Arc<AnomalyJob>,
    span_secs: i64,
    seasons: Option<Seasons>,
    /// Values of the bucket being closed, for the population's season.
    season_pending: Vec<f64>,
    /// Open buckets by start (epoch seconds).
    open: BTreeMap<i64, HashMap<Box<str>, Acc>>,
    /// Buckets starting before this are closed.
    closed_before: i64,
    model: JobModel,
    /// Anomaly rule state: per entity, recent anomalies (bucket end, score).
    recent: HashMap<Box<str>, VecDeque<(i64, f64)>>,
    /// The newest event time of the job's samples (epoch seconds).
    newest: Option<i64>,
    changed: bool,
    /// What changed since the changelog was last written, when tracked
    /// (scale-out: [`Detector::tracking_changes`]).
    changes: Option<changes::JobChanges>,
}

/// Runs every job of an [`AnomalySet`].
#[derive(Debug)]
pub struct Detector {
    set: Arc<AnomalySet>,
    jobs: Vec<JobState>,
    stats: DetectorStats,
    /// Samples dropped because their bucket had closed, per job name, since
    /// the detector was made (reloads included): what a scan's summary says.
    late_by_job: BTreeMap<String, u64>,
    /// Changes are recorded for the changelog (scale-out).
    tracking: bool,
}

impl Detector {
    /// A detector for every job of `set`, with empty buckets and no baselines.
    pub fn new(set: Arc<AnomalySet>) -> Self {
        let jobs = set
            .jobs()
            .iter()
            .map(|job| JobState {
                span_secs: job.spec.bucket_span.as_secs().max(1) as i64,
                seasons: Seasons::of(&job.spec),
                season_pending: Vec::new(),
                job: job.clone(),
                open: BTreeMap::new(),
                closed_before: i64::MIN,
                model: JobModel::default(),
                recent: HashMap::new(),
                newest: None,
                changed: false,
                changes: None,
            })
            .collect();
        Detector {
            set,
            jobs,
            stats: DetectorStats::default(),
            late_by_job: BTreeMap::new(),
            tracking: false,
        }
    }

    /// Whether the sample's bucket has closed: [`Detector::observe`] would
    /// drop it.
    pub fn is_late(&self, sample: &Sample) -> bool {
        self.jobs
            .get(sample.job)
            .is_some_and(|state| state.bucket_start(sample.time) < state.closed_before)
    }

    /// Samples dropped because their bucket had closed, per job, most first.
    pub fn late_by_job(&self) -> Vec<(String, u64)> {
        crate::vocab::tally::most_first(&self.late_by_job)
    }

    /// Runs the jobs of `set` from now on (a rule reload). A job whose id
    /// and logic are unchanged keeps its open buckets and its baseline; a
    /// new or changed job starts from nothing. Returns the indices (in
    /// `set`) of the jobs that start from nothing.
    pub fn replace_jobs(&mut self, set: Arc<AnomalySet>) -> Vec<usize> {
        let mut old: Vec<Option<JobState>> = std::mem::take(&mut self.jobs)
            .into_iter()
            .map(Some)
            .collect();
        let fresh = Detector::new(set.clone());
        let mut started = Vec::new();
        self.jobs = fresh
            .jobs
            .into_iter()
            .enumerate()
            .map(|(i, new)| {
                let same = old
                    .iter_mut()
                    .find(|o| o.as_ref().is_some_and(|o| o.job.same_logic(&new.job)));
                match same.and_then(Option::take) {
                    Some(mut kept) => {
                        kept.job = new.job;
                        kept
                    }
                    None => {
                        started.push(i);
                        let mut new = new;
                        if self.tracking {
                            new.changes = Some(Default::default());
                        }
                        new
                    }
                }
            })
            .collect();
        self.set = set;
        started
    }

    /// The jobs this detector runs.
    pub fn set(&self) -> &Arc<AnomalySet> {
        &self.set
    }

    /// True when there is no job to run.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// A job's learned state.
    pub fn model(&self, job: usize) -> Option<&JobModel> {
        self.jobs.get(job).map(|j| &j.model)
    }

    /// Replaces a job's learned state (from the model directory).
    pub fn restore(&mut self, job: usize, model: JobModel) {
        if let Some(j) = self.jobs.get_mut(job) {
            j.model = model;
        }
    }

    /// Jobs whose model changed since the last call.
    pub fn take_changed(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, j) in self.jobs.iter_mut().enumerate() {
            if std::mem::take(&mut j.changed) {
                out.push(i);
            }
        }
        out
    }

    /// Statistics since the last call.
    pub fn take_stats(&mut self) -> DetectorStats {
        std::mem::take(&mut self.stats)
    }

    /// Entities with a baseline, over all jobs.
    pub fn entities(&self) -> usize {
        self.jobs.iter().map(|j| j.model.entities.len()).sum()
    }

    /// Adds a sample to its bucket; returns alerts of buckets it closed.
    pub fn observe(&mut self, sample: Sample) -> Vec<Anomaly> {
        let mut out = Vec::new();
        let j = sample.job;
        let Some(state) = self.jobs.get_mut(j) else {
            return out;
        };
        state.advance(j, sample.time, &mut out, &mut self.stats);
        let start = state.bucket_start(sample.time);
        if start < state.closed_before {
            self.stats.late_samples += 1;
            let name = state.job.name();
            match self.late_by_job.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    self.late_by_job.insert(name.to_string(), 1);
                }
            }
            return out;
        }
        if let Some(changes) = &mut state.changes {
            changes.bucket_touched(start, &sample.entity);
        }
        let acc = state
            .open
            .entry(start)
            .or_default()
            .entry(sample.entity)
            .or_default();
        let function = state.job.spec.function;
        if sample.numerator {
            acc.numerator += 1;
            return out;
        }
        acc.events += 1;
        acc.origin = Some(sample.origin);
        if let Some(v) = &sample.value {
            match function {
                Function::DistinctCount => {
                    acc.distinct.insert(stable_hash(v));
                }
                Function::Rare => {
                    acc.values
                        .entry(stable_hash(v))
                        .or_insert_with(|| (v.clone(), 0))
                        .1 += 1;
                }
                Function::Sum | Function::Mean => {
                    if let Ok(n) = v.trim().parse::<f64>() {
                        if n.is_finite() {
                            acc.sum += n;
                            acc.numeric += 1;
                        }
                    }
                }
                Function::Count | Function::Ratio => {}
            }
        }
        out
    }

    /// End of input: closes every open bucket. The last bucket is usually
    /// partial, so it is not judged for being low.
    pub fn finish(&mut self) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for (j, state) in self.jobs.iter_mut().enumerate() {
            let newest = state.newest;
            while let Some((start, bucket)) = state.open.pop_first() {
                let partial = newest.is_none_or(|n| n < start + state.span_secs);
                state.close(j, start, bucket, partial, &mut out, &mut self.stats);
            }
        }
        out
    }
}

impl JobState {
    /// The start of the bucket `time` falls in (epoch seconds).
    fn bucket_start(&self, time: DateTime<Utc>) -> i64 {
        time.timestamp().div_euclid(self.span_secs) * self.span_secs
    }

    /// Moves the job's clock to `time`: buckets that ended before it minus
    /// the job's latency are final. Each job keeps its own clock, from its
    /// own events: sources read side by side (a day of Windows logs next to
    /// an hour of web logs) must not close each other's buckets.
    fn advance(
        &mut self,
        j: usize,
        time: DateTime<Utc>,
        out: &mut Vec<Anomaly>,
        stats: &mut DetectorStats,
    ) {
        let now = time.timestamp();
        if self.newest.is_some_and(|n| now <= n) {
            return;
        }
        self.newest = Some(now);
        if let Some(changes) = &mut self.changes {
            changes.job = true;
        }
        let latency = self.job.spec.latency.as_secs() as i64;
        while let Some((&start, _)) = self.open.first_key_value() {
            if start + self.span_secs > now - latency {
                break;
            }
            if let Some((start, bucket)) = self.open.pop_first() {
                self.close(j, start, bucket, false, out, stats);
            }
        }
        let limit = (now - latency).div_euclid(self.span_secs) * self.span_secs;
        self.closed_before = self.closed_before.max(limit);
    }

    /// Scores, then learns, every entity of a closed bucket.
    fn close(
        &mut self,
        j: usize,
        start: i64,
        bucket: HashMap<Box<str>, Acc>,
        partial: bool,
        out: &mut Vec<Anomaly>,
        stats: &mut DetectorStats,
    ) {
        self.changed = true;
        self.model.buckets_closed += 1;
        let job = self.job.clone();
        let spec = &job.spec;
        let scale = Scale::of(spec.function);
        let side = match (partial, spec.side) {
            (true, Side::Both) => Some(Side::High),
            (true, Side::Low) => None,
            (_, side) => Some(side),
        };
        // Sorted, so that scoring (and a reservoir's choices) do not depend on hash order.
        let mut entities: Vec<(Box<str>, Acc)> = bucket.into_iter().collect();
        entities.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(changes) = &mut self.changes {
            changes.bucket_closed(start, entities.iter().map(|(key, _)| key));
        }
        let trained = std::time::Instant::now();
        let slot = self.seasons.map(|s| s.slot_of(start));
        // Decided before any entity of the bucket joins the population.
        let population = &self.model.population;
        let unseen_hour = self.seasons.zip(slot).map_or(0.0, |(s, slot)| {
            population.hours.unknown(&s, slot, &population.season)
        });
        for (key, acc) in entities {
            if acc.events == 0 {
                continue;
            }
            let scored = match spec.function {
                Function::Rare => self.rare(&key, &acc),
                _ => self.numeric(&key, &acc, scale, side, slot, unseen_hour),
            };
            let Some(Scored {
                surprise,
                actual,
                typical,
                baseline,
                season,
            }) = scored
            else {
                continue;
            };
            let score = self.model.normalizer.score(surprise);
            self.model.normalizer.record(surprise);
            stats.scores.push((j, score));
            if let Some(n) = self.gate(&key, start + self.span_secs, score) {
                out.push(Anomaly {
                    job: j,
                    entity: describe_entity(&job, &key),
                    bucket_start: epoch(start),
                    bucket_end: epoch(start + self.span_secs),
                    score,
                    surprise,
                    actual,
                    typical,
                    baseline,
                    season,
                    events: acc.events,
                    anomalies_in_window: n,
                    origin: acc.origin,
                });
            }
        }
        if let (Some(seasons), Some(slot)) = (self.seasons, slot) {
            let members = self.model.entities.len().max(1);
            for x in self.season_pending.drain(..) {
                self.model.population.season.add(&seasons, slot, x, members);
            }
            self.model.population.hours.add(&seasons, slot);
        }
        self.refit_population();
        stats
            .training_seconds
            .push((j, trained.elapsed().as_secs_f64()));
    }

    /// Scores a numeric function's bucket value, then adds it to the
    /// baselines. `slot` is the bucket's season slot, when the job has
    /// seasons; `unseen_hour` says how much of that hour of the day the job
    /// has not seen yet (0..1).
    fn numeric(
        &mut self,
        key: &str,
        acc: &Acc,
        scale: Scale,
        side: Option<Side>,
        slot: Option<u16>,
        unseen_hour: f64,
    ) -> Option<Scored> {
        let job = self.job.clone();
        let spec = &job.spec;
        let value = match spec.function {
            Function::Count => acc.events as f64,
            Function::DistinctCount => acc.distinct.len() as f64,
            Function::Sum => acc.sum,
            Function::Mean if acc.numeric > 0 => acc.sum / acc.numeric as f64,
            Function::Ratio => acc.numerator.min(acc.events) as f64 / acc.events as f64,
            Function::Mean | Function::Rare => return None,
        };
        let x = scale.transform(value);
        let seasons = self.seasons.zip(slot);
        let pop = &mut self.model.population;
        let entity = spec
            .over
            .is_none()
            .then(|| self.model.entities.entry(key.into()).or_default());
        let own = entity
            .as_deref()
            .filter(|e| e.history.len() >= spec.min_history)
            .and_then(|e| e.fit.as_ref().map(|m| (m, e)));
        // What the entity usually has in this season, when its history follows one.
        let offset = match (own, seasons) {
            (Some((_, e)), Some((seasons, slot))) if e.seasonal => e
                .season
                .expectation(&seasons, &pop.season)
                .map(|x| x.at(slot))
                .map(|(level, borrowed)| (scale.at_least_one(level), borrowed, seasons, slot)),
            _ => None,
        };
        let level = offset.map_or(0.0, |(o, ..)| o);
        let borrowed = offset.map_or(0.0, |(_, variance, ..)| variance);
        // An hour not seen yet: a seasonal expectation takes the hour's
        // level from the population's slot once a bucket of it closed, so
        // only a wholly unseen hour widens it. A flat baseline (the
        // population's, or an entity's without seasons yet) is one mixture
        // over all hours: an hour's first buckets say little to it (the
        // first morning's ramp), so its allowance shrinks as they close.
        let unseen = match offset {
            Some(_) if unseen_hour < 1.0 => 0.0,
            _ => unseen_hour,
        };
        // Log-scale allowances; a share (ratio) has its own binomial noise.
        let extra = match scale {
            Scale::Ratio => 0.0,
            Scale::Count | Scale::Magnitude => borrowed + unseen * UNSEEN_HOUR_VARIANCE,
        };
        let pop_fit = pop
            .fit
            .as_ref()
            .filter(|_| pop.reservoir.len() >= POPULATION_MIN.max(spec.min_history));
        let model = match (own, pop_fit) {
            (Some((m, _)), _) => Some((m, "entity", level)),
            (None, Some(m)) => Some((m, "population", 0.0)),
            (None, None) => None,
        };
        let result = model.zip(side).map(|((m, baseline, level), side)| Scored {
            surprise: m.surprise(x - level, level, extra, side, scale, acc.events),
            actual: Measure::Number(value),
            typical: Measure::Number(round_measure(scale.inverse(m.typical() + level))),
            baseline,
            season: offset
                .filter(|_| baseline == "entity")
                .map(|(_, _, seasons, slot)| SlotMeans::describe(&seasons, slot)),
        });
        // An anomalous bucket joins the baseline clipped to three deviations
        // of it: one burst must not make the next one look normal, while a
        // lasting change still moves the baseline, three deviations a bucket.
        let learned = match (&result, model) {
            (Some(r), Some((m, _, level))) if self.model.normalizer.score(r.surprise) >= 50.0 => {
                let c = m.dominant();
                let noise = scale.noise(c.mean + level, acc.events);
                let spread = 3.0 * (c.variance + noise + extra).sqrt();
                level + (x - level).clamp(c.mean - spread, c.mean + spread)
            }
            _ => x,
        };
        // The population's season learns once the whole bucket is scored:
        // an entity must not be judged against its neighbours' same bucket.
        if seasons.is_some() {
            self.season_pending.push(learned);
        }
        if let Some(e) = entity {
            e.learn(
                learned,
                scale,
                seasons,
                spec.max_history,
                spec.min_history,
                &pop.season,
            );
        }
        pop.add(learned);
        result
    }

    /// Scores the rarest value of an entity's bucket, then counts its values.
    fn rare(&mut self, key: &str, acc: &Acc) -> Option<Scored> {
        // The bucket's values in text order (so results never depend on
        // hash order), each with its shape's hash and text, computed once
        // for scoring and for learning.
        let mut values: Vec<_> = acc
            .values
            .iter()
            .map(|(hash, (text, n))| {
                let shape = shape_of(text).map(|s| (stable_hash(&s), s));
                (*hash, text.as_str(), *n, shape)
            })
            .collect();
        values.sort_by(|a, b| a.1.cmp(b.1));
        let job = self.job.clone();
        let spec = &job.spec;
        let pop = &self.model.population.values;
        let users = &self.model.population.users;
        let entities = self.model.population.entities_with_values;
        let entity = self.model.entities.entry(key.into()).or_default();
        // Whether this entity is among the counted users of a value.
        let entity_has = |hash: u64| entity.values.as_ref().is_some_and(|v| v.count(hash) > 0);
        let mine_counted = u64::from(entity.values.is_some());
        let own = entity
            .values
            .as_ref()
            .filter(|_| entity.buckets >= spec.min_history as u64);
        let pop_ready = pop.total() >= POPULATION_MIN.max(spec.min_history) as u64;
        let shapes = &self.model.population.shapes;
        let own_shapes = entity.shapes.as_ref().filter(|_| own.is_some());
        let mut rarest: Option<(f64, &str)> = None;
        for (hash, text, _, shape) in &values {
            let prior = pop.probability(*hash);
            let p = match own {
                Some(v) => v.probability_given(*hash, prior),
                None if pop_ready => prior,
                None => continue,
            };
            // New to this entity and rare everywhere are two pieces of
            // evidence: a process no host ever ran outranks one that is
            // only new here.
            let everywhere = if own.is_some() { -prior.log10() } else { 0.0 };
            let novelty = -p.log10() + everywhere;
            // A value many entities already use is not rare for one more:
            // as the share of users approaches COMMON_SHARE, the surprise
            // moves from novelty to how rare the value is among entities
            // (a browser update taken up by a tenth of the clients).
            // Other entities only: the entity's own use is the novelty
            // part's business. A share needs a population to be a share:
            // below MIN_OTHERS others (a job without `by` has one entity)
            // the novelty alone counts, as before.
            let mine = u64::from(entity_has(*hash));
            let others = entities.saturating_sub(mine_counted);
            let used_by = f64::from(users.get(hash).copied().unwrap_or(0)) - mine as f64;
            let used_by = used_by.max(0.0);
            let common = if others >= MIN_OTHERS {
                (used_by / others as f64 / COMMON_SHARE).min(1.0)
            } else {
                0.0
            };
            let among_entities = -((used_by + 1.0) / (others as f64 + 2.0)).log10();
            let mut surprise =
                (novelty * (1.0 - common) + among_entities * common).clamp(0.0, MAX_SURPRISE);
            // A new version of a value the entity already has is no more
            // surprising than its shape, plus a little.
            if let Some((hash, _)) = shape {
                let prior = shapes.probability(*hash);
                let p = own_shapes.map_or(prior, |v| v.probability_given(*hash, prior));
                let everywhere = if own.is_some() { -prior.log10() } else { 0.0 };
                surprise = surprise.min(-p.log10() + everywhere + NEW_VERSION_SURPRISE);
            }
            // Ties go to the smaller text, so results do not depend on hash order.
            if rarest.is_none_or(|(s, t)| surprise > s || (surprise == s && *text < t)) {
                rarest = Some((surprise, text));
            }
        }
        let result = rarest.map(|(surprise, text)| {
            let typical = own.and_then(ValueCounts::top).or(pop.top()).unwrap_or("");
            Scored {
                surprise,
                actual: Measure::Text(text.to_string()),
                typical: Measure::Text(typical.to_string()),
                baseline: if own.is_some() {
                    "entity"
                } else {
                    "population"
                },
                season: None,
            }
        });
        entity.buckets += 1;
        let population = &mut self.model.population;
        if entity.values.is_none() {
            population.entities_with_values += 1;
        }
        let counts = entity.values.get_or_insert_with(ValueCounts::default);
        for (hash, text, n, shape) in &values {
            let new_to_entity = counts.count(*hash) == 0;
            counts.add(*hash, text, *n);
            // Counted once per entity, and only when the entity remembers it.
            if new_to_entity && counts.count(*hash) > 0 {
                let room = population.users.len() < MAX_POPULATION_VALUES;
                match population.users.get_mut(hash) {
                    Some(u) => *u = u.saturating_add(1),
                    None if room => {
                        population.users.insert(*hash, 1);
                    }
                    None => {}
                }
            }
            population.values.add(*hash, text, *n);
            if let Some((hash, shape)) = shape {
                let own = entity.shapes.get_or_insert_with(ValueCounts::default);
                own.add(*hash, shape, *n);
                population.shapes.add(*hash, shape, *n);
            }
        }
        result
    }

    /// The anomaly rule: the number of anomalies in the window when this one
    /// makes the alert, `None` when it does not.
    fn gate(&mut self, key: &str, end: i64, score: f64) -> Option<usize> {
        let rule = &self.job.spec.alert;
        if score < rule.min_score {
            return None;
        }
        let recent = self.recent.entry(key.into()).or_default();
        let within = rule.within.as_secs() as i64;
        while recent.front().is_some_and(|(t, _)| *t <= end - within) {
            recent.pop_front();
        }
        recent.push_back((end, score));
        if recent.len() < rule.count {
            return None;
        }
        let n = recent.len();
        // Fired: the next alert needs `count` new anomalies.
        recent.clear();
        Some(n)
    }

    fn refit_population(&mut self) {
        let pop = &mut self.model.population;
        if pop.reservoir.is_empty() || self.job.spec.function == Function::Rare {
            return;
        }
        if pop.fit.is_none() || pop.seen > pop.fitted_at + pop.fitted_at / 10 {
            let values: Vec<f64> = pop.reservoir.iter().map(|v| f64::from(*v)).collect();
            pop.fit = Mixture::fit(&values);
            pop.fitted_at = pop.seen;
        }
    }
}

/// How a bucket value compared with its baseline.
struct Scored {
    surprise: f64,
    actual: Measure,
    typical: Measure,
    baseline: &'static str,
    season: Option<String>,
}

impl EntityModel {
    /// Adds a bucket's (clipped) value to the history and refits the
    /// mixture when due: every bucket while the history is short, then
    /// every eighth of it, so cost stays proportional to the data.
    fn learn(
        &mut self,
        x: f64,
        scale: Scale,
        seasons: Option<(Seasons, u16)>,
        max_history: usize,
        min_history: usize,
        population: &SlotMeans,
    ) {
        self.buckets += 1;
        self.history.push_back(x as f32);
        if let Some((seasons, slot)) = seasons {
            self.slots.push_back(slot);
            self.season.add(&seasons, slot, x, 1);
        }
        while self.history.len() > max_history {
            self.history.pop_front();
        }
        while self.slots.len() > self.history.len() {
            self.slots.pop_front();
        }
        self.since_fit += 1;
        let every = (self.history.len() / 8).max(1) as u32;
        if self.fit.is_some() && self.since_fit < every {
            return;
        }
        self.since_fit = 0;
        let raw: Vec<f64> = self.history.iter().map(|v| f64::from(*v)).collect();
        self.seasonal = false;
        if let Some((seasons, _)) = seasons {
            // Residuals after each value's seasonal expectation; used only
            // when they explain enough of the history (an entity without
            // rhythm, a poller, stays flat).
            let expectation = self.season.expectation(&seasons, population);
            let expected: Vec<f64> = (0..seasons.len())
                .map(|s| {
                    let slot = u16::try_from(s).unwrap_or(0);
                    expectation.as_ref().map_or(0.0, |x| x.at(slot).0)
                })
                .collect();
            // Older models saved no slots: only the values that have one.
            let skip = raw.len().saturating_sub(self.slots.len());
            let residual: Vec<f64> = raw[skip..]
                .iter()
                .zip(&self.slots)
                .map(|(x, s)| x - expected.get(usize::from(*s)).copied().unwrap_or(0.0))
                .collect();
            if residual.len() >= min_history
                && variance(&residual) <= (1.0 - MIN_EXPLAINED) * variance(&raw[skip..])
            {
                self.seasonal = true;
                self.fit =
                    Mixture::fit(&residual).map(|m| m.without_counting_noise(scale, &raw[skip..]));
                return;
            }
        }
        self.fit = Mixture::fit(&raw).map(|m| m.without_counting_noise(scale, &raw));
    }
}

/// A value with its runs of digits masked (`Chrome/#.#.#.#`), or `None`
/// when it has no digit: then the shape is the value itself.
fn shape_of(text: &str) -> Option<String> {
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut shape = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                shape.push('#');
            }
            in_digits = true;
        } else {
            shape.push(c);
            in_digits = false;
        }
    }
    Some(shape)
}

fn variance(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
}

impl Population {
    /// Adds a value; past the reservoir's size a value replaces a slot
    /// chosen from its sequence number (Vitter's algorithm R, seeded by the
    /// count so replays choose the same slots).
    fn add(&mut self, x: f64) {
        self.seen += 1;
        if self.reservoir.len() < POPULATION_RESERVOIR {
            self.reservoir.push(x as f32);
            return;
        }
        let slot = (splitmix(self.seen) % self.seen) as usize;
        if slot < POPULATION_RESERVOIR {
            self.reservoir[slot] = x as f32;
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub(crate) mod changes;

fn epoch(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// Typical values are estimates: three significant digits are plenty.
fn round_measure(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return 0.0;
    }
    let digits = 2 - v.abs().log10().floor() as i32;
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::anomaly::{JobSpec, Seasonality};
    use crate::vocab::Span;

    fn job(spec: impl FnOnce(&mut JobSpec)) -> Arc<AnomalySet> {
        crate::anomaly::test_job(spec)
    }

    fn sample(user: &str, secs: i64, value: Option<&str>) -> Sample {
        Sample {
            job: 0,
            numerator: false,
            entity: user.into(),
            value: value.map(str::to_string),
            time: epoch(secs),
            origin: crate::event::Origin {
                source: "test".into(),
                position: crate::event::Position::Line { line: 1 },
            },
        }
    }

    /// Feeds `buckets` of 10 minutes; `per_bucket(bucket, user)` events each.
    fn feed(
        d: &mut Detector,
        users: &[&str],
        buckets: i64,
        per_bucket: impl Fn(i64, &str) -> u64,
    ) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for b in 0..buckets {
            for u in users {
                for k in 0..per_bucket(b, u) {
                    out.extend(d.observe(sample(u, b * 600 + (k as i64 % 600), None)));
                }
            }
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn a_burst_for_one_user_alerts_and_steady_users_do_not() {
        let mut d = Detector::new(job(|_| {}));
        let users = ["alice", "bob", "carol", "dave"];
        let alerts = feed(&mut d, &users, 60, |b, u| {
            let base = 3 + (b as u64 * 7 + u.len() as u64) % 4;
            if b == 50 && u == "bob" {
                120
            } else {
                base
            }
        });
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.entity, vec![("user".to_string(), "bob".to_string())]);
        assert!(a.score >= 80.0, "{}", a.score);
        assert_eq!(a.actual, Measure::Number(120.0));
        assert_eq!(a.baseline, "entity");
        assert_eq!(a.bucket_start, epoch(50 * 600));
        // Every normal bucket scored: 95% of them below 20.
        let scores = d.take_stats().scores;
        let low = scores.iter().filter(|(_, s)| *s < 20.0).count();
        assert!(
            low as f64 >= 0.95 * (scores.len() - 1) as f64,
            "{low}/{}",
            scores.len()
        );
    }

    #[test]
    fn a_new_entity_bursting_is_judged_against_the_population() {
        let mut d = Detector::new(job(|_| {}));
        let users = ["u1", "u2", "u3", "u4", "u5", "u6"];
        let mut alerts = feed(&mut d, &users, 20, |_, u| 2 + u.len() as u64 % 3);
        assert!(alerts.is_empty(), "{alerts:?}");
        for k in 0..200 {
            alerts.extend(d.observe(sample("mallory", 20 * 600 + k, None)));
        }
        alerts.extend(d.observe(sample("u1", 22 * 600, None)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].baseline, "population");
        assert!(alerts[0].score >= 80.0);
    }

    /// Five weekdays of 10-minute buckets with a daily rhythm (ten times
    /// busier 08:00-18:00 than at night), then one more day in which
    /// `burst(bucket, user)` replaces the usual count. Returns every score
    /// of the last day, by user and bucket.
    fn rhythmic_scores(
        function: Function,
        burst: impl Fn(i64, &str) -> Option<u64>,
    ) -> HashMap<(String, i64), f64> {
        let mut d = Detector::new(job(|s| {
            s.seasonality = Seasonality::DAILY;
            s.min_history = 12;
            s.alert.min_score = 0.0;
            if function == Function::DistinctCount {
                s.function = Function::DistinctCount;
                s.field = Some("path".into());
            }
        }));
        // 2026-11-16, a Monday.
        let monday = 1_794_787_200;
        let users = ["steady", "quiet", "busy", "sparse"];
        let mut rng = 1u64;
        let mut noise = |n: u64| {
            rng = splitmix(rng);
            n + rng % (n / 5 + 2)
        };
        let mut scores = HashMap::new();
        let record = |scores: &mut HashMap<(String, i64), f64>, closed: Vec<Anomaly>| {
            for a in closed {
                let bucket = (a.bucket_start.timestamp() - monday) / 600 - 5 * 144;
                scores.insert((a.entity[0].1.clone(), bucket), a.score);
            }
        };
        for b in 0..(6 * 144) {
            let hour = (b % 144) / 6;
            let day = (8..18).contains(&hour);
            for u in users {
                // A sparse user is active in every third bucket of the day,
                // with one or two events: its history is all ln 2 and ln 3.
                let active = day && b % 3 == 0;
                let bursting = b >= 5 * 144 && burst(b - 5 * 144, u).is_some();
                if u == "sparse" && !active && !bursting {
                    continue;
                }
                let peak = match u {
                    "steady" => 100,
                    "quiet" => 6,
                    "sparse" => 1,
                    _ => 40,
                };
                let usual = noise(if day { peak } else { peak / 10 + 1 });
                let n = if b >= 5 * 144 {
                    burst(b - 5 * 144, u).unwrap_or(usual)
                } else {
                    usual
                };
                for k in 0..n {
                    // Revisits as usual; a burst's requests each take a new path.
                    let distinct = if n == usual { usual / 2 + 1 } else { n };
                    let path = format!("/p{}", k % distinct.max(1));
                    let t = monday + b * 600 + (k as i64 % 600);
                    let closed = d.observe(sample(u, t, Some(&path)));
                    record(&mut scores, closed);
                }
            }
        }
        record(&mut scores, d.finish());
        scores
    }

    #[test]
    fn seasonal_baselines_judge_a_bucket_against_its_hour() {
        // 10:00 is bucket 60 of the day, 03:00 bucket 18.
        let scores = rhythmic_scores(Function::Count, |b, u| match (b, u) {
            (60, "steady") => Some(300),
            (18, "busy") => Some(50),
            (61, "quiet") => Some(70),
            (63, "sparse") => Some(14),
            _ => None,
        });
        let score = |u: &str, b: i64| {
            *scores
                .get(&(u.to_string(), b))
                .unwrap_or_else(|| panic!("{u} {b} not scored: {} scores", scores.len()))
        };
        // Three times a steady entity's usual for 10:00: at least High.
        assert!(score("steady", 60) >= 50.0, "{}", score("steady", 60));
        // Ten times the night's usual, though less than the day's: Critical.
        assert!(score("busy", 18) >= 80.0, "{}", score("busy", 18));
        // Ten times a quiet entity's usual for the hour: Critical.
        assert!(score("quiet", 61) >= 80.0, "{}", score("quiet", 61));
        // Fourteen events where a sparse user has one or two: Critical.
        // Counting noise this small is discrete: a normal tail on the log
        // scale calls it one in a few thousand.
        assert!(score("sparse", 63) >= 80.0, "{}", score("sparse", 63));
        // The rhythm itself is ordinary: the morning ramp and the evening
        // drop of the last day score Low for everyone.
        for u in ["steady", "quiet", "busy"] {
            for b in [47, 48, 49, 107, 108, 109] {
                assert!(score(u, b) < 50.0, "{u} at bucket {b}: {}", score(u, b));
            }
        }
    }

    #[test]
    fn eight_times_the_usual_distinct_count_for_the_hour_is_critical() {
        let scores = rhythmic_scores(Function::DistinctCount, |b, u| {
            (b == 70 && u == "busy").then_some(8 * 21)
        });
        let jump = scores[&("busy".to_string(), 70)];
        assert!(jump >= 80.0, "{jump}");
    }

    #[test]
    fn nothing_is_scored_before_the_minimum_history() {
        let mut d = Detector::new(job(|s| s.min_history = 50));
        let alerts = feed(&mut d, &["a"], 20, |b, _| if b == 19 { 500 } else { 2 });
        assert!(alerts.is_empty());
        assert!(d.take_stats().scores.is_empty());
    }

    #[test]
    fn a_new_rare_value_on_a_host_alerts() {
        let mut d = Detector::new(job(|s| {
            s.function = Function::Rare;
            s.field = Some("Image".into());
        }));
        let procs = ["svchost.exe", "explorer.exe", "chrome.exe"];
        let mut alerts = Vec::new();
        for b in 0..40i64 {
            for host in ["ws1", "ws2", "ws3"] {
                for (k, p) in procs.iter().enumerate() {
                    alerts.extend(d.observe(sample(host, b * 600 + k as i64, Some(p))));
                }
            }
        }
        assert!(alerts.is_empty(), "{alerts:?}");
        alerts.extend(d.observe(sample("ws2", 40 * 600 + 5, Some("mimikatz.exe"))));
        alerts.extend(d.finish());
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].actual, Measure::Text("mimikatz.exe".into()));
        assert!(alerts[0].score >= 80.0, "{}", alerts[0].score);
    }

    #[test]
    fn a_value_a_tenth_of_the_population_uses_is_not_rare_for_one_more_entity() {
        // 40 clients on one browser for 30 buckets; then a browser update:
        // 6 of them (15%) take up the new version, one per bucket, then a
        // seventh does. A user agent nobody ever sent still alerts.
        let mut d = Detector::new(job(|s| {
            s.function = Function::Rare;
            s.field = Some("ua".into());
            s.alert.min_score = 0.0;
        }));
        let clients: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        let mut scored = Vec::new();
        for b in 0..40i64 {
            for (i, c) in clients.iter().enumerate() {
                let updated = b >= 30 && i < (b - 29) as usize;
                let ua = if updated {
                    "Browser/121"
                } else {
                    "Browser/120"
                };
                scored.extend(d.observe(sample(c, b * 600 + i as i64, Some(ua))));
            }
        }
        scored.extend(d.observe(sample("c39", 40 * 600 + 1, Some("sqlmap/1.7"))));
        scored.extend(d.finish());
        let score_of = |entity: &str, value: &str| {
            scored
                .iter()
                .filter(|a| {
                    a.entity == [("user".to_string(), entity.to_string())]
                        && a.actual == Measure::Text(value.into())
                })
                .map(|a| a.score)
                .fold(f64::NAN, f64::max)
        };
        // c6 is the seventh client on the new version: 6 of 40 used it.
        let seventh = score_of("c6", "Browser/121");
        assert!(
            seventh <= 50.0,
            "one more client on a common new version scored {seventh}"
        );
        let first = score_of("c0", "Browser/121");
        assert!(
            first > seventh,
            "the first client on it ({first}) is more surprising"
        );
        let never = score_of("c39", "sqlmap/1.7");
        assert!(never >= 80.0, "a value nobody ever sent scored {never}");
    }

    #[test]
    fn count_rules_need_several_anomalies_within_the_window() {
        // Entity "a" spikes in buckets `first` and `second`; a rule wants
        // two anomalies within 30 minutes.
        let alerts_for_spikes = |first: i64, second: i64| {
            let mut d = Detector::new(job(|s| {
                s.alert.count = 2;
                s.alert.within = Span::from_secs(1800);
            }));
            feed(&mut d, &["a", "b"], 40, |b, u| {
                if u == "a" && (b == first || b == second) {
                    200
                } else {
                    4 + (b as u64 % 3)
                }
            })
        };
        let alerts = alerts_for_spikes(30, 36);
        assert!(alerts.is_empty(), "an hour apart: {alerts:?}");
        let alerts = alerts_for_spikes(30, 31);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].anomalies_in_window, 2);
    }

    #[test]
    fn a_reload_keeps_the_baseline_of_an_unchanged_job_and_restarts_a_changed_one() {
        let mut d = Detector::new(job(|_| {}));
        feed(&mut d, &["a", "b"], 20, |_, _| 5);
        let learned = d.model(0).unwrap().clone();
        assert!(learned.buckets_closed > 0);
        // The same job, reloaded (a new Arc, equal logic): its baseline stays.
        assert!(d.replace_jobs(job(|_| {})).is_empty());
        assert_eq!(d.model(0), Some(&learned));
        // Another bucket span is another analysis: it starts from nothing.
        assert_eq!(
            d.replace_jobs(job(|s| s.bucket_span = Span::from_secs(1800))),
            [0]
        );
        assert_eq!(d.model(0).unwrap().buckets_closed, 0);
    }

    #[test]
    fn late_samples_for_closed_buckets_are_counted_not_added() {
        let mut d = Detector::new(job(|_| {}));
        d.observe(sample("a", 0, None));
        d.observe(sample("a", 1300, None));
        d.observe(sample("a", 10, None));
        assert_eq!(d.take_stats().late_samples, 1);
        assert_eq!(
            d.late_by_job(),
            vec![(d.set().jobs()[0].name().to_string(), 1)]
        );
    }

    #[test]
    fn typical_values_are_rounded_to_three_digits() {
        assert_eq!(round_measure(12345.6), 12300.0);
        assert_eq!(round_measure(0.012345), 0.0123);
        assert_eq!(round_measure(3.0), 3.0);
    }
}
