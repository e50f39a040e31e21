//! The newest event time of each source, and whether an event is late for
//! its own source: what the correlator's lateness and watermark and the
//! scan's reorder buffer both judge by.

use crate::vocab::Span;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The newest event time per source (file, stdin, topic).
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceTimes(pub(super) HashMap<String, DateTime<Utc>>);

impl SourceTimes {
    /// Notes an event of `source` at `time`; true when it is more than
    /// `lateness` behind the newest event that source had. A second file
    /// with older times is another source, so it is not late.
    pub(crate) fn note(&mut self, source: &str, time: DateTime<Utc>, lateness: Span) -> bool {
        let newest = match self.0.get_mut(source) {
            Some(newest) => newest,
            None => self.0.entry(source.to_string()).or_insert(time),
        };
        let late = time < lateness.before(*newest);
        if time > *newest {
            *newest = time;
        }
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_judged_within_each_source() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let lateness = Span::from_secs(60);
        let mut times = SourceTimes::default();
        assert!(!times.note("a", t(1000), lateness));
        assert!(!times.note("a", t(950), lateness), "within the lateness");
        assert!(times.note("a", t(900), lateness), "more than 60 s behind");
        assert!(!times.note("b", t(0), lateness), "another source");
        assert_eq!(times.0["a"], t(1000), "a late event does not move it back");
    }
}
