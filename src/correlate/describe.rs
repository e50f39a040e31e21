//! How a correlation firing is told: its stable id, the line's text
//! (`<title>: 12 events for user=bob within 10m (<first> to <last>)`) and
//! the evidence record the alert carries.

use super::{CompiledCorrelation, Firing};
use crate::sigma::correlation::CorrelationType;
use crate::vocab::text::{shorten, MAX_VALUE_CHARS};
use serde_json::Value;

/// A stable id for a correlation firing: its rule, group and window start.
pub(crate) fn correlation_id(corr: &CompiledCorrelation, f: &Firing) -> String {
    let mut key = corr.rule.meta.id.clone();
    for (_, v) in &f.group {
        key.push('\n');
        key.push_str(v);
    }
    key.push('\n');
    key.push_str(&f.first.to_rfc3339());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes()).to_string()
}

/// Human description of the measured value, e.g. `12 events`, `5 distinct user`.
pub(crate) fn describe(kind: CorrelationType, value: f64, field: Option<&str>) -> String {
    let field = field.unwrap_or("values");
    let v = if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    match kind {
        CorrelationType::EventCount => format!("{v} events"),
        CorrelationType::ValueCount => format!("{v} distinct {field}"),
        CorrelationType::Temporal => format!("all {v} rules"),
        CorrelationType::TemporalOrdered => format!("all {v} rules in order"),
        CorrelationType::ValueSum => format!("{field} sum {v}"),
        CorrelationType::ValueAvg => format!("{field} average {v}"),
        CorrelationType::ValuePercentile => format!("{field} share {v}%"),
    }
}

/// The line's text for a firing.
pub(crate) fn alert_text(corr: &CompiledCorrelation, firing: &Firing) -> String {
    let c = &corr.rule;
    let group: Vec<String> = firing
        .group
        .iter()
        .map(|(k, v)| format!("{k}={}", shorten(v, MAX_VALUE_CHARS)))
        .collect();
    format!(
        "{}: {} for {} within {} ({} to {})",
        c.meta.title,
        describe(c.kind, firing.value, c.condition.field.as_deref()),
        if group.is_empty() {
            "all events".to_string()
        } else {
            group.join(", ")
        },
        c.timespan,
        firing
            .first
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        firing
            .last
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The evidence record of a firing: what was measured over which events.
pub(crate) fn evidence(corr: &CompiledCorrelation, firing: &Firing) -> Value {
    let c = &corr.rule;
    serde_json::json!({
        "correlation": {
            "type": c.kind.name(),
            "group": firing.group.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
            "value": firing.value,
            "events": firing.events,
            "first": firing.first,
            "last": firing.last,
            "timespan_seconds": c.timespan.as_secs(),
            "evidence": firing.evidence,
        }
    })
}
