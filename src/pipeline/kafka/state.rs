//! State in compacted Kafka topics, written with the alerts (in exactly-once
//! mode, in the same transaction as the offsets) and read once at start:
//! correlation snapshots (one record per instance, under its key) and the
//! incident desk's alert state (one record per alert id).

use super::{client_config, KafkaError, Role};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Where a snapshot record goes: the topic and this instance's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTopic {
    /// The compacted topic.
    pub topic: String,
    /// This instance's record key, stable across its restarts.
    pub key: String,
}

/// How long the reader waits for the topic's end before settling for what it has.
const READ_LIMIT: Duration = Duration::from_secs(30);

impl StateTopic {
    /// The latest snapshot this instance wrote, if any (a tombstone counts as none).
    pub fn load_latest(
        &self,
        properties: &[(String, String)],
    ) -> Result<Option<Vec<u8>>, KafkaError> {
        let mut latest = None;
        read_topic(properties, &self.topic, |key, payload| {
            if key == Some(self.key.as_bytes()) {
                latest = payload.map(<[u8]>::to_vec);
            }
        })?;
        Ok(latest)
    }
}

/// The incident desk's alert state from its compacted topic: the latest
/// record per alert id (a tombstone deletes), and the records that could
/// not be read, each with why. Like the journal file, an unreadable record
/// is skipped rather than costing every other alert's state.
pub fn read_alert_state(
    properties: &[(String, String)],
    topic: &str,
) -> Result<(Vec<crate::incident::TrackedAlert>, Vec<String>), KafkaError> {
    let mut latest = std::collections::HashMap::new();
    let mut problems = Vec::new();
    read_topic(properties, topic, |key, payload| {
        let Some(key) = key else { return };
        let alert = payload.and_then(|p| match crate::incident::store::decode(p) {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!("{topic}[{}]: {e}", String::from_utf8_lossy(key)));
                None
            }
        });
        latest.insert(key.to_vec(), alert);
    })?;
    Ok((latest.into_values().flatten().collect(), problems))
}

/// Reads a (compacted) topic from the beginning to its current end, calling
/// `each` with every record's key and payload (`None`: a tombstone).
pub fn read_topic(
    properties: &[(String, String)],
    topic: &str,
    each: impl FnMut(Option<&[u8]>, Option<&[u8]>),
) -> Result<(), KafkaError> {
    read_from_start(properties, topic, None, each)
}

/// The state reader asks to be told when it reaches a partition's end;
/// librdkafka also reports that as a global error, which the default
/// context logs as one. Reaching the end is the point, not a fault.
struct EndIsNotAnError;

impl rdkafka::ClientContext for EndIsNotAnError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let at_end = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !at_end {
            tracing::warn!(error = %error, reason, "state topic reader");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndIsNotAnError {}

/// How many partitions `topic` has; 0 when it does not exist.
pub fn partition_count(properties: &[(String, String)], topic: &str) -> Result<i32, KafkaError> {
    let cfg = client_config(properties, Role::Consumer, &[], &[]);
    let reader: BaseConsumer = cfg
        .create()
        .map_err(KafkaError::client("creating a metadata client"))?;
    let metadata = reader
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(KafkaError::client(format!(
            "reading the metadata of `{topic}`"
        )))?;
    Ok(metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len()) as i32)
}

/// Reads `topic` (only partition `only`, if given) from the beginning to its
/// current end, calling `each` with every record's key and payload.
pub fn read_from_start(
    properties: &[(String, String)],
    topic: &str,
    only: Option<i32>,
    mut each: impl FnMut(Option<&[u8]>, Option<&[u8]>),
) -> Result<(), KafkaError> {
    let cfg = client_config(
        properties,
        Role::Consumer,
        &[("fetch.wait.max.ms", "50")],
        &[
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
        ],
    );
    let reader: BaseConsumer<EndIsNotAnError> = cfg
        .create_with_context(EndIsNotAnError)
        .map_err(KafkaError::client("creating the state reader"))?;
    let what = format!("reading state topic `{topic}`");
    let metadata = reader
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(KafkaError::client(what.clone()))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len()) as i32;
    if partitions == 0 {
        return Err(KafkaError::Other(format!(
            "state topic `{topic}` does not exist (create it compacted: cleanup.policy=compact)"
        )));
    }
    let read: Vec<i32> = match only {
        Some(p) if p < partitions => vec![p],
        Some(p) => {
            return Err(KafkaError::Other(format!(
                "state topic `{topic}` has no partition {p} ({partitions} partitions)"
            )))
        }
        None => (0..partitions).collect(),
    };
    let mut assignment = TopicPartitionList::new();
    for &p in &read {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(KafkaError::client(what.clone()))?;
    }
    let partitions = read.len() as i32;
    reader
        .assign(&assignment)
        .map_err(KafkaError::client(what.clone()))?;
    let mut at_end = 0;
    let started = Instant::now();
    // Read every partition to its end (partition EOF events).
    while at_end < partitions && started.elapsed() < READ_LIMIT {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => each(msg.key(), msg.payload()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => tracing::warn!(error = %e, "reading the state topic"),
            None => {}
        }
    }
    if at_end < partitions {
        tracing::warn!(
            topic,
            "the state topic's end was not reached in {READ_LIMIT:?}; using the records read"
        );
    }
    Ok(())
}
