//! The logsource a source declares for all its events.

use serde::{Deserialize, Serialize};

/// Logsource tags a source declares for all its events (e.g. `product = "zeek"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsourceTags {
    pub product: Option<String>,
    pub category: Option<String>,
    pub service: Option<String>,
}

impl LogsourceTags {
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
