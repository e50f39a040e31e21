//! Correlation rules at run time: windows and state per group.
//!
//! [`CorrelationSet`] is the compiled, shared part: which rule matches feed
//! which correlation, and which fields form the group key. [`Correlator`] is
//! the state; it runs on the ordered stage of the pipeline, so it sees
//! matches in the order their events arrived.
//!
//! Semantics (also in docs/correlation.md):
//! - windows are sliding in event time: a correlation fires as soon as its
//!   condition holds over the entries of the last `timespan`;
//! - `gt`/`gte` fire as soon as they hold; `lt`, `lte`, `eq` and `neq` can be
//!   broken by a later event, so they are decided when the window, starting
//!   at the group's first entry, is final: the watermark passed its end, or
//!   the input ended. The watermark is the slowest active source's newest
//!   event time minus the allowed lateness (a source idle for longer than
//!   the idle timeout, in wall time, stops holding it back);
//! - events more than the allowed lateness behind the newest one are dropped
//!   and counted (their windows may be decided already);
//! - after firing, the group starts over;
//! - an event without a group-by field does not take part (as a backend's
//!   `by` clause drops it);
//! - a firing feeds the correlations that reference this one (chains).

pub mod config;
pub mod describe;
pub mod snapshot;
pub mod window;

use crate::detect::Engine;
use crate::event::{Event, Origin};
use crate::sigma::correlation::SigmaCorrelation;
use crate::sigma::{LoadedCorrelation, RuleProblem};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use window::{Entry, Window};

/// Most evidence ids carried by one correlation alert.
pub const MAX_EVIDENCE: usize = 20;

/// What a correlation reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Rule(usize),
    Correlation(usize),
}

/// One correlation, resolved against the loaded rules.
#[derive(Debug, Clone)]
pub struct CompiledCorrelation {
    pub rule: SigmaCorrelation,
    pub file: std::path::PathBuf,
    inputs: Vec<Input>,
    /// Per input: the field read for each group-by name (aliases applied).
    group_fields: Vec<Vec<String>>,
    span: Span,
}

/// All correlations, compiled.
#[derive(Debug, Clone, Default)]
pub struct CorrelationSet {
    correlations: Vec<CompiledCorrelation>,
    /// Detection rule -> (correlation, input position) that consume its matches.
    by_rule: HashMap<usize, Vec<(usize, usize)>>,
    /// Correlation -> correlations that consume its firings.
    by_correlation: Vec<Vec<(usize, usize)>>,
    /// Detection rules whose matches do not alert on their own (`generate: false`).
    silenced: HashSet<usize>,
}

/// A rule match offered to one correlation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub correlation: usize,
    pub group: Vec<String>,
    pub entry: Entry,
    pub origin: Origin,
}

/// A correlator's open windows, as saved in a snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorrelatorState {
    groups: Vec<GroupState>,
    newest: Option<DateTime<Utc>>,
    newest_by_source: Vec<(String, DateTime<Utc>)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct GroupState {
    /// The correlation rule's id.
    correlation: String,
    key: Vec<String>,
    entries: Vec<Entry>,
    origin: Origin,
}

/// A correlation whose condition held.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub correlation: usize,
    /// Group-by names and values.
    pub group: Vec<(String, String)>,
    /// The measured count, distinct count, sum, average or share.
    pub value: f64,
    pub events: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub evidence: Vec<String>,
    /// Where the last contributing event came from.
    pub origin: Origin,
}

