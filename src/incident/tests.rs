//! Tests of the incident desk: triage, deadlines, escalations, metrics.

use super::*;
use escalation::LevelConfig;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("test instant")
}

fn tracked(id: &str, severity: Severity, detected: &str, due: &str) -> TrackedAlert {
    TrackedAlert {
        id: id.into(),
        alert_type: AlertType::StaticRule,
        severity,
        score: None,
        rule_id: "r1".into(),
        rule_title: "Rule one".into(),
        source: "auth.log".into(),
        text: "Rule one: user=bob".into(),
        message: "SIEM ALERT -- STATIC RULE - [High] Rule one: user=bob. Check https://x/a".into(),
        link: "https://x/a".into(),
        detected_at: at(detected),
        due_at: at(due),
        status: Status::Open,
        history: vec![],
        escalations: vec![],
        breached_at: None,
    }
}

fn update(id: &str, status: Status, when: &str) -> TriageUpdate {
    TriageUpdate {
        alert_id: id.into(),
        status,
        by: "ana".into(),
        at: at(when),
        note: None,
    }
}

fn desk() -> Desk {
    let level = |name: &str, when: &str, sev: &[&str]| LevelConfig {
        level: name.into(),
        at: when.into(),
        severities: sev.iter().map(|s| s.to_string()).collect(),
        destination: "escalations".into(),
    };
    Desk::new(
        EscalationPolicy::compile(&[
            level("on-call", "immediately", &["critical"]),
            level("reminder", "-2h", &[]),
            level("breach", "0s", &[]),
            level("second-level", "+1d", &[]),
        ])
        .unwrap(),
    )
}

/// Applies an update that must change the alert; what it changed.
fn milestones(d: &mut Desk, u: TriageUpdate) -> Milestones {
    match d.apply(&u) {
        Ok(Applied::Changed(m)) => m,
        other => panic!("{u:?} did not change the alert: {other:?}"),
    }
}

fn levels(due: Due) -> Vec<(String, String)> {
    due.escalations
        .into_iter()
        .map(|e| (e.alert_id, e.level))
        .collect()
}

#[test]
fn the_line_text_is_the_message_between_severity_and_link() {
    assert_eq!(
        line_text("SIEM ALERT -- STATIC RULE - [High] Brute force: user=a. b. Check https://x/1"),
        "Brute force: user=a. b"
    );
    assert_eq!(
        line_text("SIEM ALERT -- ANOMALY DETECTED - [Critical/99] x. Check l"),
        "x"
    );
}

#[test]
fn levels_fire_in_order_once_each_until_triage() {
    let mut d = desk();
    d.track(tracked(
        "a",
        Severity::High,
        "2026-11-20T10:00:00Z",
        "2026-11-22T10:00:00Z",
    ));
    assert!(levels(d.due(at("2026-11-22T07:59:59Z"))).is_empty());
    assert_eq!(
        levels(d.due(at("2026-11-22T08:00:00Z"))),
        vec![("a".into(), "reminder".into())]
    );
    assert!(levels(d.due(at("2026-11-22T09:00:00Z"))).is_empty(), "once");
    let due = d.due(at("2026-11-22T10:00:00Z"));
    assert_eq!(due.breaches, vec![Severity::High]);
    assert_eq!(levels(due), vec![("a".into(), "breach".into())]);
    d.apply(&update("a", Status::Triaged, "2026-11-22T12:00:00Z"))
        .unwrap();
    assert!(
        levels(d.due(at("2026-11-25T00:00:00Z"))).is_empty(),
        "triaged: no second level"
    );
    assert_eq!(d.get("a").unwrap().escalations.len(), 2);
}

#[test]
fn critical_alerts_page_on_call_at_once_and_catch_up_missed_levels() {
    let mut d = desk();
    d.track(tracked(
        "c",
        Severity::Critical,
        "2026-11-21T03:00:00Z",
        "2026-11-22T03:00:00Z",
    ));
    assert_eq!(
        levels(d.due(at("2026-11-21T03:00:00Z"))),
        vec![("c".into(), "on-call".into())]
    );
    // Nothing ran for two days: every level passed is emitted, in time order.
    assert_eq!(
        levels(d.due(at("2026-11-23T04:00:00Z"))),
        vec![
            ("c".into(), "reminder".into()),
            ("c".into(), "breach".into()),
            ("c".into(), "second-level".into())
        ]
    );
}

