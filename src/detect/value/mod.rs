//! One search item compiled: `field|modifiers: values` -> a predicate on an event.
//!
//! Compilation resolves everything that does not depend on the event
//! (escapes, wildcards, encodings, windash permutations, placeholders, regexes,
//! networks), so evaluation is comparisons only.

mod compare;
mod encode;
mod set;
#[cfg(test)]
mod tests;

use super::pattern::Anchor;
use super::EventView;
use crate::sigma::{Modifier, RuleValue, SearchItem};
use compare::{
    compare_op, last_line, number_of, only, parse_network, pcre_ascii_classes, pcre_end_anchors,
    time_part, CmpOp, RefShape, ValuePred,
};
use encode::string_preds;
use serde_json::Value;
use set::ValueSet;
use std::collections::HashMap;

/// Named placeholder values for the `expand` modifier (`%Administrators%`).
pub type Placeholders = HashMap<String, Vec<String>>;

/// A compiled search item.
#[derive(Debug, Clone)]
pub(crate) struct ItemMatcher {
    /// `None` for keyword items, which search every value of the event.
    field: Option<String>,
    test: ItemTest,
}

#[derive(Debug, Clone)]
enum ItemTest {
    /// `field|exists: true|false`.
    Exists(bool),
    /// `field: null`: the field is absent or null.
    IsNull,
    Values {
        preds: Vec<ValuePred>,
        /// `all`: every value must match (otherwise any).
        all: bool,
        /// `neq`: the field exists and matches none of the values.
        negate: bool,
        /// The plain string values searched in one pass, when there are many.
        set: Option<Box<ValueSet>>,
        /// `preds[..ascii_preds]` may match an ASCII text; the rest need a
        /// non-ASCII character and are sorted last. Rules against lookalike
        /// characters and emoji list hundreds of such values, and most
        /// texts are ASCII: they are not compared one by one.
        ascii_preds: usize,
    },
}

