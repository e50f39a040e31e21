//! Triage SLA policy: how long an analyst has to triage an alert, and the
//! exact deadline (`due_at`) that follows from when it was detected.
//!
//! The window comes from one of two severity tables, one for static rule
//! alerts and one for anomaly alerts (see [`SeverityTable::static_rule_defaults`]
//! and [`SeverityTable::anomaly_defaults`]). The deadline is computed by a
//! [`BusinessCalendar`]: Monday to Friday in one time zone, minus holidays.
//!
//! # How a deadline is computed
//!
//! * [`TriageWindow::Hours`]`(n)` is exactly `n * 3600` seconds of elapsed
//!   time. Hours are for urgent work that runs around the clock, so daylight
//!   saving time must not stretch or shrink them.
//! * [`TriageWindow::Days`]`(n)` is the same local wall-clock time `n`
//!   calendar days later. Weekends and holidays count. Across a DST change a
//!   "1 day" deadline is 23 or 25 elapsed hours, because the team reads a
//!   deadline off the clock on the wall, and "tomorrow at the same time"
//!   should stay that.
//! * [`TriageWindow::BusinessDays`]`(n)` is business time: the clock only
//!   runs on business days, 24 local hours each, and `n * 24` of those hours
//!   are consumed. A start on a weekend or holiday starts the clock at 00:00
//!   of the next business day, so an alert raised on Saturday gets the same
//!   deadline as one raised at the first moment of Monday. A deadline that
//!   falls exactly at the end of a business day is reported as 00:00 of the
//!   following calendar day (Saturday 00:00 for the end of Friday), not as
//!   00:00 of the next business day, which would hand out a whole weekend
//!   that the window never contained.
//!
//! All day arithmetic happens in local naive time; only the result goes back
//! to UTC. A local time that does not exist (the spring-forward gap) resolves
//! to the first instant after the gap, which is the moment the wall clock
//! passes that time. An ambiguous local time (the fall-back overlap) resolves
//! to the earlier instant, so a deadline is never later than the clock says.
//!
//! # Limits
//!
//! A holiday list can make every day for years a non-business day. Looking
//! for the next business day therefore gives up after
//! [`MAX_NON_BUSINESS_RUN`] days; from there on the calendar is treated as
//! unusable and the rest of the window is counted as plain calendar days,
//! which is the most generous reading that still gives a finite deadline.
//! A deadline past the end of chrono's representable range (only reachable
//! with absurd windows such as `u32::MAX` days) saturates to
//! [`DateTime::<Utc>::MAX_UTC`] instead of panicking. A window of zero
//! (which parsing rejects, but the enum can still be built directly) is due
//! at its start.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::vocab::{AlertType, Severity};

mod calendar;
#[cfg(test)]
mod tests;

pub(crate) use calendar::BusinessCalendar;

/// Wrong input to the SLA policy. Each message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    /// A triage window string that does not parse.
    #[error("invalid triage window {input:?}: {reason}")]
    InvalidWindow { input: String, reason: String },
    /// A time zone name that is not in the IANA database.
    #[error(
        "unknown time zone {name:?} in [sla] timezone; expected an IANA name such as \"UTC\" or \"Europe/Berlin\""
    )]
    UnknownTimeZone { name: String },
}

/// How long triage may take.
///
/// Parsed from strings like `"24h"`, `"36 hours"`, `"1 day"`, `"2 days"`,
/// `"2d"`, `"5 business days"`, `"5bd"` or `"1 business day"` (case and
/// spacing are not significant). Displayed, and serialized, in the canonical
/// long form: `"24 hours"`, `"1 day"`, `"5 business days"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriageWindow {
    /// Elapsed hours.
    Hours(u32),
    /// Calendar days, same local clock time.
    Days(u32),
    /// Business days of 24 local hours each.
    BusinessDays(u32),
}

impl FromStr for TriageWindow {
    type Err = SlaError;