impl CorrelationSet {
    /// Resolves references (rule or correlation, by id or name). Correlations
    /// with unknown references or in a reference cycle are reported and left out.
    pub fn build(
        loaded: Vec<LoadedCorrelation>,
        engine: &Engine,
    ) -> (CorrelationSet, Vec<RuleProblem>) {
        let mut problems = Vec::new();
        let names: Vec<(String, Option<String>)> = loaded
            .iter()
            .map(|l| {
                (
                    l.correlation.meta.id.clone(),
                    l.correlation.meta.name.clone(),
                )
            })
            .collect();
        let find_corr = |r: &str| {
            names
                .iter()
                .position(|(id, name)| id == r || name.as_deref() == Some(r))
        };
        let find_rule = |r: &str| {
            engine
                .rules()
                .iter()
                .position(|c| c.rule.meta.id == r || c.rule.meta.name.as_deref() == Some(r))
        };
        // Resolve each correlation's inputs first (indices into `loaded`).
        let mut resolved: Vec<Option<Vec<Input>>> = Vec::with_capacity(loaded.len());
        for l in &loaded {
            let mut inputs = Vec::new();
            let mut ok = true;
            for r in &l.correlation.rules {
                match (find_rule(r), find_corr(r)) {
                    (Some(i), _) => inputs.push(Input::Rule(i)),
                    (None, Some(c)) => inputs.push(Input::Correlation(c)),
                    (None, None) => {
                        problems.push(RuleProblem {
                            file: l.file.clone(),
                            pos: l.correlation.pos,
                            message: format!(
                                "correlation `{}` names rule `{r}`, which is not loaded",
                                l.correlation.meta.title
                            ),
                            limit: None,
                        });
                        ok = false;
                    }
                }
            }
            resolved.push(ok.then_some(inputs));
        }
        // Drop correlations in cycles or depending on dropped ones.
        let mut usable = vec![true; loaded.len()];
        for i in 0..loaded.len() {
            if !reaches_only_usable(i, &resolved, &mut Vec::new()) {
                usable[i] = false;
                if resolved[i].is_some() {
                    problems.push(RuleProblem {
                        file: loaded[i].file.clone(),
                        pos: loaded[i].correlation.pos,
                        message: format!(
                            "correlation `{}` references itself through a chain, or a correlation that failed",
                            loaded[i].correlation.meta.title
                        ),
                        limit: None,
                    });
                }
            }
        }
        // Renumber the usable ones.
        let mut new_index = vec![usize::MAX; loaded.len()];
        let mut next = 0;
        for (i, u) in usable.iter().enumerate() {
            if *u {
                new_index[i] = next;
                next += 1;
            }
        }
        let mut set = CorrelationSet::default();
        for (i, l) in loaded.into_iter().enumerate() {
            let (true, Some(inputs)) = (usable[i], resolved[i].take()) else {
                continue;
            };
            let inputs: Vec<Input> = inputs
                .into_iter()
                .map(|inp| match inp {
                    Input::Correlation(c) => Input::Correlation(new_index[c]),
                    rule => rule,
                })
                .collect();
            let c = &l.correlation;
            let group_fields = inputs
                .iter()
                .map(|inp| {
                    let (id, name) = match inp {
                        Input::Rule(r) => (
                            engine.rules()[*r].rule.meta.id.clone(),
                            engine.rules()[*r].rule.meta.name.clone(),
                        ),
                        Input::Correlation(_) => (String::new(), None),
                    };
                    c.group_by
                        .iter()
                        .map(|g| {
                            alias_field(c, g, &id, name.as_deref()).unwrap_or_else(|| g.clone())
                        })
                        .collect()
                })
                .collect();
            let me = set.correlations.len();
            for (pos, inp) in inputs.iter().enumerate() {
                match inp {
                    Input::Rule(r) => {
                        set.by_rule.entry(*r).or_default().push((me, pos));
                        if !c.generate {
                            set.silenced.insert(*r);
                        }
                    }
                    Input::Correlation(_) => {}
                }
            }
            set.correlations.push(CompiledCorrelation {
                span: c.timespan,
                rule: l.correlation,
                file: l.file,
                inputs,
                group_fields,
            });
        }
        set.by_correlation = vec![Vec::new(); set.correlations.len()];
        for (me, c) in set.correlations.iter().enumerate() {
            for (pos, inp) in c.inputs.iter().enumerate() {
                if let Input::Correlation(src) = inp {
                    set.by_correlation[*src].push((me, pos));
                }
            }
        }
        // A rule referenced with generate: true alerts on its own after all.
        for c in &set.correlations {
            if c.rule.generate {
                for inp in &c.inputs {
                    if let Input::Rule(r) = inp {
                        set.silenced.remove(r);
                    }
                }
            }
        }
        (set, problems)
    }

