//! Correlation across instances: rule matches travel over a repartition
//! topic keyed by (correlation, group), so that every match of one group
//! reaches one owner whatever partition its event was read from; each
//! owner runs its matches in event-time order, released by a watermark
//! that every upstream input advances; its state is kept per key in a
//! changelog, from which the next owner of the partition restores it.
//!
//! This file is the part without Kafka: the records, and the state of one
//! repartition partition ([`PartitionOwner`]). The pipeline side that moves
//! the records is not built yet (docs/correlation.md, "Scaling out").
//!
//! Why event-time order: `gt`/`gte` correlations fire as soon as they hold
//! and start over, so which matches make one firing depends on the order
//! they are seen in. Matches of one group arrive from many input partitions
//! interleaved by chance; sorted by event time, every owner, however many
//! and however the group rebalanced, sees what a scan of the same events
//! sees, and fires the same alerts with the same ids.
//!
//! Why a watermark per input: a match may be released only when no earlier
//! one can still come. Each detection instance reports, per input partition
//! it reads, the newest event time it has processed (a `progress` record,
//! sent to every repartition partition after the matches it covers). The
//! owner releases matches up to the slowest input's time minus the allowed
//! lateness; an input silent for the idle timeout stops holding it back,
//! and an input never heard from holds it back for the idle timeout after
//! records began to arrive (as Kafka Streams' `max.task.idle.ms`: an empty
//! partition must not block the others for ever).
//!
//! Replays: after a crash, matches are produced again (detection restarts
//! from its last committed offset) and read again (the owner's offsets
//! trail its changelog). A match already in the pending set is recognised
//! by its id; one at or behind the point up to which its group's state was
//! saved was applied already and is dropped.

use super::correlator::Correlator;
use super::window::Entry;
use super::{Firing, Observation};
use crate::event::Origin;
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// A record on the repartition topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exchanged {
    /// A rule match offered to a correlation.
    Match(Match),
    /// An upstream input has been processed up to this event time.
    Progress {
        /// The input: `topic[partition]`, or a file or stdin.
        input: String,
        /// Its newest event time processed so far.
        time: DateTime<Utc>,
        /// How many inputs the sender reads from in all (every partition of
        /// every input topic): the owner waits to hear from that many.
        inputs: u32,
    },
}

/// A rule match for one correlation, as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The correlation rule's id.
    pub correlation: String,
    /// The group key.
    pub group: Vec<String>,
    /// Time, input, value and evidence id.
    pub entry: Entry,
    /// Where the event was read.
    pub origin: Origin,
}

impl Match {
    /// The match an observation of `set` makes; `None` if its correlation
    /// is not in the set.
    pub fn of(set: &super::CorrelationSet, obs: Observation) -> Option<Match> {
        Some(Match {
            correlation: set.get(obs.correlation)?.rule.meta.id.clone(),
            group: obs.group,
            entry: obs.entry,
            origin: obs.origin,
        })
    }

    /// The repartition key: the chain's routing id and the group, so that
    /// every match of one group of one chain lands in one partition.
    pub fn route_key(set: &super::CorrelationSet, obs: &Observation) -> Option<String> {
        serde_json::to_string(&(set.route(obs.correlation)?, &obs.group)).ok()
    }
}

/// The order matches are released in, which is also their identity: event
/// time, evidence id, correlation id.
type PendingKey = (DateTime<Utc>, String, String);

/// A changelog record of a group.
#[derive(Debug, Serialize, Deserialize)]
struct GroupRecord {
    entries: Vec<Entry>,
    origin: Option<Origin>,
    /// Every match of this group up to this time is in `entries` (or fired).
    applied_until: DateTime<Utc>,
}

/// The changelog's record of the owner's clock.
#[derive(Debug, Serialize, Deserialize)]
struct MetaRecord {
    released: Option<DateTime<Utc>>,
    inputs: Vec<(String, DateTime<Utc>)>,
    expected_inputs: u32,
}

