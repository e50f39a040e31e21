//! The correlator: open windows per group, the watermark that makes them
//! final, and the bounds on them.

use super::describe;
use super::window::{Entry, Window};
use super::{
    CorrelationSet, CorrelatorState, Firing, GroupState, Observation, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LATENESS, DEFAULT_MAX_GROUPS, MAX_EVIDENCE,
};
use crate::event::Origin;
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;

/// When a group expires: (time, correlation, group key).
type Expiry = (DateTime<Utc>, usize, Vec<String>);

/// The state of every group of every correlation.
///
/// State is bounded: every group has an expiry (its window end for
/// conditions decided then, else a timespan after its last entry), kept in a
/// min-heap with one entry per group that is revalidated when it comes up;
/// and a hard cap on groups evicts the one expiring first when it is
/// exceeded, counting evictions.
#[derive(Debug)]
pub struct Correlator {
    set: std::sync::Arc<CorrelationSet>,
    groups: HashMap<(usize, Vec<String>), (Window, Origin)>,
    expiries: BinaryHeap<Reverse<Expiry>>,
    newest: Option<DateTime<Utc>>,
    max_groups: usize,
    evictions: u64,
    /// How far behind the newest event time an event may arrive and still count.
    lateness: Span,
    late_events: u64,
    /// Late events per correlation rule title, for the log and `scan`'s summary.
    late_by_rule: std::collections::BTreeMap<String, u64>,
    /// Newest event time per source: lateness is judged within a source, so
    /// a second file with older timestamps is not "late".
    newest_by_source: super::source_times::SourceTimes,
    /// When each source last delivered (wall time), for idleness.
    last_seen: HashMap<String, std::time::Instant>,
    /// A source quiet for this long no longer holds the watermark back.
    idle_timeout: std::time::Duration,
    /// The watermark windows were last closed at.
    closed_until: Option<DateTime<Utc>>,
    /// Groups changed since the last [`Correlator::take_changes`], by
    /// correlation id (ids survive a reload): kept only for a changelog.
    changed: Option<std::collections::HashSet<(String, Vec<String>)>>,
}

/// A group as a changelog records it: its entries and the origin of its
/// newest event, or `None` once the group is gone (fired, expired, evicted).
pub(crate) type GroupChange = (String, Vec<String>, Option<(Vec<Entry>, Origin)>);

impl Correlator {
    /// A correlator with no open windows, capped at [`DEFAULT_MAX_GROUPS`] groups.
    pub fn new(set: std::sync::Arc<CorrelationSet>) -> Self {
        Self::with_max_groups(set, DEFAULT_MAX_GROUPS)
    }

