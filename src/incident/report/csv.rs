//! The report as CSV for spreadsheets.

use super::{day, Report};
use std::fmt::Write as _;

/// RFC 4180 quoting.
pub(super) fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The report as CSV for spreadsheets: one `section,key,metric,value` row per number.
pub fn csv(r: &Report) -> String {
    let mut out = String::from("section,key,metric,value\n");
    let mut row = |section: &str, key: &str, metric: &str, value: String| {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            section,
            csv_field(key),
            metric,
            csv_field(&value)
        );
    };
    row("window", "from", "time", day(r.from));
    row("window", "to", "time", day(r.to));
    if let Some(h) = &r.header {
        row("report", "generated", "time", day(h.generated_at));
        row("report", "tool", "version", h.tool.clone());
        row("report", "timezone", "name", h.sla.timezone.clone());
        for d in &h.sla.holidays {
            row("report", "holiday", "date", d.to_string());
        }
        if let Some(note) = &h.note {
            row("report", "note", "text", note.clone());
        }
        for s in crate::vocab::Severity::ALL.iter().rev() {
            row(
                "sla_policy",
                s.key(),
                "static_rule",
                h.sla.static_rule.window(*s).to_string(),
            );
            row(
                "sla_policy",
                s.key(),
                "anomaly",
                h.sla.anomaly.window(*s).to_string(),
            );
        }
    }
    if let Some(p) = &r.previous {
        row("previous", "from", "time", day(p.from));
        row("previous", "all", "alerts", p.alerts.to_string());
        for (k, v) in p.by_severity.iter().rev() {
            row("previous", k.key(), "alerts", v.to_string());
        }
        row("previous", "all", "breaches", p.breaches.to_string());
        if let Some(c) = p.compliance {
            row("previous", "all", "compliance", format!("{c:.4}"));
        }
    }
    row("total", "all", "alerts", r.alerts.to_string());
    for (k, v) in &r.by_type {
        row("type", k, "alerts", v.to_string());
    }
    for (k, v) in r.by_severity.iter().rev() {
        row("severity", k.key(), "alerts", v.to_string());
    }
    for (k, v) in &r.by_status {
        row("status", k.key(), "alerts", v.to_string());
    }
    for (k, v) in &r.by_source {
        row("source", k, "alerts", v.to_string());
    }
    for s in &r.sla {
        let key = s.severity.key();
        row("sla", key, "met", s.met.to_string());
        row("sla", key, "breached", s.breached.to_string());
        row("sla", key, "overdue", s.overdue.to_string());
        row("sla", key, "pending", s.pending.to_string());
        if let Some(c) = s.compliance() {
            row("sla", key, "compliance", format!("{c:.4}"));
        }
    }
    for (section, rows) in [
        ("time_to_triage", &r.time_to_triage),
        ("time_to_resolve", &r.time_to_resolve),
    ] {
        for t in rows {
            row(section, &t.group, "count", t.count.to_string());
            if let (Some(m), Some(p)) = (t.median, t.p90) {
                row(section, &t.group, "median_seconds", format!("{m:.0}"));
                row(section, &t.group, "p90_seconds", format!("{p:.0}"));
            }
        }
    }
    for x in &r.rules {
        row("rule", &x.rule_id, "alerts", x.alerts.to_string());
        row(
            "rule",
            &x.rule_id,
            "false_positives",
            x.false_positives.to_string(),
        );
        row(
            "rule",
            &x.rule_id,
            "false_positive_rate",
            format!("{:.4}", x.false_positive_rate()),
        );
    }
    for (k, v) in &r.escalations {
        row("escalation", k, "escalations", v.to_string());
    }
    if let Some(c) = r.compliance() {
        row("sla", "all", "compliance", format!("{c:.4}"));
    }
    for b in &r.breaches {
        let state = match b.state {
            crate::incident::SlaState::Breached => "breached",
            _ => "overdue",
        };
        row("breach", &b.id, "state", state.to_string());
        row("breach", &b.id, "rule", b.rule.clone());
        row("breach", &b.id, "severity", b.severity.key().to_string());
        row("breach", &b.id, "detected", day(b.detected_at));
        row("breach", &b.id, "due", day(b.due_at));
        if let (Some(t), Some(by)) = (b.triaged_at, &b.triaged_by) {
            row("breach", &b.id, "triaged", day(t));
            row("breach", &b.id, "triaged_by", by.clone());
        }
    }
    out
}
