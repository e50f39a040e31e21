//! The logsource a source declares for all its events.

use serde::{Deserialize, Serialize};

/// Logsource tags a source declares for all its events (e.g. `product = "zeek"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsourceTags {
    /// Sigma logsource `product` (e.g. `windows`, `zeek`).
    pub product: Option<String>,
    /// Sigma logsource `category` (e.g. `process_creation`).
    pub category: Option<String>,
    /// Sigma logsource `service` (e.g. `sshd`, `security`).
    pub service: Option<String>,
}

impl LogsourceTags {
    /// The tags that are set, as `(key, value)` pairs with the value lowercased,
    /// in the order product, category, service.
    pub fn pairs(&self) -> Vec<(String, String)> {
        [
            ("product", &self.product),
            ("category", &self.category),
            ("service", &self.service),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.to_ascii_lowercase())))
        .collect()
    }
}