const GROUP: &str = "g";
const PENDING: &str = "p";
const META: &str = "m";

/// What happened to the records offered, for metrics and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeCounts {
    /// Matches dropped as already applied (replays) or behind the released watermark.
    pub behind: u64,
    /// Matches recognised as duplicates of pending ones.
    pub duplicates: u64,
    /// Changelog records that could not be read at restore.
    pub unreadable: u64,
    /// Matches released before the watermark passed them because the
    /// pending set was full: an input held the watermark back (a stalled
    /// reader, a host with its clock behind).
    pub forced: u64,
}

/// The correlation state of one repartition partition.
#[derive(Debug)]
pub struct PartitionOwner {
    correlator: Correlator,
    pending: BTreeMap<PendingKey, Match>,
    /// Newest event time per upstream input, and when it last reported.
    inputs: HashMap<String, (DateTime<Utc>, Instant)>,
    expected_inputs: u32,
    /// Every pending match up to here has been applied.
    released: Option<DateTime<Utc>>,
    /// Per group restored from the changelog: applied up to this time.
    applied: HashMap<(String, Vec<String>), DateTime<Utc>>,
    /// When records began to arrive (after start or restore): inputs not
    /// heard from hold the watermark back for the idle timeout from then.
    started: Option<Instant>,
    lateness: Span,
    idle_timeout: Duration,
    /// Most matches held for the watermark; past it the oldest are released.
    max_pending: usize,
    /// Changelog bookkeeping since the last flush.
    pending_added: HashSet<PendingKey>,
    pending_removed: HashSet<PendingKey>,
    /// Groups written empty at the last flush: deleted at the next one,
    /// once the meta record after them covers their replays.
    emptied: Vec<String>,
    meta_changed: bool,
    /// What was dropped and why.
    pub counts: ExchangeCounts,
}

impl PartitionOwner {
    /// An owner with no state; `correlator` brings the rules and bounds.
    pub fn new(correlator: Correlator, lateness: Span, idle_timeout: Duration) -> Self {
        PartitionOwner {
            correlator: correlator.tracking_changes(),
            pending: BTreeMap::new(),
            inputs: HashMap::new(),
            expected_inputs: 0,
            released: None,
            applied: HashMap::new(),
            started: None,
            lateness,
            idle_timeout,
            max_pending: super::DEFAULT_MAX_GROUPS,
            pending_added: HashSet::new(),
            pending_removed: HashSet::new(),
            emptied: Vec::new(),
            meta_changed: false,
            counts: ExchangeCounts::default(),
        }
    }

