//! Sigma string values: escapes, `*`/`?` wildcards, case-insensitive matching.
//!
//! Values are compiled once into the cheapest shape that expresses them
//! (exact, prefix, suffix, substring, or a general glob), so the hot path is a
//! straight comparison without allocation. Case-insensitive comparison folds
//! ASCII in place; a needle with non-ASCII letters falls back to full Unicode
//! lowercasing of the haystack, which is rare in practice.

use memchr::memmem;

/// One piece of a Sigma string after escape processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Splits a Sigma string into literal text and wildcards.
///
/// Escapes follow the specification (and pySigma): a backslash before `*`,
/// `?` or `\` makes that character literal; any other backslash is literal.
pub fn parse_wildcards(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    lit.push(next);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(if c == '*' { Piece::Star } else { Piece::One });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    pieces
}

/// Pieces holding only literal text, without wildcards, as one string.
pub fn literal_text(pieces: &[Piece]) -> Option<String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            _ => return None,
        }
    }
    Some(out)
}

/// A compiled string pattern.
#[derive(Debug, Clone)]
pub struct StrPattern {
    shape: Shape,
    cased: bool,
}

#[derive(Debug, Clone)]
enum Shape {
    Exact(Needle),
    Prefix(Needle),
    Suffix(Needle),
    Contains(Needle, Box<memmem::Finder<'static>>),
    Glob(Vec<GlobTok>),
    /// `*` alone: any string.
    Any,
}

/// A literal, stored folded for case-insensitive comparison.
#[derive(Debug, Clone)]
struct Needle {
    text: String,
    ascii: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobTok {
    Char(char),
    One,
    Star,
}

impl StrPattern {
    /// Compiles pieces; `cased` selects case-sensitive comparison.
    pub fn new(pieces: &[Piece], cased: bool) -> StrPattern {
        let fold = |s: &str| -> Needle {
            let text = if cased {
                s.to_string()
            } else {
                s.to_lowercase()
            };
            Needle {
                ascii: text.is_ascii(),
                text,
            }
        };
        let shape = match pieces {
            [] => Shape::Exact(fold("")),
            [Piece::Star] => Shape::Any,
            [Piece::Lit(s)] => Shape::Exact(fold(s)),
            [Piece::Lit(s), Piece::Star] => Shape::Prefix(fold(s)),
            [Piece::Star, Piece::Lit(s)] => Shape::Suffix(fold(s)),
            [Piece::Star, Piece::Lit(s), Piece::Star] => {
                let needle = fold(s);
                let finder = memmem::Finder::new(needle.text.as_bytes()).into_owned();
                Shape::Contains(needle, Box::new(finder))
            }
            _ => {
                let mut toks = Vec::new();
                for p in pieces {
                    match p {
                        Piece::Lit(s) => {
                            let s = if cased { s.clone() } else { s.to_lowercase() };
                            toks.extend(s.chars().map(GlobTok::Char));
                        }
                        Piece::One => toks.push(GlobTok::One),
                        // Consecutive stars are one star.
                        Piece::Star if toks.last() == Some(&GlobTok::Star) => {}
                        Piece::Star => toks.push(GlobTok::Star),
                    }
                }
                Shape::Glob(toks)
            }
        };
        StrPattern { shape, cased }
    }

    /// Compiles a Sigma string value.
    pub fn from_sigma(text: &str, cased: bool) -> StrPattern {
        StrPattern::new(&parse_wildcards(text), cased)
    }

    /// A literal every matching string contains, for the prefilter index:
    /// the whole needle for exact/prefix/suffix/substring shapes, the longest
    /// literal run of a glob. `None` when there is none, or when it has
    /// non-ASCII text (the index folds ASCII case only).
    pub fn required_literal(&self) -> Option<String> {
        let text = match &self.shape {
            Shape::Any => return None,
            Shape::Exact(n) | Shape::Prefix(n) | Shape::Suffix(n) | Shape::Contains(n, _) => {
                n.text.clone()
            }
            Shape::Glob(toks) => {
                let mut best = String::new();
                let mut run = String::new();
                for t in toks.iter().chain(std::iter::once(&GlobTok::Star)) {
                    match t {
                        GlobTok::Char(c) => run.push(*c),
                        _ => {
                            if run.len() > best.len() {
                                best = std::mem::take(&mut run);
                            }
                            run.clear();
                        }
                    }
                }
                best
            }
        };
        // Characters without case (digits, punctuation, emoji, format marks)
        // are safe at any code point; other non-ASCII letters are not, because
        // the index folds ASCII case only.
        let caseless =
            |c: char| c.is_ascii() || (c.to_lowercase().eq([c]) && c.to_uppercase().eq([c]));
        (!text.is_empty() && text.chars().all(caseless)).then_some(text)
    }

