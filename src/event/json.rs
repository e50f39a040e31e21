//! JSON lines: one object per line.

use serde_json::{Map, Value};

/// Parses one JSON object. Anything else is an error with a reason.
pub(crate) fn parse_object(line: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "JSON value is {}, not an object",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_and_other_values_are_rejected_with_a_reason() {
        assert!(parse_object(r#"{"a": {"b": [1]}}"#).is_ok());
        assert!(parse_object("[1]").unwrap_err().contains("array"));
        assert!(parse_object("{oops").unwrap_err().contains("invalid JSON"));
    }
}
