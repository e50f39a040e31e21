//! What a value is compared with: strings, patterns, regexes, numbers,
//! networks, times and field references, and the helpers that build them.

use super::super::pattern::StrPattern;
use super::super::EventView;
use crate::sigma::{Modifier, RuleValue};
use chrono::{Datelike, NaiveDateTime, Timelike};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub(super) fn holds(self, a: f64, b: f64) -> bool {
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
pub(super) enum RefShape {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone)]
pub(super) enum ValuePred {
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
    /// A part of a timestamp (a time modifier: minute ... year) compared.
    Time(Modifier, CmpOp, f64),
    FieldRef {
        field: String,
        shape: RefShape,
        cased: bool,
    },
}

impl ValuePred {
    /// Matches a field value; arrays match if any element does.
    /// Whether only a text with a non-ASCII character can match.
    pub(super) fn needs_non_ascii(&self) -> bool {
        match self {
            ValuePred::Str(p) | ValuePred::Number { text: p, .. } => p.needs_non_ascii(),
            _ => false,
        }
    }

    pub(super) fn matches_value(&self, value: &Value, view: &EventView<'_>) -> bool {
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

    pub(super) fn matches_text(&self, text: &str, view: &EventView<'_>) -> bool {
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

/// The spec's regex flavour is PCRE, where `\d`, `\w`, `\s` and `\b` are
/// ASCII (PCRE leaves them so unless asked for Unicode properties); in Rust
/// they are Unicode. Rewrites each as its ASCII class (`[[:word:]]` and so
/// on, which stay ASCII in a Unicode pattern). Besides matching as PCRE
/// does, this keeps compiling cheap: `\w{1,64}` over Unicode's word class
/// is an NFA of tens of thousands of states, which took a third of the
/// SigmaHQ corpus's regex compile time on its own. Patterns that do not
/// parse are returned as they are, for the regex compiler to report.
pub(super) fn pcre_ascii_classes(pattern: &str) -> String {
    use regex_syntax::ast::{self, AssertionKind, Ast, ClassPerl, ClassPerlKind, ClassSetItem};
    /// Where each class is in the pattern, and what replaces it.
    struct Classes(Vec<(ast::Span, String)>);
    /// The ASCII class for a Perl class, as an item of a bracketed class
    /// (`[:word:]`, `[:^word:]`).
    fn ascii_item(class: &ClassPerl) -> String {
        let name = match class.kind {
            ClassPerlKind::Digit => "digit",
            ClassPerlKind::Space => "space",
            ClassPerlKind::Word => "word",
        };
        let not = if class.negated { "^" } else { "" };
        format!("[:{not}{name}:]")
    }
    impl ast::Visitor for Classes {
        type Output = Vec<(ast::Span, String)>;
        type Err = ();
        fn finish(self) -> Result<Self::Output, ()> {
            Ok(self.0)
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            let replacement = match ast {
                Ast::ClassPerl(class) => format!("[{}]", ascii_item(class)),
                Ast::Assertion(a) if a.kind == AssertionKind::WordBoundary => "(?-u:\\b)".into(),
                Ast::Assertion(a) if a.kind == AssertionKind::NotWordBoundary => "(?-u:\\B)".into(),
                _ => return Ok(()),
            };
            self.0.push((*ast.span(), replacement));
            Ok(())
        }
        fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), ()> {
            if let ClassSetItem::Perl(class) = item {
                self.0.push((class.span, ascii_item(class)));
            }
            Ok(())
        }
    }
    if !pattern.contains('\\') {
        return pattern.to_string();
    }
    let Ok(parsed) = ast::parse::Parser::new().parse(pattern) else {
        return pattern.to_string();
    };
    let Ok(mut classes) = ast::visit(&parsed, Classes(Vec::new())) else {
        return pattern.to_string();
    };
    classes.sort_by_key(|(span, _)| span.start.offset);
    let mut out = String::with_capacity(pattern.len() + 16 * classes.len());
    let mut at = 0;
    for (span, replacement) in classes {
        let (Some(before), true) = (pattern.get(at..span.start.offset), span.start.offset >= at)
        else {
            return pattern.to_string();
        };
        out.push_str(before);
        out.push_str(&replacement);
        at = span.end.offset;
    }
    out.push_str(pattern.get(at..).unwrap_or_default());
    out
}

/// The spec's regex flavour is PCRE, where `$` (without `m`) matches at the
/// end of the text or before a newline that ends it; Rust's `$` matches only
/// at the very end. Rewrites each such `$` as `\n?\z`. Patterns that do not
/// parse are returned as they are, for the regex compiler to report.
pub(super) fn pcre_end_anchors(pattern: &str) -> String {
    use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};
    pub(super) fn rewrite(hir: &Hir) -> Hir {
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

pub(super) fn ref_matches(text: &str, other: &str, shape: RefShape, cased: bool) -> bool {
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
pub(super) fn only(mods: &[Modifier], allowed: &[Modifier], kind: &str) -> Result<(), String> {
    match mods.iter().find(|m| !allowed.contains(m)) {
        Some(m) => Err(format!("`{m}` cannot be combined with `{kind}`")),
        None => Ok(()),
    }
}

/// The last non-empty line: the regex crate puts the reason there.
pub(super) fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

pub(super) fn compare_op(mods: &[Modifier]) -> Option<CmpOp> {
    mods.iter().find_map(|m| match m {
        Modifier::Lt => Some(CmpOp::Lt),
        Modifier::Lte => Some(CmpOp::Lte),
        Modifier::Gt => Some(CmpOp::Gt),
        Modifier::Gte => Some(CmpOp::Gte),
        _ => None,
    })
}

/// The time modifier of an item (`minute` ... `year`), if any.
pub(super) fn time_part(mods: &[Modifier]) -> Option<Modifier> {
    mods.iter().copied().find(|m| {
        matches!(
            m,
            Modifier::Minute
                | Modifier::Hour
                | Modifier::Day
                | Modifier::Week
                | Modifier::Month
                | Modifier::Year
        )
    })
}

pub(super) fn number_of(v: &RuleValue) -> Result<f64, String> {
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

pub(super) fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

pub(super) fn parse_ip(text: &str) -> Option<std::net::IpAddr> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    // IPv6 zone ids (`fe80::1%eth0`) are not part of the address.
    let t = t.split('%').next().unwrap_or(t);
    t.parse().ok()
}

pub(super) fn extract_time_part(text: &str, part: Modifier) -> Option<f64> {
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
        Modifier::Minute => dt.minute(),
        Modifier::Hour => dt.hour(),
        Modifier::Day => dt.day(),
        Modifier::Week => dt.iso_week().week(),
        Modifier::Month => dt.month(),
        Modifier::Year => return Some(f64::from(dt.year())),
        _ => return None,
    }))
}
