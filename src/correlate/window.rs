//! Per-group window state for one correlation rule.
//!
//! Entries are kept in event-time order (late events are inserted where they
//! belong) and evicted once older than the timespan before the newest one,
//! so every measure is over a sliding window, not fixed buckets.

use crate::sigma::correlation::CorrelationType;
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};

/// One contribution to a window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// Which referenced rule it came from (position in `rules`).
    pub input: usize,
    /// The condition field's value, for value types.
    pub value: Option<String>,
    /// The id of the contributing alert or correlation.
    pub evidence: String,
}

/// The state of one group of one correlation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    entries: VecDeque<Entry>,
}

impl Window {
    /// Adds an entry in time order and evicts what fell out of the window.
    pub(crate) fn add(&mut self, entry: Entry, span: Span) {
        let at = self.entries.partition_point(|e| e.time <= entry.time);
        self.entries.insert(at, entry);
        if let Some(newest) = self.entries.back().map(|e| e.time) {
            while self
                .entries
                .front()
                .is_some_and(|e| e.time < span.before(newest))
            {
                self.entries.pop_front();
            }
        }
    }

    /// The entries, oldest first (for snapshots).
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// A window holding `entries` (oldest first), as a snapshot had it.
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Window {
        Window {
            entries: entries.into(),
        }
    }

    pub(crate) fn first_time(&self) -> Option<DateTime<Utc>> {
        self.entries.front().map(|e| e.time)
    }

    pub(crate) fn last_time(&self) -> Option<DateTime<Utc>> {
        self.entries.back().map(|e| e.time)
    }

    /// Evidence ids, at most `max`, most recent last.
    pub(crate) fn evidence(&self, max: usize) -> Vec<String> {
        let skip = self.entries.len().saturating_sub(max);
        self.entries
            .iter()
            .skip(skip)
            .map(|e| e.evidence.clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The measured value the condition is compared with, or `None` when the
    /// type cannot be measured yet (temporal rules not all present).
    pub(crate) fn measure(
        &self,
        kind: CorrelationType,
        inputs: usize,
        latest: Option<&str>,
    ) -> Option<f64> {
        match kind {
            CorrelationType::EventCount => Some(self.entries.len() as f64),
            CorrelationType::ValueCount => {
                let distinct: std::collections::HashSet<&str> = self
                    .entries
                    .iter()
                    .filter_map(|e| e.value.as_deref())
                    .collect();
                Some(distinct.len() as f64)
            }
            CorrelationType::ValueSum | CorrelationType::ValueAvg => {
                let nums: Vec<f64> = self
                    .entries
                    .iter()
                    .filter_map(|e| e.value.as_deref()?.trim().parse::<f64>().ok())
                    .collect();
                if nums.is_empty() {
                    return None;
                }
                let sum: f64 = nums.iter().sum();
                Some(if kind == CorrelationType::ValueSum {
                    sum
                } else {
                    sum / nums.len() as f64
                })
            }
            CorrelationType::ValuePercentile => {
                // The share (in percent) of the window's values equal to the
                // latest value; at window end (no latest value) the share of
                // the rarest value, which is what "rarely seen" conditions ask.
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for v in self.entries.iter().filter_map(|e| e.value.as_deref()) {
                    *counts.entry(v).or_default() += 1;
                }
                let total: usize = counts.values().sum();
                if total == 0 {
                    return None;
                }
                let count = match latest {
                    Some(v) => counts.get(v).copied().unwrap_or(0),
                    None => counts.values().copied().min().unwrap_or(0),
                };
                Some(count as f64 * 100.0 / total as f64)
            }
            CorrelationType::Temporal => {
                let seen: std::collections::HashSet<usize> =
                    self.entries.iter().map(|e| e.input).collect();
                Some(seen.len() as f64).filter(|_| seen.len() == inputs)
            }
            CorrelationType::TemporalOrdered => self.ordered(inputs).then_some(inputs as f64),
        }
    }

    /// Whether inputs 0, 1, ..., n-1 occur in this order within the window.
    fn ordered(&self, inputs: usize) -> bool {
        let mut want = 0;
        for e in &self.entries {
            if e.input == want {
                want += 1;
                if want == inputs {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn entry(secs: i64, input: usize, value: Option<&str>) -> Entry {
        Entry {
            time: at(secs),
            input,
            value: value.map(str::to_string),
            evidence: format!("e{secs}"),
        }
    }

    #[test]
    fn entries_older_than_the_span_before_the_newest_are_evicted() {
        let mut w = Window::default();
        let span = Span::from_secs(60);
        for s in [0, 30, 59, 60, 61] {
            w.add(entry(s, 0, None), span);
        }
        // Newest is 61: 0 fell out (61 - 60 = 1 > 0), the rest stay.
        assert_eq!(w.len(), 4);
        assert_eq!(w.first_time(), Some(at(30)));
    }

    #[test]
    fn late_events_are_placed_in_time_order() {
        let mut w = Window::default();
        let span = Span::from_secs(100);
        w.add(entry(50, 0, None), span);
        w.add(entry(10, 0, None), span);
        w.add(entry(30, 0, None), span);
        assert_eq!(w.evidence(10), vec!["e10", "e30", "e50"]);
    }

    #[test]
    fn measures_follow_each_correlation_type() {
        let span = Span::from_secs(100);
        let mut w = Window::default();
        for (s, v) in [(1, "a"), (2, "b"), (3, "a"), (4, "10")] {
            w.add(entry(s, 0, Some(v)), span);
        }
        assert_eq!(w.measure(CorrelationType::EventCount, 1, None), Some(4.0));
        assert_eq!(w.measure(CorrelationType::ValueCount, 1, None), Some(3.0));
        assert_eq!(w.measure(CorrelationType::ValueSum, 1, None), Some(10.0));
        assert_eq!(
            w.measure(CorrelationType::ValuePercentile, 1, Some("a")),
            Some(50.0)
        );
        let mut n = Window::default();
        for (s, v) in [(1, "100"), (2, "300")] {
            n.add(entry(s, 0, Some(v)), span);
        }
        assert_eq!(n.measure(CorrelationType::ValueAvg, 1, None), Some(200.0));
    }

    #[test]
    fn temporal_needs_every_rule_and_ordered_needs_their_order() {
        let span = Span::from_secs(100);
        let mut w = Window::default();
        w.add(entry(1, 1, None), span);
        assert_eq!(w.measure(CorrelationType::Temporal, 2, None), None);
        w.add(entry(2, 0, None), span);
        assert_eq!(w.measure(CorrelationType::Temporal, 2, None), Some(2.0));
        // 1 then 0: not in order yet.
        assert_eq!(w.measure(CorrelationType::TemporalOrdered, 2, None), None);
        w.add(entry(3, 1, None), span);
        assert_eq!(
            w.measure(CorrelationType::TemporalOrdered, 2, None),
            Some(2.0)
        );
    }
}
