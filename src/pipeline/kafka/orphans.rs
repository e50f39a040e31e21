//! Partitions nobody reads: data waits on a partition of a subscribed topic
//! whose group offset has not moved for a long time, and it is not this
//! consumer's.
//!
//! Why: the group coordinator is meant to rebalance when a member's session
//! expires, and Apache Kafka does. A broker that does not (tansu 0.6 leaves
//! a kill -9'd member's partitions assigned to it until some member joins)
//! leaves those partitions unread for ever while every survivor looks
//! healthy: blind, and silent. Each consumer therefore checks, now and
//! then, the partitions it does not own; one with records past its
//! committed offset that has not moved for `orphan_after` is orphaned. The
//! consumer says so (a warning naming the partitions) and leaves and
//! rejoins the group, which makes the coordinator rebalance over the
//! members alive. A slow owner that commits within `orphan_after` never
//! triggers it; on a broker that rebalances by itself it never fires.

use super::consumer::KafkaConsumer;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the partitions are checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// The least time a partition may wait unread before the group is rejoined:
/// long enough for an owner busy restoring or draining a revoke.
const MIN_ORPHAN_AFTER: Duration = Duration::from_secs(30);
/// librdkafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a broker call of the check may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Watches the partitions of the subscribed topics that this consumer does
/// not own.
#[derive(Debug)]
pub(crate) struct OrphanWatch {
    topics: Vec<String>,
    orphan_after: Duration,
    next_check: Instant,
    /// Per partition with records waiting: its committed offset, and since
    /// when it has not moved.
    waiting: HashMap<(String, i32), (i64, Instant)>,
}

impl OrphanWatch {
    /// A watch over `topics`; a partition is orphaned after three session
    /// timeouts (`session.timeout.ms` from `properties`), and at least 30 s.
    pub(crate) fn new(properties: &[(String, String)], topics: Vec<String>) -> OrphanWatch {
        let session = properties
            .iter()
            .find(|(k, _)| k == "session.timeout.ms")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from_millis);
        OrphanWatch {
            topics,
            orphan_after: session.saturating_mul(3).max(MIN_ORPHAN_AFTER),
            next_check: Instant::now() + CHECK_EVERY,
            waiting: HashMap::new(),
        }
    }

    /// When due, checks the partitions this consumer does not own; returns
    /// the orphaned ones (`topic[partition]`). Broker calls that fail are
    /// skipped until the next check.
    pub(crate) fn check(&mut self, consumer: &KafkaConsumer, now: Instant) -> Vec<String> {
        if now < self.next_check {
            return Vec::new();
        }
        self.next_check = now + CHECK_EVERY;
        let owned: Vec<(String, i32)> = match consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(_) => return Vec::new(),
        };
        let mut others = TopicPartitionList::new();
        for topic in &self.topics {
            let Ok(metadata) = consumer.fetch_metadata(Some(topic), CALL_TIMEOUT) else {
                return Vec::new();
            };
            for t in metadata.topics() {
                for p in t.partitions() {
                    if !owned.iter().any(|(o, n)| o == topic && *n == p.id()) {
                        others.add_partition(topic, p.id());
                    }
                }
            }
        }
        if others.count() == 0 {
            self.waiting.clear();
            return Vec::new();
        }
        let Ok(committed) = consumer.committed_offsets(others, CALL_TIMEOUT) else {
            return Vec::new();
        };
        let mut orphaned = Vec::new();
        let mut seen = Vec::new();
        for e in committed.elements() {
            let Ok((low, high)) = consumer.fetch_watermarks(e.topic(), e.partition(), CALL_TIMEOUT)
            else {
                continue;
            };
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            let key = (e.topic().to_string(), e.partition());
            seen.push(key.clone());
            if self.observe(key, offset, high, now) {
                orphaned.push(format!("{}[{}]", e.topic(), e.partition()));
            }
        }
        self.waiting.retain(|k, _| seen.contains(k));
        orphaned
    }

    /// One partition's committed offset and end at `now`: whether it has
    /// waited unread for `orphan_after`.
    fn observe(&mut self, key: (String, i32), committed: i64, end: i64, now: Instant) -> bool {
        if end <= committed {
            self.waiting.remove(&key);
            return false;
        }
        let since = self.waiting.entry(key).or_insert((committed, now));
        if since.0 != committed {
            *since = (committed, now);
        }
        now.duration_since(since.1) >= self.orphan_after
    }

    /// After a rejoin: the partitions start anew.
    pub(crate) fn rejoined(&mut self, now: Instant) {
        self.waiting.clear();
        self.next_check = now + self.orphan_after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> OrphanWatch {
        OrphanWatch::new(
            &[("session.timeout.ms".into(), "6000".into())],
            vec!["t".into()],
        )
    }

    #[test]
    fn a_partition_whose_offset_stands_still_behind_its_end_is_orphaned_after_the_wait() {
        let mut w = watch();
        assert_eq!(
            w.orphan_after, MIN_ORPHAN_AFTER,
            "3 x 6 s is less than the floor"
        );
        let t0 = Instant::now();
        let key = || ("t".to_string(), 0);
        assert!(!w.observe(key(), 10, 50, t0));
        assert!(!w.observe(key(), 10, 80, t0 + Duration::from_secs(29)));
        assert!(w.observe(key(), 10, 80, t0 + Duration::from_secs(30)));
    }

    #[test]
    fn an_owner_that_commits_or_a_partition_read_to_its_end_is_not_orphaned() {
        let mut w = watch();
        let t0 = Instant::now();
        let key = || ("t".to_string(), 1);
        assert!(!w.observe(key(), 10, 50, t0));
        // A slow owner: its offset moves, the wait starts again.
        assert!(!w.observe(key(), 20, 90, t0 + Duration::from_secs(25)));
        assert!(!w.observe(key(), 20, 90, t0 + Duration::from_secs(50)));
        assert!(w.observe(key(), 20, 90, t0 + Duration::from_secs(56)));
        // Read to its end: nothing waits.
        assert!(!w.observe(key(), 90, 90, t0 + Duration::from_secs(100)));
        assert!(w.waiting.is_empty());
    }

    #[test]
    fn the_wait_is_three_session_timeouts() {
        let w = OrphanWatch::new(&[("session.timeout.ms".into(), "45000".into())], vec![]);
        assert_eq!(w.orphan_after, Duration::from_secs(135));
        let w = OrphanWatch::new(&[], vec![]);
        assert_eq!(
            w.orphan_after,
            Duration::from_secs(135),
            "librdkafka's default"
        );
    }
}
