//! Dead letters: records that could not become events, kept with the
//! reason, and where they go (stderr, a file, a Kafka topic).

use super::kafka::producer::{self, KafkaProducer, Pending};
use super::kafka::KafkaError;
use super::sinks::{LineWriter, SinkError};
use crate::event::{Origin, Position};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rdkafka::message::{Header, OwnedHeaders};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// Where records that cannot be parsed go, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// JSON lines on standard error.
    #[default]
    Stderr,
    /// JSON lines appended to a file.
    File {
        /// The file (`path`); created if absent.
        path: PathBuf,
    },
    /// A Kafka topic: the original bytes as the value, the reason and the
    /// source topic, partition and offset in headers.
    Kafka {
        /// The topic (`topic`); needs `[kafka]` configured.
        topic: String,
    },
}

/// A record that could not be parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Why the record could not be an event, cut to [`MAX_REASON_CHARS`].
    pub reason: String,
    /// Where the record was read.
    pub source: Origin,
    /// When the record was read (wall clock).
    pub received_at: DateTime<Utc>,
    /// The record as text (invalid UTF-8 replaced).
    pub payload: String,
    /// The exact bytes, when they were not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The record exactly as received, for destinations that keep bytes (Kafka).
    #[serde(skip)]
    pub original: Vec<u8>,
    /// When the payload is only the beginning of the record: the whole
    /// record's size and hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole: Option<Whole>,
}

/// The size and SHA-256 of a record of which only a part is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Whole {
    /// The whole record's length in bytes.
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Whole {
    /// From a length and a raw SHA-256 digest.
    pub fn of(bytes: u64, sha256: &[u8; 32]) -> Whole {
        Whole {
            bytes,
            sha256: crate::vocab::text::hex(sha256),
        }
    }

    /// The size and hash of `data`.
    pub fn hash(data: &[u8]) -> Whole {
        use sha2::Digest;
        Whole::of(data.len() as u64, &sha2::Sha256::digest(data).into())
    }
}

/// Longest reason kept, in characters: reasons quote what they found, and
/// travel in Kafka headers.
pub const MAX_REASON_CHARS: usize = 1000;

impl DeadLetter {
    /// A dead letter for the record `bytes`, read from `source` at `received_at`.
    /// The reason is cut to [`MAX_REASON_CHARS`]; the text payload loses its trailing
    /// line end, and bytes that are not UTF-8 are also kept in base64.
    pub fn new(reason: String, source: Origin, received_at: DateTime<Utc>, bytes: &[u8]) -> Self {
        let reason = match crate::vocab::text::shorten(&reason, MAX_REASON_CHARS) {
            std::borrow::Cow::Borrowed(_) => reason,
            std::borrow::Cow::Owned(short) => short,
        };
        let (payload, payload_base64) = match std::str::from_utf8(bytes) {
            Ok(text) => (text.trim_end_matches(['\n', '\r']).to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        DeadLetter {
            reason,
            source,
            received_at,
            payload,
            payload_base64,
            original: bytes.to_vec(),
            whole: None,
        }
    }
}

/// The dead-letter destination: JSON lines with the reason and the record,
/// or a Kafka topic with the original bytes.
pub struct DeadLetterSink {
    target: Target,
}

enum Target {
    Lines(LineWriter),
    /// The producer and the topic.
    Kafka(Arc<KafkaProducer>, String),
}

impl DeadLetterSink {
    /// Opens the destination `cfg` names; a file is created if absent and appended to.
    /// Fails when the file cannot be opened, or a Kafka destination has no `producer`.
    pub fn open(
        cfg: &DeadLetterConfig,
        producer: Option<&Arc<KafkaProducer>>,
    ) -> Result<DeadLetterSink, SinkError> {
        Ok(DeadLetterSink {
            target: match cfg {
                DeadLetterConfig::Stderr => Target::Lines(LineWriter::stderr()),
                DeadLetterConfig::File { path } => Target::Lines(LineWriter::append(path)?),
                DeadLetterConfig::Kafka { topic } => {
                    let producer = producer.ok_or_else(|| {
                        kafka_failure(
                            topic,
                            KafkaError::Other("no producer (is [kafka] configured?)".into()),
                        )
                    })?;
                    Target::Kafka(producer.clone(), topic.clone())
                }
            },
        })
    }

    /// A name for metrics.
    pub fn name(&self) -> &str {
        match &self.target {
            Target::Lines(w) => w.name(),
            Target::Kafka(_, topic) => topic,
        }
    }

    /// Writes one dead letter. To Kafka it is only queued: the delivery joins `pending`.
    pub fn write(&mut self, letter: &DeadLetter, pending: &mut Pending) -> Result<(), SinkError> {
        match &mut self.target {
            Target::Lines(w) => w.json_line(letter),
            Target::Kafka(producer, topic) => write_to_topic(producer, topic, letter, pending)
                .map_err(|e| kafka_failure(topic, e)),
        }
    }

    /// Writes out buffered lines. Kafka deliveries are awaited by the commit stage.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.target {
            Target::Lines(w) => w.flush(),
            Target::Kafka(..) => Ok(()),
        }
    }
}

fn kafka_failure(topic: &str, e: KafkaError) -> SinkError {
    SinkError::new(format!("kafka topic {topic}"), std::io::Error::other(e))
}

/// The original bytes, with the reason and where they came from in
/// headers; cut to fit the topic.
fn write_to_topic(
    producer: &KafkaProducer,
    topic: &str,
    letter: &DeadLetter,
    pending: &mut Pending,
) -> Result<(), KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: "reason",
            value: Some(letter.reason.as_str()),
        })
        .insert(Header {
            key: "source",
            value: Some(letter.source.source.as_str()),
        });
    if let Position::Offset { partition, offset } = letter.source.position {
        headers = headers
            .insert(Header {
                key: "source_topic",
                value: Some(letter.source.source.as_str()),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(&partition.to_string()),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(&offset.to_string()),
            });
    }
    let received = letter.received_at.to_rfc3339();
    headers = headers.insert(Header {
        key: "received_at",
        value: Some(&received),
    });
    // A record over engine.max_record_bytes arrives as its beginning.
    if let Some(whole) = &letter.whole {
        headers = producer::cut_headers(headers, whole);
    }
    let (value, headers) = producer::fit(
        producer,
        topic,
        &[],
        headers,
        Cow::Borrowed(letter.original.as_slice()),
        |_| None,
    );
    producer::send(producer, topic, None, &value, headers, pending)
}
