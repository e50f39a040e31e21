//! One search item compiled: `field|modifiers: values` -> a predicate on an event.
//!
//! Compilation resolves everything that does not depend on the event
//! (escapes, wildcards, encodings, windash permutations, placeholders, regexes,
//! networks), so evaluation is comparisons only.

use super::literals::{Literals, Speed};
use super::pattern::{literal_text, parse_wildcards, Anchor, Piece, StrPattern};
use super::EventView;
use crate::sigma::{Modifier, RuleValue, SearchItem};
use base64::Engine as _;
use chrono::{Datelike, NaiveDateTime, Timelike};
use serde_json::Value;
use std::collections::HashMap;

/// Named placeholder values for the `expand` modifier (`%Administrators%`).
pub type Placeholders = HashMap<String, Vec<String>>;

/// A compiled search item.
#[derive(Debug, Clone)]
pub struct ItemMatcher {
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
    },
}

/// Least plain string values of one field item worth a literal set: each
/// value on its own costs a comparison (a scan of the text, for `contains`),
/// the set one walk from each end and one pass over the text.
const SET_MIN_VALUES: usize = 4;

/// An item's plain string values (exact, prefix, suffix or substring,
/// case-insensitive, ASCII), searched together: such a value matches
/// exactly when its literal occurs where its anchor says.
#[derive(Debug, Clone)]
struct ValueSet {
    literals: Literals,
    /// Per distinct literal, a bit; `all` needs every bit (at most 128).
    full: u128,
    /// Per value: whether the set decides it.
    covered: Vec<bool>,
}

