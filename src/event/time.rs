//! Event time: which field holds it and how to read it.

use super::Fields;
use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields tried, in order, when no time field is configured.
pub(crate) const DEFAULT_TIME_FIELDS: &[&str] = &[
    "@timestamp",
    "timestamp",
    "TimeCreated_SystemTime",
    "SystemTime",
    "UtcTime",
    "TimeCreated",
    "EventTime",
    "time",
    "ts",
];

/// How a source finds its event time. Serde form of `[[sources]] time_field`/`time_format`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOptions {
    /// Field name or dotted path; when unset, [`DEFAULT_TIME_FIELDS`] are tried.
    #[serde(default)]
    pub field: Option<String>,
    /// `rfc3339`, `unix`, `unix_ms`, or a chrono `strftime` format. When unset,
    /// common forms are recognised (RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` as UTC, epoch numbers).
    #[serde(default)]
    pub format: Option<String>,
}

impl TimeOptions {
    /// The event time from fields, if a candidate field holds a readable time.
    pub fn extract(&self, fields: &Fields) -> Option<DateTime<Utc>> {
        match &self.field {
            Some(name) => fields.get_path(name).and_then(|v| self.read(v)),
            None => DEFAULT_TIME_FIELDS
                .iter()
                .find_map(|name| fields.get(name).and_then(|v| self.read(v))),
        }
    }

    fn read(&self, value: &Value) -> Option<DateTime<Utc>> {
        match self.format.as_deref() {
            None => parse_any(value),
            Some("rfc3339") => value
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc)),
            Some("unix") => number(value).and_then(from_epoch_seconds),
            Some("unix_ms") => number(value).and_then(|n| from_epoch_seconds(n / 1000.0)),
            Some(fmt) => {
                let s = value.as_str()?;
                DateTime::parse_from_str(s, fmt)
                    .map(|d| d.with_timezone(&Utc))
                    .ok()
                    .or_else(|| {
                        NaiveDateTime::parse_from_str(s, fmt)
                            .ok()
                            .map(|n| n.and_utc())
                    })
            }
        }
    }
}

/// Whether an event time is one the engine works with: years 0000 through
/// 9999, all that RFC 3339 can write. Parsers fall back to the time a record
/// was read for anything else, so event-time arithmetic (windows, lateness,
/// buckets, deadlines; all bounded by [`crate::vocab::Span::MAX`]) stays far
/// from the ends of chrono's range.
pub(crate) fn plausible(time: DateTime<Utc>) -> bool {
    (0..=9999).contains(&time.year())
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn from_epoch_seconds(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round() as u32;
    Utc.timestamp_opt(whole as i64, nanos.min(999_999_999))
        .single()
}

/// Recognises RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC) and epoch seconds or milliseconds.
pub(crate) fn parse_any(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => parse_text(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if (1_000_000_000_000..10_000_000_000_000).contains(&i) {
                    return Utc.timestamp_millis_opt(i).single();
                }
            }
            let n = n.as_f64()?;
            // Plausible epoch ranges: seconds 2001..2286, milliseconds likewise.
            if (1e9..1e10).contains(&n) {
                from_epoch_seconds(n)
            } else if (1e12..1e13).contains(&n) {
                from_epoch_seconds(n / 1000.0)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn parse_text(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.fZ",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    if let Ok(d) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z") {
        return Some(d.with_timezone(&Utc));
    }
    let n: f64 = s.parse().ok()?;
    parse_any(&serde_json::Number::from_f64(n).map(Value::Number)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        v.as_object().cloned().unwrap().into()
    }

    #[test]
    fn default_fields_are_tried_in_order() {
        let f = fields(json!({"UtcTime": "2025-12-06 21:11:02.632", "other": 1}));
        let t = TimeOptions::default().extract(&f).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-12-06T21:11:02.632+00:00");
    }

    #[test]
    fn rfc3339_with_offsets_converts_to_utc() {
        let t = parse_any(&json!("2026-11-20T08:15:00.5+02:00")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-20T06:15:00.500+00:00");
    }

    #[test]
    fn epoch_seconds_and_milliseconds_are_recognised() {
        assert_eq!(
            parse_any(&json!(1_700_000_000)).unwrap().timestamp(),
            1_700_000_000
        );
        assert_eq!(
            parse_any(&json!(1_700_000_000_123u64))
                .unwrap()
                .timestamp_millis(),
            1_700_000_000_123
        );
        assert_eq!(parse_any(&json!(42)), None);
    }

    #[test]
    fn configured_field_and_format_win() {
        let opts = TimeOptions {
            field: Some("meta.when".into()),
            format: Some("%d/%m/%Y %H:%M".into()),
        };
        let f = fields(
            json!({"timestamp": "2020-01-01T00:00:00Z", "meta": {"when": "23/11/2026 10:30"}}),
        );
        assert_eq!(
            opts.extract(&f).unwrap().to_rfc3339(),
            "2026-11-23T10:30:00+00:00"
        );
        let unix = TimeOptions {
            field: Some("t".into()),
            format: Some("unix_ms".into()),
        };
        assert_eq!(
            unix.extract(&fields(json!({"t": 1000})))
                .unwrap()
                .timestamp(),
            1
        );
    }

    #[test]
    fn unreadable_times_give_none() {
        assert_eq!(
            TimeOptions::default().extract(&fields(json!({"timestamp": "yesterday"}))),
            None
        );
    }
}
