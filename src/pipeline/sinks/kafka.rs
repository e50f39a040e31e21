//! The Kafka sink: records to a topic through the pipeline's one producer
//! (in exactly-once mode one transaction covers every Kafka sink), keyed
//! so one story stays on one partition, cut to fit the topic.

use super::{Outgoing, OutputFormat, Sink, SinkContext, SinkError};
use crate::pipeline::kafka::producer::{self, KafkaProducer, Pending};
use crate::pipeline::kafka::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// `[[sinks]] type = "kafka"`: the alert record as JSON (or the text line),
/// keyed by the alert id (correlation alerts: the group key), with headers
/// `type`, `severity` and `rule_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The topic to write to (`topic`); needs `[kafka]` configured.
    pub topic: String,
    /// `json` (default) or `text`.
    #[serde(default = "super::file::json")]
    pub format: OutputFormat,
}

impl KafkaSinkConfig {
    pub(crate) fn open(&self, context: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        let producer = context.producer.ok_or_else(|| {
            failure(
                &self.topic,
                KafkaError::Other("no producer (is [kafka] configured?)".into()),
            )
        })?;
        Ok(Box::new(KafkaSink {
            producer: producer.clone(),
            topic: self.topic.clone(),
            format: self.format,
        }))
    }
}

fn failure(topic: &str, e: KafkaError) -> SinkError {
    SinkError::new(format!("kafka topic {topic}"), std::io::Error::other(e))
}

struct KafkaSink {
    producer: Arc<KafkaProducer>,
    topic: String,
    format: OutputFormat,
}

impl Sink for KafkaSink {
    fn write(&mut self, record: &dyn Outgoing, pending: &mut Pending) -> Result<(), SinkError> {
        let json = self.format == OutputFormat::Json;
        let value = match json {
            false => record.line().as_bytes().to_vec(),
            true => record.json().map_err(|e| {
                failure(&self.topic, KafkaError::Other(format!("serialising: {e}")))
            })?,
        };
        let key = record.key();
        let headers = record
            .headers()
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value.as_ref()),
                })
            });
        // A JSON record too large for the topic first loses its event body.
        let (value, headers) = producer::fit(
            &self.producer,
            &self.topic,
            key.as_bytes(),
            headers,
            Cow::Owned(value),
            |whole| json.then(|| record.shrunk_json(whole)).flatten(),
        );
        producer::send(
            &self.producer,
            &self.topic,
            Some(key.as_bytes()),
            &value,
            headers,
            pending,
        )
        .map_err(|e| failure(&self.topic, e))
    }
}