impl ValueSet {
    fn new(preds: &[ValuePred], all: bool) -> Option<ValueSet> {
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
            literals: Literals::new(&distinct, Speed::Compact)?,
            full: u128::MAX >> (128 - distinct.len().min(128)),
            covered,
        })
    }

    /// Reports the distinct literals found in the value's texts (array
    /// elements, numbers and booleans as text, as `matches_value` sees them).
    fn hits(&self, value: &Value, hit: &mut dyn FnMut(usize)) {
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
    fn any(&self, value: &Value) -> bool {
        let mut found = false;
        self.hits(value, &mut |_| found = true);
        found
    }

    /// Whether every covered value matches (sets for `all` have at most 128 literals).
    fn all(&self, value: &Value) -> bool {
        let mut found = 0u128;
        self.hits(value, &mut |h| found |= 1 << h);
        found == self.full
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RefShape {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone)]
enum ValuePred {
    Str(StrPattern),
    /// A plain numeric rule value: numeric equality on numbers, text equality on strings.
    Number {
        value: f64,
        text: StrPattern,
    },
    Regex {
        re: regex::Regex,
        /// Literals one of which every match contains (for the prefilter index).
        required: Option<Vec<String>>,
    },
    Cidr(ipnet::IpNet),
    Compare(CmpOp, f64),
    Time(TimePart, CmpOp, f64),
    FieldRef {
        field: String,
        shape: RefShape,
        cased: bool,
    },
}

/// A value during the transformation chain.
#[derive(Debug, Clone)]
enum Staged {
    Pieces(Vec<Piece>),
    Bytes(Vec<u8>),
}

impl ItemMatcher {
    /// Compiles an item. Errors are messages; the caller adds the position.
    pub fn compile(item: &SearchItem, placeholders: &Placeholders) -> Result<ItemMatcher, String> {
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
                    regex::RegexBuilder::new(&pcre_end_anchors(&pattern))
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
            },
        })
    }

    /// The field this item reads (`None` for keywords).
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// Every field the item reads: its own and those named by `fieldref`
    /// values. `None` for keyword items, which read every value.
    pub fn reads(&self) -> Option<Vec<&str>> {
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
    pub fn index_atoms(&self) -> Option<Vec<(Anchor, String)>> {
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
    pub fn exact_values(&self) -> Option<(&str, Vec<&str>)> {
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
    pub fn matches(&self, view: &EventView<'_>) -> bool {
        match (&self.test, &self.field) {
            (ItemTest::Exists(want), Some(field)) => view.get(field).is_some() == *want,
            (ItemTest::IsNull, Some(field)) => matches!(view.get(field), None | Some(Value::Null)),
            (
                ItemTest::Values {
                    preds,
                    all,
                    negate,
                    set,
                },
                Some(field),
            ) => {
                let Some(value) = view.get(field) else {
                    return false;
                };
                // Values the set decides are not compared one by one.
                let covered = |i: usize| set.as_ref().is_some_and(|s| s.covered[i]);
                let any = || {
                    set.as_ref().is_some_and(|s| s.any(value))
                        || (preds.iter().enumerate())
                            .any(|(i, p)| !covered(i) && p.matches_value(value, view))
                };
                if *negate {
                    return !value.is_null() && !any();
                }
                if *all {
                    set.as_ref().is_none_or(|s| s.all(value))
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

impl ValuePred {
    /// Matches a field value; arrays match if any element does.
    fn matches_value(&self, value: &Value, view: &EventView<'_>) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|v| self.matches_value(v, view)),
            Value::Null | Value::Object(_) => false,
            Value::Number(n) => match self {
                ValuePred::Number { value, .. } => n.as_f64() == Some(*value),
                ValuePred::Compare(op, rhs) => n.as_f64().is_some_and(|lhs| op.holds(lhs, *rhs)),
                _ => self.matches_text(&n.to_string(), view),
            },
            Value::String(s) => self.matches_text(s, view),
            Value::Bool(b) => self.matches_text(if *b { "true" } else { "false" }, view),
        }
    }

    fn matches_text(&self, text: &str, view: &EventView<'_>) -> bool {
        match self {
            ValuePred::Str(p) => p.is_match(text),
            ValuePred::Number { text: p, .. } => p.is_match(text),
            ValuePred::Regex { re, .. } => re.is_match(text),
            ValuePred::Cidr(net) => parse_ip(text).is_some_and(|ip| net.contains(&ip)),
            ValuePred::Compare(op, rhs) => text
                .trim()
                .parse::<f64>()
                .is_ok_and(|lhs| op.holds(lhs, *rhs)),
            ValuePred::Time(part, op, rhs) => {
                extract_time_part(text, *part).is_some_and(|v| op.holds(v, *rhs))
            }
            ValuePred::FieldRef {
                field,
                shape,
                cased,
            } => {
                let Some(other) = view.get(field) else {
                    return false;
                };
                let Some(other) = crate::event::scalar_text(other) else {
                    return false;
                };
                ref_matches(text, &other, *shape, *cased)
            }
        }
    }
}

/// The spec's regex flavour is PCRE, where `$` (without `m`) matches at the
/// end of the text or before a newline that ends it; Rust's `$` matches only
/// at the very end. Rewrites each such `$` as `\n?\z`. Patterns that do not
/// parse are returned as they are, for the regex compiler to report.
fn pcre_end_anchors(pattern: &str) -> String {
    use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};
    fn rewrite(hir: &Hir) -> Hir {
        match hir.kind() {
            HirKind::Look(Look::End) => {
                let newline = Hir::repetition(Repetition {
                    min: 0,
                    max: Some(1),
                    greedy: true,
                    sub: Box::new(Hir::literal(*b"\n")),
                });
                Hir::concat(vec![newline, Hir::look(Look::End)])
            }
            HirKind::Repetition(r) => Hir::repetition(Repetition {
                sub: Box::new(rewrite(&r.sub)),
                ..r.clone()
            }),
            HirKind::Capture(c) => Hir::capture(Capture {
                sub: Box::new(rewrite(&c.sub)),
                ..c.clone()
            }),
            HirKind::Concat(parts) => Hir::concat(parts.iter().map(rewrite).collect()),
            HirKind::Alternation(parts) => Hir::alternation(parts.iter().map(rewrite).collect()),
            _ => hir.clone(),
        }
    }
    if !pattern.contains('$') {
        return pattern.to_string();
    }
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(hir) => rewrite(&hir).to_string(),
        Err(_) => pattern.to_string(),
    }
}

fn ref_matches(text: &str, other: &str, shape: RefShape, cased: bool) -> bool {
    let (t, o) = if cased {
        (text.to_string(), other.to_string())
    } else {
        (text.to_lowercase(), other.to_lowercase())
    };
    match shape {
        RefShape::Exact => t == o,
        RefShape::Prefix => t.starts_with(&o),
        RefShape::Suffix => t.ends_with(&o),
        RefShape::Contains => t.contains(&o),
    }
}

/// Rejects modifiers outside `allowed` for an item of the given kind.
fn only(mods: &[Modifier], allowed: &[Modifier], kind: &str) -> Result<(), String> {
    match mods.iter().find(|m| !allowed.contains(m)) {
        Some(m) => Err(format!("`{m}` cannot be combined with `{kind}`")),
        None => Ok(()),
    }
}

/// The last non-empty line: the regex crate puts the reason there.
fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

fn compare_op(mods: &[Modifier]) -> Option<CmpOp> {
    mods.iter().find_map(|m| match m {
        Modifier::Lt => Some(CmpOp::Lt),
        Modifier::Lte => Some(CmpOp::Lte),
        Modifier::Gt => Some(CmpOp::Gt),
        Modifier::Gte => Some(CmpOp::Gte),
        _ => None,
    })
}

fn time_part(mods: &[Modifier]) -> Option<TimePart> {
    mods.iter().find_map(|m| match m {
        Modifier::Minute => Some(TimePart::Minute),
        Modifier::Hour => Some(TimePart::Hour),
        Modifier::Day => Some(TimePart::Day),
        Modifier::Week => Some(TimePart::Week),
        Modifier::Month => Some(TimePart::Month),
        Modifier::Year => Some(TimePart::Year),
        _ => None,
    })
}

fn number_of(v: &RuleValue) -> Result<f64, String> {
    match v {
        RuleValue::Int(i) => Ok(*i as f64),
        RuleValue::Float(f) => Ok(*f),
        RuleValue::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`{s}` is not a number")),
        other => Err(format!("{other:?} is not a number")),
    }
}

fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn parse_ip(text: &str) -> Option<std::net::IpAddr> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    // IPv6 zone ids (`fe80::1%eth0`) are not part of the address.
    let t = t.split('%').next().unwrap_or(t);
    t.parse().ok()
}

fn extract_time_part(text: &str, part: TimePart) -> Option<f64> {
    let t = text.trim();
    let dt: NaiveDateTime = chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Some(f64::from(match part {
        TimePart::Minute => dt.minute(),
        TimePart::Hour => dt.hour(),
        TimePart::Day => dt.day(),
        TimePart::Week => dt.iso_week().week(),
        TimePart::Month => dt.month(),
        TimePart::Year => return Some(f64::from(dt.year())),
    }))
}

/// String values through the transformation chain, in the order written.
fn string_preds(item: &SearchItem, placeholders: &Placeholders) -> Result<Vec<ValuePred>, String> {
    let mods = &item.modifiers;
    let cased = mods.contains(&Modifier::Cased);
    let mut out = Vec::new();
    for value in &item.values {
        let Some(raw) = value.text() else {
            continue;
        };
        // A plain number (no modifiers) also matches numerically.
        let plain_number = match value {
            RuleValue::Int(i)
                if mods
                    .iter()
                    .all(|m| matches!(m, Modifier::All | Modifier::Neq)) =>
            {
                Some(*i as f64)
            }
            RuleValue::Float(f)
                if mods
                    .iter()
                    .all(|m| matches!(m, Modifier::All | Modifier::Neq)) =>
            {
                Some(*f)
            }
            _ => None,
        };
        let raws = if mods.contains(&Modifier::Expand) {
            expand_placeholders(&raw, placeholders)?
        } else {
            vec![raw]
        };
        let mut staged: Vec<Staged> = raws
            .iter()
            .map(|r| Staged::Pieces(parse_wildcards(r)))
            .collect();
        for m in mods {
            staged = apply(*m, staged)?;
        }
        // A keyword is found anywhere in a value (as full-text search backends
        // do), unless the rule anchors it with startswith/endswith.
        let anchored = mods.iter().any(|m| {
            matches!(
                m,
                Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith
            )
        });
        if item.field.is_none() && !anchored {
            staged = apply(Modifier::Contains, staged)?;
        }
        for s in staged {
            let pieces = match s {
                Staged::Pieces(p) => p,
                Staged::Bytes(b) => vec![Piece::Lit(String::from_utf8_lossy(&b).into_owned())],
            };
            let pattern = StrPattern::new(&pieces, cased);
            out.push(match plain_number {
                Some(value) => ValuePred::Number {
                    value,
                    text: pattern,
                },
                None => ValuePred::Str(pattern),
            });
        }
    }
    Ok(out)
}

fn apply(m: Modifier, values: Vec<Staged>) -> Result<Vec<Staged>, String> {
    let star = |mut p: Vec<Piece>, front: bool, back: bool| {
        if front && p.first() != Some(&Piece::Star) {
            p.insert(0, Piece::Star);
        }
        if back && p.last() != Some(&Piece::Star) {
            p.push(Piece::Star);
        }
        p
    };
    let literal = |s: &Staged| -> Result<Vec<u8>, String> {
        match s {
            Staged::Bytes(b) => Ok(b.clone()),
            Staged::Pieces(p) => literal_text(p)
                .map(String::into_bytes)
                .ok_or_else(|| format!("`{m}` cannot encode a value with wildcards")),
        }
    };
    let pieces = |s: Staged| match s {
        Staged::Pieces(p) => p,
        Staged::Bytes(b) => vec![Piece::Lit(String::from_utf8_lossy(&b).into_owned())],
    };
    let b64 = &base64::engine::general_purpose::STANDARD;
    Ok(match m {
        Modifier::Contains => values
            .into_iter()
            .map(|s| Staged::Pieces(star(pieces(s), true, true)))
            .collect(),
        Modifier::StartsWith => values
            .into_iter()
            .map(|s| Staged::Pieces(star(pieces(s), false, true)))
            .collect(),
        Modifier::EndsWith => values
            .into_iter()
            .map(|s| Staged::Pieces(star(pieces(s), true, false)))
            .collect(),
        Modifier::Windash => values
            .into_iter()
            .flat_map(|s| windash(&pieces(s)).into_iter().map(Staged::Pieces))
            .collect(),
        Modifier::Base64 => values
            .iter()
            .map(|s| literal(s).map(|b| Staged::Pieces(vec![Piece::Lit(b64.encode(b))])))
            .collect::<Result<_, _>>()?,
        Modifier::Base64Offset => {
            let mut out = Vec::new();
            for s in &values {
                for variant in base64_offsets(&literal(s)?) {
                    out.push(Staged::Pieces(vec![Piece::Lit(variant)]));
                }
            }
            out
        }
        Modifier::Utf16le | Modifier::Wide => values
            .iter()
            .map(|s| literal(s).map(|b| Staged::Bytes(utf16(&b, false, false))))
            .collect::<Result<_, _>>()?,
        Modifier::Utf16be => values
            .iter()
            .map(|s| literal(s).map(|b| Staged::Bytes(utf16(&b, true, false))))
            .collect::<Result<_, _>>()?,
        Modifier::Utf16 => values
            .iter()
            .map(|s| literal(s).map(|b| Staged::Bytes(utf16(&b, false, true))))
            .collect::<Result<_, _>>()?,
        // Not transformations: handled by the caller or by the item kind.
        Modifier::All | Modifier::Cased | Modifier::Neq | Modifier::Expand => values,
        other => {
            return Err(format!(
                "`{other}` cannot be applied to a string value here"
            ))
        }
    })
}

/// UTF-16 encoding of UTF-8 bytes; `bom` prepends the little-endian byte order mark.
fn utf16(bytes: &[u8], big_endian: bool, bom: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if bom {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for unit in text.encode_utf16() {
        let b = if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        };
        out.extend_from_slice(&b);
    }
    out
}

/// The three base64 forms of a value at byte offsets 0, 1 and 2 of an
/// enclosing string, trimmed to the characters that do not depend on the
/// neighbouring bytes (the same construction as pySigma).
fn base64_offsets(value: &[u8]) -> Vec<String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    const START: [usize; 3] = [0, 2, 3];
    const END_TRIM: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(value);
            let enc = b64.encode(&padded);
            let end = enc.len().saturating_sub(END_TRIM[(value.len() + i) % 3]);
            enc.get(START[i]..end).unwrap_or("").to_string()
        })
        .collect()
}

