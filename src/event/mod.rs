//! Events: what a parser makes of one input record.
//!
//! An event has Sigma-named fields (a JSON object; nested objects are reached
//! by dotted path), the time it happened, where it came from, and its original
//! form kept for evidence.

pub(crate) mod access_log;
pub mod evtx;
mod fields;
pub(crate) mod json;
pub(crate) mod parse;
pub(crate) mod sshd;
pub(crate) mod syslog;
pub(crate) mod time;
pub(crate) mod windows;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

pub use fields::{FieldText, Fields, Iter as FieldsIter, JsonString};
pub use parse::{InputFormat, ParseError, Parser};

/// Fields that name who or what an event is about: alert lines show them
/// first, and suppression groups repeats by them unless told otherwise.
pub const ENTITY_FIELDS: &[&str] = &[
    "host",
    "Computer",
    "c-ip",
    "User",
    "SubjectUserName",
    "TargetUserName",
];
pub use time::TimeOptions;

/// Where a record was read: the source and the position within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The source's name: a file path, `stdin`, or a Kafka topic.
    pub source: String,
    /// Where in the source: a line, or a Kafka partition and offset.
    #[serde(flatten)]
    pub position: Position,
}

/// A record's position within its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Position {
    /// 1-based line number in a file or stream.
    Line {
        /// The line number, counting from 1.
        line: u64,
    },
    /// A Kafka record.
    Offset {
        /// The topic partition.
        partition: i32,
        /// The record's offset within the partition.
        offset: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Position::Line { line } => write!(f, "{}:{}", self.source, line),
            Position::Offset { partition, offset } => {
                write!(f, "{}[{}]@{}", self.source, partition, offset)
            }
        }
    }
}

/// The event as it arrived, for evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Original {
    /// The event was a JSON object and `fields` are exactly it.
    SameAsFields,
    /// A JSON object that parsing reshaped (Windows evtx_dump, Winlogbeat):
    /// its text as it arrived. Kept as text because only alerts need it
    /// again; a parsed copy would cost every event a deep clone and a drop.
    JsonText(String),
    /// A JSON object that parsing reshaped into the lazy form, whose text
    /// ([`Fields::json_text`]) is the object as it arrived: held once, not
    /// again beside the fields.
    InFields,
    /// A raw text line.
    Text(String),
}

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The fields, under Sigma names; [`Event::get`] also reaches nested ones.
    pub fields: Fields,
    /// The input format the record was parsed as.
    pub format: InputFormat,
    /// When it happened: from the event if it says, else when it was read.
    pub time: DateTime<Utc>,
    /// Whether `time` came from the event itself.
    pub time_from_event: bool,
    /// The record as it arrived, kept for alert evidence.
    pub original: Original,
    /// Where the record was read.
    pub origin: Origin,
}

impl Event {
    /// Looks a field up by exact name, then by dotted path into nested objects.
    ///
    /// Exact names win because real field names contain dots (`cs-uri.query`
    /// does not occur, but `winlog.event_data.x` flattened keys do).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get_path(name)
    }

    /// The raw text line, for raw-text events.
    pub fn raw_text(&self) -> Option<&str> {
        match &self.original {
            Original::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The original event as JSON: the object itself, or `{raw, fields}` for text.
    pub fn original_json(&self) -> Value {
        match &self.original {
            Original::SameAsFields => Value::Object(self.fields.to_map()),
            Original::JsonText(t) => {
                serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.clone()))
            }
            Original::InFields => self
                .fields
                .json_text()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_else(|| Value::Object(self.fields.to_map())),
            Original::Text(t) => serde_json::json!({
                "raw": t,
                "fields": Value::Object(self.fields.to_map()),
            }),
        }
    }

    /// Writes into `out` the bytes that identify this event's content, for
    /// stable alert ids: a text line as it is, JSON without the whitespace
    /// between tokens (so the id does not depend on the sender's spacing).
    /// `out` is the caller's, reused from event to event.
    pub fn fingerprint_into(&self, out: &mut Vec<u8>) {
        match &self.original {
            Original::Text(t) => out.extend_from_slice(t.as_bytes()),
            Original::JsonText(t) => json::compact_into(t, out),
            Original::SameAsFields | Original::InFields => match self.fields.json_text() {
                Some(t) => json::compact_into(t, out),
                // Writing a map of JSON values into a vector cannot fail.
                None => serde_json::to_writer(out, &self.fields).unwrap_or_default(),
            },
        }
    }
}

/// An event made of the given fields, for unit tests.
#[cfg(test)]
pub(crate) fn test_event(fields: Value, format: InputFormat) -> Event {
    let Value::Object(fields) = fields else {
        panic!("test events are JSON objects")
    };
    Event {
        fields: fields.into(),
        format,
        time: chrono::Utc::now(),
        time_from_event: false,
        original: Original::SameAsFields,
        origin: Origin {
            source: "test".into(),
            position: Position::Line { line: 1 },
        },
    }
}

/// Renders a scalar JSON value as Sigma compares it: strings as-is, numbers and booleans as text.
pub fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(fields: Value) -> Event {
        test_event(fields, InputFormat::Json)
    }

    #[test]
    fn every_format_is_at_its_discriminant_in_the_format_list() {
        for (i, f) in InputFormat::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i);
        }
    }

    #[test]
    fn fields_are_found_by_name_then_by_dotted_path() {
        let e = event(json!({"a.b": 1, "a": {"b": 2, "c": {"d": "x"}}}));
        assert_eq!(e.get("a.b"), Some(&json!(1)));
        assert_eq!(e.get("a.c.d"), Some(&json!("x")));
        assert_eq!(e.get("a.c.e"), None);
        assert_eq!(e.get("missing"), None);
    }

    #[test]
    fn origins_display_as_file_and_line_or_topic_partition_offset() {
        let file = Origin {
            source: "auth.log".into(),
            position: Position::Line { line: 7 },
        };
        assert_eq!(file.to_string(), "auth.log:7");
        let kafka = Origin {
            source: "logs".into(),
            position: Position::Offset {
                partition: 2,
                offset: 99,
            },
        };
        assert_eq!(kafka.to_string(), "logs[2]@99");
    }
}
