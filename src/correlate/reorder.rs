//! Event-time order for a whole input (`tocsin scan`).
//!
//! A stream has to decide windows as it goes, so a match further behind
//! its input's newest event than the allowed lateness is dropped. A scan has
//! the whole input, and its result must not depend on the order of files or
//! lines: `cat old.log new.log` and `cat new.log old.log` are the same data.
//!
//! So a scan keeps a copy of every match that feeds a correlation (up to
//! [`REORDER_LIMIT`]). While the input is in time order, correlation runs
//! as a stream and its output is exactly the streaming one. From the first
//! match out of order by more than the lateness on, matches are only kept;
//! at the end, everything kept is run, sorted by event time, through a fresh
//! correlator, and the firings the streaming part had not handed out yet
//! are added. Past the limit the scan goes back to being a stream, after
//! running what it kept in order, and says so.

use super::{Correlator, Firing, Observation};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// Most matches a scan keeps for reordering: a few hundred bytes each, so
/// well under 200 MiB at the limit.
pub const REORDER_LIMIT: usize = 500_000;

/// What a firing is known by: its correlation, group values and window start
/// (what its alert id derives from).
type FiringKey = (usize, Vec<String>, DateTime<Utc>);

fn key(f: &Firing) -> FiringKey {
    (
        f.correlation,
        f.group.iter().map(|(_, v)| v.clone()).collect(),
        f.first,
    )
}

/// How the matches of a whole input were ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reordered {
    /// No reordering: a stream (`run`), or the input was in time order.
    #[default]
    NotNeeded,
    /// Run again in event-time order; this many firings came only from that.
    Replayed {
        /// Firings the ordered run found that the streaming part had not.
        added: usize,
    },
    /// More matches than the limit: what came after it was a stream again,
    /// and matches late by then were left out.
    TooMany {
        /// The limit that was passed.
        limit: usize,
    },
}

/// Matches that arrived out of time order, and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LateReport {
    /// Matches further behind their input's newest event than the allowed lateness.
    pub late: u64,
    /// The same, per correlation rule title, most first.
    pub by_rule: Vec<(String, u64)>,
    /// Whether they were put in event-time order, or left out.
    pub reordered: Reordered,
}

/// The matches of a whole input, and what the streaming part handed out.
#[derive(Debug)]
pub struct Reorder {
    kept: Vec<Observation>,
    limit: usize,
    lateness: Span,
    /// A match was out of order: the rest is only kept, for the ordered run.
    buffering: bool,
    overflowed: bool,
    emitted: HashSet<FiringKey>,
    newest_by_source: super::source_times::SourceTimes,
    late_by_correlation: BTreeMap<usize, u64>,
}

impl Reorder {
    /// Keeps up to `limit` matches; out of order means more than
    /// `lateness` behind the newest match of the same source, as in the
    /// correlator.
    pub fn new(limit: usize, lateness: std::time::Duration) -> Reorder {
        Reorder {
            kept: Vec::new(),
            limit,
            lateness: Span::from_std(lateness),
            buffering: false,
            overflowed: false,
            emitted: HashSet::new(),
            newest_by_source: Default::default(),
            late_by_correlation: BTreeMap::new(),
        }
    }

    /// Takes one match; returns the firings to hand out now.
    pub fn observe(&mut self, correlator: &mut Correlator, obs: Observation) -> Vec<Firing> {
        self.note_time(&obs);
        if self.overflowed {
            let fired = correlator.observe(obs);
            return self.new_only(fired);
        }
        if self.kept.len() >= self.limit {
            self.overflowed = true;
            let mut fired = Vec::new();
            if self.buffering {
                // What was kept goes in now, in order; a stream from here.
                let mut ordered = correlator.fresh();
                for o in self.sorted() {
                    fired.extend(ordered.observe(o));
                }
                *correlator = ordered;
            }
            self.kept = Vec::new();
            fired.extend(correlator.observe(obs));
            return self.new_only(fired);
        }
        self.kept.push(obs.clone());
        if self.buffering {
            return Vec::new();
        }
        let fired = correlator.observe(obs);
        self.emitted.extend(fired.iter().map(key));
        fired
    }

    /// At the end of input: the firings still to hand out (windows
    /// decided at their end, and what the ordered run adds), and the report.
    pub fn finish(mut self, correlator: &mut Correlator) -> (Vec<Firing>, LateReport) {
        let late: u64 = self.late_by_correlation.values().sum();
        let mut by_rule: Vec<(String, u64)> = self
            .late_by_correlation
            .iter()
            .map(|(&c, &n)| {
                let title = correlator
                    .correlations()
                    .get(c)
                    .map_or_else(|| format!("correlation {c}"), |c| c.rule.meta.title.clone());
                (title, n)
            })
            .collect();
        by_rule.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut report = LateReport {
            late,
            by_rule,
            reordered: Reordered::NotNeeded,
        };
        if self.overflowed {
            if late > 0 {
                report.reordered = Reordered::TooMany { limit: self.limit };
            }
            let fired = correlator.finish();
            return (self.new_only(fired), report);
        }
        if !self.buffering {
            return (correlator.finish(), report);
        }
        let mut ordered = correlator.fresh();
        let mut fired = Vec::new();
        for o in self.sorted() {
            fired.extend(ordered.observe(o));
        }
        fired.extend(ordered.finish());
        *correlator = ordered;
        let added = self.new_only(fired);
        report.reordered = Reordered::Replayed { added: added.len() };
        (added, report)
    }

    /// Counts a match out of order by more than the lateness; from the
    /// first one on, matches are only kept.
    fn note_time(&mut self, obs: &Observation) {
        let late = self
            .newest_by_source
            .note(&obs.origin.source, obs.entry.time, self.lateness);
        if late {
            *self.late_by_correlation.entry(obs.correlation).or_default() += 1;
            self.buffering = true;
        }
    }

    /// The kept matches in event-time order. Ties (logs often have whole
    /// seconds) are broken by the match's id, which derives from the event,
    /// so two orders of the same input give the same run.
    fn sorted(&mut self) -> Vec<Observation> {
        let mut kept = std::mem::take(&mut self.kept);
        kept.sort_by(|a, b| {
            (a.entry.time, &a.entry.evidence).cmp(&(b.entry.time, &b.entry.evidence))
        });
        kept
    }

    /// The firings not handed out yet, remembered as handed out.
    fn new_only(&mut self, fired: Vec<Firing>) -> Vec<Firing> {
        fired
            .into_iter()
            .filter(|f| self.emitted.insert(key(f)))
            .collect()
    }
}