    /// Holds at most `max` matches (at least 1) for the watermark: memory
    /// stays bounded when one input holds it back.
    pub fn with_max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    /// The correlator (its rules, late counts, groups).
    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }

    /// Runs the correlations of `set` from now on (a rule reload).
    pub fn replace_rules(&mut self, set: std::sync::Arc<super::CorrelationSet>) {
        self.correlator.replace_rules(set);
    }

    /// Matches waiting for the watermark.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes one record; returns what fired.
    pub fn offer(&mut self, record: Exchanged, now: Instant) -> Vec<Firing> {
        self.started.get_or_insert(now);
        match record {
            Exchanged::Match(m) => self.add(m),
            Exchanged::Progress {
                input,
                time,
                inputs,
            } => {
                self.expected_inputs = self.expected_inputs.max(inputs);
                let newest = self.inputs.entry(input).or_insert((time, now));
                newest.0 = newest.0.max(time);
                newest.1 = now;
                self.meta_changed = true;
            }
        }
        self.release(now)
    }

    /// Whether a match at `time` is behind what was applied already: the
    /// released watermark, or the point its group's saved state covers.
    fn is_applied(&self, m: &Match, time: DateTime<Utc>) -> bool {
        self.released.is_some_and(|r| time <= r)
            || !self.applied.is_empty()
                && self
                    .applied
                    .get(&(m.correlation.clone(), m.group.clone()))
                    .is_some_and(|a| time <= *a)
    }

    fn add(&mut self, m: Match) {
        let time = m.entry.time;
        if self.is_applied(&m, time) {
            self.counts.behind += 1;
            return;
        }
        let key = (time, m.entry.evidence.clone(), m.correlation.clone());
        if self.pending.contains_key(&key) {
            self.counts.duplicates += 1;
            return;
        }
        self.pending_removed.remove(&key);
        self.pending_added.insert(key.clone());
        self.pending.insert(key, m);
    }

    /// Releases what the watermark allows (an idle input may have stopped
    /// holding it back); returns what fired. Called on every record and
    /// periodically while the input is quiet.
    pub fn release(&mut self, now: Instant) -> Vec<Firing> {
        let over = self.pending.len().saturating_sub(self.max_pending);
        let forced = match over {
            0 => None,
            n => self.pending.keys().nth(n - 1).map(|k| k.0),
        };
        if forced.is_some() {
            self.counts.forced += over as u64;
        }
        let Some(upto) = self.watermark(now).max(forced) else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > upto {
                break;
            }
            let (key, m) = entry.remove_entry();
            if !self.pending_added.remove(&key) {
                self.pending_removed.insert(key);
            }
            let set = self.correlator.correlations();
            let Some(correlation) = (0..set.len())
                .find(|&c| set.get(c).is_some_and(|c| c.rule.meta.id == m.correlation))
            else {
                continue;
            };
            fired.extend(self.correlator.observe(Observation {
                correlation,
                group: m.group,
                entry: m.entry,
                origin: m.origin,
            }));
        }
        if self.released.is_none_or(|r| upto > r) {
            self.released = Some(upto);
            self.meta_changed = true;
            // Groups saved up to the released point need no mark of their own.
            self.applied.retain(|_, a| *a > upto);
        }
        fired
    }

    /// Up to when every match has arrived: the slowest input's newest time
    /// minus the allowed lateness. `None` while an input may still be
    /// unheard of. When every input is idle, all of it.
    fn watermark(&self, now: Instant) -> Option<DateTime<Utc>> {
        let young = self
            .started
            .is_none_or(|started| now.duration_since(started) <= self.idle_timeout);
        if young && (self.inputs.len() as u64) < u64::from(self.expected_inputs) {
            return None;
        }
        let active = self
            .inputs
            .values()
            .filter(|(_, seen)| now.duration_since(*seen) <= self.idle_timeout)
            .map(|(t, _)| *t)
            .min();
        match active {
            Some(t) => Some(self.lateness.before(t)),
            None if young => None,
            None => {
                let newest = self.inputs.values().map(|(t, _)| *t).max();
                let last_pending = self.pending.keys().next_back().map(|k| k.0);
                newest.max(last_pending).or(self.released)
            }
        }
    }

    /// The changelog records since the last call, in the order they must be
    /// written: groups, then pending matches, then the meta record, so that
    /// a crash in the middle leaves a prefix that still restores correctly.
    /// `None` is a tombstone.
    pub fn changelog(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let applied_until = self.released.unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut emptied = Vec::new();
        let stale = std::mem::take(&mut self.emptied);
        let mut written = HashSet::new();
        for (id, group, state) in self.correlator.take_changes() {
            let Ok(key) = serde_json::to_string(&(GROUP, &id, &group)) else {
                continue;
            };
            let (entries, origin) = match state {
                Some((entries, origin)) => (entries, Some(origin)),
                None => {
                    emptied.push(key.clone());
                    (Vec::new(), None)
                }
            };
            let record = GroupRecord {
                entries,
                origin,
                applied_until,
            };
            if let Ok(bytes) = serde_json::to_vec(&record) {
                written.insert(key.clone());
                out.push((key, Some(bytes)));
            }
        }
        for key in stale.into_iter().filter(|k| !written.contains(k)) {
            out.push((key, None));
        }
        self.emptied = emptied;
        let mut added: Vec<PendingKey> = self.pending_added.drain().collect();
        added.sort();
        for key in added {
            let (Some(m), Ok(name)) = (
                self.pending.get(&key),
                serde_json::to_string(&(PENDING, &key)),
            ) else {
                continue;
            };
            if let Ok(bytes) = serde_json::to_vec(m) {
                out.push((name, Some(bytes)));
            }
        }
        let mut removed: Vec<PendingKey> = self.pending_removed.drain().collect();
        removed.sort();
        for key in removed {
            if let Ok(name) = serde_json::to_string(&(PENDING, &key)) {
                out.push((name, None));
            }
        }
        if std::mem::take(&mut self.meta_changed) {
            let mut inputs: Vec<(String, DateTime<Utc>)> = self
                .inputs
                .iter()
                .map(|(k, (t, _))| (k.clone(), *t))
                .collect();
            inputs.sort();
            let meta = MetaRecord {
                released: self.released,
                inputs,
                expected_inputs: self.expected_inputs,
            };
            if let (Ok(name), Ok(bytes)) =
                (serde_json::to_string(&(META,)), serde_json::to_vec(&meta))
            {
                out.push((name, Some(bytes)));
            }
        }
        out
    }

    /// Restores the state a changelog holds: `records` in the order they
    /// were written (key, payload; `None` a tombstone). Unreadable records
    /// are counted and skipped. The clock of restored inputs starts now:
    /// they get the idle timeout to report again.
    pub fn restore<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        now: Instant,
    ) {
        let mut latest: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
        for (key, payload) in records {
            latest.insert(key, payload);
        }
        self.started = Some(now);
        for (key, payload) in latest {
            let Some(payload) = payload else { continue };
            if !self.restore_one(key, payload, now) {
                self.counts.unreadable += 1;
            }
        }
        // What was restored is in the changelog already.
        let _ = self.correlator.take_changes();
        self.pending_added.clear();
        self.meta_changed = false;
        // A flush cut short may have saved a group with a match applied but
        // not yet the tombstone of that match's pending record.
        let applied: Vec<PendingKey> = self
            .pending
            .iter()
            .filter(|(key, m)| self.is_applied(m, key.0))
            .map(|(key, _)| key.clone())
            .collect();
        for key in applied {
            self.pending.remove(&key);
            self.pending_removed.insert(key);
        }
    }

    fn restore_one(&mut self, key: &[u8], payload: &[u8], now: Instant) -> bool {
        let Ok(name) = serde_json::from_slice::<serde_json::Value>(key) else {
            return false;
        };
        match name.get(0).and_then(|k| k.as_str()) {
            Some(GROUP) => {
                let Ok((_, id, group)) =
                    serde_json::from_value::<(String, String, Vec<String>)>(name)
                else {
                    return false;
                };
                let Ok(record) = serde_json::from_slice::<GroupRecord>(payload) else {
                    return false;
                };
                if let Some(origin) = record.origin.filter(|_| !record.entries.is_empty()) {
                    self.correlator
                        .restore_group(&id, group.clone(), record.entries, origin);
                }
                self.applied.insert((id, group), record.applied_until);
                true
            }
            Some(PENDING) => {
                let Ok((_, key)) = serde_json::from_value::<(String, PendingKey)>(name) else {
                    return false;
                };
                let Ok(m) = serde_json::from_slice::<Match>(payload) else {
                    return false;
                };
                self.pending.insert(key, m);
                true
            }
            Some(META) => {
                let Ok(meta) = serde_json::from_slice::<MetaRecord>(payload) else {
                    return false;
                };
                self.released = meta.released;
                self.expected_inputs = meta.expected_inputs;
                self.inputs = meta
                    .inputs
                    .into_iter()
                    .map(|(input, t)| (input, (t, now)))
                    .collect();
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
