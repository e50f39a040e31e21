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
//! - events more than the allowed lateness behind the newest one of their
//!   source are dropped and counted, per rule (their windows may be decided
//!   already); a scan, which has the whole input, runs them again in
//!   event-time order at the end ([`Reorder`]);
//! - after firing, the group starts over;
//! - an event without a group-by field does not take part (as a backend's
//!   `by` clause drops it);
//! - a firing feeds the correlations that reference this one (chains).

mod compile;
pub(crate) mod config;
mod correlator;
pub(crate) mod describe;
pub mod exchange;
mod reorder;
pub(crate) mod snapshot;
mod source_times;
pub(crate) mod window;

use crate::event::Origin;
use crate::sigma::correlation::SigmaCorrelation;
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use window::Entry;

pub use config::CorrelationConfig;
pub use correlator::Correlator;
pub use reorder::{LateReport, Reorder, Reordered, REORDER_LIMIT};
pub use snapshot::{Snapshot, SnapshotError};

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
    /// The correlation rule as parsed.
    pub rule: SigmaCorrelation,
    /// The file the rule was read from.
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
    /// Correlation -> how its matches are routed between instances: by the
    /// correlation heading its chain, and whether by group too.
    routes: Vec<(usize, bool)>,
    /// Detection rules whose matches do not alert on their own (`generate: false`).
    silenced: HashSet<usize>,
    /// Correlations whose firings only feed the correlations that reference
    /// them (a chain's inner links), unless one of those says `generate: true`.
    inner: HashSet<usize>,
}

/// A rule match offered to one correlation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Index of the correlation in its [`CorrelationSet`].
    pub correlation: usize,
    /// The group key: the values of the group-by fields, in `group-by` order.
    pub group: Vec<String>,
    /// The match's time, input, condition-field value and evidence id.
    pub entry: Entry,
    /// Where the matching event was read.
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
    /// Index of the correlation in its [`CorrelationSet`].
    pub correlation: usize,
    /// Group-by names and values.
    pub group: Vec<(String, String)>,
    /// The measured count, distinct count, sum, average or share.
    pub value: f64,
    /// How many entries were in the window when it fired.
    pub events: usize,
    /// Event time of the oldest entry in the window.
    pub first: DateTime<Utc>,
    /// Event time of the newest entry in the window.
    pub last: DateTime<Utc>,
    /// Ids of the contributing alerts or correlations, most recent last; at most
    /// [`MAX_EVIDENCE`].
    pub evidence: Vec<String>,
    /// Where the last contributing event came from.
    pub origin: Origin,
}

/// Default cap on tracked groups (all correlations together).
pub const DEFAULT_MAX_GROUPS: usize = 1_000_000;

/// Default allowed lateness: how far behind the newest event an event may arrive.
pub const DEFAULT_LATENESS: std::time::Duration = std::time::Duration::from_secs(60);

/// Default idle timeout for sources (wall time).
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[cfg(test)]
mod tests;
