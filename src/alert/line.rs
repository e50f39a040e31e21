//! The alert text line: `SIEM ALERT -- <type> - [<severity>] <message>. Check <link>`.
//!
//! The line is a contract with SOC tooling that greps and forwards it, so
//! event data can never break it: control characters and line breaks from
//! events are escaped, and long values are shortened.

use crate::vocab::{AlertType, Severity};
use std::fmt::Write as _;

/// Formats an alert line. `score` is given for anomalies (`[High/63]`).
pub(crate) fn format_line(
    alert_type: AlertType,
    severity: Severity,
    score: Option<f64>,
    message: &str,
    link: &str,
) -> String {
    let mut line = String::with_capacity(message.len() + link.len() + 48);
    let _ = write!(line, "SIEM ALERT -- {alert_type} - [{}", severity.label());
    if let Some(score) = score {
        let _ = write!(line, "/{}", crate::vocab::severity::printed_score(score));
    }
    line.push_str("] ");
    escape_into(&mut line, message);
    line.push_str(". Check ");
    escape_into(&mut line, link);
    line
}

pub(crate) use crate::vocab::text::escape_into;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_rule_lines_follow_the_contract_exactly() {
        let line = format_line(
            AlertType::StaticRule,
            Severity::High,
            None,
            "SSH invalid user: host=h, message=Invalid user x",
            "https://siem.example.com/alerts/abc",
        );
        assert_eq!(
            line,
            "SIEM ALERT -- STATIC RULE - [High] SSH invalid user: host=h, message=Invalid user x. Check https://siem.example.com/alerts/abc"
        );
    }

    #[test]
    fn anomaly_lines_carry_the_score() {
        let line = format_line(
            AlertType::Anomaly,
            Severity::High,
            Some(63.4),
            "job: x",
            "l",
        );
        assert_eq!(
            line,
            "SIEM ALERT -- ANOMALY DETECTED - [High/63] job: x. Check l"
        );
    }

    #[test]
    fn bidirectional_and_zero_width_characters_are_shown_escaped() {
        let line = format_line(
            AlertType::StaticRule,
            Severity::Low,
            None,
            "user=admin\u{202e}gpj.exe\u{200b}\u{2066}x\u{feff}",
            "l",
        );
        assert!(
            line.contains("admin\\u{202e}gpj.exe\\u{200b}\\u{2066}x\\u{feff}"),
            "{line}"
        );
        assert!(format_line(
            AlertType::StaticRule,
            Severity::Low,
            None,
            "naïve café ✓",
            "l"
        )
        .contains("naïve café ✓"));
    }

    #[test]
    fn event_data_cannot_break_the_line() {
        let line = format_line(
            AlertType::StaticRule,
            Severity::Low,
            None,
            "t: a\nSIEM ALERT -- fake\r\t\u{1b}[31m\u{2028}",
            "l",
        );
        assert_eq!(line.lines().count(), 1);
        assert!(
            line.contains("a\\nSIEM ALERT -- fake\\r\\t\\u{001b}[31m\\u{2028}"),
            "{line}"
        );
    }
}
