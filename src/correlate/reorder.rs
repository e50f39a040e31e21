//! Event-time order for a whole input (`tocsin scan`).
//!
//! A stream has to decide windows as it goes, so a match further behind
//! its input's newest event than the allowed lateness is dropped. A scan has
//! the whole input, and its result must not depend on the order of files or
//! lines: `cat old.log new.log` and `cat new.log old.log` are the same data.
//!
//! So a scan keeps a copy of every match that feeds a correlation (up to
//! [`REORDER_LIMIT`]) and, from the first match out of order by more than
//! the lateness, runs them again in event-time order at the end
//! ([`crate::vocab::replay`]). Past the limit the scan goes back to being a
//! stream, after running what it kept in order, and says so.

use super::{Correlator, Firing, Observation};
use crate::vocab::replay::{Replay, Replayable, Replayed};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Most matches a scan keeps for reordering: a few hundred bytes each, so
/// well under 200 MiB at the limit.
pub const REORDER_LIMIT: usize = 500_000;

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

impl Replayable for Correlator {
    type Item = Observation;
    type Output = Firing;
    /// A firing is known by its correlation, group values and window start
    /// (what its alert id derives from).
    type Key = (usize, Vec<String>, DateTime<Utc>);

    fn observe(&mut self, obs: Observation) -> Vec<Firing> {
        Correlator::observe(self, obs)
    }

    fn finish(&mut self) -> Vec<Firing> {
        Correlator::finish(self)
    }

    fn key(f: &Firing) -> Self::Key {
        (
            f.correlation,
            f.group.iter().map(|(_, v)| v.clone()).collect(),
            f.first,
        )
    }

    /// Ties (logs often have whole seconds) are broken by the match's id,
    /// which derives from the event.
    fn order(a: &Observation, b: &Observation) -> std::cmp::Ordering {
        (a.entry.time, &a.entry.evidence).cmp(&(b.entry.time, &b.entry.evidence))
    }
}

/// The matches of a whole input, and what the streaming part handed out.
#[derive(Debug)]
pub struct Reorder {
    replay: Replay<Correlator>,
    limit: usize,
    lateness: Span,
    newest_by_source: super::source_times::SourceTimes,
    late_by_correlation: BTreeMap<usize, u64>,
}

impl Reorder {
    /// Keeps up to `limit` matches; out of order means more than
    /// `lateness` behind the newest match of the same source, as in the
    /// correlator.
    pub fn new(limit: usize, lateness: std::time::Duration) -> Reorder {
        Reorder {
            replay: Replay::new(limit),
            limit,
            lateness: Span::from_std(lateness),
            newest_by_source: Default::default(),
            late_by_correlation: BTreeMap::new(),
        }
    }

    /// Takes one match; returns the firings to hand out now.
    pub fn observe(&mut self, correlator: &mut Correlator, obs: Observation) -> Vec<Firing> {
        let late = self
            .newest_by_source
            .note(&obs.origin.source, obs.entry.time, self.lateness);
        if late {
            *self.late_by_correlation.entry(obs.correlation).or_default() += 1;
        }
        self.replay
            .observe(correlator, obs, late, Correlator::fresh)
    }

    /// At the end of input: the firings still to hand out (windows
    /// decided at their end, and what the ordered run adds), and the report.
    pub fn finish(self, correlator: &mut Correlator) -> (Vec<Firing>, LateReport) {
        let late: u64 = self.late_by_correlation.values().sum();
        let titles: BTreeMap<String, u64> = self
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
        let (fired, how) = self.replay.finish(correlator, Correlator::fresh);
        let reordered = match how {
            Replayed::Streamed => Reordered::NotNeeded,
            Replayed::Ordered { added } => Reordered::Replayed { added },
            Replayed::Overflowed if late > 0 => Reordered::TooMany { limit: self.limit },
            Replayed::Overflowed => Reordered::NotNeeded,
        };
        let report = LateReport {
            late,
            by_rule: crate::vocab::tally::most_first(&titles),
            reordered,
        };
        (fired, report)
    }
}
