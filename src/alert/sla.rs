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

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::vocab::{AlertType, Severity};

/// How many consecutive non-business days are searched for the next business
/// day before the calendar is given up on (about ten years).
pub const MAX_NON_BUSINESS_RUN: u64 = 3660;

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

/// Monday-Friday business days in a time zone, minus holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    tz: Tz,
    holidays: BTreeSet<NaiveDate>,
}

impl Default for BusinessCalendar {
    /// UTC without holidays.
    fn default() -> Self {
        BusinessCalendar::new(Tz::UTC, [])
    }
}

impl BusinessCalendar {
    pub fn new(tz: Tz, holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        BusinessCalendar {
            tz,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Whether `date` (a local date in the calendar's zone) is a weekday that
    /// is not a holiday.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        is_weekday(date) && !self.holidays.contains(&date)
    }

    /// The exact deadline of `window` started at `start`; see the module
    /// documentation for the rules.
    pub fn due_at(&self, start: DateTime<Utc>, window: TriageWindow) -> DateTime<Utc> {
        self.checked_due_at(start, window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `due_at`, with `None` when the deadline is out of chrono's range.
    fn checked_due_at(&self, start: DateTime<Utc>, window: TriageWindow) -> Option<DateTime<Utc>> {
        match window {
            TriageWindow::Hours(0) | TriageWindow::Days(0) | TriageWindow::BusinessDays(0) => {
                Some(start)
            }
            TriageWindow::Hours(n) => start.checked_add_signed(TimeDelta::try_hours(n.into())?),
            TriageWindow::Days(n) => {
                let local = local_time(self.tz, start)?;
                let date = add_days(local.date(), n.into())?;
                resolve_local(self.tz, date.and_time(local.time()))
            }
            TriageWindow::BusinessDays(n) => {
                let local = local_time(self.tz, start)?;
                resolve_local(self.tz, self.add_business_time(local, n)?)
            }
        }
    }

    /// Adds `n >= 1` business days of 24 local hours to `local`.
    fn add_business_time(&self, local: NaiveDateTime, n: u32) -> Option<NaiveDateTime> {
        let (first_day, clock) = if self.is_business_day(local.date()) {
            (local.date(), local.time())
        } else {
            match self.next_business_day(local.date()) {
                Some(day) => (day, NaiveTime::MIN),
                // No business day in sight: every day counts from here on.
                None => return Some(add_days(local.date(), n.into())?.and_time(local.time())),
            }
        };
        if clock == NaiveTime::MIN {
            // Whole business days starting at midnight end at the end of the
            // n-th one, which is midnight of the calendar day after it.
            let last_day = self.nth_business_day_after(first_day, n - 1)?;
            Some(add_days(last_day, 1)?.and_time(NaiveTime::MIN))
        } else {
            Some(self.nth_business_day_after(first_day, n)?.and_time(clock))
        }
    }

    /// The first business day after `date`, searching at most
    /// [`MAX_NON_BUSINESS_RUN`] days.
    fn next_business_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        (1..=MAX_NON_BUSINESS_RUN)
            .map_while(|offset| add_days(date, offset))
            .find(|&day| self.is_business_day(day))
    }

    /// The `k`-th business day after the business day `day`.
    ///
    /// Runs of plain weekdays up to the next holiday are jumped over in one
    /// step, so the cost grows with the number of holidays passed, not with
    /// `k`: an absurd window cannot make this slow.
    fn nth_business_day_after(&self, mut day: NaiveDate, k: u32) -> Option<NaiveDate> {
        let mut left = u64::from(k);
        while left > 0 {
            let next_holiday = self
                .holidays
                .range((Bound::Excluded(day), Bound::Unbounded))
                .next();
            let Some(&holiday) = next_holiday else {
                return add_weekdays(day, left);
            };
            let free = weekdays_between(day, holiday);
            if left <= free {
                return add_weekdays(day, left);
            }
            day = add_weekdays(day, free)?;
            left -= free;
            match self.next_business_day(day) {
                Some(next) => {
                    day = next;
                    left -= 1;
                }
                // No business day in sight: every day counts from here on.
                None => return add_days(day, left),
            }
        }
        Some(day)
    }
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn add_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_add_days(chrono::Days::new(days))
}

/// The number of weekdays strictly between `from` and `until`.
fn weekdays_between(from: NaiveDate, until: NaiveDate) -> u64 {
    let span = (until - from).num_days();
    if span <= 1 {
        return 0;
    }
    // Count the days in (from, until): whole weeks have five weekdays each,
    // the rest are checked one by one.
    let inner = span.unsigned_abs() - 1;
    let first = u64::from(from.weekday().succ().num_days_from_monday());
    let partial = (0..inner % 7).filter(|i| (first + i) % 7 < 5).count();
    inner / 7 * 5 + partial as u64
}

/// The `k`-th weekday after `date` (`date` itself for `k == 0`).
fn add_weekdays(date: NaiveDate, k: u64) -> Option<NaiveDate> {
    if k == 0 {
        return Some(date);
    }
    // The weekdays after a Saturday or Sunday are those after the Friday
    // before it.
    let weekday = u64::from(date.weekday().num_days_from_monday());
    let (base, weekday) = if weekday >= 5 {
        (date.checked_sub_days(chrono::Days::new(weekday - 4))?, 4)
    } else {
        (date, weekday)
    };
    let rest = k % 5;
    let weekend = if rest > 0 && weekday + rest > 4 { 2 } else { 0 };
    add_days(
        base,
        (k / 5).saturating_mul(7).saturating_add(rest + weekend),
    )
}

/// The local wall-clock time of `instant` in `tz`, `None` at the edge of
/// chrono's range (where `with_timezone(..).naive_local()` would panic).
fn local_time(tz: Tz, instant: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = instant.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// The instant at which the wall clock in `tz` shows `local`: the earlier one
/// if it shows it twice, the end of the gap if it skips it.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(instant) => Some(instant.with_timezone(&Utc)),
        MappedLocalTime::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        MappedLocalTime::None => first_instant_after_gap(tz, local),
    }
}

/// The first instant whose wall-clock time in `tz` is past `local`, which for
/// a `local` inside a DST gap is the transition that skipped it.
///
/// chrono-tz does not expose its transition table, so this bisects on whole
/// seconds (transitions are on whole seconds). UTC offsets stay well within
/// 26 hours, so the wall clock is before `local` 26 hours before it and past
/// it 26 hours after it.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    const REACH: i64 = 26 * 3600;
    let wall = |secs: i64| local_time(tz, DateTime::from_timestamp(secs, 0)?);
    let centre = local.and_utc().timestamp();
    let (mut before, mut after) = (centre - REACH, centre + REACH);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if wall(mid)? < local {
            before = mid;
        } else {
            after = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
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
    #[serde(deserialize_with = "static_rule_table")]
    pub static_rule: SeverityTable,
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
pub fn policy_name(alert_type: AlertType) -> &'static str {
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
    pub triage_within: TriageWindow,
    pub due_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UTC instant from "YYYY-MM-DDTHH:MM:SSZ".
    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("test date")
    }

    fn window(text: &str) -> TriageWindow {
        text.parse().expect("test window")
    }

    fn calendar(tz: Tz, holidays: &[&str]) -> BusinessCalendar {
        BusinessCalendar::new(tz, holidays.iter().map(|d| date(d)))
    }

    fn utc_due(start: &str, window_text: &str) -> DateTime<Utc> {
        BusinessCalendar::default().due_at(utc(start), window(window_text))
    }

    // Wednesday 2026-11-18 10:00 UTC.
    const WEDNESDAY: &str = "2026-11-18T10:00:00Z";

    #[test]
    fn static_rule_defaults_follow_the_policy_table() {
        let policy = SlaPolicy::default();
        let rows = [
            (Severity::Critical, "1 day", "2026-11-19T10:00:00Z"),
            (Severity::High, "2 days", "2026-11-20T10:00:00Z"),
            (Severity::Medium, "5 business days", "2026-11-25T10:00:00Z"),
            (Severity::Low, "10 business days", "2026-12-02T10:00:00Z"),
            (
                Severity::Informational,
                "10 business days",
                "2026-12-02T10:00:00Z",
            ),
        ];
        for (severity, within, due) in rows {
            let sla = policy.for_alert(AlertType::StaticRule, severity, utc(WEDNESDAY));
            assert_eq!(sla.policy, "static_rule");
            assert_eq!(sla.triage_within.to_string(), within, "{severity}");
            assert_eq!(sla.due_at, utc(due), "{severity}");
        }
    }

    #[test]
    fn anomaly_defaults_follow_the_policy_table() {
        let policy = SlaPolicy::default();
        let rows = [
            (Severity::Critical, "2 days", "2026-11-20T10:00:00Z"),
            (Severity::High, "3 days", "2026-11-21T10:00:00Z"),
            (Severity::Medium, "5 business days", "2026-11-25T10:00:00Z"),
            (Severity::Low, "10 business days", "2026-12-02T10:00:00Z"),
            (
                Severity::Informational,
                "10 business days",
                "2026-12-02T10:00:00Z",
            ),
        ];
        for (severity, within, due) in rows {
            let sla = policy.for_alert(AlertType::Anomaly, severity, utc(WEDNESDAY));
            assert_eq!(sla.policy, "anomaly");
            assert_eq!(sla.triage_within.to_string(), within, "{severity}");
            assert_eq!(sla.due_at, utc(due), "{severity}");
        }
    }

    #[test]
    fn default_policy_equals_the_default_config() {
        let policy = SlaPolicy::from_config(&SlaConfig::default()).expect("default config");
        assert_eq!(policy, SlaPolicy::default());
        assert_eq!(policy.calendar(), &BusinessCalendar::default());
    }

    #[test]
    fn parses_every_accepted_window_spelling() {
        let cases = [
            ("24h", TriageWindow::Hours(24)),
            ("36 hours", TriageWindow::Hours(36)),
            ("1 hour", TriageWindow::Hours(1)),
            ("8hr", TriageWindow::Hours(8)),
            ("8 hrs", TriageWindow::Hours(8)),
            ("1 day", TriageWindow::Days(1)),
            ("2 days", TriageWindow::Days(2)),
            ("2d", TriageWindow::Days(2)),
            ("1 days", TriageWindow::Days(1)),
            ("5 business days", TriageWindow::BusinessDays(5)),
            ("5bd", TriageWindow::BusinessDays(5)),
            ("5 bd", TriageWindow::BusinessDays(5)),
            ("1 business day", TriageWindow::BusinessDays(1)),
            ("  10  Business   Days ", TriageWindow::BusinessDays(10)),
            ("3D", TriageWindow::Days(3)),
            ("12H", TriageWindow::Hours(12)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<TriageWindow>(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn rejects_zero_negative_fractional_unknown_and_empty_windows() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("0 days", "greater than zero"),
            ("0h", "greater than zero"),
            ("-1 day", "positive"),
            ("1.5 days", "whole number"),
            ("days", "start with a whole number"),
            ("5", "unit is missing"),
            ("5 weeks", "unknown unit \"weeks\""),
            ("5 business", "unknown unit"),
            ("2 days ago", "unknown unit"),
            ("99999999999 hours", "too large"),
        ];
        for (text, reason) in cases {
            let err = text
                .parse::<TriageWindow>()
                .expect_err(&format!("{text:?} should be rejected"));
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("invalid triage window {text:?}")),
                "{message}"
            );
            assert!(message.contains(reason), "{text:?}: {message}");
        }
    }

    #[test]
    fn display_gives_the_canonical_long_form_that_parses_back() {
        let cases = [
            (TriageWindow::Hours(1), "1 hour"),
            (TriageWindow::Hours(24), "24 hours"),
            (TriageWindow::Days(1), "1 day"),
            (TriageWindow::Days(2), "2 days"),
            (TriageWindow::BusinessDays(1), "1 business day"),
            (TriageWindow::BusinessDays(5), "5 business days"),
        ];
        for (window, text) in cases {
            assert_eq!(window.to_string(), text);
            assert_eq!(text.parse::<TriageWindow>(), Ok(window));
        }
    }

    #[test]
    fn windows_serialize_as_their_display_string() {
        let json = serde_json::to_string(&TriageWindow::BusinessDays(5)).expect("serialize");
        assert_eq!(json, "\"5 business days\"");
        let parsed: TriageWindow = serde_json::from_str("\"5bd\"").expect("deserialize");
        assert_eq!(parsed, TriageWindow::BusinessDays(5));
        let err = serde_json::from_str::<TriageWindow>("\"soon\"").expect_err("bad window");
        assert!(err.to_string().contains("invalid triage window \"soon\""));
    }

    #[test]
    fn hours_are_elapsed_time_even_across_dst() {
        let berlin = calendar(Tz::Europe__Berlin, &[]);
        // 2026-03-28 12:00 CET + 24h = 2026-03-29 13:00 CEST.
        assert_eq!(
            berlin.due_at(utc("2026-03-28T11:00:00Z"), TriageWindow::Hours(24)),
            utc("2026-03-29T11:00:00Z")
        );
        assert_eq!(
            utc_due("2026-11-20T17:00:00Z", "36h"),
            utc("2026-11-22T05:00:00Z")
        );
    }

    #[test]
    fn calendar_days_count_weekends_and_holidays() {
        let with_holiday = calendar(Tz::UTC, &["2026-11-23"]);
        assert_eq!(
            with_holiday.due_at(utc("2026-11-20T17:00:00Z"), window("3 days")),
            utc("2026-11-23T17:00:00Z")
        );
    }

    #[test]
    fn business_days_from_friday_skip_the_weekend() {
        assert_eq!(
            utc_due("2026-11-20T17:00:00Z", "5 business days"),
            utc("2026-11-27T17:00:00Z")
        );
        assert_eq!(
            utc_due("2026-11-20T17:00:00Z", "1 business day"),
            utc("2026-11-23T17:00:00Z")
        );
    }

    #[test]
    fn business_days_from_saturday_start_at_monday_midnight() {
        assert_eq!(
            utc_due("2026-11-21T10:00:00Z", "5 business days"),
            utc("2026-11-28T00:00:00Z")
        );
        assert_eq!(
            utc_due("2026-11-21T10:00:00Z", "1 business day"),
            utc("2026-11-24T00:00:00Z")
        );
    }

    #[test]
    fn business_days_from_sunday_start_at_monday_midnight() {
        assert_eq!(
            utc_due("2026-11-22T23:59:59Z", "1 business day"),
            utc("2026-11-24T00:00:00Z")
        );
        assert_eq!(
            utc_due("2026-11-22T00:00:00Z", "10 business days"),
            utc("2026-12-05T00:00:00Z")
        );
    }

    #[test]
    fn one_business_day_from_monday_morning_is_tuesday_same_time() {
        assert_eq!(
            utc_due("2026-11-23T09:30:00Z", "1 business day"),
            utc("2026-11-24T09:30:00Z")
        );
    }

    #[test]
    fn deadline_at_the_end_of_a_business_day_is_the_next_calendar_midnight() {
        // Monday 00:00 + 5 business days ends with Friday: Saturday 00:00.
        assert_eq!(
            utc_due("2026-11-23T00:00:00Z", "5 business days"),
            utc("2026-11-28T00:00:00Z")
        );
        assert_eq!(
            utc_due("2026-11-27T00:00:00Z", "1 business day"),
            utc("2026-11-28T00:00:00Z")
        );
    }

    #[test]
    fn holidays_are_skipped_like_weekends() {
        let christmas = calendar(Tz::UTC, &["2026-12-25"]);
        assert_eq!(
            christmas.due_at(utc("2026-12-23T12:00:00Z"), window("2 business days")),
            utc("2026-12-28T12:00:00Z")
        );
        assert!(!christmas.is_business_day(date("2026-12-25")));
        assert!(!christmas.is_business_day(date("2026-12-26")));
        assert!(christmas.is_business_day(date("2026-12-24")));
    }

    #[test]
    fn holiday_on_the_monday_after_a_weekend_extends_the_skip() {
        let whit_monday = calendar(Tz::UTC, &["2026-05-25"]);
        assert_eq!(
            whit_monday.due_at(utc("2026-05-22T15:00:00Z"), window("1 business day")),
            utc("2026-05-26T15:00:00Z")
        );
        // Starting on the holiday: the clock starts Tuesday 00:00.
        assert_eq!(
            whit_monday.due_at(utc("2026-05-25T09:00:00Z"), window("1 business day")),
            utc("2026-05-27T00:00:00Z")
        );
        // Starting on the Saturday before it.
        assert_eq!(
            whit_monday.due_at(utc("2026-05-23T09:00:00Z"), window("2 business days")),
            utc("2026-05-28T00:00:00Z")
        );
    }

    #[test]
    fn consecutive_holidays_are_all_skipped() {
        let year_end = calendar(
            Tz::UTC,
            &["2026-12-24", "2026-12-25", "2026-12-31", "2027-01-01"],
        );
        let start = utc("2026-12-23T12:00:00Z");
        assert_eq!(
            year_end.due_at(start, window("3 business days")),
            utc("2026-12-30T12:00:00Z")
        );
        assert_eq!(
            year_end.due_at(start, window("4 business days")),
            utc("2027-01-04T12:00:00Z")
        );
        assert_eq!(
            year_end.due_at(start, window("10 business days")),
            utc("2027-01-12T12:00:00Z")
        );
    }

    #[test]
    fn holidays_on_weekends_change_nothing() {
        let saturday_holiday = calendar(Tz::UTC, &["2026-11-21"]);
        assert_eq!(
            saturday_holiday.due_at(utc("2026-11-20T17:00:00Z"), window("5bd")),
            utc("2026-11-27T17:00:00Z")
        );
    }

    #[test]
    fn berlin_spring_forward_keeps_the_wall_clock_time() {
        let berlin = calendar(Tz::Europe__Berlin, &[]);
        // Saturday 2026-03-28 12:00 CET + 1 day = Sunday 12:00 CEST: 23 hours.
        assert_eq!(
            berlin.due_at(utc("2026-03-28T11:00:00Z"), window("1 day")),
            utc("2026-03-29T10:00:00Z")
        );
        // Friday 2026-03-27 12:00 CET + 1 business day = Monday 12:00 CEST.
        assert_eq!(
            berlin.due_at(utc("2026-03-27T11:00:00Z"), window("1 business day")),
            utc("2026-03-30T10:00:00Z")
        );
        // Saturday start: the clock starts Monday 00:00 CEST.
        assert_eq!(
            berlin.due_at(utc("2026-03-28T11:00:00Z"), window("1 business day")),
            utc("2026-03-30T22:00:00Z")
        );
    }

    #[test]
    fn berlin_fall_back_keeps_the_wall_clock_time() {
        let berlin = calendar(Tz::Europe__Berlin, &[]);
        // Saturday 2026-10-24 12:00 CEST + 1 day = Sunday 12:00 CET: 25 hours.
        assert_eq!(
            berlin.due_at(utc("2026-10-24T10:00:00Z"), window("1 day")),
            utc("2026-10-25T11:00:00Z")
        );
        // Friday 2026-10-23 12:00 CEST + 1 business day = Monday 12:00 CET.
        assert_eq!(
            berlin.due_at(utc("2026-10-23T10:00:00Z"), window("1 business day")),
            utc("2026-10-26T11:00:00Z")
        );
    }

    #[test]
    fn new_york_spring_forward_keeps_the_wall_clock_time() {
        let new_york = calendar(Tz::America__New_York, &[]);
        // Saturday 2026-03-07 12:00 EST + 1 day = Sunday 12:00 EDT.
        assert_eq!(
            new_york.due_at(utc("2026-03-07T17:00:00Z"), window("1 day")),
            utc("2026-03-08T16:00:00Z")
        );
        // Friday 2026-03-06 09:00 EST + 1 business day = Monday 09:00 EDT.
        assert_eq!(
            new_york.due_at(utc("2026-03-06T14:00:00Z"), window("1 business day")),
            utc("2026-03-09T13:00:00Z")
        );
    }

    #[test]
    fn new_york_fall_back_keeps_the_wall_clock_time() {
        let new_york = calendar(Tz::America__New_York, &[]);
        // Saturday 2026-10-31 12:00 EDT + 1 day = Sunday 12:00 EST.
        assert_eq!(
            new_york.due_at(utc("2026-10-31T16:00:00Z"), window("1 day")),
            utc("2026-11-01T17:00:00Z")
        );
        // Friday 2026-10-30 09:00 EDT + 1 business day = Monday 09:00 EST.
        assert_eq!(
            new_york.due_at(utc("2026-10-30T13:00:00Z"), window("1 business day")),
            utc("2026-11-02T14:00:00Z")
        );
    }

    #[test]
    fn local_time_in_the_spring_forward_gap_resolves_to_the_end_of_the_gap() {
        // 02:30 does not exist on 2026-03-29 in Berlin: 03:00 CEST.
        let berlin = calendar(Tz::Europe__Berlin, &[]);
        assert_eq!(
            berlin.due_at(utc("2026-03-28T01:30:00Z"), window("1 day")),
            utc("2026-03-29T01:00:00Z")
        );
        // 02:30 does not exist on 2026-03-08 in New York: 03:00 EDT.
        let new_york = calendar(Tz::America__New_York, &[]);
        assert_eq!(
            new_york.due_at(utc("2026-03-07T07:30:00Z"), window("1 day")),
            utc("2026-03-08T07:00:00Z")
        );
        // Sub-second starts still resolve to the transition itself.
        assert_eq!(
            new_york.due_at(utc("2026-03-07T07:30:00.250Z"), window("1 day")),
            utc("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn business_day_ending_in_a_midnight_gap_resolves_to_the_end_of_the_gap() {
        // Cairo skips 2026-04-24 (a Friday) 00:00-01:00. The end of Thursday
        // is that missing midnight, so the deadline is 01:00 EEST, the same
        // instant as 24:00 EET on Thursday.
        let cairo = calendar(Tz::Africa__Cairo, &[]);
        let wednesday_midnight = utc("2026-04-21T22:00:00Z");
        assert_eq!(
            cairo.due_at(wednesday_midnight, window("2 business days")),
            utc("2026-04-23T22:00:00Z")
        );
        let thursday_midnight = utc("2026-04-22T22:00:00Z");
        assert_eq!(
            cairo.due_at(thursday_midnight, window("1 day")),
            utc("2026-04-23T22:00:00Z")
        );
    }

    #[test]
    fn ambiguous_local_time_in_the_fall_back_overlap_uses_the_earlier_instant() {
        // 02:30 happens twice on 2026-10-25 in Berlin: the CEST one.
        let berlin = calendar(Tz::Europe__Berlin, &[]);
        assert_eq!(
            berlin.due_at(utc("2026-10-24T00:30:00Z"), window("1 day")),
            utc("2026-10-25T00:30:00Z")
        );
        // 01:30 happens twice on 2026-11-01 in New York: the EDT one.
        let new_york = calendar(Tz::America__New_York, &[]);
        assert_eq!(
            new_york.due_at(utc("2026-10-31T05:30:00Z"), window("1 day")),
            utc("2026-11-01T05:30:00Z")
        );
    }

    #[test]
    fn start_during_the_repeated_hour_counts_from_its_wall_clock_time() {
        // 2026-10-25 02:30 CET is the second 02:30 of the day in Berlin (a
        // Sunday), so the business clock starts on Monday at 00:00 CET.
        let berlin = calendar(Tz::Europe__Berlin, &[]);
        assert_eq!(
            berlin.due_at(utc("2026-10-25T01:30:00Z"), window("1 business day")),
            utc("2026-10-26T23:00:00Z")
        );
    }

    #[test]
    fn holiday_list_covering_decades_falls_back_to_calendar_days() {
        let every_day = (0..20 * 366).filter_map(|i| add_days(date("2026-01-01"), i));
        let blocked = BusinessCalendar::new(Tz::UTC, every_day);
        // No business day within MAX_NON_BUSINESS_RUN days: plain days.
        assert_eq!(
            blocked.due_at(utc("2026-01-05T10:00:00Z"), window("5 business days")),
            utc("2026-01-10T10:00:00Z")
        );
        // A shorter block is waited out: the clock starts after it.
        let two_years = (0..730).filter_map(|i| add_days(date("2026-01-01"), i));
        let blocked = BusinessCalendar::new(Tz::UTC, two_years);
        assert_eq!(
            blocked.due_at(utc("2026-01-05T10:00:00Z"), window("1 business day")),
            utc("2028-01-04T00:00:00Z")
        );
    }

    #[test]
    fn absurd_windows_and_instants_saturate_instead_of_panicking() {
        let holidays = calendar(Tz::Pacific__Kiritimati, &["2026-12-25", "3000-01-01"]);
        let start = utc("2026-11-20T17:00:00Z");
        for window in [
            TriageWindow::Hours(u32::MAX),
            TriageWindow::Days(u32::MAX),
            TriageWindow::BusinessDays(u32::MAX),
        ] {
            assert_eq!(holidays.due_at(start, window), DateTime::<Utc>::MAX_UTC);
        }
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(holidays.due_at(end, window("1 day")), end);
        assert_eq!(holidays.due_at(end, window("1bd")), end);
        assert_eq!(holidays.due_at(start, TriageWindow::BusinessDays(0)), start);
    }

    #[test]
    fn business_day_jumps_match_counting_day_by_day() {
        let cal = calendar(
            Tz::UTC,
            &[
                "2026-01-01",
                "2026-01-02",
                "2026-01-05",
                "2026-01-10",
                "2026-01-19",
                "2026-02-13",
                "2026-02-16",
                "2026-02-17",
            ],
        );
        let first = date("2025-12-24");
        for start_offset in 0..40 {
            let start = add_days(first, start_offset).expect("date");
            if !cal.is_business_day(start) {
                continue;
            }
            for k in 0..40 {
                let mut expected = start;
                for _ in 0..k {
                    expected = expected.succ_opt().expect("date");
                    while !cal.is_business_day(expected) {
                        expected = expected.succ_opt().expect("date");
                    }
                }
                assert_eq!(
                    cal.nth_business_day_after(start, k),
                    Some(expected),
                    "{start} + {k}"
                );
            }
        }
    }

    #[test]
    fn unknown_time_zone_is_rejected_by_name() {
        let cfg = SlaConfig {
            timezone: "Mars/Olympus_Mons".to_string(),
            ..SlaConfig::default()
        };
        let err = SlaPolicy::from_config(&cfg).expect_err("unknown zone");
        assert_eq!(
            err,
            SlaError::UnknownTimeZone {
                name: "Mars/Olympus_Mons".to_string()
            }
        );
        assert!(err.to_string().contains("\"Mars/Olympus_Mons\""));
    }

    #[test]
    fn config_with_partial_tables_keeps_each_tables_defaults() {
        let cfg: SlaConfig = serde_json::from_str(
            r#"{
                "timezone": "Europe/Berlin",
                "holidays": ["2026-12-25", "2027-01-01"],
                "static_rule": { "medium": "3bd" },
                "anomaly": { "critical": "12h" }
            }"#,
        )
        .expect("config");
        assert_eq!(cfg.timezone, "Europe/Berlin");
        assert_eq!(cfg.holidays, vec![date("2026-12-25"), date("2027-01-01")]);
        assert_eq!(
            cfg.static_rule,
            SeverityTable {
                medium: TriageWindow::BusinessDays(3),
                ..SeverityTable::static_rule_defaults()
            }
        );
        assert_eq!(
            cfg.anomaly,
            SeverityTable {
                critical: TriageWindow::Hours(12),
                ..SeverityTable::anomaly_defaults()
            }
        );
        let policy = SlaPolicy::from_config(&cfg).expect("policy");
        assert!(!policy.calendar().is_business_day(date("2026-12-25")));
        assert_eq!(
            policy.window(AlertType::Anomaly, Severity::High),
            TriageWindow::Days(3)
        );
        // Wednesday 2026-12-23 12:00 CET + 3 business days, Christmas off.
        let sla = policy.for_alert(
            AlertType::StaticRule,
            Severity::Medium,
            utc("2026-12-23T11:00:00Z"),
        );
        assert_eq!(sla.due_at, utc("2026-12-29T11:00:00Z"));
    }

    #[test]
    fn empty_config_is_the_default_policy() {
        let cfg: SlaConfig = serde_json::from_str("{}").expect("config");
        assert_eq!(cfg, SlaConfig::default());
        assert_eq!(
            SlaPolicy::from_config(&cfg).expect("policy"),
            SlaPolicy::default()
        );
    }

    #[test]
    fn config_rejects_unknown_keys_and_bad_windows() {
        let err = serde_json::from_str::<SlaConfig>(r#"{ "time_zone": "UTC" }"#)
            .expect_err("unknown key");
        assert!(err.to_string().contains("time_zone"), "{err}");
        let err = serde_json::from_str::<SlaConfig>(r#"{ "anomaly": { "urgent": "1h" } }"#)
            .expect_err("unknown severity");
        assert!(err.to_string().contains("urgent"), "{err}");
        let err = serde_json::from_str::<SlaConfig>(r#"{ "static_rule": { "high": "2 weeks" } }"#)
            .expect_err("bad window");
        assert!(
            err.to_string()
                .contains("invalid triage window \"2 weeks\""),
            "{err}"
        );
        assert!(serde_json::from_str::<SlaConfig>(r#"{ "holidays": ["25.12.2026"] }"#).is_err());
    }

    #[test]
    fn config_serializes_back_to_what_it_reads() {
        let cfg = SlaConfig {
            timezone: "America/New_York".to_string(),
            holidays: vec![date("2026-11-26")],
            ..SlaConfig::default()
        };
        let json = serde_json::to_value(&cfg).expect("serialize");
        assert_eq!(json["holidays"][0], "2026-11-26");
        assert_eq!(json["anomaly"]["high"], "3 days");
        let back: SlaConfig = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, cfg);
    }

    #[test]
    fn sla_record_serializes_due_at_as_rfc3339_utc() {
        let sla = SlaPolicy::default().for_alert(
            AlertType::StaticRule,
            Severity::Medium,
            utc("2026-11-20T17:00:00Z"),
        );
        let json = serde_json::to_string(&sla).expect("serialize");
        assert_eq!(
            json,
            r#"{"policy":"static_rule","triage_within":"5 business days","due_at":"2026-11-27T17:00:00Z"}"#
        );
        let back: Sla = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, sla);
    }
}