    fn from_str(input: &str) -> Result<Self, SlaError> {
        let invalid = |reason: String| SlaError::InvalidWindow {
            input: input.to_string(),
            reason,
        };
        let text = input.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err(invalid(
                "it is empty; expected e.g. \"24h\", \"2 days\" or \"5 business days\"".into(),
            ));
        }
        if text.starts_with('-') {
            return Err(invalid("it must be positive".into()));
        }
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, rest) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(invalid("it must start with a whole number".into()));
        }
        if rest.starts_with(['.', ',']) {
            return Err(invalid("the count must be a whole number".into()));
        }
        let count: u32 = digits
            .parse()
            .map_err(|_| invalid(format!("the count {digits} is too large")))?;
        if count == 0 {
            return Err(invalid("it must be greater than zero".into()));
        }
        let unit = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        match unit.as_str() {
            "h" | "hr" | "hrs" | "hour" | "hours" => Ok(TriageWindow::Hours(count)),
            "d" | "day" | "days" => Ok(TriageWindow::Days(count)),
            "bd" | "business day" | "business days" => Ok(TriageWindow::BusinessDays(count)),
            "" => Err(invalid(
                "the unit is missing; expected hours (h), days (d) or business days (bd)".into(),
            )),
            other => Err(invalid(format!(
                "unknown unit {other:?}; expected hours (h), days (d) or business days (bd)"
            ))),
        }
    }
}

impl fmt::Display for TriageWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (count, one, many) = match *self {
            TriageWindow::Hours(n) => (n, "hour", "hours"),
            TriageWindow::Days(n) => (n, "day", "days"),
            TriageWindow::BusinessDays(n) => (n, "business day", "business days"),
        };
        write!(f, "{count} {}", if count == 1 { one } else { many })
    }
}

impl Serialize for TriageWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TriageWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One triage window per severity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeverityTable {
    pub critical: TriageWindow,
    pub high: TriageWindow,
    pub medium: TriageWindow,
    pub low: TriageWindow,
    pub informational: TriageWindow,
}

impl SeverityTable {
    /// The default table for static rule alerts.
    pub fn static_rule_defaults() -> Self {
        SeverityTable {
            critical: TriageWindow::Days(1),
            high: TriageWindow::Days(2),
            medium: TriageWindow::BusinessDays(5),
            low: TriageWindow::BusinessDays(10),
            informational: TriageWindow::BusinessDays(10),
        }
    }

    /// The default table for anomaly alerts: one more day than static rules
    /// for critical and high, the same business-day rows below.
    pub fn anomaly_defaults() -> Self {
        SeverityTable {
            critical: TriageWindow::Days(2),
            high: TriageWindow::Days(3),
            ..SeverityTable::static_rule_defaults()
        }
    }

    pub fn window(&self, severity: Severity) -> TriageWindow {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Informational => self.informational,
        }
    }
}

impl Default for SeverityTable {
    /// The static rule table. A standalone table cannot know which policy it
    /// belongs to; [`SlaConfig`] fills a partial `[sla.anomaly]` from
    /// [`SeverityTable::anomaly_defaults`] instead.
    fn default() -> Self {
        SeverityTable::static_rule_defaults()
    }
}

/// Per-severity overrides: what a partial `[sla.*]` table says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableOverrides {
    critical: Option<TriageWindow>,
    high: Option<TriageWindow>,
    medium: Option<TriageWindow>,
    low: Option<TriageWindow>,
    informational: Option<TriageWindow>,
}

impl TableOverrides {
    fn over(self, base: SeverityTable) -> SeverityTable {
        SeverityTable {
            critical: self.critical.unwrap_or(base.critical),
            high: self.high.unwrap_or(base.high),
            medium: self.medium.unwrap_or(base.medium),
            low: self.low.unwrap_or(base.low),
            informational: self.informational.unwrap_or(base.informational),
        }
    }
}

fn static_rule_table<'de, D: Deserializer<'de>>(d: D) -> Result<SeverityTable, D::Error> {
    Ok(TableOverrides::deserialize(d)?.over(SeverityTable::static_rule_defaults()))
}

