//! The report as Markdown.

use super::{day, opt_duration, percent, Report, TimeRow, NOISIEST};
use crate::incident::SlaState;
use crate::vocab::Severity;
use std::fmt::Write as _;

/// A time row's group as the tables show it: the severity's label, or `All`.
pub(super) fn group_label(group: &str) -> String {
    Severity::ALL
        .iter()
        .find(|s| s.key() == group)
        .map_or_else(|| "All".to_string(), |s| s.label().to_string())
}

/// `+12.5%`, `-3.0%`, `n/a` from a previous and a current count.
fn change(previous: f64, current: f64) -> String {
    if previous == 0.0 {
        return if current == 0.0 {
            "0".into()
        } else {
            "new".into()
        };
    }
    format!("{:+.1}%", (current - previous) / previous * 100.0)
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# tocsin alert review\n");
    let _ = writeln!(
        out,
        "Alerts detected from {} to {} (UTC; everything judged as of the end): **{}**.\n",
        day(r.from),
        day(r.to),
        r.alerts
    );
    let table = |out: &mut String, title: &str, header: &[&str], rows: Vec<Vec<String>>| {
        let _ = writeln!(out, "## {title}\n");
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    };
    let counts =
        |m: Vec<(String, u64)>| m.into_iter().map(|(k, v)| vec![k, v.to_string()]).collect();
    if let Some(h) = &r.header {
        let holidays: Vec<String> = h.sla.holidays.iter().map(|d| d.to_string()).collect();
        let mut rows = vec![
            vec![
                "period".into(),
                format!("{} to {} (end excluded)", day(r.from), day(r.to)),
            ],
            vec![
                "generated".into(),
                format!("{} by {}", day(h.generated_at), h.tool),
            ],
            vec![
                "time zone of the triage team".into(),
                h.sla.timezone.clone(),
            ],
            vec![
                "holidays (not business days)".into(),
                if holidays.is_empty() {
                    "none".into()
                } else {
                    holidays.join(", ")
                },
            ],
        ];
        if let Some(note) = &h.note {
            rows.push(vec!["note".into(), note.clone()]);
        }
        table(
            &mut out,
            "How this report was made",
            &["item", "value"],
            rows,
        );
        table(
            &mut out,
            "SLA in force (triage deadlines)",
            &["severity", "static rule", "anomaly"],
            Severity::ALL
                .iter()
                .rev()
                .map(|&s| {
                    vec![
                        s.label().to_string(),
                        h.sla.static_rule.window(s).to_string(),
                        h.sla.anomaly.window(s).to_string(),
                    ]
                })
                .collect(),
        );
    }
    if let Some(p) = &r.previous {
        let mut rows = vec![vec![
            "alerts".to_string(),
            p.alerts.to_string(),
            r.alerts.to_string(),
            change(p.alerts as f64, r.alerts as f64),
        ]];
        for s in Severity::ALL.iter().rev() {
            let (before, now) = (
                p.by_severity.get(s).copied().unwrap_or(0),
                r.by_severity.get(s).copied().unwrap_or(0),
            );
            if before + now > 0 {
                rows.push(vec![
                    format!("{} alerts", s.label()),
                    before.to_string(),
                    now.to_string(),
                    change(before as f64, now as f64),
                ]);
            }
        }
        rows.push(vec![
            "breached or overdue".into(),
            p.breaches.to_string(),
            r.breaches.len().to_string(),
            change(p.breaches as f64, r.breaches.len() as f64),
        ]);
        let points = match (p.compliance, r.compliance()) {
            (Some(a), Some(b)) => format!("{:+.1} points", (b - a) * 100.0),
            _ => "n/a".into(),
        };
        rows.push(vec![
            "SLA compliance".into(),
            percent(p.compliance),
            percent(r.compliance()),
            points,
        ]);
        let title = format!(
            "Trend against the previous period ({} to {})",
            day(p.from),
            day(p.to)
        );
        table(
            &mut out,
            &title,
            &["measure", "previous period", "this period", "change"],
            rows,
        );
    }
    table(
        &mut out,
        "Alerts by type",
        &["type", "alerts"],
        counts(r.by_type.iter().map(|(k, v)| (k.clone(), *v)).collect()),
    );
    table(
        &mut out,
        "Alerts by severity",
        &["severity", "alerts"],
        counts(
            r.by_severity
                .iter()
                .rev()
                .map(|(k, v)| (k.label().to_string(), *v))
                .collect(),
        ),
    );
    table(
        &mut out,
        "Alerts by status",
        &["status", "alerts"],
        counts(
            r.by_status
                .iter()
                .map(|(k, v)| (k.key().to_string(), *v))
                .collect(),
        ),
    );
    table(
        &mut out,
        "Alerts by source",
        &["source", "alerts"],
        counts(r.by_source.iter().map(|(k, v)| (k.clone(), *v)).collect()),
    );
    table(
        &mut out,
        "SLA compliance",
        &[
            "severity",
            "met",
            "breached",
            "overdue (untriaged)",
            "pending",
            "compliance",
        ],
        r.sla
            .iter()
            .map(|s| {
                vec![
                    s.severity.label().to_string(),
                    s.met.to_string(),
                    s.breached.to_string(),
                    s.overdue.to_string(),
                    s.pending.to_string(),
                    percent(s.compliance()),
                ]
            })
            .collect(),
    );
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or_else(|| "not yet".into(), day);
    table(
        &mut out,
        "Breached and overdue alerts",
        &[
            "alert", "rule", "severity", "detected", "due", "triaged", "by", "state",
        ],
        r.breaches
            .iter()
            .map(|b| {
                vec![
                    b.id.clone(),
                    b.rule.clone(),
                    b.severity.label().to_string(),
                    day(b.detected_at),
                    day(b.due_at),
                    when(b.triaged_at),
                    b.triaged_by.clone().unwrap_or_default(),
                    match b.state {
                        SlaState::Breached => "breached (triaged late)".into(),
                        _ => "overdue (not triaged)".to_string(),
                    },
                ]
            })
            .collect(),
    );
    let times = |rows: &[TimeRow]| {
        rows.iter()
            .map(|t| {
                vec![
                    group_label(&t.group),
                    t.count.to_string(),
                    opt_duration(t.median),
                    opt_duration(t.p90),
                ]
            })
            .collect()
    };
    table(
        &mut out,
        "Time to triage",
        &["severity", "alerts", "median", "p90"],
        times(&r.time_to_triage),
    );
    table(
        &mut out,
        "Time to resolve",
        &["severity", "alerts", "median", "p90"],
        times(&r.time_to_resolve),
    );
    table(
        &mut out,
        "Noisiest rules",
        &["rule", "id", "alerts", "false positives", "FP rate"],
        r.rules
            .iter()
            .take(NOISIEST)
            .map(|x| {
                vec![
                    x.title.clone(),
                    x.rule_id.clone(),
                    x.alerts.to_string(),
                    x.false_positives.to_string(),
                    percent(Some(x.false_positive_rate())),
                ]
            })
            .collect(),
    );
    let _ = writeln!(
        out,
        "Rules with a high false-positive rate are candidates for a Sigma filter (see deploy/filters/).\n"
    );
    table(
        &mut out,
        "Escalations by level",
        &["level", "escalations"],
        counts(r.escalations.iter().map(|(k, v)| (k.clone(), *v)).collect()),
    );
    out
}
