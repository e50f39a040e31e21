//! The `[alert]` section: how alerts are linked and which levels alert.

use serde::{Deserialize, Serialize};

/// How alerts are built. Serde form of the `[alert]` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// `{id}` and `{rule_id}` are replaced.
    pub link_template: String,
    /// Whether `informational` rules raise alerts.
    pub informational: bool,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            link_template: "https://siem.example.com/alerts/{id}".into(),
            informational: false,
        }
    }
}
