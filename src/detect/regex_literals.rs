//! Literals a regular expression requires, so `re` items can join the prefilter index.
//!
//! Walks the regex's syntax tree: a concatenation requires its best run of
//! literal characters, an alternation requires one literal from every
//! branch, a repetition with a minimum of one requires what its body
//! requires; anything else (classes, optional parts, anchors) requires
//! nothing. ASCII case-folded letters (`(?i)a` = `[Aa]`) count as letters,
//! since the index ignores ASCII case anyway; `(?i)k` and `(?i)s` do not,
//! because Unicode folding adds the Kelvin sign and the long s, which an
//! ASCII-folding index would not find.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Shortest literal worth indexing: shorter ones match almost everything.
const MIN_LITERAL: usize = 3;
/// Most alternatives kept for one regex.
const MAX_ALTERNATIVES: usize = 64;

/// Literals of which at least one occurs (ASCII case-insensitively) in every
/// string the regex matches, lowercased; `None` when no such set is known.
pub(crate) fn required_literals(pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    let set = required(&hir)?;
    (set.iter().all(|l| l.len() >= MIN_LITERAL) && !set.is_empty()).then_some(set)
}

/// The text of a node that is a single literal character or an ASCII case fold of one.
fn single_char(hir: &Hir) -> Option<String> {
    match hir.kind() {
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0)
            .ok()
            .map(str::to_ascii_lowercase),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            let chars: Vec<char> = ranges
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .take(3)
                .collect();
            match chars.as_slice() {
                [c] => Some(c.to_ascii_lowercase().to_string()),
                [a, b] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b) => {
                    Some(a.to_ascii_lowercase().to_string())
                }
                _ => None,
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            let ranges = class.ranges();
            match ranges {
                [r] if r.start() == r.end() => {
                    Some((r.start() as char).to_ascii_lowercase().to_string())
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn required(hir: &Hir) -> Option<Vec<String>> {
    if let Some(s) = single_char(hir) {
        return Some(vec![s]);
    }
    match hir.kind() {
        HirKind::Literal(_) | HirKind::Class(_) | HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Capture(cap) => required(&cap.sub),
        HirKind::Repetition(rep) if rep.min >= 1 => required(&rep.sub),
        HirKind::Repetition(_) => None,
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(required(b)?);
                if all.len() > MAX_ALTERNATIVES {
                    return None;
                }
            }
            Some(all)
        }
        HirKind::Concat(parts) => {
            // Runs of adjacent literal characters form one literal; other
            // parts may contribute their own required sets. Keep the best.
            let mut best: Option<Vec<String>> = None;
            let mut consider = |candidate: Vec<String>| {
                let score = |set: &Vec<String>| set.iter().map(String::len).min().unwrap_or(0);
                if best.as_ref().is_none_or(|b| score(&candidate) > score(b)) {
                    best = Some(candidate);
                }
            };
            let mut run = String::new();
            for part in parts {
                if let Some(c) = single_char(part).or_else(|| literal_text(part)) {
                    run.push_str(&c);
                    continue;
                }
                if !run.is_empty() {
                    consider(vec![std::mem::take(&mut run)]);
                }
                if let Some(set) = required(part) {
                    consider(set);
                }
            }
            if !run.is_empty() {
                consider(vec![run]);
            }
            best
        }
    }
}

/// A multi-character literal node.
fn literal_text(hir: &Hir) -> Option<String> {
    match hir.kind() {
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0)
            .ok()
            .map(str::to_ascii_lowercase),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: &str) -> Option<Vec<String>> {
        required_literals(p)
    }

    #[test]
    fn plain_and_case_insensitive_literals_are_required() {
        assert_eq!(
            req(r"Invoke-Mimikatz"),
            Some(vec!["invoke-mimikatz".into()])
        );
        // Under (?i), `k` also matches the Kelvin sign and `s` the long s, which
        // an ASCII-folding index would miss: literal runs stop at those letters.
        assert_eq!(req(r"(?i)invoke-\w+mimi"), Some(vec!["invo".into()]));
        assert_eq!(req(r"invoke-\w+mimi"), Some(vec!["invoke-".into()]));
        assert_eq!(req(r"\\cmd\.exe\s+/c"), Some(vec!["\\cmd.exe".into()]));
    }

    #[test]
    fn alternations_need_every_branch() {
        assert_eq!(
            req(r"(?i)(certutil|bitsadmin)\.exe"),
            Some(vec!["certutil".into(), "admin".into()])
        );
        assert_eq!(
            req(r"(certutil|bitsadmin)\.exe"),
            Some(vec!["certutil".into(), "bitsadmin".into()])
        );
        assert_eq!(req(r"abc|.*"), None);
    }

    #[test]
    fn optional_parts_and_short_literals_give_nothing() {
        assert_eq!(req(r"(abc)?def"), Some(vec!["def".into()]));
        assert_eq!(req(r"(abc)?"), None);
        assert_eq!(req(r"[a-z]{5,}"), None);
        assert_eq!(req(r"ab"), None);
        assert_eq!(req(r"("), None);
    }

    proptest::proptest! {
        /// Whatever the regex matches contains one of the required literals.
        #[test]
        fn required_literals_occur_in_every_match(
            words in proptest::collection::vec("[a-c]{1,4}", 1..4),
            hay in "[a-cA-C ]{0,24}",
        ) {
            let pattern = format!("(?i){}", words.join("|x?"));
            let (Some(lits), Ok(re)) = (required_literals(&pattern), regex::Regex::new(&pattern)) else {
                return Ok(());
            };
            if let Some(m) = re.find(&hay) {
                let text = m.as_str().to_ascii_lowercase();
                proptest::prop_assert!(lits.iter().any(|l| text.contains(l.as_str())), "{pattern} matched {text:?}, literals {lits:?}");
            }
        }
    }
}
