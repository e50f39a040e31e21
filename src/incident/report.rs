//! The monthly review (`tocsin report`): what was raised, how fast it was
//! handled, which rules are noisy, what escalated. Computed from the alert
//! state alone, so anyone holding the same state gets the same numbers.
//!
//! Definitions (also in docs/incident.md):
//! - an alert is in the report when `from <= detected_at < to`;
//! - everything is judged as of `to`: updates and escalations after it are ignored;
//! - SLA: *met* when the first triage decision came by the deadline,
//!   *breached* when it came later, *overdue* when there is none and the
//!   deadline passed, *pending* when there is none and the deadline is
//!   ahead; compliance = met / (met + breached + overdue);
//! - time to triage: detection to the first decision (not `acknowledged`);
//!   time to resolve: detection to `resolved` or `false_positive`;
//! - median and p90 interpolate linearly between ranks (like numpy's default);
//! - a rule's false-positive rate = its alerts marked `false_positive` / its alerts.

use super::{SlaState, Status, TrackedAlert};
use crate::vocab::Severity;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many rules the noisiest-rules table shows.
pub const NOISIEST: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub alerts: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_severity: BTreeMap<Severity, u64>,
    pub by_source: BTreeMap<String, u64>,
    pub by_status: BTreeMap<Status, u64>,
    /// Every rule, noisiest first.
    pub rules: Vec<RuleRow>,
    pub sla: Vec<SlaRow>,
    /// Per severity, then `all`.
    pub time_to_triage: Vec<TimeRow>,
    pub time_to_resolve: Vec<TimeRow>,
    pub escalations: BTreeMap<String, u64>,
    /// Escalations per severity and level.
    pub escalations_by_severity: BTreeMap<(Severity, String), u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    pub rule_id: String,
    pub title: String,
    pub alerts: u64,
    pub false_positives: u64,
}

