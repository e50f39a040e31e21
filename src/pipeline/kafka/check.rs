//! `tocsin config check --connect`: do the brokers answer, and do the
//! topics the configuration reads and writes exist?

use super::{client_config, KafkaError, Role};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;

/// What the brokers said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerCheck {
    /// Brokers in the cluster's metadata.
    pub brokers: usize,
    /// Of the topics asked about, those the cluster does not have.
    pub missing_topics: Vec<String>,
}

/// Fetches the cluster's metadata within `timeout` and says which of
/// `topics` are missing. Fails when no broker answers.
pub fn check_brokers(
    properties: &[(String, String)],
    topics: &[String],
    timeout: Duration,
) -> Result<BrokerCheck, KafkaError> {
    let consumer: BaseConsumer = client_config(properties, Role::Consumer, &[], &[])
        .create()
        .map_err(KafkaError::client("creating a client"))?;
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(KafkaError::client("fetching the cluster metadata"))?;
    let present: Vec<&str> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .collect();
    Ok(BrokerCheck {
        brokers: metadata.brokers().len(),
        missing_topics: topics
            .iter()
            .filter(|t| !present.contains(&t.as_str()))
            .cloned()
            .collect(),
    })
}
