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