    pub fn len(&self) -> usize {
        self.correlations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.correlations.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&CompiledCorrelation> {
        self.correlations.get(i)
    }

    /// Whether a detection rule's own matches are kept from alerting.
    pub fn is_silenced(&self, rule: usize) -> bool {
        self.silenced.contains(&rule)
    }

    /// The observations a match of `rule` on `event` makes, one per consuming correlation.
    pub fn observations(
        &self,
        rule: usize,
        event: &Event,
        evidence: &str,
        out: &mut Vec<Observation>,
    ) {
        let Some(consumers) = self.by_rule.get(&rule) else {
            return;
        };
        for &(c, input) in consumers {
            let corr = &self.correlations[c];
            let text = |field: &str| {
                event
                    .get(field)
                    .and_then(crate::event::scalar_text)
                    .map(|t| t.into_owned())
            };
            let Some(group) = corr.group_fields[input]
                .iter()
                .map(|f| text(f))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let value = match &corr.rule.condition.field {
                Some(f) => match text(f) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            out.push(Observation {
                correlation: c,
                group,
                entry: Entry {
                    time: event.time,
                    input,
                    value,
                    evidence: evidence.to_string(),
                },
                origin: event.origin.clone(),
            });
        }
    }
}

/// The field an alias names for the rule with this id or name.
fn alias_field(c: &SigmaCorrelation, group: &str, id: &str, name: Option<&str>) -> Option<String> {
    let (_, mapping) = c.aliases.iter().find(|(alias, _)| alias == group)?;
    mapping
        .iter()
        .find(|(rule, _)| rule == id || Some(rule.as_str()) == name)
        .map(|(_, field)| field.clone())
}

fn reaches_only_usable(i: usize, resolved: &[Option<Vec<Input>>], path: &mut Vec<usize>) -> bool {
    if path.contains(&i) {
        return false;
    }
    let Some(inputs) = resolved.get(i).and_then(Option::as_ref) else {
        return false;
    };
    path.push(i);
    let ok = inputs.iter().all(|inp| match inp {
        Input::Rule(_) => true,
        Input::Correlation(c) => reaches_only_usable(*c, resolved, path),
    });
    path.pop();
    ok
}

/// When a group expires: (time, correlation, group key).
type Expiry = (DateTime<Utc>, usize, Vec<String>);

/// Default cap on tracked groups (all correlations together).
pub const DEFAULT_MAX_GROUPS: usize = 1_000_000;

/// Default allowed lateness: how far behind the newest event an event may arrive.
pub const DEFAULT_LATENESS: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// Newest event time per source: lateness is judged within a source, so
    /// a second file with older timestamps is not "late".
    newest_by_source: HashMap<String, DateTime<Utc>>,
    /// When each source last delivered (wall time), for idleness.
    last_seen: HashMap<String, std::time::Instant>,
    /// A source quiet for this long no longer holds the watermark back.
    idle_timeout: std::time::Duration,
    /// The watermark windows were last closed at.
    closed_until: Option<DateTime<Utc>>,
}

/// Default idle timeout for sources (wall time).
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

impl Correlator {
    pub fn new(set: std::sync::Arc<CorrelationSet>) -> Self {
        Self::with_max_groups(set, DEFAULT_MAX_GROUPS)
    }

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
            newest_by_source: HashMap::new(),
            last_seen: HashMap::new(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            closed_until: None,
        }
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

