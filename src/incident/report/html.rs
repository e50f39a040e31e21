//! The report as a self-contained HTML page.

use super::{day, markdown, opt_duration, percent, Report, NOISIEST};
use std::fmt::Write as _;

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

/// Longest label shown in a chart, in characters.
const LABEL_CHARS: usize = 48;
/// Width of a character of the 12px chart font, generously: labels must
/// never be clipped.
const CHAR_PX: usize = 8;

/// A horizontal bar chart as inline SVG. Bars are scaled to `full` (100 for
/// percentages) or, when `None`, to the largest value. The label column is
/// as wide as the longest label.
fn bar_chart(title: &str, bars: &[(String, f64, String)], full: Option<f64>) -> String {
    const ROW: usize = 22;
    const WIDTH: usize = 360;
    if bars.is_empty() {
        return format!(
            "<figure><figcaption>{}</figcaption><p>none in this period</p></figure>\n",
            html_escape(title)
        );
    }
    let labels: Vec<String> = bars
        .iter()
        .map(|b| crate::vocab::text::shorten(&b.0, LABEL_CHARS).into_owned())
        .collect();
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let label_px = longest * CHAR_PX + 12;
    let max = full.unwrap_or_else(|| bars.iter().map(|b| b.1).fold(0.0_f64, f64::max));
    let height = ROW * bars.len().max(1) + 10;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{}\" height=\"{height}\" aria-label=\"{}\">",
        html_escape(title),
        label_px + WIDTH + 120,
        html_escape(title)
    );
    if full.is_some() {
        // The scale's end, so that a short bar reads as a low share.
        let _ = write!(
            svg,
            "<rect x=\"{label_px}\" y=\"2\" width=\"{WIDTH}\" height=\"{}\" fill=\"none\" stroke=\"#bbb\"/>",
            height - 6
        );
    }
    for (i, ((_, value, shown), label)) in bars.iter().zip(&labels).enumerate() {
        let y = i * ROW + 4;
        let w = if max > 0.0 {
            (value.clamp(0.0, max) / max * WIDTH as f64).round() as usize
        } else {
            0
        };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_px}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"#3b6ea8\"/><text x=\"{}\" y=\"{}\">{}</text>",
            label_px - 6,
            y + 14,
            html_escape(label),
            ROW - 6,
            label_px + w + 6,
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
        None,
    ));
    body.push_str(&bar_chart(
        "SLA compliance by severity (0-100%)",
        &r.sla
            .iter()
            .map(|s| {
                (
                    s.severity.label().to_string(),
                    s.compliance().unwrap_or(0.0) * 100.0,
                    percent(s.compliance()),
                )
            })
            .collect::<Vec<_>>(),
        Some(100.0),
    ));
    body.push_str(&bar_chart(
        "Median time to triage by severity",
        &r.time_to_triage
            .iter()
            .map(|t| {
                (
                    super::markdown::group_label(&t.group),
                    t.median.unwrap_or(0.0),
                    opt_duration(t.median),
                )
            })
            .collect::<Vec<_>>(),
        None,
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
        None,
    ));
    body.push_str(&bar_chart(
        "Escalations by level",
        &count_bars(r.escalations.iter().map(|(k, v)| (k.clone(), *v)).collect()),
        None,
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
