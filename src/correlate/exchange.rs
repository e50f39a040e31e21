//! Correlation across instances: rule matches travel over a repartition
//! topic keyed by (correlation, group), so that every match of one group
//! reaches one owner whatever partition its event was read from; each
//! owner runs its matches in event-time order, released by a watermark
//! that every upstream input advances; its state is kept per key in a
//! changelog, from which the next owner of the partition restores it.
//!
//! This file is the part without Kafka: the match as it travels, and the
//! state of one repartition partition ([`PartitionOwner`]). The pipeline
//! moves the records (`pipeline::exchange`, docs/correlation.md "Scaling
//! out"); anomaly samples travel the same way (`anomaly::exchange`).
//!
//! Why event-time order: `gt`/`gte` correlations fire as soon as they hold
//! and start over, so which matches make one firing depends on the order
//! they are seen in. Matches of one group arrive from many input partitions
//! interleaved by chance; sorted by event time, every owner, however many
//! and however the group rebalanced, sees what a scan of the same events
//! sees, and fires the same alerts with the same ids.
//!
//! Why a watermark per input: a match may be released only when no earlier
//! one can still come ([`Watermark`]: the slowest input's progress minus
//! the allowed lateness, with idle inputs left out).
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
use crate::vocab::held::{compacted, Held};
use crate::vocab::watermark::{Progress, ReleaseCounts, Watermark, WatermarkRecord};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

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
    /// every match of one group of one chain lands in one partition (the
    /// chain's id alone when its links group by different fields).
    pub fn route_key(set: &super::CorrelationSet, obs: &Observation) -> Option<String> {
        let (chain, by_group) = set.route(obs.correlation)?;
        let group: &[String] = if by_group { &obs.group } else { &[] };
        serde_json::to_string(&(chain, group)).ok()
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

const GROUP: &str = "g";
const PENDING: &str = "p";
const META: &str = "m";

/// The correlation state of one repartition partition.
#[derive(Debug)]
pub struct PartitionOwner {
    correlator: Correlator,
    pending: Held<PendingKey, Match>,
    /// Every pending match up to its released point has been applied.
    watermark: Watermark,
    /// Per group restored from the changelog: applied up to this time.
    applied: HashMap<(String, Vec<String>), DateTime<Utc>>,
    /// Most matches held for the watermark; past it the oldest are released.
    max_pending: usize,
    /// Groups written empty at the last flush: deleted at the next one,
    /// once the meta record after them covers their replays.
    emptied: Vec<String>,
    /// What was dropped and why.
    pub counts: ReleaseCounts,
}

impl PartitionOwner {
    /// An owner with no state; `correlator` brings the rules and bounds.
    pub fn new(correlator: Correlator, lateness: Span, idle_timeout: Duration) -> Self {
        PartitionOwner {
            correlator: correlator.tracking_changes(),
            pending: Held::default(),
            watermark: Watermark::new(lateness, idle_timeout),
            applied: HashMap::new(),
            max_pending: super::DEFAULT_MAX_GROUPS,
            emptied: Vec::new(),
            counts: ReleaseCounts::default(),
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

    /// How many inputs the owner waits to hear from.
    pub fn expected_inputs(&self) -> u32 {
        self.watermark.expected_inputs()
    }

    /// Takes one match; returns what fired.
    pub fn offer_match(&mut self, m: Match, now: Instant) -> Vec<Firing> {
        self.watermark.record_arrived(now);
        self.add(m);
        self.release(now)
    }

    /// Takes an input's progress; returns what fired.
    pub fn offer_progress(&mut self, progress: &Progress, now: Instant) -> Vec<Firing> {
        self.watermark.note(progress, now);
        self.release(now)
    }

    /// Whether a match at `time` is behind what was applied already: the
    /// released watermark, or the point its group's saved state covers.
    fn is_applied(&self, m: &Match, time: DateTime<Utc>) -> bool {
        self.watermark.is_released(time)
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
        if !self.pending.hold(key, m) {
            self.counts.duplicates += 1;
        }
    }

    /// Releases what the watermark allows (an idle input may have stopped
    /// holding it back); returns what fired. Called on every record and
    /// periodically while the input is quiet.
    pub fn release(&mut self, now: Instant) -> Vec<Firing> {
        let point = self.watermark.release_point(
            now,
            self.pending.records(),
            self.max_pending,
            &mut self.counts,
        );
        let Some(upto) = point else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        while let Some((_, m)) = self.pending.release_next(upto) {
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
        if self.watermark.advance(upto) {
            // Groups saved up to the released point need no mark of their own.
            self.applied.retain(|_, a| *a > upto);
        }
        fired
    }

    /// The changelog records since the last call, in the order they must be
    /// written: groups, then pending matches, then the meta record, so that
    /// a crash in the middle leaves a prefix that still restores correctly.
    /// `None` is a tombstone.
    pub fn changelog(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let applied_until = self
            .watermark
            .released()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
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
        self.pending.changelog(PENDING, &mut out);
        self.watermark.changelog(META, &mut out);
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
        for (key, payload) in compacted(records) {
            let Some(payload) = payload else { continue };
            if !self.restore_one(key, payload, now) {
                self.counts.unreadable += 1;
            }
        }
        // What was restored is in the changelog already.
        let _ = self.correlator.take_changes();
        self.watermark.restarted();
        // A flush cut short may have saved a group with a match applied but
        // not yet the tombstone of that match's pending record.
        let applied: Vec<PendingKey> = self
            .pending
            .records()
            .iter()
            .filter(|(key, m)| self.is_applied(m, key.0))
            .map(|(key, _)| key.clone())
            .collect();
        self.pending.restored(applied);
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
            Some(PENDING) => self.pending.restore(name, payload),
            Some(META) => {
                let Ok(meta) = serde_json::from_slice::<WatermarkRecord>(payload) else {
                    return false;
                };
                self.watermark.restore(meta, now);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
