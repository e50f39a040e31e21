//! [`Watermark`]: up to which event time every upstream input has been
//! read, as an owner of a repartition partition learns it from progress
//! records.
//!
//! Shared by the correlation and the anomaly owners of a partition, which
//! hold records back until no earlier one can still come and then run them
//! in event-time order (why: `correlate::exchange`).
//!
//! Each detection instance reports, per input partition it reads, the
//! newest event time it has processed ([`Progress`], sent after the records
//! it covers). The watermark is the slowest input's time minus the allowed
//! lateness. An input silent for the idle timeout stops holding it back; an
//! input never heard from holds it back for the idle timeout after records
//! began to arrive (as Kafka Streams' `max.task.idle.ms`: an empty
//! partition must not block the others for ever). When every input is idle,
//! everything is released.

use super::Span;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// An upstream input has been processed up to this event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The input: `topic[partition]`, or a file or stdin.
    pub input: String,
    /// Its newest event time processed so far.
    pub time: DateTime<Utc>,
    /// How many inputs the sender reads from in all (every partition of
    /// every input topic): the owner waits to hear from that many.
    pub inputs: u32,
}

/// The watermark's saved form (a changelog record).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatermarkRecord {
    released: Option<DateTime<Utc>>,
    inputs: Vec<(String, DateTime<Utc>)>,
    expected_inputs: u32,
}

/// What happened to the records offered, for metrics and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReleaseCounts {
    /// Records dropped as already applied (replays) or behind the released watermark.
    pub behind: u64,
    /// Records recognised as duplicates of pending ones.
    pub duplicates: u64,
    /// Changelog records that could not be read at restore.
    pub unreadable: u64,
    /// Records released before the watermark passed them because the
    /// pending set was full: an input held the watermark back (a stalled
    /// reader, a host with its clock behind).
    pub forced: u64,
}

/// A held record's key, ordered by event time first.
pub trait Timed {
    /// The record's event time.
    fn time(&self) -> DateTime<Utc>;
}

impl<A, B> Timed for (DateTime<Utc>, A, B) {
    fn time(&self) -> DateTime<Utc> {
        self.0
    }
}

