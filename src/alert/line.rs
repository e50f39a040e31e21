//! The alert text line: `SIEM ALERT -- <type> - [<severity>] <message>. Check <link>`.
//!
//! The line is a contract with SOC tooling that greps and forwards it, so
//! event data can never break it: control characters and line breaks from
//! events are escaped, and long values are shortened.

use super::severity::{AlertType, Severity};
use std::fmt::Write as _;

/// Longest value shown per field in a summary, in characters.
pub const MAX_VALUE_CHARS: usize = 120;
/// Most fields shown in a summary.
pub const MAX_SUMMARY_FIELDS: usize = 5;

/// Formats an alert line. `score` is given for anomalies (`[High/63]`).
pub fn format_line(
    alert_type: AlertType,
    severity: Severity,
    score: Option<f64>,
    message: &str,
    link: &str,
) -> String {
    let mut line = String::with_capacity(message.len() + link.len() + 48);
    let _ = write!(line, "SIEM ALERT -- {alert_type} - [{}", severity.label());
    if let Some(score) = score {
        let _ = write!(line, "/{}", score.round() as i64);
    }
    line.push_str("] ");
    escape_into(&mut line, message);
    line.push_str(". Check ");
    escape_into(&mut line, link);
    line
}

/// Appends `text` with control characters, line breaks, Unicode line
/// separators and invisible formatting characters escaped, so the line
/// stays one line and reads as what it says: a right-to-left override or a
/// zero-width space in event data could otherwise make a line display
/// differently from its bytes (as in "Trojan Source" attacks).
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Line and paragraph separators, bidirectional controls, zero-width and
/// other invisible formatting characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{2028}'
            | '\u{2029}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

pub use crate::vocab::text::shorten;

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
