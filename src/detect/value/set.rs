//! An item's plain string values searched together: one literal set
//! instead of a comparison per value.

use super::super::literals::{Literals, Speed};
use super::super::pattern::Anchor;
use super::compare::ValuePred;
use serde_json::Value;

/// Least plain string values of one field item worth a literal set: each
/// value on its own costs a comparison (a scan of the text, for `contains`),
/// the set one walk from each end and one pass over the text.
pub(super) const SET_MIN_VALUES: usize = 4;

/// An item's plain string values (exact, prefix, suffix or substring,
/// case-insensitive, ASCII), searched together: such a value matches
/// exactly when its literal occurs where its anchor says.
#[derive(Debug, Clone)]
pub(super) struct ValueSet {
    pub(super) literals: Literals,
    /// Per distinct literal, a bit; `all` needs every bit (at most 128).
    pub(super) full: u128,
    /// Per value: whether the set decides it.
    pub(super) covered: Vec<bool>,
}

impl ValueSet {
    pub(super) fn new(preds: &[ValuePred], all: bool) -> Option<ValueSet> {
        fn plain(p: &ValuePred) -> Option<(Anchor, &str)> {
            match p {
                ValuePred::Str(s) => s.plain_literal(),
                _ => None,
            }
        }
        let mut distinct: Vec<(Anchor, &str)> = preds.iter().filter_map(plain).collect();
        let covered: Vec<bool> = preds.iter().map(|p| plain(p).is_some()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < SET_MIN_VALUES || (all && distinct.len() > 128) {
            return None;
        }
        Some(ValueSet {
            literals: Literals::new(&distinct, Speed::Compact),
            full: u128::MAX >> (128 - distinct.len().min(128)),
            covered,
        })
    }

    /// Reports the distinct literals found in the value's texts (array
    /// elements, numbers and booleans as text, as `matches_value` sees them).
    pub(super) fn hits(&self, value: &Value, hit: &mut dyn FnMut(usize)) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.hits(v, hit)),
            Value::Null | Value::Object(_) => {}
            Value::Number(n) => self.literals.for_each_hit(&n.to_string(), hit),
            Value::String(s) => self.literals.for_each_hit(s, hit),
            Value::Bool(b) => self
                .literals
                .for_each_hit(if *b { "true" } else { "false" }, hit),
        }
    }

    /// Whether any covered value matches.
    pub(super) fn any(&self, value: &Value) -> bool {
        let mut found = false;
        self.hits(value, &mut |_| found = true);
        found
    }

    /// Whether every covered value matches (sets for `all` have at most 128 literals).
    pub(super) fn all(&self, value: &Value) -> bool {
        let mut found = 0u128;
        self.hits(value, &mut |h| found |= 1 << h);
        found == self.full
    }
}