    /// The whole value when this pattern is an exact, case-insensitive string
    /// (the logsource router keys entries by it).
    pub fn exact_folded(&self) -> Option<&str> {
        match &self.shape {
            Shape::Exact(n) if !self.cased => Some(&n.text),
            _ => None,
        }
    }

    /// Whether `hay` matches the whole pattern.
    pub fn is_match(&self, hay: &str) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Glob(toks) => {
                if self.cased {
                    glob_match(toks, hay.chars())
                } else {
                    glob_match(toks, hay.chars().flat_map(char::to_lowercase))
                }
            }
            Shape::Exact(n) | Shape::Prefix(n) | Shape::Suffix(n) | Shape::Contains(n, _)
                if !self.cased && !n.ascii =>
            {
                // Non-ASCII needle: compare against the fully lowercased haystack.
                let lower = hay.to_lowercase();
                self.match_folded(&lower)
            }
            _ => self.match_folded(hay),
        }
    }

    /// Matches against a haystack that is either exact-case (cased patterns),
    /// or compared with ASCII folding (ASCII needles), or already lowercased.
    fn match_folded(&self, hay: &str) -> bool {
        let h = hay.as_bytes();
        let eq = |a: &[u8], b: &[u8]| {
            if self.cased {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        match &self.shape {
            Shape::Exact(n) => eq(h, n.text.as_bytes()),
            Shape::Prefix(n) => {
                let n = n.text.as_bytes();
                h.len() >= n.len() && eq(&h[..n.len()], n)
            }
            Shape::Suffix(n) => {
                let n = n.text.as_bytes();
                h.len() >= n.len() && eq(&h[h.len() - n.len()..], n)
            }
            Shape::Contains(n, finder) => {
                if self.cased || !has_ascii_letters(n.text.as_bytes()) {
                    finder.find(h).is_some()
                } else {
                    contains_ignore_ascii_case(h, n.text.as_bytes())
                }
            }
            Shape::Any | Shape::Glob(_) => self.is_match(hay),
        }
    }
}

fn has_ascii_letters(b: &[u8]) -> bool {
    b.iter().any(u8::is_ascii_alphabetic)
}

/// Substring search with ASCII case folding; `needle` is already lowercase.
///
/// Scans for the first byte in both cases with memchr2, then compares the rest.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if hay.len() < needle.len() {
        return false;
    }
    let last_start = hay.len() - needle.len();
    let upper = first.to_ascii_uppercase();
    let mut from = 0;
    while from <= last_start {
        let Some(i) = memchr::memchr2(first, upper, &hay[from..=last_start]) else {
            return false;
        };
        let start = from + i;
        if hay[start + 1..start + needle.len()].eq_ignore_ascii_case(rest) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Classic wildcard matching with single-star backtracking: O(n*m) worst case, no allocation.
fn glob_match<I: Iterator<Item = char> + Clone>(toks: &[GlobTok], hay: I) -> bool {
    let mut t = 0;
    let mut h = hay.clone();
    // Where to resume after the last star: token index and haystack iterator.
    let mut backtrack: Option<(usize, I)> = None;
    loop {
        let mut peek = h.clone();
        let next = peek.next();
        match (toks.get(t), next) {
            (Some(GlobTok::Star), _) => {
                t += 1;
                backtrack = Some((t, h.clone()));
                continue;
            }
            (Some(GlobTok::One), Some(_)) => {
                t += 1;
                h = peek;
                continue;
            }
            (Some(GlobTok::Char(c)), Some(x)) if *c == x => {
                t += 1;
                h = peek;
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        // Mismatch: let the last star swallow one more character.
        match backtrack.as_mut() {
            Some((bt, bh)) => {
                if bh.next().is_none() {
                    return false;
                }
                t = *bt;
                h = bh.clone();
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, hay: &str) -> bool {
        StrPattern::from_sigma(pattern, false).is_match(hay)
    }

    #[test]
    fn plain_values_match_whole_strings_case_insensitively() {
        assert!(m("cmd.exe", "CMD.EXE"));
        assert!(!m("cmd.exe", "xcmd.exe"));
        assert!(!m("cmd.exe", "cmd.ex"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn wildcards_make_prefix_suffix_substring_and_globs() {
        assert!(m("*\\cmd.exe", "C:\\Windows\\System32\\CMD.exe"));
        assert!(m("powershell*", "PowerShell.exe -enc"));
        assert!(m("*-enc *", "powershell -ENC abc"));
        assert!(!m("*-enc *", "powershell -encodedcommand"));
        assert!(m("prog?.exe", "progA.exe"));
        assert!(!m("prog?.exe", "prog.exe"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*a*b", "xxaxxbxxb"));
        assert!(m("*", ""));
        assert!(m("**x", "yx"));
    }

    #[test]
    fn escapes_make_wildcards_literal() {
        assert_eq!(parse_wildcards(r"a\*b"), vec![Piece::Lit("a*b".into())]);
        assert_eq!(parse_wildcards(r"a\?"), vec![Piece::Lit("a?".into())]);
        // A backslash before a wildcard that is itself escaped.
        assert_eq!(
            parse_wildcards(r"a\\*"),
            vec![Piece::Lit("a\\".into()), Piece::Star]
        );
        assert_eq!(parse_wildcards(r"a\\\*"), vec![Piece::Lit("a\\*".into())]);
        assert_eq!(parse_wildcards(r"\\\\"), vec![Piece::Lit("\\\\".into())]);
        // A plain backslash stays.
        assert_eq!(
            parse_wildcards(r"C:\Windows"),
            vec![Piece::Lit("C:\\Windows".into())]
        );
        assert!(m(r"what\?", "what?"));
        assert!(!m(r"what\?", "whatx"));
    }

    #[test]
    fn cased_patterns_respect_case() {
        let p = StrPattern::from_sigma("*Evil*", true);
        assert!(p.is_match("an Evil thing"));
        assert!(!p.is_match("an evil thing"));
    }

    #[test]
    fn non_ascii_needles_fold_with_unicode_rules() {
        assert!(m("*ÄRGER*", "viel ärger hier"));
        assert!(m("ÖL", "öl"));
    }

    #[test]
    fn required_literals_are_substrings_of_every_match() {
        let lit = |p: &str| StrPattern::from_sigma(p, false).required_literal();
        assert_eq!(lit("*\\Cmd.exe").as_deref(), Some("\\cmd.exe"));
        assert_eq!(lit("ab*cdef?g").as_deref(), Some("cdef"));
        assert_eq!(lit("*"), None);
        assert_eq!(lit(""), None);
        assert_eq!(lit("*ärger*"), None);
        assert_eq!(
            lit("*\u{202e}*").as_deref(),
            Some("\u{202e}"),
            "caseless characters are fine"
        );
    }

    #[test]
    fn substring_search_handles_edges() {
        assert!(contains_ignore_ascii_case(b"abcXYZ", b"xyz"));
        assert!(contains_ignore_ascii_case(b"xyz", b"xyz"));
        assert!(!contains_ignore_ascii_case(b"xy", b"xyz"));
        assert!(contains_ignore_ascii_case(b"aaab", b"aab"));
        assert!(contains_ignore_ascii_case(b"", b""));
    }

    proptest::proptest! {
        #[test]
        fn substring_shape_agrees_with_lowercase_find(hay in "[a-cA-C ]{0,12}", needle in "[a-c]{1,3}") {
            let expected = hay.to_lowercase().contains(&needle);
            proptest::prop_assert_eq!(m(&format!("*{needle}*"), &hay), expected);
        }

        #[test]
        fn glob_shape_agrees_with_regex(hay in "[ab?*]{0,8}", pat in "[ab?*]{0,6}") {
            let re: String = pat.chars().map(|c| match c { '*' => ".*".to_string(), '?' => ".".to_string(), c => regex::escape(&c.to_string()) }).collect();
            let re = regex::Regex::new(&format!("^(?s:{re})$")).unwrap();
            proptest::prop_assert_eq!(m(&pat, &hay), re.is_match(&hay));
        }
    }
}
