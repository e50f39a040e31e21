//! Tests of the alert review.

use super::csv::csv_field;
use super::*;
use crate::incident::{EscalationEntry, HistoryEntry};
use crate::vocab::AlertType;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("test instant")
}

fn alert(
    id: &str,
    rule: &str,
    sev: Severity,
    detected: &str,
    due: &str,
    history: &[(Status, &str)],
) -> TrackedAlert {
    TrackedAlert {
        id: id.into(),
        alert_type: AlertType::StaticRule,
        severity: sev,
        score: None,
        rule_id: rule.into(),
        rule_title: format!("Rule {rule}"),
        source: "auth.log".into(),
        text: "t".into(),
        message: "m".into(),
        link: "l".into(),
        detected_at: at(detected),
        due_at: at(due),
        status: history.last().map_or(Status::Open, |h| h.0),
        history: history
            .iter()
            .map(|(s, t)| HistoryEntry {
                status: *s,
                by: "ana".into(),
                at: at(t),
                note: None,
            })
            .collect(),
        escalations: vec![],
        breached_at: None,
    }
}

#[test]
fn quantiles_interpolate_between_ranks() {
    assert_eq!(quantile(&[], 0.5), None);
    assert_eq!(quantile(&[4.0], 0.9), Some(4.0));
    assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
    let ten: Vec<f64> = (1..=10).map(f64::from).collect();
    assert!((quantile(&ten, 0.9).unwrap() - 9.1).abs() < 1e-9);
}

#[test]
fn the_report_counts_sla_times_rules_and_escalations_as_of_its_end() {
    let mut escalated = alert(
        "e",
        "r2",
        Severity::High,
        "2026-11-10T00:00:00Z",
        "2026-11-12T00:00:00Z",
        &[],
    );
    escalated.escalations.push(EscalationEntry {
        level: "breach".into(),
        at: at("2026-11-12T00:00:00Z"),
        destination: "escalations".into(),
    });
    let alerts = vec![
        // Triaged in 1h, resolved in 3h: met.
        alert(
            "a",
            "r1",
            Severity::High,
            "2026-11-02T00:00:00Z",
            "2026-11-04T00:00:00Z",
            &[
                (Status::Triaged, "2026-11-02T01:00:00Z"),
                (Status::Resolved, "2026-11-02T03:00:00Z"),
            ],
        ),
        // False positive after the deadline: breached.
        alert(
            "b",
            "r1",
            Severity::High,
            "2026-11-03T00:00:00Z",
            "2026-11-05T00:00:00Z",
            &[(Status::FalsePositive, "2026-11-06T00:00:00Z")],
        ),
        escalated,
        // Due after the window ends: pending.
        alert(
            "p",
            "r1",
            Severity::Low,
            "2026-11-29T00:00:00Z",
            "2026-12-11T00:00:00Z",
            &[],
        ),
        // Outside the window.
        alert(
            "x",
            "r3",
            Severity::Low,
            "2026-12-02T00:00:00Z",
            "2026-12-12T00:00:00Z",
            &[],
        ),
    ];
    let r = build(
        &alerts,
        at("2026-11-01T00:00:00Z"),
        at("2026-12-01T00:00:00Z"),
    );
    assert_eq!(r.alerts, 4);
    let high = r.sla.iter().find(|s| s.severity == Severity::High).unwrap();
    assert_eq!(
        (high.met, high.breached, high.overdue, high.pending),
        (1, 1, 1, 0)
    );
    assert!((high.compliance().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let low = r.sla.iter().find(|s| s.severity == Severity::Low).unwrap();
    assert_eq!((low.pending, low.compliance()), (1, None));
    let all = r.time_to_triage.last().unwrap();
    assert_eq!(
        (all.count, all.median),
        (2, Some((3600.0 + 259_200.0) / 2.0))
    );
    assert_eq!(r.rules[0].rule_id, "r1");
    assert_eq!((r.rules[0].alerts, r.rules[0].false_positives), (3, 1));
    assert_eq!(r.escalations.get("breach"), Some(&1));
    assert_eq!(r.by_status.get(&Status::Open), Some(&2));

    let md = markdown(&r);
    assert!(md.contains("| High | 1 | 1 | 1 | 0 | 33.3% |"), "{md}");
    let csv = csv(&r);
    assert!(csv.contains("sla,high,compliance,0.3333\n"), "{csv}");
    assert!(
        csv.contains("rule,r1,false_positive_rate,0.3333\n"),
        "{csv}"
    );
    let html = html(&r);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained"
    );
}

#[test]
fn updates_after_the_window_end_are_not_counted() {
    let alerts = vec![alert(
        "a",
        "r",
        Severity::High,
        "2026-11-30T00:00:00Z",
        "2026-12-02T00:00:00Z",
        &[(Status::Triaged, "2026-12-01T05:00:00Z")],
    )];
    let r = build(
        &alerts,
        at("2026-11-01T00:00:00Z"),
        at("2026-12-01T00:00:00Z"),
    );
    assert_eq!(r.sla[0].pending, 1);
    assert_eq!(r.time_to_triage.last().unwrap().count, 0);
    assert_eq!(r.by_status.get(&Status::Open), Some(&1));
}

#[test]
fn csv_quotes_fields_that_need_it() {
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("plain"), "plain");
}

