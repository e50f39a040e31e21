//! Modifier encodings: the transformation chain a string value goes
//! through (`base64`, `base64offset`, `utf16le`, `wide`, `windash`,
//! `expand`, ...) before it is compared.

use super::super::pattern::{literal_text, parse_wildcards, Piece, StrPattern};
use super::compare::ValuePred;
use super::Placeholders;
use crate::sigma::{Modifier, RuleValue, SearchItem};
use base64::Engine as _;

/// A value during the transformation chain.
#[derive(Debug, Clone)]
pub(super) enum Staged {
    Pieces(Vec<Piece>),
    Bytes(Vec<u8>),
}

/// String values through the transformation chain, in the order written.
pub(super) fn string_preds(
    item: &SearchItem,
    placeholders: &Placeholders,
) -> Result<Vec<ValuePred>, String> {
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
    // Kept for the rule set's life: no growth slack.
    out.shrink_to_fit();
    Ok(out)
}

pub(super) fn apply(m: Modifier, values: Vec<Staged>) -> Result<Vec<Staged>, String> {
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
pub(super) fn utf16(bytes: &[u8], big_endian: bool, bom: bool) -> Vec<u8> {
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
pub(super) fn base64_offsets(value: &[u8]) -> Vec<String> {
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
pub(super) fn windash(pieces: &[Piece]) -> Vec<Vec<Piece>> {
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
pub(super) fn expand_placeholders(
    raw: &str,
    placeholders: &Placeholders,
) -> Result<Vec<String>, String> {
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