    /// Event time up to which windows are final: the slowest active
    /// source's newest event time, minus the allowed lateness. When every
    /// source is idle, the newest of them all.
    fn watermark(&self) -> Option<DateTime<Utc>> {
        let now = std::time::Instant::now();
        let active = self
            .newest_by_source
            .iter()
            .filter(|(source, _)| {
                self.last_seen
                    .get(*source)
                    .is_some_and(|seen| now.duration_since(*seen) <= self.idle_timeout)
            })
            .map(|(_, t)| *t)
            .min();
        active
            .or_else(|| self.newest_by_source.values().max().copied())
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
        self.newest_by_source = state.newest_by_source.into_iter().collect();
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
        let source_newest = self
            .newest_by_source
            .entry(obs.origin.source.clone())
            .or_insert(time);
        let late = time < self.lateness.before(*source_newest);
        if time > *source_newest {
            *source_newest = time;
        }
        if let Some(watermark) = self.watermark() {
            if self.closed_until.is_none_or(|c| watermark > c) {
                self.closed_until = Some(watermark);
                self.close_windows_before(watermark, &mut fired);
            }
        }
        if late {
            self.late_events += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{logsource::LogsourceRouter, CompileOptions, Scratch};
    use crate::event::{test_event, Format};
    use crate::sigma::load::{load_text, LoadReport};
    use serde_json::json;
    use std::path::Path;
    use std::sync::Arc;

    /// Two base rules on a generic JSON source: `a` (action: a) and `b` (action: b).
    const BASE: &str = "title: A\nid: rule-a\nname: rule_a\nlogsource: {product: test}\ndetection:\n  s: {action: a}\n  condition: s\n---\ntitle: B\nid: rule-b\nname: rule_b\nlogsource: {product: test}\ndetection:\n  s: {action: b}\n  condition: s\n";

    fn setup(correlations: &str) -> (Engine, Arc<CorrelationSet>, Vec<RuleProblem>) {
        let mut report = LoadReport::default();
        load_text(
            &format!("{BASE}---\n{correlations}"),
            Path::new("t.yml"),
            &mut report,
            &Default::default(),
        );
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let (engine, problems) = Engine::compile(
            report.rules,
            report.filters,
            LogsourceRouter::builtin().unwrap(),
            &CompileOptions::default(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (set, problems) = CorrelationSet::build(report.correlations, &engine);
        (engine, Arc::new(set), problems)
    }

    /// Feeds events (source, seconds, fields) to a correlator the way the
    /// pipeline does; returns what fired.
    fn feed(
        engine: &Engine,
        set: &CorrelationSet,
        c: &mut Correlator,
        events: &[(&str, i64, serde_json::Value)],
    ) -> Vec<Firing> {
        let tags = vec![("product".to_string(), "test".to_string())];
        let (mut scratch, mut matched, mut obs, mut fired) =
            (Scratch::default(), Vec::new(), Vec::new(), Vec::new());
        for (i, (source, secs, fields)) in events.iter().enumerate() {
            let mut event = test_event(fields.clone(), Format::Json);
            event.time = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
            event.origin.source = source.to_string();
            engine.evaluate(&event, &tags, &mut scratch, &mut matched);
            for &r in &matched {
                set.observations(r, &event, &format!("ev{i}"), &mut obs);
                for o in obs.drain(..) {
                    fired.extend(c.observe(o));
                }
            }
        }
        fired
    }

    /// Feeds events (seconds, fields) in the given order; returns (title, group values, value) of each firing.
    fn run(
        correlations: &str,
        events: &[(i64, serde_json::Value)],
    ) -> Vec<(String, Vec<String>, f64)> {
        let (engine, set, problems) = setup(correlations);
        assert!(problems.is_empty(), "{problems:?}");
        let mut correlator = Correlator::new(set.clone());
        let events: Vec<_> = events
            .iter()
            .map(|(secs, f)| ("test", *secs, f.clone()))
            .collect();
        let mut fired = feed(&engine, &set, &mut correlator, &events);
        fired.extend(correlator.finish());
        fired
            .iter()
            .map(|f| {
                let c = set.get(f.correlation).unwrap();
                (
                    c.rule.meta.title.clone(),
                    f.group.iter().map(|(_, v)| v.clone()).collect(),
                    f.value,
                )
            })
            .collect()
    }

    fn a(user: &str) -> serde_json::Value {
        json!({"action": "a", "user": user, "src": "10.0.0.1"})
    }

    const COUNT: &str = "title: three a\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gte: 3}\n";

    #[test]
    fn a_restored_snapshot_continues_the_windows_where_they_were() {
        let (engine, set, _) = setup(COUNT);
        let mut before = Correlator::new(set.clone());
        let first = [("test", 0, a("bob")), ("test", 10, a("bob"))];
        assert!(feed(&engine, &set, &mut before, &first).is_empty());
        // Through JSON, as the snapshot file has it.
        let saved = serde_json::to_string(&before.state()).unwrap();
        let state: CorrelatorState = serde_json::from_str(&saved).unwrap();

        let mut after = Correlator::new(set.clone());
        assert_eq!(after.restore(state.clone()), 1);
        assert_eq!(after.state(), state);
        let third = [("test", 20, a("bob"))];
        let fired = feed(&engine, &set, &mut after, &third);
        assert_eq!(
            fired.len(),
            1,
            "two before the snapshot and one after make three"
        );
        assert_eq!(fired[0].events, 3);

        // Without the snapshot, the third event alone is not enough.
        let mut fresh = Correlator::new(set.clone());
        assert!(feed(&engine, &set, &mut fresh, &third).is_empty());
    }

    #[test]
    fn a_snapshot_of_a_correlation_no_longer_loaded_is_dropped_on_restore() {
        let (engine, set, _) = setup(COUNT);
        let mut before = Correlator::new(set.clone());
        feed(&engine, &set, &mut before, &[("test", 0, a("bob"))]);
        let state = before.state();
        let (_, other, _) =
            setup(&COUNT.replace("title: three a", "title: three a\nid: another-id"));
        let mut after = Correlator::new(other);
        assert_eq!(after.restore(state), 0);
    }

    #[test]
    fn times_at_the_ends_of_the_calendar_never_overflow_the_window_arithmetic() {
        let (engine, set, _) = setup(COUNT);
        let tags = vec![("product".to_string(), "test".to_string())];
        let mut c = Correlator::new(set.clone()).with_lateness(Span::MAX.as_std());
        let (mut scratch, mut matched, mut obs) = (Scratch::default(), Vec::new(), Vec::new());
        // The first event of each source at the earliest and latest instants
        // chrono has (a snapshot or a saved model can carry any time).
        let times = [
            (DateTime::<Utc>::MIN_UTC, "early"),
            (DateTime::<Utc>::MAX_UTC, "late"),
            (DateTime::<Utc>::MIN_UTC, "late"),
            (DateTime::<Utc>::MAX_UTC, "early"),
        ];
        for (i, (time, source)) in times.into_iter().enumerate() {
            let mut event = test_event(a("bob"), Format::Json);
            event.time = time;
            event.origin.source = source.to_string();
            engine.evaluate(&event, &tags, &mut scratch, &mut matched);
            for &r in &matched {
                set.observations(r, &event, &format!("ev{i}"), &mut obs);
                for o in obs.drain(..) {
                    c.observe(o);
                }
            }
        }
        c.finish();
    }

    #[test]
    fn event_count_fires_when_the_count_is_reached_within_the_span() {
        let fired = run(
            COUNT,
            &[
                (0, a("bob")),
                (10, a("alice")),
                (20, a("bob")),
                (30, a("bob")),
                (40, a("alice")),
            ],
        );
        assert_eq!(
            fired,
            vec![("three a".to_string(), vec!["bob".to_string()], 3.0)]
        );
    }

    #[test]
    fn event_count_windows_slide_and_events_outside_the_span_do_not_count() {
        // 0 and 61 are 61 s apart: never three within 60 s until 62, 100, 110.
        let fired = run(
            COUNT,
            &[
                (0, a("bob")),
                (61, a("bob")),
                (62, a("bob")),
                (130, a("bob")),
                (140, a("bob")),
                (150, a("bob")),
            ],
        );
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].2, 3.0);
    }

    #[test]
    fn late_events_within_the_span_are_placed_correctly() {
        let fired = run(COUNT, &[(30, a("bob")), (0, a("bob")), (20, a("bob"))]);
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn events_later_than_the_allowed_lateness_are_dropped_and_counted() {
        let (engine, set, _) = setup(COUNT);
        let run_with = |lateness_secs: u64| {
            let mut c = Correlator::new(set.clone())
                .with_lateness(std::time::Duration::from_secs(lateness_secs));
            // Newest first, then two events 40 s and 50 s older.
            let events = [
                ("s", 100, a("bob")),
                ("s", 60, a("bob")),
                ("s", 50, a("bob")),
            ];
            let fired = feed(&engine, &set, &mut c, &events).len();
            (fired, c.late_events())
        };
        // 60 s allowed: both late events count, three within 60 s fire.
        assert_eq!(run_with(60), (1, 0));
        // 45 s allowed: the event 50 s late is dropped; only two count.
        assert_eq!(run_with(45), (0, 1));
    }

    #[test]
    fn another_source_with_older_times_is_not_late() {
        let (engine, set, _) = setup(COUNT);
        let mut c = Correlator::new(set.clone());
        // Source one is an hour ahead of source two; source two's events all count.
        let events = [
            ("one", 3600, a("bob")),
            ("two", 0, a("alice")),
            ("two", 10, a("alice")),
            ("two", 20, a("alice")),
        ];
        let fired = feed(&engine, &set, &mut c, &events).len();
        assert_eq!((fired, c.late_events()), (1, 0));
    }

    const QUIET: &str = "title: quiet\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {lt: 3}\n";

    #[test]
    fn a_slow_source_holds_windows_open_until_it_catches_up() {
        let (engine, set, _) = setup(QUIET);
        let mut c = Correlator::new(set.clone()).with_lateness(std::time::Duration::ZERO);
        // bob's window (0..60 s) on the slow source; the fast source races ahead.
        let mut events = vec![("slow", 0, a("bob")), ("fast", 1, a("carol"))];
        events.extend((2..6).map(|i| ("fast", i * 100, a("carol"))));
        assert!(
            feed(&engine, &set, &mut c, &events).is_empty(),
            "bob's window is not final while the slow source is at 0 s"
        );
        // The slow source's second event at 30 s still joins bob's window;
        // then the slow source passes 60 s and the window (two events, lt 3) is decided.
        let fired = feed(
            &engine,
            &set,
            &mut c,
            &[("slow", 30, a("bob")), ("slow", 500, a("dave"))],
        );
        let bob: Vec<_> = fired
            .iter()
            .filter(|f| f.group[0].1 == "bob")
            .map(|f| f.events)
            .collect();
        assert_eq!(bob, vec![2]);
    }

    #[test]
    fn an_idle_source_stops_holding_the_watermark_back() {
        let (engine, set, _) = setup(QUIET);
        let mut c = Correlator::new(set.clone())
            .with_lateness(std::time::Duration::ZERO)
            .with_idle_timeout(std::time::Duration::ZERO);
        feed(&engine, &set, &mut c, &[("finished", 0, a("bob"))]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        // The first source went quiet: the other one's time decides alone.
        let fired = feed(&engine, &set, &mut c, &[("live", 500, a("carol"))]);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].group[0].1, "bob");
    }

    #[test]
    fn a_group_starts_over_after_firing() {
        let events: Vec<_> = (0..7).map(|i| (i, a("bob"))).collect();
        assert_eq!(run(COUNT, &events).len(), 2);
    }

    #[test]
    fn value_count_counts_distinct_values_per_group() {
        let corr = "title: spray\ncorrelation:\n  type: value_count\n  rules: [rule_a]\n  group-by: [src]\n  timespan: 5m\n  condition: {field: user, gte: 3}\n";
        let fired = run(
            corr,
            &[(0, a("u1")), (1, a("u1")), (2, a("u2")), (3, a("u3"))],
        );
        assert_eq!(
            fired,
            vec![("spray".to_string(), vec!["10.0.0.1".to_string()], 3.0)]
        );
    }

    #[test]
    fn temporal_needs_every_rule_in_any_order() {
        let corr = "title: both\ncorrelation:\n  type: temporal\n  rules: [rule_a, rule_b]\n  group-by: [user]\n  timespan: 30s\n";
        let b = json!({"action": "b", "user": "bob"});
        assert_eq!(run(corr, &[(0, b.clone()), (10, a("bob"))]).len(), 1);
        assert_eq!(
            run(corr, &[(0, b.clone()), (40, a("bob"))]).len(),
            0,
            "too far apart"
        );
        assert_eq!(
            run(corr, &[(0, b), (10, a("alice"))]).len(),
            0,
            "different users"
        );
    }

    #[test]
    fn temporal_ordered_needs_the_rules_in_order() {
        let corr = "title: a then b\ncorrelation:\n  type: temporal_ordered\n  rules: [rule_a, rule_b]\n  group-by: [user]\n  timespan: 30s\n";
        let b = json!({"action": "b", "user": "bob"});
        assert_eq!(run(corr, &[(0, a("bob")), (10, b.clone())]).len(), 1);
        assert_eq!(run(corr, &[(0, b), (10, a("bob"))]).len(), 0);
    }

    #[test]
    fn value_sum_avg_and_percentile_measure_the_field() {
        let ev = |n: i64| json!({"action": "a", "user": "bob", "bytes": n});
        let sum = "title: sum\ncorrelation:\n  type: value_sum\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 1h\n  condition: {field: bytes, gt: 100}\n";
        assert_eq!(
            run(sum, &[(0, ev(50)), (1, ev(40)), (2, ev(20))]),
            vec![("sum".to_string(), vec!["bob".to_string()], 110.0)]
        );
        let avg = "title: avg\ncorrelation:\n  type: value_avg\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 1h\n  condition: {field: bytes, gte: 500}\n";
        assert_eq!(run(avg, &[(0, ev(100)), (1, ev(900))])[0].2, 500.0);
        let pct = "title: rare\ncorrelation:\n  type: value_percentile\n  rules: [rule_a]\n  group-by: [src]\n  timespan: 1h\n  condition: {field: user, lte: 20}\n";
        let mut events: Vec<_> = (0..9).map(|i| (i, a("common"))).collect();
        events.push((10, a("rare")));
        let fired = run(pct, &events);
        assert!(fired.iter().any(|f| f.2 == 10.0), "{fired:?}");
    }

    #[test]
    fn fewer_than_conditions_are_decided_at_window_end() {
        let corr = "title: quiet\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {lt: 3}\n";
        // bob: 2 events in his window -> fires when a later event (alice at 100) closes it.
        // alice: 3 events -> does not fire, even at the end of input.
        let fired = run(
            corr,
            &[
                (0, a("bob")),
                (10, a("bob")),
                (100, a("alice")),
                (101, a("alice")),
                (102, a("alice")),
            ],
        );
        assert_eq!(
            fired,
            vec![("quiet".to_string(), vec!["bob".to_string()], 2.0)]
        );
    }

    #[test]
    fn ranges_combine_bounds() {
        let corr = "title: range\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 60s\n  condition: {gt: 1, lte: 2}\n";
        // Decided at window end because of lte: 2 events fire, 3 do not.
        assert_eq!(run(corr, &[(0, a("bob")), (1, a("bob"))]).len(), 1);
        assert_eq!(
            run(corr, &[(0, a("bob")), (1, a("bob")), (2, a("bob"))]).len(),
            0
        );
    }

    #[test]
    fn correlations_chain_by_name() {
        let corr = "title: many a\nname: many_a\ncorrelation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [user]\n  timespan: 10m\n  condition: {gte: 3}\n---\ntitle: many a then b\ncorrelation:\n  type: temporal_ordered\n  rules: [many_a, rule_b]\n  group-by: [user]\n  timespan: 10m\n";
        let b = json!({"action": "b", "user": "bob"});
        let fired = run(corr, &[(0, a("bob")), (1, a("bob")), (2, a("bob")), (5, b)]);
        let titles: Vec<&str> = fired.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(titles, vec!["many a", "many a then b"]);
    }

    #[test]
    fn aliases_group_different_fields_of_different_rules() {
        let corr = "title: same address\ncorrelation:\n  type: temporal\n  rules: [rule_a, rule_b]\n  group-by: [ip]\n  timespan: 1m\n  aliases:\n    ip:\n      rule_a: src\n      rule_b: dst\n";
        let b = json!({"action": "b", "dst": "10.0.0.1"});
        assert_eq!(
            run(corr, &[(0, a("x")), (5, b)]),
            vec![(
                "same address".to_string(),
                vec!["10.0.0.1".to_string()],
                2.0
            )]
        );
    }

    #[test]
    fn generate_decides_whether_base_rules_alert_on_their_own() {
        let (_, set, _) = setup(COUNT);
        assert!(
            set.is_silenced(0),
            "rule_a feeds a correlation without generate"
        );
        assert!(!set.is_silenced(1));
        let (_, set, _) = setup(&COUNT.replace("correlation:", "generate: true\ncorrelation:"));
        assert!(!set.is_silenced(0));
    }

    #[test]
    fn unknown_references_and_cycles_are_reported() {
        let (_, set, problems) = setup("title: x\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1}\n");
        assert!(problems[0].message.contains("`nope`"), "{problems:?}");
        assert!(set.is_empty());
        let cyc = "title: c1\nname: c1\ncorrelation:\n  type: event_count\n  rules: [c2]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1}\n---\ntitle: c2\nname: c2\ncorrelation:\n  type: event_count\n  rules: [c1]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1}\n";
        let (_, set, problems) = setup(cyc);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(set.is_empty());
    }

    #[test]
    fn groups_expire_once_their_window_is_over() {
        let (engine, set, _) = setup(COUNT);
        let mut correlator = Correlator::new(set.clone());
        let first = [("s", 0, a("u1")), ("s", 1, a("u2")), ("s", 2, a("u3"))];
        feed(&engine, &set, &mut correlator, &first);
        assert_eq!(correlator.active_groups(), 3);
        // 10 minutes later: the three old groups are past their timespan and gone.
        feed(&engine, &set, &mut correlator, &[("s", 600, a("u4"))]);
        assert_eq!(correlator.active_groups(), 1);
    }

    #[test]
    fn the_group_cap_evicts_the_oldest_and_counts_it() {
        let (engine, set, _) = setup(COUNT);
        let mut correlator = Correlator::with_max_groups(set.clone(), 2);
        let events: Vec<_> = ["u1", "u2", "u3", "u3", "u3"]
            .iter()
            .enumerate()
            .map(|(i, user)| ("s", i as i64, a(user)))
            .collect();
        feed(&engine, &set, &mut correlator, &events);
        assert!(correlator.active_groups() <= 2);
        assert_eq!(correlator.evictions(), 1);
    }

    #[test]
    fn events_without_the_group_field_do_not_take_part() {
        let fired = run(
            COUNT,
            &[
                (0, json!({"action": "a"})),
                (1, json!({"action": "a"})),
                (2, json!({"action": "a"})),
            ],
        );
        assert!(fired.is_empty());
    }
}
