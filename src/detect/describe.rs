//! How a rule match is told in one line: `key=value, ...` of who or what the
//! event is about, then the rule's `fields:`, then the fields its detection
//! reads (a keyword rule, reading none, shows the message or raw line).

use super::CompiledRule;
use crate::event::{scalar_text, Event};
use crate::vocab::text::{shorten, MAX_SUMMARY_FIELDS, MAX_VALUE_CHARS};

/// Fields that name who or what an event is about, shown first when present.
const ENTITY_FIELDS: &[&str] = &[
    "host",
    "Computer",
    "c-ip",
    "User",
    "SubjectUserName",
    "TargetUserName",
];

/// The summary of `rule` matching `event`.
pub(crate) fn summary(rule: &CompiledRule, event: &Event) -> String {
    let mut names: Vec<&str> = Vec::new();
    let candidates = ENTITY_FIELDS
        .iter()
        .copied()
        .chain(rule.rule.meta.fields.iter().map(String::as_str))
        .chain(rule.detection_fields());
    for name in candidates {
        if names.len() >= MAX_SUMMARY_FIELDS {
            break;
        }
        if !names.contains(&name) && event.get(name).is_some_and(|v| !v.is_null()) {
            names.push(name);
        }
    }
    // Keyword rules read no field: show the message, or the raw line.
    if names.len() <= 1 {
        if let Some(name) = ["message", "CommandLine", "cs-uri-stem"]
            .into_iter()
            .find(|n| event.get(n).is_some())
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut out = String::new();
    for name in names {
        let Some(value) = event.get(name) else {
            continue;
        };
        let text = match scalar_text(value) {
            Some(t) => t.into_owned(),
            None => value.to_string(),
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&shorten(text.trim(), MAX_VALUE_CHARS));
    }
    out
}