fn anomaly_table<'de, D: Deserializer<'de>>(d: D) -> Result<SeverityTable, D::Error> {
    Ok(TableOverrides::deserialize(d)?.over(SeverityTable::anomaly_defaults()))
}

/// The `[sla]` config section. Every field is optional; a partial severity
/// table keeps its own policy's defaults for the rows it leaves out.
///
/// ```toml
/// [sla]
/// timezone = "Europe/Berlin"
/// holidays = ["2026-12-25", "2027-01-01"]
/// [sla.anomaly]
/// critical = "12h"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    /// IANA time zone name of the triage team.
    pub timezone: String,
    /// Local dates that are not business days.
    pub holidays: Vec<NaiveDate>,
    /// `[sla.static_rule]`: triage window per severity for static rule alerts. Rows
    /// left out keep their default: critical 1 day, high 2 days, medium 5 business
    /// days, low and informational 10 business days.
    #[serde(deserialize_with = "static_rule_table")]
    pub static_rule: SeverityTable,
    /// `[sla.anomaly]`: the same for anomaly alerts. Defaults: critical 2 days,
    /// high 3 days, the lower rows as for static rules.
    #[serde(deserialize_with = "anomaly_table")]
    pub anomaly: SeverityTable,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig {
            timezone: "UTC".to_string(),
            holidays: Vec::new(),
            static_rule: SeverityTable::static_rule_defaults(),
            anomaly: SeverityTable::anomaly_defaults(),
        }
    }
}

/// The compiled policy: the two tables and the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaPolicy {
    calendar: BusinessCalendar,
    static_rule: SeverityTable,
    anomaly: SeverityTable,
}

impl Default for SlaPolicy {
    /// The default tables, UTC, no holidays.
    fn default() -> Self {
        SlaPolicy {
            calendar: BusinessCalendar::default(),
            static_rule: SeverityTable::static_rule_defaults(),
            anomaly: SeverityTable::anomaly_defaults(),
        }
    }
}

impl SlaPolicy {
    /// Compiles the `[sla]` section; fails when `timezone` is not an IANA name.
    pub fn from_config(cfg: &SlaConfig) -> Result<SlaPolicy, SlaError> {
        let name = cfg.timezone.trim();
        let tz: Tz = name.parse().map_err(|_| SlaError::UnknownTimeZone {
            name: cfg.timezone.clone(),
        })?;
        Ok(SlaPolicy {
            calendar: BusinessCalendar::new(tz, cfg.holidays.iter().copied()),
            static_rule: cfg.static_rule.clone(),
            anomaly: cfg.anomaly.clone(),
        })
    }

    /// The business calendar deadlines are counted in.
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.calendar
    }

    /// The triage window for an alert of this type and severity.
    pub fn window(&self, alert_type: AlertType, severity: Severity) -> TriageWindow {
        match alert_type {
            AlertType::StaticRule => self.static_rule.window(severity),
            AlertType::Anomaly => self.anomaly.window(severity),
        }
    }

    /// The SLA to record on an alert detected at `detected_at`.
    pub fn for_alert(
        &self,
        alert_type: AlertType,
        severity: Severity,
        detected_at: DateTime<Utc>,
    ) -> Sla {
        let window = self.window(alert_type, severity);
        Sla {
            policy: policy_name(alert_type).to_string(),
            triage_within: window,
            due_at: self.calendar.due_at(detected_at, window),
        }
    }
}

/// The `policy` value of an [`Sla`]: the config table the window came from.
pub(crate) fn policy_name(alert_type: AlertType) -> &'static str {
    match alert_type {
        AlertType::StaticRule => "static_rule",
        AlertType::Anomaly => "anomaly",
    }
}

/// The SLA part of an alert record. `due_at` serializes as RFC 3339 in UTC,
/// e.g. `"2026-11-27T17:00:00Z"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sla {
    /// `"static_rule"` or `"anomaly"`.
    pub policy: String,
    /// The window from the policy's table, e.g. `"5 business days"`.
    pub triage_within: TriageWindow,
    /// The deadline: `detected_at` plus the window, by the business calendar.
    pub due_at: DateTime<Utc>,
}
