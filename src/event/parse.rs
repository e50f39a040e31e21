//! Choosing a parser per source and turning one record into an [`Event`].

use super::time::TimeOptions;
use super::{access_log, json, sshd, syslog, windows, Event, Fields, Origin, Original};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a record is read: the format a source is configured with, and the
/// one an event was read as (never [`InputFormat::Auto`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum InputFormat {
    /// A JSON object, flat or nested (Winlogbeat recognised).
    Json,
    /// RFC 3164 or RFC 5424 syslog.
    Syslog,
    /// Apache/nginx common or combined access log.
    AccessLog,
    /// Windows evtx_dump JSON (`Event.System`, `Event.EventData`).
    EvtxJson,
    /// JSON if the line is a JSON object (Windows evtx_dump shape recognised), else access log, else syslog.
    #[default]
    Auto,
}

impl InputFormat {
    /// Every format an event can be read as, in discriminant order
    /// (`ALL[f as usize] == f`): per-format tables index by it.
    pub const ALL: [InputFormat; 4] = [
        InputFormat::Json,
        InputFormat::Syslog,
        InputFormat::AccessLog,
        InputFormat::EvtxJson,
    ];

    /// The format's name in configuration and on the command line (`access-log`).
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Json => "json",
            InputFormat::Syslog => "syslog",
            InputFormat::AccessLog => "access-log",
            InputFormat::EvtxJson => "evtx-json",
            InputFormat::Auto => "auto",
        }
    }

    /// The format a name stands for, `auto` included; None for an unknown name.
    pub fn from_name(name: &str) -> Option<InputFormat> {
        InputFormat::ALL
            .into_iter()
            .chain([InputFormat::Auto])
            .find(|f| f.name() == name)
    }
}

impl std::fmt::Display for InputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a record could not become an event. Goes to the dead-letter destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format}: {reason}")]
pub struct ParseError {
    /// The format that refused the record (`auto` when no format took it).
    pub format: &'static str,
    /// What was wrong with the record.
    pub reason: String,
}

/// A configured parser.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    /// The format the source is configured with.
    pub format: InputFormat,
    /// How event times are read.
    pub time: TimeOptions,
}

impl Parser {
    /// A parser for `format`, reading times as `time` says.
    pub fn new(format: InputFormat, time: TimeOptions) -> Self {
        Parser { format, time }
    }

