//! How an anomaly is told: its stable id, the line's text
//! (`<job title>: user=bob high_count was 40 (typical 3)`) and the evidence
//! record the alert carries.

use super::{Anomaly, AnomalyJob, Measure};
use crate::event::{Origin, Position};
use crate::vocab::text::{shorten, MAX_VALUE_CHARS};
use serde_json::Value;

/// The stable id of an anomaly: its job, entity and bucket.
pub(crate) fn anomaly_id(job: &AnomalyJob, anomaly: &Anomaly) -> String {
    let mut key = format!("{}\n", job.rule.meta.id);
    for (_, v) in &anomaly.entity {
        key.push_str(v);
        key.push('\u{1f}');
    }
    key.push_str(&anomaly.bucket_start.timestamp().to_string());
    crate::vocab::id::stable_id(&key)
}

/// The line's text: `<job title>: <entity> <function> was <actual> (typical
/// <expected>)`, with ` for 10:00-11:00 UTC, weekdays` inside the brackets
/// when the typical value is that season's.
pub(crate) fn alert_text(job: &AnomalyJob, anomaly: &Anomaly) -> String {
    let spec = &job.spec;
    let entity = if anomaly.entity.is_empty() {
        "all events".to_string()
    } else {
        anomaly
            .entity
            .iter()
            .map(|(k, v)| format!("{k}={}", shorten(v, MAX_VALUE_CHARS)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let function = match &spec.field {
        Some(f) => format!("{}({f})", spec.function_name()),
        None => spec.function_name(),
    };
    let shown = |m: &Measure| shorten(&m.to_string(), MAX_VALUE_CHARS).into_owned();
    let season = anomaly
        .season
        .as_ref()
        .map(|s| format!(" for {s}"))
        .unwrap_or_default();
    format!(
        "{}: {entity} {function} was {} (typical {}{season})",
        job.rule.meta.title,
        shown(&anomaly.actual),
        shown(&anomaly.typical)
    )
}

/// The evidence record: the bucket, the score and what it was compared with.
pub(crate) fn evidence(job: &AnomalyJob, anomaly: &Anomaly) -> Value {
    let spec = &job.spec;
    serde_json::json!({
        "anomaly": {
            "job": job.name(),
            "function": spec.function_name(),
            "field": spec.field,
            "entity": anomaly.entity.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
            "bucket": {
                "start": anomaly.bucket_start,
                "end": anomaly.bucket_end,
                "span_seconds": spec.bucket_span.as_secs(),
            },
            "score": anomaly.score,
            "surprise": anomaly.surprise,
            "actual": anomaly.actual,
            "typical": anomaly.typical,
            "baseline": anomaly.baseline,
            "season": anomaly.season,
            "events": anomaly.events,
            "anomalies_in_window": anomaly.anomalies_in_window,
        }
    })
}

/// Where the anomaly's evidence came from: the entity's last event, or the job.
pub(crate) fn source(job: &AnomalyJob, anomaly: &Anomaly) -> Origin {
    anomaly.origin.clone().unwrap_or_else(|| Origin {
        source: format!("anomaly job {}", job.name()),
        position: Position::Line { line: 0 },
    })
}
