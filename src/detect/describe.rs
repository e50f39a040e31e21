//! How a rule match is told in one line: `key=value, ...` of who or what the
//! event is about, then the rule's `fields:`, then the fields its detection
//! reads; a keyword rule also says which keyword it found and in which
//! field (else it shows the message or raw line).

use super::CompiledRule;
use crate::event::{scalar_text, Event, ENTITY_FIELDS};
use crate::sigma::RuleValue;
use crate::vocab::text::{shorten, MAX_SUMMARY_FIELDS, MAX_VALUE_CHARS};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The text of an alert of `rule` on `event`: the rule's title, then what
/// the event shows (`Title: key=value, ...`), or the title alone.
pub(crate) fn alert_text(rule: &CompiledRule, event: &Event) -> String {
    let title = &rule.rule.meta.title;
    // Room for the title and a typical summary: the text is built once.
    let mut out = String::with_capacity(title.len() + 256);
    out.push_str(title);
    out.push_str(": ");
    let summary_at = out.len();
    write_summary(rule, event, &mut out);
    if out.len() == summary_at {
        out.truncate(title.len());
    }
    out
}

/// Appends the summary of `rule` matching `event` to `out`.
fn write_summary(rule: &CompiledRule, event: &Event, out: &mut String) {
    // Each name is looked up once; its value is kept for the text.
    let mut picked: Vec<(&str, &Value)> = Vec::with_capacity(MAX_SUMMARY_FIELDS + 1);
    // A shipper's nested `host` object names the collector, not the
    // endpoint (Winlogbeat-forwarded Windows events: `Computer` does).
    let entities = ENTITY_FIELDS.iter().copied().filter_map(|name| {
        event
            .get(name)
            .filter(|v| !v.is_object() && !v.is_array())
            .map(|v| (name, v))
    });
    let named = rule
        .rule
        .meta
        .fields
        .iter()
        .map(String::as_str)
        .chain(rule.detection_fields())
        .filter_map(|name| event.get(name).map(|v| (name, v)));
    for (name, value) in entities.chain(named) {
        if picked.len() >= MAX_SUMMARY_FIELDS {
            break;
        }
        if !value.is_null() && !picked.iter().any(|(n, _)| *n == name) {
            picked.push((name, value));
        }
    }
    let start = out.len();
    if let Some((keyword, field)) = keyword_hit(rule, event) {
        let _ = write!(
            out,
            "keyword {:?} in {field}",
            shorten(&keyword, MAX_VALUE_CHARS)
        );
    }
    // Keyword rules read no field: show the message, or the raw line.
    if picked.len() <= 1 && out.len() == start {
        let shown = ["message", "CommandLine", "cs-uri-stem"]
            .into_iter()
            .find_map(|name| event.get(name).map(|v| (name, v)));
        if let Some((name, value)) = shown {
            if !picked.iter().any(|(n, _)| *n == name) {
                picked.push((name, value));
            }
        }
    }
    for (name, value) in picked {
        let text = scalar_text(value).unwrap_or_else(|| Cow::Owned(value.to_string()));
        if out.len() > start {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&shorten(text.trim(), MAX_VALUE_CHARS));
    }
}

/// For a rule with keyword items: the first of its keywords found in the
/// event (case-insensitive, as Sigma keywords match), and the field it is
/// in (dotted for nested ones). Runs only for alerts, not per event.
fn keyword_hit(rule: &CompiledRule, event: &Event) -> Option<(String, String)> {
    let keywords = rule
        .rule
        .detection
        .items()
        .filter(|item| item.field.is_none())
        .flat_map(|item| &item.values);
    for keyword in keywords {
        let RuleValue::Str(text) = keyword else {
            continue;
        };
        // The longest piece between wildcards stands for the keyword.
        let Some(piece) = text
            .split(['*', '?'])
            .max_by_key(|p| p.len())
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        let needle = piece.replace('\\', "").to_lowercase();
        let mut path = String::new();
        if let Some(field) = field_containing(event.fields.iter(), &needle, &mut path) {
            return Some((text.clone(), field));
        }
    }
    None
}

/// The first field under `map` whose text contains `needle` (lower case).
fn field_containing<'a, K: AsRef<str>>(
    members: impl IntoIterator<Item = (K, &'a Value)>,
    needle: &str,
    path: &mut String,
) -> Option<String> {
    for (name, value) in members {
        let name = name.as_ref();
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(name);
        let found = match value {
            Value::String(s) => s.to_lowercase().contains(needle).then(|| path.clone()),
            Value::Object(inner) => field_containing(inner, needle, path),
            Value::Array(items) => items.iter().find_map(|item| match item {
                Value::String(s) => s.to_lowercase().contains(needle).then(|| path.clone()),
                Value::Object(inner) => field_containing(inner, needle, path),
                _ => None,
            }),
            _ => None,
        };
        path.truncate(len);
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testing::compile_text;
    use crate::event::{test_event, InputFormat};
    use serde_json::json;

    fn summary_of(rule: &str, event: Value) -> String {
        let (engine, problems, _) = compile_text(rule);
        assert!(problems.is_empty(), "{problems:?}");
        let mut out = String::new();
        write_summary(
            &engine.rules()[0],
            &test_event(event, InputFormat::Json),
            &mut out,
        );
        out
    }

    #[test]
    fn the_alert_text_is_the_title_then_the_summary_or_the_title_alone() {
        let rule = "title: Root login\nlogsource: {product: linux}\ndetection:\n  s: {user: root}\n  condition: s\n";
        let (engine, _, _) = compile_text(rule);
        let text = |event| alert_text(&engine.rules()[0], &test_event(event, InputFormat::Json));
        assert_eq!(
            text(json!({"host": "web1", "user": "root"})),
            "Root login: host=web1, user=root"
        );
        assert_eq!(text(json!({"other": 1})), "Root login");
    }

    const KEYWORDS: &str = "title: Mimikatz\nlogsource: {product: windows}\ndetection:\n  keywords: ['*sekurlsa::*', 'gentilkiwi.com']\n  condition: keywords\n";

    #[test]
    fn a_keyword_rule_says_which_keyword_it_found_and_where() {
        let line = summary_of(
            KEYWORDS,
            json!({"Computer": "IT001", "EventData": {"Payload": "Invoke-Mimikatz -Command SEKURLSA::logonpasswords"}}),
        );
        assert_eq!(
            line,
            "keyword \"*sekurlsa::*\" in EventData.Payload, Computer=IT001"
        );
    }

    #[test]
    fn a_shippers_host_object_is_not_the_endpoint() {
        let line = summary_of(
            KEYWORDS,
            json!({"host": {"name": "WECserver"}, "Computer": "IT001", "param3": "see gentilkiwi.com"}),
        );
        assert_eq!(line, "keyword \"gentilkiwi.com\" in param3, Computer=IT001");
        let field_rule = "title: t\nlogsource: {product: linux}\ndetection:\n  s: {user: root}\n  condition: s\n";
        assert_eq!(
            summary_of(field_rule, json!({"host": "web1", "user": "root"})),
            "host=web1, user=root"
        );
    }
}