    /// Parses one record. `ingest_time` is the fallback event time and the
    /// reference for syslog's missing year.
    pub fn parse(
        &self,
        line: &str,
        origin: Origin,
        ingest_time: DateTime<Utc>,
    ) -> Result<Event, ParseError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut event = self.parse_line(line, origin, ingest_time)?;
        if !super::time::plausible(event.time) {
            event.time = ingest_time;
            event.time_from_event = false;
        }
        Ok(event)
    }

    fn parse_line(
        &self,
        line: &str,
        origin: Origin,
        ingest_time: DateTime<Utc>,
    ) -> Result<Event, ParseError> {
        match self.format {
            InputFormat::Json => self.json(line, origin, ingest_time, false),
            InputFormat::EvtxJson => self.json(line, origin, ingest_time, true),
            InputFormat::Syslog => self.syslog(line, origin, ingest_time),
            InputFormat::AccessLog => self.access(line, origin),
            InputFormat::Auto => {
                if line.trim_start().starts_with('{') {
                    return self.json(line, origin, ingest_time, false);
                }
                if let Ok(event) = self.access(line, origin.clone()) {
                    return Ok(event);
                }
                self.syslog(line, origin, ingest_time)
                    .map_err(|e| ParseError {
                        format: "auto",
                        reason: format!(
                            "not a JSON object, an access log line or a syslog line ({})",
                            e.reason
                        ),
                    })
            }
        }
    }

    fn json(
        &self,
        line: &str,
        origin: Origin,
        ingest: DateTime<Utc>,
        require_evtx: bool,
    ) -> Result<Event, ParseError> {
        let name = if require_evtx { "evtx-json" } else { "json" };
        let err = |reason: String| ParseError {
            format: name,
            reason,
        };
        // Most JSON lines are flat objects, read lazily (see `fields.rs`);
        // evtx_dump and Winlogbeat events are flattened from the index when
        // they can be.
        let indexed = match require_evtx {
            true => json::validated(line).map_or(json::Indexed::Tree, json::Indexed::Reshape),
            false => json::index_object(line),
        };
        let lazy = match indexed {
            json::Indexed::Flat(fields) => {
                Some((fields, InputFormat::Json, Original::SameAsFields))
            }
            json::Indexed::Reshape(line)
                if require_evtx || line.members.iter().any(|(k, _)| k == "Event") =>
            {
                windows::flatten_lazy(line).map(|f| (f, InputFormat::EvtxJson, Original::InFields))
            }
            json::Indexed::Reshape(line) => windows::flatten_winlogbeat_lazy(line)
                .map(|f| (f, InputFormat::Json, Original::InFields)),
            json::Indexed::Tree => None,
        };
        if let Some((fields, format, original)) = lazy {
            return Ok(self.json_event(fields, format, original, origin, ingest));
        }
        let object = json::parse_object(line).map_err(err)?;
        let (fields, format, original) = if windows::is_evtx_shape(&object) {
            let flat = windows::flatten(object).map_err(|r| err(r.to_string()))?;
            (
                flat,
                InputFormat::EvtxJson,
                Original::JsonText(line.to_string()),
            )
        } else if windows::is_winlogbeat_shape(&object) {
            let flat = windows::flatten_winlogbeat(object);
            (
                flat,
                InputFormat::Json,
                Original::JsonText(line.to_string()),
            )
        } else if require_evtx {
            return Err(err(
                "not an evtx_dump event: no `Event.System` object".into()
            ));
        } else {
            (object, InputFormat::Json, Original::SameAsFields)
        };
        Ok(self.json_event(fields.into(), format, original, origin, ingest))
    }

    fn json_event(
        &self,
        fields: Fields,
        format: InputFormat,
        original: Original,
        origin: Origin,
        ingest: DateTime<Utc>,
    ) -> Event {
        let event_time = self.time.extract(&fields);
        Event {
            time: event_time.unwrap_or(ingest),
            time_from_event: event_time.is_some(),
            fields,
            format,
            original,
            origin,
        }
    }

    fn syslog(
        &self,
        line: &str,
        origin: Origin,
        ingest: DateTime<Utc>,
    ) -> Result<Event, ParseError> {
        let mut parsed = syslog::parse(line, ingest).map_err(|reason| ParseError {
            format: "syslog",
            reason,
        })?;
        sshd::enrich(&mut parsed.fields);
        let fields = Fields::from(parsed.fields);
        let time = self.configured_time(&fields).or(parsed.time);
        Ok(Event {
            time: time.unwrap_or(ingest),
            time_from_event: time.is_some(),
            fields,
            format: InputFormat::Syslog,
            original: Original::Text(line.to_string()),
            origin,
        })
    }

    fn access(&self, line: &str, origin: Origin) -> Result<Event, ParseError> {
        let parsed = access_log::parse(line).map_err(|reason| ParseError {
            format: "access-log",
            reason,
        })?;
        let fields = Fields::from(parsed.fields);
        let time = self.configured_time(&fields).unwrap_or(parsed.time);
        Ok(Event {
            time,
            time_from_event: true,
            fields,
            format: InputFormat::AccessLog,
            original: Original::Text(line.to_string()),
            origin,
        })
    }

    /// A configured time field overrides what a text parser found.
    fn configured_time(&self, fields: &Fields) -> Option<DateTime<Utc>> {
        self.time.field.as_ref()?;
        self.time.extract(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Position;

    fn origin() -> Origin {
        Origin {
            source: "test".into(),
            position: Position::Line { line: 1 },
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn auto(line: &str) -> Result<Event, ParseError> {
        Parser::default().parse(line, origin(), now())
    }

    #[test]
    fn auto_detects_each_format() {
        assert_eq!(auto(r#"{"a": 1}"#).unwrap().format, InputFormat::Json);
        assert_eq!(
            auto(r#"{"Event": {"System": {"EventID": 1}}}"#)
                .unwrap()
                .format,
            InputFormat::EvtxJson
        );
        assert_eq!(
            auto(r#"1.2.3.4 - - [21/Apr/2004:10:56:07 -0400] "GET / HTTP/1.1" 200 1"#)
                .unwrap()
                .format,
            InputFormat::AccessLog
        );
        assert_eq!(
            auto("Dec 10 06:55:46 LabSZ sshd[1]: hi").unwrap().format,
            InputFormat::Syslog
        );
    }

    #[test]
    fn unparseable_lines_say_why() {
        let err = auto("2016-09-28 04:30:30, Info CBS Loaded Servicing Stack").unwrap_err();
        assert_eq!(err.format, "auto");
        assert!(err.reason.contains("not a JSON object"), "{err}");
        let err = auto(r#"{"broken": "#).unwrap_err();
        assert_eq!(err.format, "json");
    }

    #[test]
    fn explicit_formats_do_not_fall_back() {
        let p = Parser::new(InputFormat::Syslog, TimeOptions::default());
        assert!(p.parse(r#"{"a": 1}"#, origin(), now()).is_err());
        let p = Parser::new(InputFormat::EvtxJson, TimeOptions::default());
        assert!(p
            .parse(r#"{"a": 1}"#, origin(), now())
            .unwrap_err()
            .reason
            .contains("evtx"));
    }

    #[test]
    fn event_time_comes_from_the_event_else_ingest_time() {
        let e = auto(r#"{"@timestamp": "2026-01-02T03:04:05Z"}"#).unwrap();
        assert!(e.time_from_event);
        assert_eq!(e.time.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let e = auto(r#"{"msg": "no time"}"#).unwrap();
        assert!(!e.time_from_event);
        assert_eq!(e.time, now());
    }

    #[test]
    fn evtx_events_keep_their_original_shape_for_evidence() {
        let e =
            auto(r#"{"Event": {"System": {"EventID": "4688", "Channel": "Security"}}}"#).unwrap();
        assert_eq!(e.fields.get("EventID"), Some(&4688.into()));
        assert_eq!(e.original_json()["Event"]["System"]["EventID"], "4688");
        assert_eq!(
            e.raw_text(),
            None,
            "keyword rules search values, not JSON text"
        );
    }

    #[test]
    fn winlogbeat_events_keep_their_original_shape_and_a_compact_fingerprint() {
        let line = r#"{"winlog": {"channel": "Security", "event_id": 4624}, "message": "m"}"#;
        let e = auto(line).unwrap();
        assert_eq!(e.fields.get("Channel"), Some(&"Security".into()));
        assert_eq!(e.original_json()["winlog"]["event_id"], 4624);
        let mut fingerprint = Vec::new();
        e.fingerprint_into(&mut fingerprint);
        assert_eq!(
            fingerprint,
            br#"{"winlog":{"channel":"Security","event_id":4624},"message":"m"}"#
        );
    }

    #[test]
    fn raw_lines_keep_their_text() {
        let e = auto("Dec 10 06:55:46 LabSZ sshd[1]: hi\r\n").unwrap();
        assert_eq!(e.raw_text(), Some("Dec 10 06:55:46 LabSZ sshd[1]: hi"));
    }

    #[test]
    fn times_beyond_year_9999_or_before_year_0_fall_back_to_the_read_time() {
        for line in [
            r#"{"@timestamp": "+262142-12-31T23:59:59Z", "a": 1}"#,
            r#"{"timestamp": "-0001-01-01T00:00:00Z"}"#,
            r#"{"ts": 99999999999999999}"#,
        ] {
            let e = auto(line).unwrap();
            assert_eq!(e.time, now(), "{line}");
        }
        let e = auto(r#"{"@timestamp": "0000-01-01T00:00:00Z"}"#).unwrap();
        assert!(e.time_from_event);
        let e = Parser::new(
            InputFormat::Json,
            TimeOptions {
                field: Some("t".into()),
                format: Some("%Y-%m-%dT%H:%M:%S".into()),
            },
        )
        .parse(r#"{"t": "+200000-01-01T00:00:00"}"#, origin(), now())
        .unwrap();
        assert_eq!(e.time, now());
    }
}
