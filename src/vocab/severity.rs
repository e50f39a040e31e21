//! The two labels every alert line starts with: its type and its severity.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What produced the alert. The text form is part of the alert line contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertType {
    /// A Sigma detection or correlation rule matched.
    #[serde(rename = "STATIC RULE")]
    StaticRule,
    /// An anomaly rule decided that ML anomalies make an alert.
    #[serde(rename = "ANOMALY DETECTED")]
    Anomaly,
}

impl AlertType {
    /// The alert line label: `STATIC RULE` or `ANOMALY DETECTED`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::StaticRule => "STATIC RULE",
            AlertType::Anomaly => "ANOMALY DETECTED",
        }
    }
}

impl fmt::Display for AlertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Alert severity, ordered from least to most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Sigma `informational`: the least urgent.
    Informational,
    /// Sigma `low`.
    Low,
    /// Sigma `medium`.
    Medium,
    /// Sigma `high`.
    High,
    /// Sigma `critical`: the most urgent.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Maps a Sigma `level` (case-insensitive) to a severity.
    pub fn from_sigma_level(level: &str) -> Option<Severity> {
        match level.to_ascii_lowercase().as_str() {
            "informational" => Some(Severity::Informational),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// The anomaly score bands of the triage SLA table:
    /// Critical >= 80, High 50-79, Medium 20-49, Low < 20. The band is
    /// decided on the score as the alert line prints it (whole, rounded):
    /// 79.7 is printed 80 and is Critical, never `[High/80]`.
    pub fn from_anomaly_score(score: f64) -> Severity {
        let score = printed_score(score);
        if score >= 80 {
            Severity::Critical
        } else if score >= 50 {
            Severity::High
        } else if score >= 20 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// The capitalised form used in the alert line, e.g. `High`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    /// The lowercase form used in config keys and metric labels.
    pub fn key(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// An anomaly score as people see it: whole, rounded half away from zero.
pub(crate) fn printed_score(score: f64) -> i64 {
    score.round() as i64
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_score_bands_follow_the_sla_table() {
        assert_eq!(Severity::from_anomaly_score(100.0), Severity::Critical);
        assert_eq!(Severity::from_anomaly_score(80.0), Severity::Critical);
        assert_eq!(Severity::from_anomaly_score(79.4), Severity::High);
        assert_eq!(Severity::from_anomaly_score(50.0), Severity::High);
        assert_eq!(Severity::from_anomaly_score(49.4), Severity::Medium);
        assert_eq!(Severity::from_anomaly_score(20.0), Severity::Medium);
        assert_eq!(Severity::from_anomaly_score(19.4), Severity::Low);
        // The band follows the printed score: never `[High/80]`.
        for (score, band) in [
            (79.95, Severity::Critical),
            (79.5, Severity::Critical),
            (49.95, Severity::High),
            (19.95, Severity::Medium),
        ] {
            assert_eq!(Severity::from_anomaly_score(score), band, "{score}");
            let printed = printed_score(score);
            assert_eq!(
                Severity::from_anomaly_score(printed as f64),
                band,
                "{printed}"
            );
        }
        assert_eq!(Severity::from_anomaly_score(0.0), Severity::Low);
    }

    #[test]
    fn sigma_levels_map_case_insensitively() {
        assert_eq!(Severity::from_sigma_level("HIGH"), Some(Severity::High));
        assert_eq!(
            Severity::from_sigma_level("informational"),
            Some(Severity::Informational)
        );
        assert_eq!(Severity::from_sigma_level("urgent"), None);
    }

    #[test]
    fn alert_type_text_is_the_line_contract() {
        assert_eq!(AlertType::StaticRule.to_string(), "STATIC RULE");
        assert_eq!(AlertType::Anomaly.to_string(), "ANOMALY DETECTED");
    }
}