impl<A, B, C> Timed for (DateTime<Utc>, A, B, C) {
    fn time(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The inputs' progress as one owner has heard it, and how far it released.
#[derive(Debug)]
pub struct Watermark {
    /// Newest event time per upstream input, and when it last reported.
    inputs: HashMap<String, (DateTime<Utc>, Instant)>,
    expected_inputs: u32,
    /// Every record up to here has been released.
    released: Option<DateTime<Utc>>,
    /// When records began to arrive (after start or restore).
    started: Option<Instant>,
    /// When a saved watermark was restored: its inputs, and the records
    /// held with it, must not wait for new records to start the clock (the
    /// stream may have ended).
    restored_at: Option<Instant>,
    lateness: Span,
    idle_timeout: Duration,
    changed: bool,
}

impl Watermark {
    /// Nothing heard yet.
    pub fn new(lateness: Span, idle_timeout: Duration) -> Self {
        Watermark {
            inputs: HashMap::new(),
            expected_inputs: 0,
            released: None,
            started: None,
            restored_at: None,
            lateness,
            idle_timeout,
            changed: false,
        }
    }

    /// A record arrived at `now`: the idle clock of unheard inputs starts.
    pub fn record_arrived(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// Takes an input's progress.
    pub fn note(&mut self, progress: &Progress, now: Instant) {
        self.record_arrived(now);
        self.expected_inputs = self.expected_inputs.max(progress.inputs);
        let newest = self
            .inputs
            .entry(progress.input.clone())
            .or_insert((progress.time, now));
        newest.0 = newest.0.max(progress.time);
        newest.1 = now;
        self.changed = true;
    }

    /// How many inputs the owner waits to hear from.
    pub fn expected_inputs(&self) -> u32 {
        self.expected_inputs
    }

    /// Up to where records were released.
    pub fn released(&self) -> Option<DateTime<Utc>> {
        self.released
    }

    /// Whether a record at `time` is at or behind the released point.
    pub fn is_released(&self, time: DateTime<Utc>) -> bool {
        self.released.is_some_and(|r| time <= r)
    }

    /// Up to when every record has arrived: just before the slowest input's
    /// newest time minus the allowed lateness (more records with that very
    /// time may follow: events share seconds). `None` while an input may
    /// still be unheard of. When every input is idle, all of it: up to the
    /// newest input time or `last_pending`, the newest record held.
    pub fn upto(&self, now: Instant, last_pending: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        // The idle clock of unheard inputs starts with the first record, or
        // with a restored watermark: not when a partition is merely
        // assigned, which may be long before its first record (an owner
        // assigned at start must not have timed out every input by then).
        let young = self
            .started
            .or(self.restored_at)
            .is_none_or(|since| now.duration_since(since) <= self.idle_timeout);
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
            Some(t) => self
                .lateness
                .before(t)
                .checked_sub_signed(chrono::TimeDelta::nanoseconds(1)),
            None if young => None,
            None => {
                let newest = self.inputs.values().map(|(t, _)| *t).max();
                newest.max(last_pending).or(self.released)
            }
        }
    }

    /// Up to where the records held in `pending` (ordered by time first)
    /// may be released now: the watermark, or further when more than `max`
    /// are held, so that memory stays bounded while an input holds the
    /// watermark back (those released early are counted as forced).
    pub fn release_point<K: Timed, V>(
        &self,
        now: Instant,
        pending: &BTreeMap<K, V>,
        max: usize,
        counts: &mut ReleaseCounts,
    ) -> Option<DateTime<Utc>> {
        let over = pending.len().saturating_sub(max);
        let forced = match over {
            0 => None,
            n => pending.keys().nth(n - 1).map(Timed::time),
        };
        if forced.is_some() {
            counts.forced += over as u64;
        }
        let last = pending.keys().next_back().map(Timed::time);
        self.upto(now, last).max(forced)
    }

    /// Records up to `upto` were released; true when that moved it.
    pub fn advance(&mut self, upto: DateTime<Utc>) -> bool {
        if self.released.is_some_and(|r| upto <= r) {
            return false;
        }
        self.released = Some(upto);
        self.changed = true;
        true
    }

    /// The saved form, when it changed since the last call.
    fn take_record(&mut self) -> Option<WatermarkRecord> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let mut inputs: Vec<(String, DateTime<Utc>)> = self
            .inputs
            .iter()
            .map(|(k, (t, _))| (k.clone(), *t))
            .collect();
        inputs.sort();
        Some(WatermarkRecord {
            released: self.released,
            inputs,
            expected_inputs: self.expected_inputs,
        })
    }

    /// Its changelog record under the key `[name]`, into `out`, when it
    /// changed since the last call.
    pub fn changelog(&mut self, name: &str, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        let Some(record) = self.take_record() else {
            return;
        };
        if let (Ok(key), Ok(bytes)) = (serde_json::to_string(&(name,)), serde_json::to_vec(&record))
        {
            out.push((key, Some(bytes)));
        }
    }

    /// Back to a saved form. Restored inputs' clocks start at `now`: they
    /// get the idle timeout to report again.
    pub fn restore(&mut self, record: WatermarkRecord, now: Instant) {
        self.released = record.released;
        self.expected_inputs = record.expected_inputs;
        self.inputs = record
            .inputs
            .into_iter()
            .map(|(input, t)| (input, (t, now)))
            .collect();
        self.restored_at = Some(now);
        self.changed = false;
    }

    /// A restore ended (with or without a saved form): records begin anew.
    pub fn restarted(&mut self) {
        self.started = None;
        self.changed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    fn progress(input: &str, secs: i64) -> Progress {
        Progress {
            input: input.into(),
            time: at(secs),
            inputs: 2,
        }
    }

    #[test]
    fn the_slowest_input_minus_the_lateness_is_released_and_an_idle_one_stops_counting() {
        let now = Instant::now();
        let mut w = Watermark::new(Span::from_secs(5), Duration::from_secs(60));
        w.note(&progress("t[0]", 100), now);
        assert_eq!(w.upto(now, None), None, "t[1] was not heard from yet");
        w.note(&progress("t[1]", 50), now);
        let just_before = |secs| at(secs) - chrono::TimeDelta::nanoseconds(1);
        assert_eq!(w.upto(now, None), Some(just_before(45)));
        w.note(&progress("t[0]", 200), now + Duration::from_secs(61));
        assert_eq!(
            w.upto(now + Duration::from_secs(62), None),
            Some(just_before(195)),
            "t[1] fell idle"
        );
        assert_eq!(
            w.upto(now + Duration::from_secs(200), Some(at(300))),
            Some(at(300)),
            "every input idle: all of it"
        );
    }

    #[test]
    fn an_owner_assigned_long_before_its_first_record_still_waits_for_unheard_inputs() {
        let assigned = Instant::now();
        let mut w = Watermark::new(Span::from_secs(0), Duration::from_secs(60));
        // Restored from an empty changelog when the partition was assigned.
        w.restarted();
        let first = assigned + Duration::from_secs(600);
        w.note(&progress("t[0]", 100), first);
        assert_eq!(w.upto(first, None), None, "t[1] is not heard from yet");
        assert_eq!(
            w.upto(first + Duration::from_secs(61), Some(at(100))),
            Some(at(100)),
            "a minute after the first record, every input is idle: all of it"
        );
    }

    #[test]
    fn a_restored_watermark_releases_what_it_holds_once_its_inputs_stay_idle() {
        let now = Instant::now();
        let mut w = Watermark::new(Span::from_secs(0), Duration::from_secs(60));
        w.note(&progress("t[0]", 10), now);
        let record = w.take_record().unwrap_or_else(|| panic!("changed"));
        let mut back = Watermark::new(Span::from_secs(0), Duration::from_secs(60));
        back.restore(record, now);
        back.restarted();
        assert_eq!(back.upto(now, Some(at(30))), None, "t[1] may still come");
        assert_eq!(
            back.upto(now + Duration::from_secs(61), Some(at(30))),
            Some(at(30)),
            "no record came after the restore: everything held goes"
        );
    }

    #[test]
    fn a_restored_watermark_keeps_what_was_released_and_the_inputs() {
        let now = Instant::now();
        let mut w = Watermark::new(Span::from_secs(0), Duration::from_secs(60));
        w.note(&progress("t[0]", 10), now);
        w.note(&progress("t[1]", 20), now);
        assert!(w.advance(at(10)));
        assert!(!w.advance(at(5)));
        let record = w.take_record().unwrap_or_else(|| panic!("changed"));
        assert!(w.take_record().is_none());
        let mut back = Watermark::new(Span::from_secs(0), Duration::from_secs(60));
        back.restore(record, now);
        assert!(back.is_released(at(10)) && !back.is_released(at(11)));
        assert_eq!(back.expected_inputs(), 2);
        assert_eq!(
            back.upto(now, None),
            Some(at(10) - chrono::TimeDelta::nanoseconds(1))
        );
    }
}
