//! Tests of the SLA policy and the business calendar.

use super::calendar::add_days;
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

/// Checks the default policy for `alert_type` against rows of (severity,
/// window, deadline of an alert raised on WEDNESDAY).
fn assert_default_table(
    alert_type: AlertType,
    policy_name: &str,
    rows: [(Severity, &str, &str); 5],
) {
    let policy = SlaPolicy::default();
    for (severity, within, due) in rows {
        let sla = policy.for_alert(alert_type, severity, utc(WEDNESDAY));
        assert_eq!(sla.policy, policy_name);
        assert_eq!(sla.triage_within.to_string(), within, "{severity}");
        assert_eq!(sla.due_at, utc(due), "{severity}");
    }
}

#[test]
fn static_rule_defaults_follow_the_policy_table() {
    assert_default_table(
        AlertType::StaticRule,
        "static_rule",
        [
            (Severity::Critical, "1 day", "2026-11-19T10:00:00Z"),
            (Severity::High, "2 days", "2026-11-20T10:00:00Z"),
            (Severity::Medium, "5 business days", "2026-11-25T10:00:00Z"),
            (Severity::Low, "10 business days", "2026-12-02T10:00:00Z"),
            (
                Severity::Informational,
                "10 business days",
                "2026-12-02T10:00:00Z",
            ),
        ],
    );
}

#[test]
fn anomaly_defaults_follow_the_policy_table() {
    assert_default_table(
        AlertType::Anomaly,
        "anomaly",
        [
            (Severity::Critical, "2 days", "2026-11-20T10:00:00Z"),
            (Severity::High, "3 days", "2026-11-21T10:00:00Z"),
            (Severity::Medium, "5 business days", "2026-11-25T10:00:00Z"),
            (Severity::Low, "10 business days", "2026-12-02T10:00:00Z"),
            (
                Severity::Informational,
                "10 business days",
                "2026-12-02T10:00:00Z",
            ),
        ],
    );
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
    let err =
        serde_json::from_str::<SlaConfig>(r#"{ "time_zone": "UTC" }"#).expect_err("unknown key");
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