impl RuleRow {
    pub fn false_positive_rate(&self) -> f64 {
        if self.alerts == 0 {
            0.0
        } else {
            self.false_positives as f64 / self.alerts as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlaRow {
    pub severity: Severity,
    pub met: u64,
    pub breached: u64,
    pub overdue: u64,
    pub pending: u64,
}

impl SlaRow {
    /// met / (met + breached + overdue); `None` when nothing was decided or due.
    pub fn compliance(&self) -> Option<f64> {
        let judged = self.met + self.breached + self.overdue;
        (judged > 0).then(|| self.met as f64 / judged as f64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimeRow {
    /// A severity key, or `all`.
    pub group: String,
    pub count: u64,
    /// Seconds.
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// The `q` quantile (0..=1) of sorted values, interpolating linearly between ranks.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi.min(last)] - sorted[lo]) * frac)
}

fn time_rows(samples: &BTreeMap<Severity, Vec<f64>>) -> Vec<TimeRow> {
    let row = |group: String, values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        TimeRow {
            group,
            count: values.len() as u64,
            median: quantile(values, 0.5),
            p90: quantile(values, 0.9),
        }
    };
    let mut rows: Vec<TimeRow> = samples
        .iter()
        .map(|(s, v)| row(s.key().to_string(), &mut v.clone()))
        .collect();
    let mut all: Vec<f64> = samples.values().flatten().copied().collect();
    rows.push(row("all".into(), &mut all));
    rows
}

/// Builds the report over `alerts` for `[from, to)`.
pub fn build<'a>(
    alerts: impl IntoIterator<Item = &'a TrackedAlert>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Report {
    let mut r = Report {
        from,
        to,
        alerts: 0,
        by_type: BTreeMap::new(),
        by_severity: BTreeMap::new(),
        by_source: BTreeMap::new(),
        by_status: BTreeMap::new(),
        rules: Vec::new(),
        sla: Vec::new(),
        time_to_triage: Vec::new(),
        time_to_resolve: Vec::new(),
        escalations: BTreeMap::new(),
        escalations_by_severity: BTreeMap::new(),
    };
    let mut rules: BTreeMap<&str, RuleRow> = BTreeMap::new();
    let mut sla: BTreeMap<Severity, SlaRow> = BTreeMap::new();
    let mut triage: BTreeMap<Severity, Vec<f64>> = BTreeMap::new();
    let mut resolve: BTreeMap<Severity, Vec<f64>> = BTreeMap::new();
    for a in alerts {
        if a.detected_at < from || a.detected_at >= to {
            continue;
        }
        r.alerts += 1;
        *r.by_type
            .entry(a.alert_type.as_str().to_string())
            .or_default() += 1;
        *r.by_severity.entry(a.severity).or_default() += 1;
        *r.by_source.entry(a.source.clone()).or_default() += 1;
        let status = a
            .history
            .iter()
            .take_while(|h| h.at <= to)
            .last()
            .map_or(Status::Open, |h| h.status);
        *r.by_status.entry(status).or_default() += 1;
        let rule = rules.entry(&a.rule_id).or_insert_with(|| RuleRow {
            rule_id: a.rule_id.clone(),
            title: a.rule_title.clone(),
            alerts: 0,
            false_positives: 0,
        });
        rule.alerts += 1;
        if status == Status::FalsePositive {
            rule.false_positives += 1;
        }
        let row = sla.entry(a.severity).or_insert_with(|| SlaRow {
            severity: a.severity,
            met: 0,
            breached: 0,
            overdue: 0,
            pending: 0,
        });
        match SlaState::of(a, to) {
            SlaState::Met => row.met += 1,
            SlaState::Breached => row.breached += 1,
            SlaState::Overdue => row.overdue += 1,
            SlaState::Pending => row.pending += 1,
        }
        let seconds = |t: DateTime<Utc>| (t - a.detected_at).num_milliseconds() as f64 / 1000.0;
        if let Some(t) = a.triaged_at().filter(|&t| t <= to) {
            triage.entry(a.severity).or_default().push(seconds(t));
        }
        if let Some(t) = a.closed_at().filter(|&t| t <= to) {
            resolve.entry(a.severity).or_default().push(seconds(t));
        }
        for e in a.escalations.iter().filter(|e| e.at <= to) {
            *r.escalations.entry(e.level.clone()).or_default() += 1;
            *r.escalations_by_severity
                .entry((a.severity, e.level.clone()))
                .or_default() += 1;
        }
    }
    r.rules = rules.into_values().collect();
    r.rules.sort_by(|a, b| {
        b.alerts
            .cmp(&a.alerts)
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    r.sla = sla.into_values().collect();
    r.time_to_triage = time_rows(&triage);
    r.time_to_resolve = time_rows(&resolve);
    r
}

/// `3d 4h`, `2h 5m`, `40s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{:.1}%", x * 100.0))
}

fn opt_duration(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), human_duration)
}

fn day(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

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

/// RFC 4180 quoting.
fn csv_field(text: &str) -> String {
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
    row("total", "all", "alerts", r.alerts.to_string());
    for (k, v) in &r.by_type {
        row("type", k, "alerts", v.to_string());
    }
    for (k, v) in &r.by_severity {
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
    out
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart as inline SVG.
fn bar_chart(title: &str, bars: &[(String, f64, String)]) -> String {
    const ROW: usize = 22;
    const LABEL: usize = 220;
    const WIDTH: usize = 360;
    let max = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let height = ROW * bars.len().max(1) + 10;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{}\" height=\"{height}\" aria-label=\"{}\">",
        html_escape(title),
        LABEL + WIDTH + 120,
        html_escape(title)
    );
    for (i, (label, value, shown)) in bars.iter().enumerate() {
        let y = i * ROW + 4;
        let w = if max > 0.0 {
            (value / max * WIDTH as f64).round() as usize
        } else {
            0
        };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"#3b6ea8\"/><text x=\"{}\" y=\"{}\">{}</text>",
            LABEL - 6,
            y + 14,
            html_escape(&crate::vocab::text::shorten(label, 34)),
            ROW - 6,
            LABEL + w + 6,
            y + 14,
            html_escape(shown)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

/// The report as one self-contained HTML page (no scripts, no external files).
pub fn html(r: &Report) -> String {
    let md_tables = markdown(r);
    let mut body = String::new();
    let count_bars = |m: Vec<(String, u64)>| -> Vec<(String, f64, String)> {
        m.into_iter()
            .map(|(k, v)| (k, v as f64, v.to_string()))
            .collect()
    };
    body.push_str(&bar_chart(
        "Alerts by severity",
        &count_bars(
            r.by_severity
                .iter()
                .rev()
                .map(|(k, v)| (k.label().to_string(), *v))
                .collect(),
        ),
    ));
    body.push_str(&bar_chart(
        "SLA compliance by severity",
        &r.sla
            .iter()
            .rev()
            .map(|s| {
                (
                    s.severity.label().to_string(),
                    s.compliance().unwrap_or(0.0) * 100.0,
                    percent(s.compliance()),
                )
            })
            .collect::<Vec<_>>(),
    ));
    body.push_str(&bar_chart(
        "Median time to triage by severity",
        &r.time_to_triage
            .iter()
            .map(|t| {
                (
                    t.group.clone(),
                    t.median.unwrap_or(0.0),
                    opt_duration(t.median),
                )
            })
            .collect::<Vec<_>>(),
    ));
    body.push_str(&bar_chart(
        "Noisiest rules",
        &count_bars(
            r.rules
                .iter()
                .take(NOISIEST)
                .map(|x| (x.title.clone(), x.alerts))
                .collect(),
        ),
    ));
    body.push_str(&bar_chart(
        "Escalations by level",
        &count_bars(r.escalations.iter().map(|(k, v)| (k.clone(), *v)).collect()),
    ));
    // The tables: the Markdown tables, rendered.
    let mut tables = String::new();
    let mut in_table = false;
    for line in md_tables.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(tables, "<h2>{}</h2>", html_escape(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(tables, "<h1>{}</h1>", html_escape(h));
        } else if line.starts_with("|---") {
            continue;
        } else if let Some(row) = line.strip_prefix("| ").and_then(|l| l.strip_suffix(" |")) {
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                tables.push_str("<table>");
                in_table = true;
            }
            tables.push_str("<tr>");
            for cell in row.split(" | ") {
                let _ = write!(
                    tables,
                    "<{tag}>{}</{tag}>",
                    html_escape(&cell.replace("\\|", "|"))
                );
            }
            tables.push_str("</tr>\n");
        } else {
            if in_table {
                tables.push_str("</table>\n");
                in_table = false;
            }
            if !line.trim().is_empty() {
                let text = html_escape(line).replace("**", "");
                let _ = writeln!(tables, "<p>{text}</p>");
            }
        }
    }
    if in_table {
        tables.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tocsin alert review {} to {}</title>\n<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}}table{{border-collapse:collapse;margin-bottom:1rem}}td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}}th{{background:#eef}}svg text{{font-size:12px}}figure{{margin:1rem 0}}figcaption{{font-weight:bold}}</style></head>\n<body>\n{tables}<h2>Charts</h2>\n{body}</body></html>\n",
        day(r.from),
        day(r.to)
    )
}

#[cfg(test)]
mod tests {
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
}