    /// A correlator with no open windows, capped at `max_groups` groups (at least
    /// 1); past the cap, the group that expires first is evicted.
    pub fn with_max_groups(set: std::sync::Arc<CorrelationSet>, max_groups: usize) -> Self {
        Correlator {
            set,
            groups: HashMap::new(),
            expiries: BinaryHeap::new(),
            newest: None,
            max_groups: max_groups.max(1),
            evictions: 0,
            lateness: Span::from_std(DEFAULT_LATENESS),
            late_events: 0,
            late_by_rule: Default::default(),
            newest_by_source: Default::default(),
            last_seen: HashMap::new(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            closed_until: None,
            changed: None,
        }
    }

    /// Keeps track of which groups change, for [`Correlator::take_changes`].
    pub(crate) fn tracking_changes(mut self) -> Self {
        self.changed = Some(Default::default());
        self
    }

    fn note_change(&mut self, c: usize, key: &[String]) {
        if let Some(changed) = &mut self.changed {
            if let Some(corr) = self.set.correlations.get(c) {
                changed.insert((corr.rule.meta.id.clone(), key.to_vec()));
            }
        }
    }

    /// The groups changed since the last call, each with its state now.
    pub(crate) fn take_changes(&mut self) -> Vec<GroupChange> {
        let Some(changed) = self.changed.as_mut() else {
            return Vec::new();
        };
        let changed = std::mem::take(changed);
        let mut out: Vec<GroupChange> = changed
            .into_iter()
            .map(|(id, key)| {
                let state = self
                    .set
                    .correlations
                    .iter()
                    .position(|c| c.rule.meta.id == id)
                    .and_then(|c| self.groups.get(&(c, key.clone())))
                    .map(|(window, origin)| (window.entries().cloned().collect(), origin.clone()));
                (id, key, state)
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Takes over one group's entries (from a changelog); false when its
    /// correlation is no longer loaded or it has no entries.
    pub(crate) fn restore_group(
        &mut self,
        correlation: &str,
        key: Vec<String>,
        entries: Vec<Entry>,
        origin: Origin,
    ) -> bool {
        let Some(c) = self
            .set
            .correlations
            .iter()
            .position(|corr| corr.rule.meta.id == correlation)
        else {
            return false;
        };
        let window = Window::from_entries(entries);
        let Some(expiry) = self.expiry_of(c, &window) else {
            return false;
        };
        self.expiries.push(Reverse((expiry, c, key.clone())));
        self.groups.insert((c, key), (window, origin));
        true
    }

    /// How long (wall time) a source may be silent before the watermark stops
    /// waiting for it.
    pub fn with_idle_timeout(mut self, idle: std::time::Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Allows events to arrive this much behind the newest event time: windows
    /// are final (decided, expired) only once the newest time minus the
    /// lateness has passed their end, and an event further behind the newest
    /// event of its own source is dropped.
    pub fn with_lateness(mut self, lateness: std::time::Duration) -> Self {
        self.lateness = Span::from_std(lateness);
        self
    }

    /// Events dropped because they arrived later than the allowed lateness.
    pub fn late_events(&self) -> u64 {
        self.late_events
    }

    /// The late events per correlation rule (title), most first.
    pub fn late_by_rule(&self) -> Vec<(String, u64)> {
        crate::vocab::tally::most_first(&self.late_by_rule)
    }

    /// The correlations it runs.
    pub fn correlations(&self) -> &CorrelationSet {
        &self.set
    }

    /// A correlator with the same rules and bounds and nothing seen yet.
    pub fn fresh(&self) -> Correlator {
        Correlator::with_max_groups(self.set.clone(), self.max_groups)
            .with_idle_timeout(self.idle_timeout)
            .with_lateness(self.lateness.as_std())
    }

    /// Event time up to which windows are final: the slowest active
    /// source's newest event time, minus the allowed lateness. When every
    /// source is idle, the newest of them all.
    fn watermark(&self) -> Option<DateTime<Utc>> {
        let now = std::time::Instant::now();
        let active = self
            .newest_by_source
            .0
            .iter()
            .filter(|(source, _)| {
                self.last_seen
                    .get(*source)
                    .is_some_and(|seen| now.duration_since(*seen) <= self.idle_timeout)
            })
            .map(|(_, t)| *t)
            .min();
        active
            .or_else(|| self.newest_by_source.0.values().max().copied())
            .map(|t| self.lateness.before(t))
    }

    /// Groups currently tracked.
    pub fn active_groups(&self) -> usize {
        self.groups.len()
    }

    /// Groups dropped because the cap was reached, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// When a group expires: at its window end for conditions decided then,
    /// else when its newest entry is a timespan old.
    fn expiry_of(&self, c: usize, window: &Window) -> Option<DateTime<Utc>> {
        let corr = self.set.correlations.get(c)?;
        let base = if corr.rule.condition.decided_at_window_end() {
            window.first_time()?
        } else {
            window.last_time()?
        };
        Some(corr.span.after(base))
    }

    /// Runs the correlations of `set` from now on (a rule reload). Open
    /// windows of correlations whose id and logic are unchanged carry over;
    /// those of changed or removed correlations are dropped: their counts
    /// were made under other rules. Returns (groups kept, groups dropped).
    pub fn replace_rules(&mut self, set: std::sync::Arc<CorrelationSet>) -> (usize, usize) {
        let by_id: HashMap<&str, usize> = set
            .correlations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.rule.meta.id.as_str(), i))
            .collect();
        let remap: Vec<Option<usize>> = self
            .set
            .correlations
            .iter()
            .map(|old| {
                let &new = by_id.get(old.rule.meta.id.as_str())?;
                set.correlations
                    .get(new)
                    .filter(|c| c.rule.same_logic(&old.rule))
                    .map(|_| new)
            })
            .collect();
        let (mut kept, mut dropped) = (0, 0);
        for ((c, key), value) in std::mem::take(&mut self.groups) {
            match remap.get(c).copied().flatten() {
                Some(new) => {
                    self.groups.insert((new, key), value);
                    kept += 1;
                }
                None => {
                    self.note_change(c, &key);
                    dropped += 1;
                }
            }
        }
        self.set = set;
        let expiries: Vec<Reverse<Expiry>> = self
            .groups
            .iter()
            .filter_map(|((c, key), (window, _))| {
                Some(Reverse((self.expiry_of(*c, window)?, *c, key.clone())))
            })
            .collect();
        self.expiries = expiries.into();
        (kept, dropped)
    }

    /// The open windows and time bookkeeping, to snapshot. Correlations are
    /// named by rule id, so a snapshot survives rules being added or reordered.
    pub fn state(&self) -> CorrelatorState {
        let mut groups: Vec<GroupState> = self
            .groups
            .iter()
            .filter_map(|((c, key), (window, origin))| {
                Some(GroupState {
                    correlation: self.set.correlations.get(*c)?.rule.meta.id.clone(),
                    key: key.clone(),
                    entries: window.entries().cloned().collect(),
                    origin: origin.clone(),
                })
            })
            .collect();
        groups.sort_by(|a, b| (&a.correlation, &a.key).cmp(&(&b.correlation, &b.key)));
        let mut newest_by_source: Vec<(String, DateTime<Utc>)> = self
            .newest_by_source
            .0
            .iter()
            .map(|(s, t)| (s.clone(), *t))
            .collect();
        newest_by_source.sort();
        CorrelatorState {
            groups,
            newest: self.newest,
            newest_by_source,
        }
    }

    /// Takes over a snapshot's windows. Groups of correlations no longer
    /// loaded are dropped; returns how many groups were restored.
    pub fn restore(&mut self, state: CorrelatorState) -> usize {
        let by_id: HashMap<&str, usize> = self
            .set
            .correlations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.rule.meta.id.as_str(), i))
            .collect();
        self.groups.clear();
        self.expiries.clear();
        for g in state.groups {
            let Some(&c) = by_id.get(g.correlation.as_str()) else {
                continue;
            };
            let window = Window::from_entries(g.entries);
            let Some(first) = window.first_time() else {
                continue;
            };
            self.expiries.push(Reverse((
                self.set.correlations[c].span.after(first),
                c,
                g.key.clone(),
            )));
            self.groups.insert((c, g.key), (window, g.origin));
        }
        self.newest = state.newest;
        // Restored sources count as just seen: they get the idle timeout to
        // show up again before the watermark stops waiting for them.
        let now = std::time::Instant::now();
        self.last_seen = state
            .newest_by_source
            .iter()
            .map(|(s, _)| (s.clone(), now))
            .collect();
        self.newest_by_source.0 = state.newest_by_source.into_iter().collect();
        self.groups.len()
    }

    /// Feeds one observation; returns what fired (including chained correlations
    /// and windows that this event's time closed).
    pub fn observe(&mut self, obs: Observation) -> Vec<Firing> {
        let mut fired = Vec::new();
        let time = obs.entry.time;
        if self.newest.is_none_or(|n| time > n) {
            self.newest = Some(time);
        }
        match self.last_seen.get_mut(&obs.origin.source) {
            Some(seen) => *seen = std::time::Instant::now(),
            None => {
                self.last_seen
                    .insert(obs.origin.source.clone(), std::time::Instant::now());
            }
        }
        // Later than the allowed lateness within its own source: out of order
        // beyond what the source promises, so its windows may be decided already.
        let late = self
            .newest_by_source
            .note(&obs.origin.source, time, self.lateness);
        if let Some(watermark) = self.watermark() {
            if self.closed_until.is_none_or(|c| watermark > c) {
                self.closed_until = Some(watermark);
                self.close_windows_before(watermark, &mut fired);
            }
        }
        if late {
            self.late_events += 1;
            if let Some(corr) = self.set.correlations.get(obs.correlation) {
                *self
                    .late_by_rule
                    .entry(corr.rule.meta.title.clone())
                    .or_default() += 1;
            }
            return fired;
        }
        self.add(obs, &mut fired);
        fired
    }

    /// End of input: every open window is over; decide the ones waiting for their end.
    pub fn finish(&mut self) -> Vec<Firing> {
        let mut fired = Vec::new();
        self.close_windows_before(DateTime::<Utc>::MAX_UTC, &mut fired);
        fired
    }

    fn add(&mut self, obs: Observation, fired: &mut Vec<Firing>) {
        let set = self.set.clone();
        let Some(corr) = set.correlations.get(obs.correlation) else {
            return;
        };
        let key = (obs.correlation, obs.group);
        self.note_change(key.0, &key.1);
        let latest_value = obs.entry.value.clone();
        let is_new = !self.groups.contains_key(&key);
        let (window, origin) = self
            .groups
            .entry(key.clone())
            .or_insert_with(|| (Window::default(), obs.origin.clone()));
        *origin = obs.origin;
        window.add(obs.entry, corr.span);
        let at_end = corr.rule.condition.decided_at_window_end();
        if is_new {
            let span = corr.span;
            if let Some(first) = window.first_time() {
                self.expiries
                    .push(Reverse((span.after(first), key.0, key.1.clone())));
            }
            if self.groups.len() > self.max_groups {
                self.evict_one(&key);
            }
        }
        if at_end {
            return;
        }
        let Some((window, _)) = self.groups.get(&key) else {
            return;
        };
        let measured = window.measure(corr.rule.kind, corr.inputs.len(), latest_value.as_deref());
        let holds = match measured {
            Some(v) if corr.rule.condition.bounds.is_empty() => Some(v),
            Some(v) if corr.rule.condition.holds(v) => Some(v),
            _ => None,
        };
        if let Some(value) = holds {
            self.fire(key, value, fired);
        }
    }

    fn fire(&mut self, key: (usize, Vec<String>), value: f64, fired: &mut Vec<Firing>) {
        let Some((window, origin)) = self.groups.remove(&key) else {
            return;
        };
        self.note_change(key.0, &key.1);
        let corr = &self.set.correlations[key.0];
        let (Some(first), Some(last)) = (window.first_time(), window.last_time()) else {
            return;
        };
        let firing = Firing {
            correlation: key.0,
            group: corr
                .rule
                .group_by
                .iter()
                .cloned()
                .zip(key.1.iter().cloned())
                .collect(),
            value,
            events: window.len(),
            first,
            last,
            evidence: window.evidence(MAX_EVIDENCE),
            origin: origin.clone(),
        };
        // Chains: the firing is an observation for the correlations that reference this one.
        let consumers = self.set.by_correlation[key.0].clone();
        let evidence = describe::correlation_id(corr, &firing);
        fired.push(firing.clone());
        for (c, input) in consumers {
            let next = &self.set.correlations[c];
            let group: Option<Vec<String>> = next.group_fields[input]
                .iter()
                .map(|f| {
                    firing
                        .group
                        .iter()
                        .find(|(g, _)| g == f)
                        .map(|(_, v)| v.clone())
                })
                .collect();
            let Some(group) = group else { continue };
            self.add(
                Observation {
                    correlation: c,
                    group,
                    entry: Entry {
                        time: firing.last,
                        input,
                        value: Some(firing.value.to_string()),
                        evidence: evidence.clone(),
                    },
                    origin: origin.clone(),
                },
                fired,
            );
        }
    }

    /// Drops the group expiring first (not `keep`, the one just added).
    fn evict_one(&mut self, keep: &(usize, Vec<String>)) {
        let mut skipped = Vec::new();
        while let Some(Reverse(entry)) = self.expiries.pop() {
            let key = (entry.1, entry.2.clone());
            if &key == keep {
                skipped.push(entry);
                continue;
            }
            if self.groups.remove(&key).is_some() {
                self.note_change(key.0, &key.1);
                self.evictions += 1;
                if self.evictions % 10_000 == 1 {
                    tracing::warn!(
                        max_groups = self.max_groups,
                        evictions = self.evictions,
                        "correlation state is at its cap: dropping the groups that expire first"
                    );
                }
                break;
            }
        }
        self.expiries.extend(skipped.into_iter().map(Reverse));
    }

    /// Expires groups up to `now`: window-end conditions are decided, the
    /// rest are dropped once their newest entry is a timespan old.
    fn close_windows_before(&mut self, now: DateTime<Utc>, fired: &mut Vec<Firing>) {
        while let Some(Reverse((end, c, group))) = self.expiries.peek().cloned() {
            if end >= now {
                break;
            }
            self.expiries.pop();
            let key = (c, group);
            if !self.groups.contains_key(&key) {
                continue;
            }
            self.note_change(c, &key.1);
            let Some((window, _)) = self.groups.get(&key) else {
                continue;
            };
            // The window may have moved since this expiry was set.
            match self.expiry_of(c, window) {
                Some(current) if current > end => {
                    self.expiries.push(Reverse((current, c, key.1.clone())));
                    continue;
                }
                None => {
                    self.groups.remove(&key);
                    continue;
                }
                Some(_) => {}
            }
            let Some(corr) = self.set.correlations.get(c) else {
                continue;
            };
            if !corr.rule.condition.decided_at_window_end() {
                self.groups.remove(&key);
                continue;
            }
            let measured = window.measure(corr.rule.kind, corr.inputs.len(), None);
            match measured {
                Some(v) if corr.rule.condition.holds(v) => self.fire(key, v, fired),
                _ => {
                    self.groups.remove(&key);
                }
            }
        }
    }
}
