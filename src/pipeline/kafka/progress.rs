//! How far the input has been handled: the next offset per topic partition.

use crate::event::{Origin, Position};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;

/// The next offset to consume per (topic, partition): one past the furthest
/// record handled. Records from files and stdin are not tracked.
///
/// Keyed by topic first so that the per-record lookups borrow the topic
/// name instead of allocating one (this runs for every consumed record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    next: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl Progress {
    /// Notes that the record at `origin` has been handled.
    pub(crate) fn advance(&mut self, origin: &Origin) {
        if let Position::Offset { partition, offset } = origin.position {
            self.advance_to(&origin.source, partition, offset + 1);
        }
    }

    fn advance_to(&mut self, topic: &str, partition: i32, next: i64) {
        let partitions = match self.next.get_mut(topic) {
            Some(p) => p,
            None => self.next.entry(topic.to_string()).or_default(),
        };
        let n = partitions.entry(partition).or_insert(next);
        *n = (*n).max(next);
    }

    /// Takes in everything `other` has handled.
    pub(crate) fn merge(&mut self, other: &Progress) {
        for (topic, partition, next) in other.iter() {
            self.advance_to(topic, partition, next);
        }
    }

    fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next.get(topic)?.get(&partition).copied()
    }

    /// Whether the record at `origin` is before these positions (already handled).
    pub(crate) fn covers(&self, origin: &Origin) -> bool {
        match origin.position {
            Position::Offset { partition, offset } => self
                .get(&origin.source, partition)
                .is_some_and(|next| offset < next),
            Position::Line { .. } => false,
        }
    }

    /// Positions as saved in a snapshot.
    pub(crate) fn to_vec(&self) -> Vec<(String, i32, i64)> {
        self.iter().map(|(t, p, n)| (t.to_string(), p, n)).collect()
    }

    pub(crate) fn from_vec(positions: Vec<(String, i32, i64)>) -> Progress {
        let mut progress = Progress::default();
        for (topic, partition, next) in positions {
            progress.advance_to(&topic, partition, next);
        }
        progress
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// The partitions where `self` is ahead of `committed`.
    pub(crate) fn ahead_of(&self, committed: &Progress) -> Progress {
        let mut ahead = Progress::default();
        for (topic, partition, next) in self.iter() {
            if committed.get(topic, partition).is_none_or(|c| c < next) {
                ahead.advance_to(topic, partition, next);
            }
        }
        ahead
    }

    /// The offsets to commit, restricted to partitions `keep` accepts.
    pub(crate) fn to_list(&self, mut keep: impl FnMut(&str, i32) -> bool) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in self.iter() {
            if keep(topic, partition) {
                // Only fails for an invalid offset kind; ours is always concrete.
                let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
            }
        }
        list
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.next
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, n)| (t.as_str(), *p, *n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, partition: i32, offset: i64) -> Origin {
        Origin {
            source: topic.into(),
            position: Position::Offset { partition, offset },
        }
    }

    #[test]
    fn progress_is_one_past_the_furthest_record_per_partition() {
        let mut p = Progress::default();
        p.advance(&at("logs", 0, 7));
        p.advance(&at("logs", 0, 3));
        p.advance(&at("logs", 1, 0));
        p.advance(&Origin {
            source: "file.log".into(),
            position: Position::Line { line: 9 },
        });
        let v: Vec<_> = p.iter().collect();
        assert_eq!(v, vec![("logs", 0, 8), ("logs", 1, 1)]);
    }

    #[test]
    fn merge_keeps_the_furthest_and_ahead_of_lists_only_what_moved() {
        let mut done = Progress::default();
        done.advance(&at("a", 0, 5));
        done.advance(&at("a", 1, 5));
        let mut batch = Progress::default();
        batch.advance(&at("a", 0, 2));
        batch.advance(&at("a", 1, 9));
        done.merge(&batch);
        assert_eq!(
            done.iter().collect::<Vec<_>>(),
            vec![("a", 0, 6), ("a", 1, 10)]
        );
        let mut committed = Progress::default();
        committed.advance(&at("a", 0, 5));
        let moved: Vec<_> = done
            .ahead_of(&committed)
            .iter()
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(t, p, n)| (t.to_string(), p, n))
            .collect();
        assert_eq!(moved, vec![("a".to_string(), 1, 10)]);
    }

    #[test]
    fn positions_cover_records_before_them_only() {
        let p = Progress::from_vec(vec![("a".into(), 0, 5)]);
        assert!(p.covers(&at("a", 0, 4)));
        assert!(!p.covers(&at("a", 0, 5)));
        assert!(!p.covers(&at("a", 1, 0)));
        assert_eq!(p.to_vec(), vec![("a".to_string(), 0, 5)]);
    }

    #[test]
    fn the_commit_list_skips_partitions_no_longer_owned() {
        let mut p = Progress::default();
        p.advance(&at("a", 0, 1));
        p.advance(&at("a", 1, 1));
        let list = p.to_list(|_, partition| partition == 1);
        assert_eq!(list.count(), 1);
        let e = list.find_partition("a", 1).expect("partition 1 kept");
        assert_eq!(e.offset(), Offset::Offset(2));
    }
}
