//! The report as Markdown.

use super::{day, opt_duration, percent, Report, TimeRow, NOISIEST};
use std::fmt::Write as _;

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# tocsin alert review\n");
    let _ = writeln!(
        out,
        "Alerts detected from {} to {} (as of the end): **{}**.\n",
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
            .rev()
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
    let times = |rows: &[TimeRow]| {
        rows.iter()
            .map(|t| {
                vec![
                    t.group.clone(),
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