/// Every permutation of the dash-like characters that start a command-line flag.
fn windash(pieces: &[Piece]) -> Vec<Vec<Piece>> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    let mut results: Vec<Vec<Piece>> = vec![Vec::new()];
    for piece in pieces {
        let Piece::Lit(text) = piece else {
            for r in &mut results {
                r.push(piece.clone());
            }
            continue;
        };
        // Variants of this literal: replace each flag-starting dash.
        let chars: Vec<char> = text.chars().collect();
        let mut variants: Vec<String> = vec![String::new()];
        for (i, &c) in chars.iter().enumerate() {
            let flag_start = DASHES.contains(&c)
                && (i == 0 || !chars[i - 1].is_alphanumeric())
                && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
            if flag_start {
                variants = variants
                    .iter()
                    .flat_map(|v| DASHES.iter().map(move |d| format!("{v}{d}")))
                    .collect();
            } else {
                for v in &mut variants {
                    v.push(c);
                }
            }
            if variants.len() > 4096 {
                break;
            }
        }
        results = results
            .iter()
            .flat_map(|r| {
                variants.iter().map(move |v| {
                    let mut r = r.clone();
                    r.push(Piece::Lit(v.clone()));
                    r
                })
            })
            .collect();
    }
    results
}

/// Replaces `%name%` placeholders; `\%` is a literal percent sign.
fn expand_placeholders(raw: &str, placeholders: &Placeholders) -> Result<Vec<String>, String> {
    let mut results = vec![String::new()];
    let mut rest = raw;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("\\%") {
            for r in &mut results {
                r.push('%');
            }
            rest = after;
            continue;
        }
        if let Some(after) = rest.strip_prefix('%') {
            if let Some(end) = after.find('%') {
                let name = &after[..end];
                let values = placeholders.get(name).ok_or_else(|| {
                    format!("unresolved placeholder `%{name}%`: define it under `[placeholders]` in the configuration")
                })?;
                results = results
                    .iter()
                    .flat_map(|r| values.iter().map(move |v| format!("{r}{v}")))
                    .collect();
                rest = &after[end + 1..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or('%');
        for r in &mut results {
            r.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::sigma::yaml::Pos;
    use serde_json::json;

    fn event(fields: Value) -> Event {
        crate::event::test_event(fields, crate::event::Format::Json)
    }

    fn item(key: &str, values: Vec<RuleValue>) -> SearchItem {
        let mut parts = key.split('|');
        let field = parts.next().unwrap();
        SearchItem {
            field: (!field.is_empty()).then(|| field.to_string()),
            modifiers: parts.map(|m| m.parse().unwrap()).collect(),
            values,
            pos: Pos::default(),
        }
    }

    fn s(v: &str) -> RuleValue {
        RuleValue::Str(v.to_string())
    }

    fn check(key: &str, values: Vec<RuleValue>, fields: Value) -> bool {
        let m = ItemMatcher::compile(&item(key, values), &Placeholders::new()).unwrap();
        let e = event(fields);
        m.matches(&EventView::new(&e, &[]))
    }

    #[test]
    fn long_value_lists_match_through_one_literal_set() {
        let dlls = || {
            [
                "\\version.dll",
                "\\wbemcomn.dll",
                "\\dbghelp.dll",
                "\\wer*.dll",
                "\\ÄRGER.dll",
                "\\x.dll",
            ]
            .map(s)
            .to_vec()
        };
        let m = ItemMatcher::compile(&item("ImageLoaded|endswith", dlls()), &Placeholders::new());
        let Ok(ItemMatcher {
            test: ItemTest::Values { set: Some(set), .. },
            ..
        }) = &m
        else {
            panic!("expected a literal set: {m:?}")
        };
        assert_eq!(
            set.covered,
            [true, true, true, false, false, true],
            "globs and non-ASCII are compared alone"
        );
        let img = |v: &str| check("ImageLoaded|endswith", dlls(), json!({ "ImageLoaded": v }));
        assert!(img("C:\\Temp\\VERSION.DLL"));
        assert!(img("C:\\Temp\\werfault.dll"));
        assert!(img("C:\\Temp\\ärger.dll"));
        assert!(!img("C:\\Temp\\version.dll.bak"));
        let many: Vec<RuleValue> = (0..300).map(|i| s(&format!("tool{i}.exe"))).collect();
        let last = json!({ "Image": "C:\\x\\TOOL299.exe" });
        assert!(check("Image|endswith", many, last), "past 128 values too");
        let all = [" -w ", "hidden", "-nop", "iex"].map(s).to_vec();
        let ctx = |v: &str| {
            check(
                "ContextInfo|contains|all",
                all.clone(),
                json!({ "ContextInfo": v }),
            )
        };
        assert!(ctx("powershell -NoP -W Hidden -c IEX(x)"
            .replace("-NoP", "-nop")
            .as_str()));
        assert!(!ctx("powershell -nop -w hidden -c x"));
    }

    proptest::proptest! {
        /// An item with many values decides exactly as its values one by one.
        #[test]
        fn value_lists_decide_as_their_values_one_by_one(
            values in proptest::collection::vec("[ab*]{0,3}", 4..8),
            modifier in 0..5usize,
            all in proptest::bool::ANY,
            texts in proptest::collection::vec("[aAbB]{0,5}", 1..3),
            number in proptest::bool::ANY,
        ) {
            let modifier = ["", "|contains", "|startswith", "|endswith", "|neq"][modifier];
            let all = all && modifier != "|neq";
            let key = format!("f{modifier}{}", if all { "|all" } else { "" });
            let field = match (texts.len(), number) {
                (_, true) => json!(12),
                (1, _) => json!(texts[0]),
                _ => json!(texts),
            };
            let fields = json!({ "f": field });
            let values: Vec<RuleValue> = values.iter().map(|v| s(v)).collect();
            let together = check(&key, values.clone(), fields.clone());
            let single = |v: &RuleValue| {
                let plain = format!("f{}", if modifier == "|neq" { "" } else { modifier });
                check(&plain, vec![v.clone()], fields.clone())
            };
            let expected = if modifier == "|neq" {
                !values.iter().any(single)
            } else if all {
                values.iter().all(single)
            } else {
                values.iter().any(single)
            };
            proptest::prop_assert_eq!(together, expected, "{} {:?} on {}", key, values, fields);
        }
    }

    fn compile_err(key: &str, values: Vec<RuleValue>) -> String {
        ItemMatcher::compile(&item(key, values), &Placeholders::new()).unwrap_err()
    }

    #[test]
    fn contains_startswith_endswith_wrap_the_value() {
        assert!(check("a|contains", vec![s("b")], json!({"a": "xBx"})));
        assert!(check("a|startswith", vec![s("x")], json!({"a": "Xb"})));
        assert!(!check("a|startswith", vec![s("b")], json!({"a": "xb"})));
        assert!(check("a|endswith", vec![s("B")], json!({"a": "xb"})));
    }

    #[test]
    fn all_requires_every_value() {
        let v = vec![s("a"), s("b")];
        assert!(check("f|contains|all", v.clone(), json!({"f": "b a"})));
        assert!(!check("f|contains|all", v, json!({"f": "a only"})));
    }

    #[test]
    fn numbers_match_their_string_form_both_ways() {
        assert!(check(
            "EventID",
            vec![RuleValue::Int(4688)],
            json!({"EventID": "4688"})
        ));
        assert!(check(
            "EventID",
            vec![RuleValue::Int(4688)],
            json!({"EventID": 4688})
        ));
        assert!(check("EventID", vec![s("4688")], json!({"EventID": 4688})));
        assert!(!check(
            "EventID",
            vec![RuleValue::Int(4688)],
            json!({"EventID": 46880})
        ));
    }

    #[test]
    fn arrays_match_if_any_element_matches() {
        assert!(check("tags", vec![s("b")], json!({"tags": ["a", "B"]})));
        assert!(!check("tags", vec![s("c")], json!({"tags": ["a", "b"]})));
    }

    #[test]
    fn null_matches_missing_or_null_fields_only() {
        assert!(check("f", vec![RuleValue::Null], json!({})));
        assert!(check("f", vec![RuleValue::Null], json!({"f": null})));
        assert!(!check("f", vec![RuleValue::Null], json!({"f": ""})));
        assert!(compile_err("f", vec![RuleValue::Null, s("x")]).contains("null"));
    }

    #[test]
    fn empty_string_matches_only_empty_values() {
        assert!(check("f", vec![s("")], json!({"f": ""})));
        assert!(!check("f", vec![s("")], json!({})));
        assert!(!check("f", vec![s("")], json!({"f": "x"})));
    }

    #[test]
    fn exists_checks_presence_not_value() {
        assert!(check(
            "f|exists",
            vec![RuleValue::Bool(true)],
            json!({"f": null})
        ));
        assert!(check(
            "f|exists",
            vec![RuleValue::Bool(false)],
            json!({"g": 1})
        ));
        assert!(!check("f|exists", vec![RuleValue::Bool(true)], json!({})));
    }

    #[test]
    fn keywords_search_every_string_value() {
        assert!(check(
            "",
            vec![s("evil")],
            json!({"a": {"b": ["x", "very EVIL thing"]}})
        ));
        assert!(!check("", vec![s("evil")], json!({"a": "good"})));
        assert!(check(
            "|all",
            vec![s("one"), s("two")],
            json!({"a": "one", "b": "two"})
        ));
    }

    #[test]
    fn cased_is_case_sensitive() {
        assert!(check("f|cased", vec![s("Abc")], json!({"f": "Abc"})));
        assert!(!check("f|cased", vec![s("Abc")], json!({"f": "abc"})));
    }

    #[test]
    fn neq_matches_existing_fields_that_differ_from_every_value() {
        assert!(check("f|neq", vec![s("a"), s("b")], json!({"f": "c"})));
        assert!(!check("f|neq", vec![s("a"), s("b")], json!({"f": "B"})));
        assert!(!check("f|neq", vec![s("a")], json!({})));
    }

    #[test]
    fn regexes_are_case_sensitive_unless_i() {
        assert!(check("f|re", vec![s("^ab+c$")], json!({"f": "abbc"})));
        assert!(!check("f|re", vec![s("^abc$")], json!({"f": "ABC"})));
        assert!(check("f|re|i", vec![s("^abc$")], json!({"f": "ABC"})));
        assert!(check("f|re|s", vec![s("a.b")], json!({"f": "a\nb"})));
        assert!(check("f|re|m", vec![s("^b$")], json!({"f": "a\nb"})));
        assert!(check("f|re|m", vec![s("^a$")], json!({"f": "a\nb"})));
        let re = |pattern: &str, text: &str| check("f|re", vec![s(pattern)], json!({ "f": text }));
        assert!(re("tail$", "the tail\n"), "PCRE: $ before a final newline");
        assert!(!re("tail$", "the tail\nx"));
        assert!(!re("tail$", "the tail\n\n"));
        assert!(
            re("a\\$|[$]b", "xa$"),
            "escaped and class dollars stay literal"
        );
        assert!(re("(?P<n>x)$", "x"));
        assert!(compile_err("f|re", vec![s("(")]).contains("invalid regular expression"));
        assert!(compile_err("f|i", vec![s("x")]).contains("sub-modifiers"));
    }

    #[test]
    fn cidr_matches_ipv4_and_ipv6() {
        assert!(check(
            "ip|cidr",
            vec![s("10.0.0.0/8")],
            json!({"ip": "10.1.2.3"})
        ));
        assert!(!check(
            "ip|cidr",
            vec![s("10.0.0.0/8")],
            json!({"ip": "11.1.2.3"})
        ));
        assert!(check(
            "ip|cidr",
            vec![s("fe80::/10")],
            json!({"ip": "fe80::1%eth0"})
        ));
        assert!(!check(
            "ip|cidr",
            vec![s("10.0.0.0/8")],
            json!({"ip": "not an ip"})
        ));
        assert!(compile_err("ip|cidr", vec![s("10.0.0.0/33")]).contains("CIDR"));
    }

    #[test]
    fn numeric_comparisons_accept_numbers_and_numeric_strings() {
        assert!(check("n|gt", vec![RuleValue::Int(5)], json!({"n": 6})));
        assert!(check("n|gte", vec![RuleValue::Int(5)], json!({"n": "5"})));
        assert!(!check("n|lt", vec![RuleValue::Int(5)], json!({"n": 5})));
        assert!(check("n|lte", vec![RuleValue::Float(5.5)], json!({"n": 5})));
        assert!(!check("n|gt", vec![RuleValue::Int(5)], json!({"n": "abc"})));
        assert!(compile_err("n|gt", vec![s("x")]).contains("not a number"));
    }

    #[test]
    fn time_modifiers_extract_date_parts() {
        let t = json!({"t": "2026-11-23T14:05:00Z"});
        assert!(check("t|hour", vec![RuleValue::Int(14)], t.clone()));
        assert!(check("t|minute", vec![RuleValue::Int(5)], t.clone()));
        assert!(check("t|month", vec![RuleValue::Int(11)], t.clone()));
        assert!(check("t|year", vec![RuleValue::Int(2026)], t.clone()));
        assert!(check("t|day", vec![RuleValue::Int(23)], t.clone()));
        assert!(check("t|week", vec![RuleValue::Int(48)], t.clone()));
        assert!(check("t|hour|gte", vec![RuleValue::Int(12)], t.clone()));
        assert!(!check("t|hour", vec![RuleValue::Int(15)], t));
    }

    #[test]
    fn fieldref_compares_two_fields() {
        let e = json!({"a": "Admin", "b": "admin", "c": "other"});
        assert!(check("a|fieldref", vec![s("b")], e.clone()));
        assert!(!check("a|fieldref", vec![s("c")], e.clone()));
        assert!(check("a|fieldref|neq", vec![s("c")], e.clone()));
        assert!(!check("a|fieldref|cased", vec![s("b")], e.clone()));
        assert!(!check("a|fieldref", vec![s("missing")], e));
    }

    #[test]
    fn base64_encodes_the_value() {
        // "cmd" -> "Y21k"
        assert!(check(
            "f|base64|contains",
            vec![s("cmd")],
            json!({"f": "xxY21kxx"})
        ));
        assert!(compile_err("f|base64", vec![s("a*")]).contains("wildcards"));
    }

    #[test]
    fn base64offset_finds_the_value_at_any_alignment() {
        let b64 = &base64::engine::general_purpose::STANDARD;
        for prefix in ["", "a", "ab", "abc"] {
            let encoded = b64.encode(format!("{prefix}http://evil/x"));
            assert!(
                check(
                    "f|base64offset|contains",
                    vec![s("http://")],
                    json!({ "f": encoded })
                ),
                "prefix {prefix:?}"
            );
        }
        assert!(!check(
            "f|base64offset|contains",
            vec![s("http://")],
            json!({"f": b64.encode("nothing to see")})
        ));
    }

    #[test]
    fn utf16_modifiers_encode_before_base64() {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let wide: Vec<u8> = "xx cmd yy"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let encoded = b64.encode(wide);
        assert!(check(
            "f|wide|base64offset|contains",
            vec![s("cmd")],
            json!({ "f": encoded })
        ));
        assert_eq!(utf16(b"cmd", false, false), vec![0x63, 0, 0x6d, 0, 0x64, 0]);
        assert_eq!(utf16(b"cmd", true, false), vec![0, 0x63, 0, 0x6d, 0, 0x64]);
        assert_eq!(utf16(b"c", false, true), vec![0xFF, 0xFE, 0x63, 0]);
    }

    #[test]
    fn windash_accepts_every_dash_form() {
        for flag in [
            "-exec",
            "/exec",
            "\u{2013}exec",
            "\u{2014}exec",
            "\u{2015}exec",
        ] {
            let line = format!("tool.exe {flag} bypass");
            assert!(check(
                "c|windash|contains",
                vec![s(" -exec ")],
                json!({ "c": line })
            ));
        }
        assert!(!check(
            "c|windash|contains",
            vec![s(" -exec ")],
            json!({"c": "tool.exe +exec x"})
        ));
    }

    #[test]
    fn expand_resolves_placeholders_or_rejects_the_item() {
        let mut ph = Placeholders::new();
        ph.insert("Admins".into(), vec!["root".into(), "adm*".into()]);
        let m = ItemMatcher::compile(&item("u|expand", vec![s("%Admins%")]), &ph).unwrap();
        let yes = event(json!({"u": "admin1"}));
        let no = event(json!({"u": "bob"}));
        assert!(m.matches(&EventView::new(&yes, &[])));
        assert!(!m.matches(&EventView::new(&no, &[])));
        let err = ItemMatcher::compile(&item("u|expand", vec![s("%Servers%")]), &ph).unwrap_err();
        assert!(err.contains("%Servers%"), "{err}");
        assert_eq!(
            expand_placeholders("\\%plain", &ph).unwrap(),
            vec!["%plain"]
        );
    }

    #[test]
    fn incompatible_modifiers_are_rejected() {
        assert!(
            compile_err("f|cidr|contains", vec![s("10.0.0.0/8")]).contains("cannot be combined")
        );
        assert!(compile_err("f|exists", vec![s("yes")]).contains("true"));
    }
}