/// Three alerts in November (one breached, one overdue, one met) and two in
/// October (both met), reviewed for November.
fn november_review() -> Report {
    let alerts = vec![
        alert(
            "oct-1",
            "r1",
            Severity::High,
            "2026-10-05T00:00:00Z",
            "2026-10-07T00:00:00Z",
            &[(Status::Triaged, "2026-10-05T01:00:00Z")],
        ),
        alert(
            "oct-2",
            "r1",
            Severity::Low,
            "2026-10-06T00:00:00Z",
            "2026-10-20T00:00:00Z",
            &[(Status::Triaged, "2026-10-06T01:00:00Z")],
        ),
        alert(
            "late",
            "r1",
            Severity::High,
            "2026-11-03T00:00:00Z",
            "2026-11-05T00:00:00Z",
            &[(Status::Triaged, "2026-11-06T00:00:00Z")],
        ),
        alert(
            "never",
            "r2",
            Severity::Critical,
            "2026-11-10T00:00:00Z",
            "2026-11-11T00:00:00Z",
            &[],
        ),
        alert(
            "fine",
            "r2",
            Severity::Low,
            "2026-11-12T00:00:00Z",
            "2026-11-26T00:00:00Z",
            &[(Status::Triaged, "2026-11-12T02:00:00Z")],
        ),
    ];
    let header = Header {
        generated_at: at("2026-12-06T09:00:00Z"),
        tool: "tocsin 0.1.0".into(),
        sla: crate::alert::sla::SlaConfig {
            timezone: "Europe/Berlin".into(),
            holidays: vec!["2026-12-25".parse().unwrap()],
            ..Default::default()
        },
        note: None,
    };
    review(
        &alerts,
        at("2026-11-01T00:00:00Z"),
        at("2026-12-01T00:00:00Z"),
        Some(header),
    )
}

#[test]
fn the_review_lists_breached_and_overdue_alerts_most_urgent_first_with_who_triaged() {
    let r = november_review();
    let rows: Vec<(&str, Severity, Option<&str>)> = r
        .breaches
        .iter()
        .map(|b| (b.id.as_str(), b.severity, b.triaged_by.as_deref()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("never", Severity::Critical, None),
            ("late", Severity::High, Some("ana")),
        ]
    );
    let md = markdown(&r);
    assert!(
        md.contains("| late | Rule r1 | High | 2026-11-03T00:00:00Z | 2026-11-05T00:00:00Z | 2026-11-06T00:00:00Z | ana | breached (triaged late) |"),
        "{md}"
    );
    assert!(md.contains("| never | Rule r2 | Critical | 2026-11-10T00:00:00Z | 2026-11-11T00:00:00Z | not yet |  | overdue (not triaged) |"), "{md}");
    let csv = csv(&r);
    assert!(csv.contains("breach,never,state,overdue\n"), "{csv}");
    assert!(csv.contains("breach,late,triaged_by,ana\n"), "{csv}");
}