impl ItemMatcher {
    /// Compiles an item. Errors are messages; the caller adds the position.
    pub(crate) fn compile(
        item: &SearchItem,
        placeholders: &Placeholders,
    ) -> Result<ItemMatcher, String> {
        let mods = &item.modifiers;
        let has = |m: Modifier| mods.contains(&m);
        let field = item.field.clone();
        let all = has(Modifier::All);
        let negate = has(Modifier::Neq);

        if has(Modifier::Exists) {
            only(mods, &[Modifier::Exists], "exists")?;
            if field.is_none() {
                return Err("`exists` needs a field name".into());
            }
            return match item.values.as_slice() {
                [RuleValue::Bool(b)] => Ok(ItemMatcher {
                    field,
                    test: ItemTest::Exists(*b),
                }),
                _ => Err("`exists` takes a single `true` or `false`".into()),
            };
        }

        if item.values.contains(&RuleValue::Null) {
            if item.values.len() != 1 {
                return Err(
                    "`null` cannot be part of a list of values; use a separate selection".into(),
                );
            }
            if !mods.is_empty() {
                return Err("`null` cannot take value modifiers".into());
            }
            if field.is_none() {
                return Err("a keyword cannot be `null`".into());
            }
            return Ok(ItemMatcher {
                field,
                test: ItemTest::IsNull,
            });
        }

        let preds = if has(Modifier::Re) {
            only(
                mods,
                &[
                    Modifier::Re,
                    Modifier::ReIgnoreCase,
                    Modifier::ReMultiLine,
                    Modifier::ReDotAll,
                    Modifier::All,
                    Modifier::Neq,
                ],
                "re",
            )?;
            let mut flags = String::new();
            for (m, f) in [
                (Modifier::ReIgnoreCase, 'i'),
                (Modifier::ReMultiLine, 'm'),
                (Modifier::ReDotAll, 's'),
            ] {
                if has(m) {
                    flags.push(f);
                }
            }
            item.values
                .iter()
                .map(|v| {
                    let text = v.text().unwrap_or_default();
                    let pattern = if flags.is_empty() {
                        text.clone()
                    } else {
                        format!("(?{flags}){text}")
                    };
                    regex::RegexBuilder::new(&pcre_end_anchors(&pcre_ascii_classes(&pattern)))
                        .size_limit(1 << 22)
                        .build()
                        .map(|re| ValuePred::Regex {
                            re,
                            required: super::regex_literals::required_literals(&pattern),
                        })
                        .map_err(|e| {
                            format!(
                                "invalid regular expression `{text}`: {}",
                                last_line(&e.to_string())
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else if [
            Modifier::ReIgnoreCase,
            Modifier::ReMultiLine,
            Modifier::ReDotAll,
        ]
        .iter()
        .any(|m| has(*m))
        {
            return Err("`i`, `m` and `s` are sub-modifiers of `re`".into());
        } else if has(Modifier::Cidr) {
            only(
                mods,
                &[Modifier::Cidr, Modifier::All, Modifier::Neq],
                "cidr",
            )?;
            item.values
                .iter()
                .map(|v| {
                    let text = v.text().unwrap_or_default();
                    parse_network(&text)
                        .map(ValuePred::Cidr)
                        .ok_or_else(|| format!("`{text}` is not a CIDR network"))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else if let Some(part) = time_part(mods) {
            let op = compare_op(mods).unwrap_or(CmpOp::Eq);
            item.values
                .iter()
                .map(|v| number_of(v).map(|n| ValuePred::Time(part, op, n)))
                .collect::<Result<Vec<_>, _>>()?
        } else if let Some(op) = compare_op(mods) {
            only(
                mods,
                &[
                    Modifier::Lt,
                    Modifier::Lte,
                    Modifier::Gt,
                    Modifier::Gte,
                    Modifier::All,
                ],
                "lt/lte/gt/gte",
            )?;
            item.values
                .iter()
                .map(|v| number_of(v).map(|n| ValuePred::Compare(op, n)))
                .collect::<Result<Vec<_>, _>>()?
        } else if has(Modifier::FieldRef) {
            only(
                mods,
                &[
                    Modifier::FieldRef,
                    Modifier::Contains,
                    Modifier::StartsWith,
                    Modifier::EndsWith,
                    Modifier::Cased,
                    Modifier::All,
                    Modifier::Neq,
                ],
                "fieldref",
            )?;
            let shape = if has(Modifier::Contains) {
                RefShape::Contains
            } else if has(Modifier::StartsWith) {
                RefShape::Prefix
            } else if has(Modifier::EndsWith) {
                RefShape::Suffix
            } else {
                RefShape::Exact
            };
            item.values
                .iter()
                .map(|v| match v {
                    RuleValue::Str(name) => Ok(ValuePred::FieldRef {
                        field: name.clone(),
                        shape,
                        cased: has(Modifier::Cased),
                    }),
                    _ => Err("`fieldref` values must be field names".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            string_preds(item, placeholders)?
        };

        let mut preds = preds;
        // Stable: the values keep their order within each part.
        preds.sort_by_key(ValuePred::needs_non_ascii);
        let ascii_preds = preds.iter().take_while(|p| !p.needs_non_ascii()).count();
        // Keyword items search every text of the event: no set for them.
        let set = match field {
            Some(_) => ValueSet::new(&preds, all).map(Box::new),
            None => None,
        };
        Ok(ItemMatcher {
            field,
            test: ItemTest::Values {
                preds,
                all,
                negate,
                set,
                ascii_preds,
            },
        })
    }

    /// The field this item reads (`None` for keywords).
    pub(crate) fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// Every field the item reads: its own and those named by `fieldref`
    /// values. `None` for keyword items, which read every value.
    pub(crate) fn reads(&self) -> Option<Vec<&str>> {
        let mut fields = vec![self.field.as_deref()?];
        if let ItemTest::Values { preds, .. } = &self.test {
            fields.extend(preds.iter().filter_map(|p| match p {
                ValuePred::FieldRef { field, .. } => Some(field.as_str()),
                _ => None,
            }));
        }
        Some(fields)
    }

    /// Literals of which at least one occurs (ASCII case-insensitively) in the
    /// item's field, where its anchor says, whenever the item matches; `None`
    /// when no such set exists (negations, regexes, networks, comparisons,
    /// existence, null). For `all`, any single value's literals are
    /// necessary: the most selective is taken. Numbers compare by value
    /// (`1` equals `1.0`), so their text is only required somewhere.
    pub(crate) fn index_atoms(&self) -> Option<Vec<(Anchor, String)>> {
        let ItemTest::Values {
            preds, all, negate, ..
        } = &self.test
        else {
            return None;
        };
        if *negate {
            return None;
        }
        let literals = |p: &ValuePred| match p {
            ValuePred::Str(s) => s.required_literal().map(|l| vec![l]),
            ValuePred::Number { value, text } if value.fract() == 0.0 => text
                .required_literal()
                .map(|(_, l)| vec![(Anchor::Anywhere, l)]),
            ValuePred::Regex { required, .. } => required
                .as_ref()
                .map(|set| set.iter().map(|l| (Anchor::Anywhere, l.clone())).collect()),
            _ => None,
        };
        if *all {
            // Every value must match, so any one value's literals are necessary: take the best.
            preds
                .iter()
                .filter_map(literals)
                .max_by_key(|set| set.iter().map(|(_, l)| l.len()).min().unwrap_or(0))
        } else {
            let sets = preds.iter().map(literals).collect::<Option<Vec<_>>>()?;
            Some(sets.into_iter().flatten().collect())
        }
    }

    /// For a positive item of plain, case-insensitive exact strings: the
    /// field and its lowercased values (the logsource router's keys).
    pub(crate) fn exact_values(&self) -> Option<(&str, Vec<&str>)> {
        let field = self.field.as_deref()?;
        let ItemTest::Values {
            preds,
            all: false,
            negate: false,
            ..
        } = &self.test
        else {
            return None;
        };
        let values = preds
            .iter()
            .map(|p| match p {
                ValuePred::Str(s) => s.exact_folded(),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some((field, values))
    }

    /// Evaluates the item on an event.
    pub(crate) fn matches(&self, view: &EventView<'_>) -> bool {
        match (&self.test, &self.field) {
            (ItemTest::Exists(want), Some(field)) => view.get(field).is_some() == *want,
            (ItemTest::IsNull, Some(field)) => matches!(view.get(field), None | Some(Value::Null)),
            (
                ItemTest::Values {
                    preds,
                    all,
                    negate,
                    set,
                    ascii_preds,
                },
                Some(field),
            ) => {
                let Some(value) = view.get(field) else {
                    return false;
                };
                // Values the set decides are not compared one by one, nor
                // values that need a non-ASCII character in an ASCII text.
                let covered = |i: usize| set.as_ref().is_some_and(|s| s.covered[i]);
                let compared = match value {
                    Value::String(s) if s.is_ascii() => preds.get(..*ascii_preds).unwrap_or(preds),
                    _ => preds,
                };
                let any = || {
                    set.as_ref().is_some_and(|s| s.any(value))
                        || (compared.iter().enumerate())
                            .any(|(i, p)| !covered(i) && p.matches_value(value, view))
                };
                if *negate {
                    return !value.is_null() && !any();
                }
                if *all {
                    compared.len() == preds.len()
                        && set.as_ref().is_none_or(|s| s.all(value))
                        && (preds.iter().enumerate())
                            .all(|(i, p)| covered(i) || p.matches_value(value, view))
                } else {
                    any()
                }
            }
            (
                ItemTest::Values {
                    preds, all, negate, ..
                },
                None,
            ) => {
                let found = |p: &ValuePred| view.any_text(|text| p.matches_text(text, view));
                let result = if *all {
                    preds.iter().all(found)
                } else {
                    preds.iter().any(found)
                };
                result != *negate
            }
            // Compilation rejects exists/null without a field.
            (ItemTest::Exists(_) | ItemTest::IsNull, None) => false,
        }
    }
}