#[test]
fn acknowledging_is_a_first_response_but_does_not_stop_escalation() {
    let mut d = desk();
    d.track(tracked(
        "a",
        Severity::High,
        "2026-11-20T10:00:00Z",
        "2026-11-22T10:00:00Z",
    ));
    let m = milestones(
        &mut d,
        update("a", Status::Acknowledged, "2026-11-20T10:30:00Z"),
    );
    assert_eq!(m.first_response, Some(chrono::Duration::minutes(30)));
    assert_eq!(m.triage, None);
    let escalated = levels(d.due(at("2026-11-22T10:00:00Z")));
    assert_eq!(escalated.len(), 2, "{escalated:?}");
}

#[test]
fn updates_the_process_does_not_allow_are_rejected_with_a_reason() {
    let mut d = desk();
    d.track(tracked(
        "a",
        Severity::Low,
        "2026-11-20T10:00:00Z",
        "2026-12-04T10:00:00Z",
    ));
    assert_eq!(
        d.apply(&update("nope", Status::Triaged, "2026-11-20T11:00:00Z")),
        Err(Rejection::UnknownAlert("nope".into()))
    );
    let early = d
        .apply(&update("a", Status::Triaged, "2026-11-20T09:00:00Z"))
        .unwrap_err();
    assert!(
        early.to_string().contains("before the alert was raised"),
        "{early}"
    );
    d.apply(&update("a", Status::FalsePositive, "2026-11-20T11:00:00Z"))
        .unwrap();
    let closed = d
        .apply(&update("a", Status::Resolved, "2026-11-20T12:00:00Z"))
        .unwrap_err();
    assert_eq!(
        closed.to_string(),
        "alert `a` is false_positive: it cannot become resolved"
    );
    assert_eq!(
        d.apply(&update("a", Status::FalsePositive, "2026-11-20T11:00:00Z")),
        Ok(Applied::Duplicate),
        "a redelivered update is not an error"
    );
    assert_eq!(d.get("a").unwrap().history.len(), 1);
}

#[test]
fn late_triage_counts_one_breach() {
    let mut d = desk();
    d.track(tracked(
        "a",
        Severity::Medium,
        "2026-11-20T10:00:00Z",
        "2026-11-21T10:00:00Z",
    ));
    let m = milestones(
        &mut d,
        update("a", Status::Incident, "2026-11-21T11:00:00Z"),
    );
    assert!(m.late_triage);
    assert_eq!(m.triage, Some(chrono::Duration::hours(25)));
    assert!(
        d.due(at("2026-11-22T00:00:00Z")).breaches.is_empty(),
        "counted once"
    );
    let m = milestones(
        &mut d,
        update("a", Status::Resolved, "2026-11-22T10:00:00Z"),
    );
    assert_eq!(m.resolution, Some(chrono::Duration::hours(48)));
    assert_eq!(m.triage, None, "triage happened before");
}

#[test]
fn restored_alerts_do_not_repeat_levels_they_reached() {
    let mut d = desk();
    d.track(tracked(
        "a",
        Severity::High,
        "2026-11-20T10:00:00Z",
        "2026-11-22T10:00:00Z",
    ));
    assert_eq!(levels(d.due(at("2026-11-22T10:00:00Z"))).len(), 2);
    let saved: Vec<TrackedAlert> = d
        .take_changes()
        .into_iter()
        .filter_map(|c| match c {
            Change::Put(a) => Some(*a),
            Change::Delete(_) => None,
        })
        .collect();
    let mut restarted = desk();
    restarted.restore(saved);
    assert_eq!(
        levels(restarted.due(at("2026-11-23T10:00:00Z"))),
        vec![("a".into(), "second-level".into())]
    );
    assert!(restarted
        .due(at("2026-11-23T10:00:00Z"))
        .breaches
        .is_empty());
}

#[test]
fn sla_state_is_judged_as_of_a_time() {
    let mut a = tracked(
        "a",
        Severity::High,
        "2026-11-20T10:00:00Z",
        "2026-11-22T10:00:00Z",
    );
    assert_eq!(
        SlaState::of(&a, at("2026-11-21T00:00:00Z")),
        SlaState::Pending
    );
    assert_eq!(
        SlaState::of(&a, at("2026-11-23T00:00:00Z")),
        SlaState::Overdue
    );
    a.history.push(HistoryEntry {
        status: Status::Triaged,
        by: "x".into(),
        at: at("2026-11-22T09:00:00Z"),
        note: None,
    });
    assert_eq!(SlaState::of(&a, at("2026-11-23T00:00:00Z")), SlaState::Met);
    assert_eq!(
        SlaState::of(&a, at("2026-11-21T00:00:00Z")),
        SlaState::Pending
    );
}