#[test]
fn the_review_has_its_header_the_sla_in_force_and_the_trend() {
    let r = november_review();
    let trend = r.previous.as_ref().unwrap();
    assert_eq!((trend.alerts, trend.breaches), (2, 0));
    assert_eq!(trend.from, at("2026-10-02T00:00:00Z"), "30 days before");
    assert_eq!(trend.compliance, Some(1.0));
    assert!((r.compliance().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let md = markdown(&r);
    for expected in [
        "| generated | 2026-12-06T09:00:00Z by tocsin 0.1.0 |",
        "| time zone of the triage team | Europe/Berlin |",
        "| holidays (not business days) | 2026-12-25 |",
        "| Critical | 1 day | 2 days |",
        "| Medium | 5 business days | 5 business days |",
        "| alerts | 2 | 3 | +50.0% |",
        "| SLA compliance | 100.0% | 33.3% | -66.7 points |",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    let csv = csv(&r);
    for expected in [
        "report,timezone,name,Europe/Berlin\n",
        "sla_policy,critical,static_rule,1 day\n",
        "previous,all,alerts,2\n",
        "sla,all,compliance,0.3333\n",
    ] {
        assert!(csv.contains(expected), "missing {expected:?} in\n{csv}");
    }
}

#[test]
fn one_severity_order_everywhere_most_urgent_first() {
    let r = november_review();
    let md = markdown(&r);
    // In every table listing severities, Critical comes before High before Low.
    for section in md.split("\n## ").filter(|s| s.contains("| Critical |")) {
        let (c, h, l) = (
            section.find("| Critical |"),
            section.find("| High |"),
            section.find("| Low |"),
        );
        assert!(c < h || h.is_none(), "{section}");
        assert!(h < l || l.is_none(), "{section}");
    }
    let order: Vec<&str> = r.time_to_triage.iter().map(|t| t.group.as_str()).collect();
    assert_eq!(order, vec!["high", "low", "all"]);
}

#[test]
fn charts_scale_percentages_to_100_and_leave_room_for_every_label() {
    let r = november_review();
    let html = html(&r);
    // Critical: 0% met, so no bar; High 0%; Low 100%: the full 360 px.
    let sla = html
        .split("<figure>")
        .find(|f| f.contains("SLA compliance by severity (0-100%)"))
        .unwrap();
    assert!(sla.contains("width=\"360\" height=\"16\""), "{sla}");
    assert!(sla.contains("stroke=\"#bbb\""), "the 100% frame: {sla}");
    // Every label is drawn right-aligned at the label column's edge, and
    // the column is as wide as the longest label needs.
    for figure in html.split("<figure>").skip(1) {
        let edge: usize = figure
            .split("text-anchor=\"end\">")
            .next()
            .and_then(|s| s.rsplit("<text x=\"").next())
            .and_then(|s| s.split('"').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(usize::MAX);
        for label in figure.split("text-anchor=\"end\">").skip(1) {
            let text = label.split("</text>").next().unwrap();
            assert!(
                text.chars().count() * 8 <= edge,
                "label {text:?} is wider than its column ({edge} px)"
            );
        }
    }
}

#[test]
fn a_period_reaching_back_past_the_calendar_has_no_trend_and_no_panic() {
    let r = review(
        &[],
        DateTime::<Utc>::MIN_UTC,
        at("2026-12-01T00:00:00Z"),
        None,
    );
    assert_eq!(r.previous, None);
    assert_eq!(r.alerts, 0);
}
