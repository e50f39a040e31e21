//! [`Held`]: the records an owner of a repartition partition holds until
//! the watermark passes them, in release order, with what changed since its
//! changelog was last written.
//!
//! Shared by the correlation and the anomaly owners: each held record is one
//! changelog record (`[prefix, key]`), written when it is taken and deleted
//! when it is released, so a new owner restores exactly what was held.

use super::watermark::Timed;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

/// A changelog as compaction leaves it: the last payload of each key
/// (`None`: deleted), from `records` in the order they were written.
pub fn compacted<'a>(
    records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> HashMap<&'a [u8], Option<&'a [u8]>> {
    let mut latest = HashMap::new();
    for (key, payload) in records {
        latest.insert(key, payload);
    }
    latest
}

/// Records held for the watermark, keyed (and released) by event time first.
#[derive(Debug)]
pub struct Held<K, V> {
    records: BTreeMap<K, V>,
    /// Taken since the changelog was last written.
    added: HashSet<K>,
    /// Released since then (and written before).
    removed: HashSet<K>,
}

impl<K, V> Default for Held<K, V> {
    fn default() -> Self {
        Held {
            records: BTreeMap::new(),
            added: HashSet::new(),
            removed: HashSet::new(),
        }
    }
}

impl<K, V> Held<K, V>
where
    K: Ord + Hash + Clone + Timed + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// How many records are held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The held records, in release order.
    pub fn records(&self) -> &BTreeMap<K, V> {
        &self.records
    }

    /// Holds a record; false when one with its key is held already (a replay).
    pub fn hold(&mut self, key: K, value: V) -> bool {
        if self.records.contains_key(&key) {
            return false;
        }
        self.removed.remove(&key);
        self.added.insert(key.clone());
        self.records.insert(key, value);
        true
    }

    /// The oldest held record at or before `upto`, no longer held.
    pub fn release_next(&mut self, upto: DateTime<Utc>) -> Option<(K, V)> {
        let entry = self.records.first_entry()?;
        if entry.key().time() > upto {
            return None;
        }
        let (key, value) = entry.remove_entry();
        if !self.added.remove(&key) {
            self.removed.insert(key.clone());
        }
        Some((key, value))
    }

    /// The changelog records of what was taken and released since the last
    /// call, into `out`: `[prefix, key]` with the record, or a tombstone.
    pub fn changelog(&mut self, prefix: &str, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        let mut added: Vec<K> = self.added.drain().collect();
        added.sort();
        for key in added {
            let (Some(value), Ok(name)) = (
                self.records.get(&key),
                serde_json::to_string(&(prefix, &key)),
            ) else {
                continue;
            };
            if let Ok(bytes) = serde_json::to_vec(value) {
                out.push((name, Some(bytes)));
            }
        }
        let mut removed: Vec<K> = self.removed.drain().collect();
        removed.sort();
        for key in removed {
            if let Ok(name) = serde_json::to_string(&(prefix, &key)) {
                out.push((name, None));
            }
        }
    }

    /// Restores one changelog record whose key reads as `[prefix, key]`;
    /// false when the key or the record does not read.
    pub fn restore(&mut self, name: serde_json::Value, payload: &[u8]) -> bool {
        let Ok((_, key)) = serde_json::from_value::<(String, K)>(name) else {
            return false;
        };
        let Ok(value) = serde_json::from_slice::<V>(payload) else {
            return false;
        };
        self.records.insert(key, value);
        true
    }

    /// After a restore: `applied` were applied already (a flush cut short
    /// saved their effect but not yet their tombstones) and are dropped;
    /// nothing restored is written again.
    pub fn restored(&mut self, applied: Vec<K>) {
        self.added.clear();
        for key in applied {
            self.records.remove(&key);
            self.removed.insert(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Key = (DateTime<Utc>, String, String);

    fn key(secs: i64, id: &str) -> Key {
        (
            DateTime::from_timestamp(secs, 0).unwrap_or_default(),
            id.into(),
            "c".into(),
        )
    }

    #[test]
    fn held_records_are_written_once_released_in_order_and_then_deleted() {
        let mut held: Held<Key, String> = Held::default();
        assert!(held.hold(key(20, "b"), "second".into()));
        assert!(held.hold(key(10, "a"), "first".into()));
        assert!(!held.hold(key(10, "a"), "again".into()), "a replay");
        let mut out = Vec::new();
        held.changelog("p", &mut out);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|(k, v)| k.starts_with("[\"p\"") && v.is_some()));

        let upto = DateTime::from_timestamp(15, 0).unwrap_or_default();
        let released = held.release_next(upto).map(|(_, v)| v);
        assert_eq!(released.as_deref(), Some("first"));
        assert!(
            held.release_next(upto).is_none(),
            "20 s is past the watermark"
        );
        let mut out = Vec::new();
        held.changelog("p", &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].1.is_none(), "the released one is deleted");

        // Taken and released between two writes: never written at all.
        held.hold(key(12, "c"), "brief".into());
        let _ = held.release_next(upto);
        let mut out = Vec::new();
        held.changelog("p", &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_restore_reads_its_records_and_drops_what_was_applied() {
        let mut held: Held<Key, String> = Held::default();
        held.hold(key(10, "a"), "first".into());
        held.hold(key(20, "b"), "second".into());
        let mut out = Vec::new();
        held.changelog("p", &mut out);
        let mut back: Held<Key, String> = Held::default();
        for (name, value) in &out {
            let name: serde_json::Value = serde_json::from_str(name).unwrap_or_default();
            assert!(back.restore(name, value.as_deref().unwrap_or_default()));
        }
        assert!(!back.restore(serde_json::json!(["p", 3]), b"\"x\""));
        back.restored(vec![key(10, "a")]);
        assert_eq!(back.len(), 1);
        let mut out = Vec::new();
        back.changelog("p", &mut out);
        assert_eq!(out.len(), 1, "only the tombstone of the applied one");
        assert!(out[0].1.is_none());
    }
}
