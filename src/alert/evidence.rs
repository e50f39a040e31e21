//! An alert's evidence, kept as JSON text.
//!
//! A detection alert carries the event it matched. Building it as a
//! `serde_json::Value` cost every alert a deep copy of the event's tree, a
//! serialisation of that copy and a drop of it, several times the cost of
//! the detection on small events where many rules match. The evidence is
//! instead the event's JSON text, validated once per event, shared by all
//! its alerts and written as it is.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// JSON text, written verbatim into the alert record.
#[derive(Clone)]
pub struct Evidence(Arc<RawValue>);

impl Evidence {
    /// The evidence from JSON text as it arrived; `None` when it is not one
    /// JSON value.
    pub fn from_json_text(text: &str) -> Option<Evidence> {
        RawValue::from_string(text.to_owned())
            .ok()
            .map(|raw| Evidence(Arc::from(raw)))
    }

    /// The evidence from JSON text validated already, shared.
    pub fn from_raw(raw: Arc<RawValue>) -> Evidence {
        Evidence(raw)
    }

    /// The evidence from anything serialisable (a measured anomaly, a
    /// correlation's summary, a map of fields).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Evidence {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => Evidence(Arc::from(raw)),
            // Only a map with non-string keys fails, and no caller has one.
            Err(e) => Evidence::of(&serde_json::json!({ "unserialisable": e.to_string() })),
        }
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }
}

impl From<Value> for Evidence {
    fn from(value: Value) -> Evidence {
        Evidence::of(&value)
    }
}

impl PartialEq for Evidence {
    fn eq(&self, other: &Evidence) -> bool {
        self.json() == other.json()
    }
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Evidence, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Evidence(Arc::from(raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_written_as_it_arrived_and_read_back_the_same() {
        let text = r#"{"b": 1,  "a": [true, null]}"#;
        let e = Evidence::from_json_text(text).expect("valid JSON");
        #[derive(Serialize, Deserialize)]
        struct Record {
            event: Evidence,
        }
        let written = serde_json::to_string(&Record { event: e.clone() }).unwrap();
        assert_eq!(written, format!(r#"{{"event":{text}}}"#));
        let read: Record = serde_json::from_str(&written).unwrap();
        assert_eq!(read.event, e);
        let tree: Value = serde_json::from_str(read.event.json()).unwrap();
        assert_eq!(tree["a"][0], true);
    }

    #[test]
    fn text_that_is_not_one_json_value_is_no_evidence() {
        for text in ["", "{", "{} {}", "{\"a\":1", "nope"] {
            assert!(Evidence::from_json_text(text).is_none(), "{text}");
        }
        assert_eq!(
            Evidence::from_json_text("  {\"a\":1}\r\n").map(|e| e.json().to_string()),
            Some("{\"a\":1}".to_string())
        );
    }
}
