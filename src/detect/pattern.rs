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
pub(crate) enum Piece {
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
pub(crate) fn parse_wildcards(text: &str) -> Vec<Piece> {
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
pub(crate) fn literal_text(pieces: &[Piece]) -> Option<String> {
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
pub(crate) struct StrPattern {
    shape: Shape,
    cased: bool,
}

/// Where in a value an index literal must occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Anchor {
    /// Anywhere in the value.
    Anywhere,
    /// At its start.
    Start,
    /// At its end.
    End,
    /// It is the whole value.
    Whole,
}

impl Anchor {
    /// Whether `literal` (lowercase) occurs in `text` where this anchor says,
    /// ASCII case-insensitively.
    pub(crate) fn holds(self, text: &str, literal: &str) -> bool {
        let (h, n) = (text.as_bytes(), literal.as_bytes());
        match self {
            Anchor::Anywhere => contains_ignore_ascii_case(h, n, 0),
            Anchor::Start => h.get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n)),
            Anchor::End => h
                .len()
                .checked_sub(n.len())
                .is_some_and(|at| h[at..].eq_ignore_ascii_case(n)),
            Anchor::Whole => h.eq_ignore_ascii_case(n),
        }
    }
}

/// The literal run of a glob that the index looks for (see `required_literal`).
fn glob_literal(toks: &[GlobTok]) -> (Anchor, String) {
    let runs = toks.split(|t| !matches!(t, GlobTok::Char(_)));
    let text = |run: &[GlobTok]| -> String {
        run.iter()
            .filter_map(|t| match t {
                GlobTok::Char(c) => Some(*c),
                _ => None,
            })
            .collect()
    };
    let longest = runs.clone().map(<[GlobTok]>::len).max().unwrap_or(0);
    let good = |run: &[GlobTok]| !run.is_empty() && (run.len() >= longest || run.len() >= 4);
    let first = runs.clone().next().unwrap_or(&[]);
    let last = runs.clone().next_back().unwrap_or(&[]);
    // A glob has a wildcard, so its first and last runs are different runs.
    match (good(first), good(last)) {
        (true, true) if last.len() > first.len() => (Anchor::End, text(last)),
        (true, _) => (Anchor::Start, text(first)),
        (false, true) => (Anchor::End, text(last)),
        (false, false) => {
            let best = runs.max_by_key(|r| r.len()).unwrap_or(&[]);
            (Anchor::Anywhere, text(best))
        }
    }
}

#[derive(Debug, Clone)]
enum Shape {
    Exact(Needle),
    Prefix(Needle),
    Suffix(Needle),
    /// With a vectorised finder when the comparison is exact (cased, or no
    /// letters to fold); folded needles are searched by their rare byte,
    /// and a finder (some hundred bytes) for each of the corpus's many
    /// thousand of them would only take memory.
    Contains(Needle, Option<Box<memmem::Finder<'static>>>),
    Glob(Vec<GlobTok>),
    /// `*` alone: any string.
    Any,
}

/// A literal, stored folded for case-insensitive comparison.
#[derive(Debug, Clone)]
struct Needle {
    text: String,
    ascii: bool,
    /// The offset of its rarest byte, which substring search looks for first.
    rare: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobTok {
    Char(char),
    One,
    Star,
}

impl StrPattern {
    /// Compiles pieces; `cased` selects case-sensitive comparison.
    pub(crate) fn new(pieces: &[Piece], cased: bool) -> StrPattern {
        let fold = |s: &str| -> Needle {
            let text = if cased {
                s.to_string()
            } else {
                s.to_lowercase()
            };
            let rare = memchr::arch::all::packedpair::Pair::new(text.as_bytes())
                .map_or(0, |pair| usize::from(pair.index1()));
            Needle {
                ascii: text.is_ascii(),
                rare,
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
                let finder = (cased || !has_ascii_letters(needle.text.as_bytes()))
                    .then(|| Box::new(memmem::Finder::new(needle.text.as_bytes()).into_owned()));
                Shape::Contains(needle, finder)
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
    #[cfg(test)]
    pub(crate) fn from_sigma(text: &str, cased: bool) -> StrPattern {
        StrPattern::new(&parse_wildcards(text), cased)
    }

    /// A literal every matching string contains, and where, for the prefilter
    /// index: the whole needle for exact/prefix/suffix/substring shapes; for a
    /// glob, its leading or trailing literal run when that is as long as its
    /// longest run (or at least 4 bytes), else the longest run anywhere.
    /// `None` when there is none, or when case folding beyond ASCII could
    /// make a match the index would not see (the index folds ASCII only).
    pub(crate) fn required_literal(&self) -> Option<(Anchor, String)> {
        let (anchor, text) = match &self.shape {
            Shape::Any => return None,
            Shape::Exact(n) => (Anchor::Whole, n.text.clone()),
            Shape::Prefix(n) => (Anchor::Start, n.text.clone()),
            Shape::Suffix(n) => (Anchor::End, n.text.clone()),
            Shape::Contains(n, _) => (Anchor::Anywhere, n.text.clone()),
            Shape::Glob(toks) => glob_literal(toks),
        };
        // A cased pattern compares the text as it is, and an ASCII one folds
        // ASCII only, as the index does: its literal is required as it is.
        if text.is_empty() || self.cased || !self.needs_non_ascii() {
            return (!text.is_empty()).then_some((anchor, text));
        }
        // Characters without case (digits, punctuation, dashes, emoji,
        // format marks) are safe at any code point; other non-ASCII letters
        // are not. A pattern with one is compared with the haystack fully
        // lowercased, where only two characters become ASCII: the Kelvin
        // sign (`k`) and `İ` (`i` and a combining dot). So every match holds
        // each run of the needle's caseless characters and ASCII other than
        // `k` and `i`, ASCII-case-insensitively: the longest run is the
        // literal (a `windash` variant such as ` –accepteula` keeps all of it).
        // The combining dot is caseless but comes out of `İ` too: not safe.
        let caseless =
            |c: char| c != '\u{307}' && c.to_lowercase().eq([c]) && c.to_uppercase().eq([c]);
        let in_run = |c: char| match c.is_ascii() {
            true => !matches!(c.to_ascii_lowercase(), 'k' | 'i'),
            false => caseless(c),
        };
        // Every character safe: each comes from itself (or its ASCII other
        // case), one for one, so the anchor holds too.
        if text.chars().all(in_run) {
            return Some((anchor, text));
        }
        let run = text.split(|c| !in_run(c)).max_by_key(|run| run.len())?;
        (!run.is_empty()).then(|| (Anchor::Anywhere, run.to_string()))
    }

    /// The literal and anchor that decide this pattern exactly, when ASCII
    /// case folding is all its comparison does: a case-insensitive exact,
    /// prefix, suffix or substring pattern with a non-empty ASCII needle.
    pub(crate) fn plain_literal(&self) -> Option<(Anchor, &str)> {
        let (anchor, n) = match &self.shape {
            Shape::Exact(n) => (Anchor::Whole, n),
            Shape::Prefix(n) => (Anchor::Start, n),
            Shape::Suffix(n) => (Anchor::End, n),
            Shape::Contains(n, _) => (Anchor::Anywhere, n),
            Shape::Glob(_) | Shape::Any => return None,
        };
        (!self.cased && n.ascii && !n.text.is_empty()).then_some((anchor, n.text.as_str()))
    }

    /// Whether only a text with a non-ASCII character can match: the
    /// pattern's literal part has one (a Cyrillic lookalike, an emoji).
    /// Folding never turns a non-ASCII needle ASCII, since needles are
    /// stored folded, so an ASCII text is decided without a comparison.
    pub(crate) fn needs_non_ascii(&self) -> bool {
        match &self.shape {
            Shape::Exact(n) | Shape::Prefix(n) | Shape::Suffix(n) | Shape::Contains(n, _) => {
                !n.ascii
            }
            Shape::Glob(toks) => toks
                .iter()
                .any(|t| matches!(t, GlobTok::Char(c) if !c.is_ascii())),
            Shape::Any => false,
        }
    }

    /// The whole value when this pattern is an exact, case-insensitive string
    /// (the logsource router keys entries by it).
    pub(crate) fn exact_folded(&self) -> Option<&str> {
        match &self.shape {
            Shape::Exact(n) if !self.cased => Some(&n.text),
            _ => None,
        }
    }

    /// Whether `hay` matches the whole pattern.
    pub(crate) fn is_match(&self, hay: &str) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Glob(toks) => {
                if self.cased {
                    glob_match(toks, hay.chars())
                } else if hay.is_ascii() {
                    // Unicode lowercasing, char by char, was most of the cost
                    // of keyword globs over web logs; ASCII needs none of it.
                    glob_match(
                        toks,
                        hay.bytes().map(|b| char::from(b.to_ascii_lowercase())),
                    )
                } else if !self.needs_non_ascii() {
                    // An ASCII pattern folds ASCII only, as an ASCII needle
                    // does: the Kelvin sign is not `k`, and `?` is one
                    // character of the text, not of its lowercase (`İ` is two).
                    glob_match(toks, hay.chars().map(|c| c.to_ascii_lowercase()))
                } else {
                    glob_match(toks, hay.chars().flat_map(char::to_lowercase))
                }
            }
            Shape::Exact(n) | Shape::Prefix(n) | Shape::Suffix(n) | Shape::Contains(n, _)
                if !self.cased && !n.ascii && !hay.is_ascii() =>
            {
                // Non-ASCII needle and haystack: compare against the fully
                // lowercased haystack. (An ASCII haystack lowercases to its
                // ASCII folding, which `match_folded` compares anyway.)
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
            Shape::Contains(_, Some(finder)) => finder.find(h).is_some(),
            Shape::Contains(n, None) => contains_ignore_ascii_case(h, n.text.as_bytes(), n.rare),
            Shape::Any | Shape::Glob(_) => self.is_match(hay),
        }
    }
}

fn has_ascii_letters(b: &[u8]) -> bool {
    b.iter().any(u8::is_ascii_alphabetic)
}

/// Substring search with ASCII case folding; `needle` is already lowercase.
///
/// Looks for the needle's byte at `rare` (its rarest, so candidates are
/// few; see `Needle::rare`) in both cases with memchr2, then compares the rest.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8], rare: usize) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.len() < needle.len() {
        return false;
    }
    let rare = rare.min(needle.len() - 1);
    let last_start = hay.len() - needle.len();
    let (lower, upper) = (needle[rare], needle[rare].to_ascii_uppercase());
    // Candidate starts `from..=last_start` put the rare byte at `from + rare ..`.
    let mut from = 0;
    while from <= last_start {
        let window = &hay[from + rare..=last_start + rare];
        let Some(i) = memchr::memchr2(lower, upper, window) else {
            return false;
        };
        let start = from + i;
        if hay[start..start + needle.len()].eq_ignore_ascii_case(needle) {
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
    fn required_literals_say_where_every_match_holds_them() {
        let lit = |p: &str| StrPattern::from_sigma(p, false).required_literal();
        let at = |a: Anchor, s: &str| Some((a, s.to_string()));
        assert_eq!(lit("*\\Cmd.exe"), at(Anchor::End, "\\cmd.exe"));
        assert_eq!(lit("C:\\Temp*"), at(Anchor::Start, "c:\\temp"));
        assert_eq!(lit("*whoami*"), at(Anchor::Anywhere, "whoami"));
        assert_eq!(lit("Whoami"), at(Anchor::Whole, "whoami"));
        assert_eq!(lit("ab*cdef?g"), at(Anchor::Anywhere, "cdef"));
        assert_eq!(lit("abcd*x*cdef"), at(Anchor::Start, "abcd"));
        assert_eq!(lit("*x*\\evil.exe"), at(Anchor::End, "\\evil.exe"));
        assert_eq!(lit("?:\\\\*\\\\evil.exe"), at(Anchor::End, "\\evil.exe"));
        assert_eq!(lit("*"), None);
        assert_eq!(lit(""), None);
        assert_eq!(lit("*ä*"), None);
        // Beyond ASCII: (pattern, literal, why).
        let cases = [
            (
                "*ärger*",
                at(Anchor::Anywhere, "rger"),
                "the longest run without a cased non-ASCII letter",
            ),
            (
                "* \u{2013}accepteula*",
                at(Anchor::Anywhere, " \u{2013}accepteula"),
                "a windash variant keeps its dash and letters",
            ),
            (
                "\u{2013}s cmd",
                at(Anchor::Whole, "\u{2013}s cmd"),
                "and its anchor, when every character is safe",
            ),
            (
                "*\u{202e}*",
                at(Anchor::Anywhere, "\u{202e}"),
                "caseless characters are fine",
            ),
            (
                "*\u{307}*",
                None,
                "the combining dot may be the lowercase of `İ`",
            ),
            (
                "*\u{202e}k*",
                at(Anchor::Anywhere, "\u{202e}"),
                "the Kelvin sign lowercases to k beside a non-ASCII needle: a run stops at k",
            ),
            (
                "*ä-kelvin*",
                at(Anchor::Anywhere, "elv"),
                "nor is `k` or `i` in a run",
            ),
        ];
        for (pattern, literal, why) in cases {
            assert_eq!(lit(pattern), literal, "{pattern:?}: {why}");
        }
    }

    #[test]
    fn an_ascii_glob_folds_ascii_only_and_counts_characters_of_the_text() {
        assert!(
            !StrPattern::from_sigma("?k", false).is_match("k\u{212a}"),
            "the Kelvin sign is not k"
        );
        assert!(StrPattern::from_sigma("a?b", false).is_match("a\u{130}b"));
    }

    /// When `pat` matches `hay` but `hay`, ASCII-folded as the index sees
    /// it, lacks the pattern's required literal where it says: the literal.
    fn literal_missed(pat: &str, hay: &str) -> Option<(Anchor, String)> {
        let p = StrPattern::from_sigma(pat, false);
        let (anchor, lit) = p.required_literal().filter(|_| p.is_match(hay))?;
        let hay = hay.to_ascii_lowercase();
        let holds = match anchor {
            Anchor::Anywhere => hay.contains(&lit),
            Anchor::Start => hay.starts_with(&lit),
            Anchor::End => hay.ends_with(&lit),
            Anchor::Whole => hay == lit,
        };
        (!holds).then_some((anchor, lit))
    }

    proptest::proptest! {
        #[test]
        fn required_literals_hold_in_every_match(hay in "[a-cA-C?*]{0,10}", pat in "[ab?*]{0,7}") {
            proptest::prop_assert_eq!(literal_missed(&pat, &hay), None);
        }

        /// Haystacks with the characters that lowercase to ASCII (Kelvin
        /// sign, `İ`), dashes and cased non-ASCII letters.
        #[test]
        fn required_literals_hold_in_every_match_beyond_ascii(
            hay in "[akiAKI\u{212a}\u{130}\u{307}\u{2013}äÄ -]{0,10}",
            pat in "[aki\u{2013}\u{307}ä -?*]{0,7}",
        ) {
            proptest::prop_assert_eq!(literal_missed(&pat, &hay), None);
        }

        /// The needle is cut from the haystack, so most cases match.
        #[test]
        fn required_literals_hold_for_needles_cut_from_the_text(
            hay in "[akiAKI\u{212a}\u{130}\u{2013}äÄ-]{1,10}",
            from in 0..10usize,
            len in 1..6usize,
        ) {
            let chars: Vec<char> = hay.chars().collect();
            let from = from.min(chars.len() - 1);
            let to = (from + len).min(chars.len());
            let needle: String = chars[from..to].iter().collect();
            proptest::prop_assert_eq!(literal_missed(&format!("*{needle}*"), &hay), None);
        }
    }

    #[test]
    fn substring_search_handles_edges() {
        for rare in 0..3 {
            assert!(contains_ignore_ascii_case(b"abcXYZ", b"xyz", rare));
            assert!(contains_ignore_ascii_case(b"xyz", b"xyz", rare));
            assert!(!contains_ignore_ascii_case(b"xy", b"xyz", rare));
            assert!(contains_ignore_ascii_case(b"aaab", b"aab", rare));
            assert!(!contains_ignore_ascii_case(b"zyx", b"xyz", rare));
            assert!(contains_ignore_ascii_case(b"", b"", rare));
        }
    }

    proptest::proptest! {
        #[test]
        fn substring_shape_agrees_with_lowercase_find(hay in "[a-cA-C ]{0,12}", needle in "[a-c]{1,3}") {
            let expected = hay.to_lowercase().contains(&needle);
            proptest::prop_assert_eq!(m(&format!("*{needle}*"), &hay), expected);
        }

        #[test]
        fn substring_search_agrees_with_lowercase_find_from_any_rare_byte(hay in "[a-cA-C]{0,12}", needle in "[a-c]{1,4}", rare in 0..4usize) {
            let expected = hay.to_ascii_lowercase().contains(&needle);
            proptest::prop_assert_eq!(contains_ignore_ascii_case(hay.as_bytes(), needle.as_bytes(), rare), expected);
        }

        #[test]
        fn glob_shape_agrees_with_regex(hay in "[ab?*]{0,8}", pat in "[ab?*]{0,6}") {
            let re: String = pat.chars().map(|c| match c { '*' => ".*".to_string(), '?' => ".".to_string(), c => regex::escape(&c.to_string()) }).collect();
            let re = regex::Regex::new(&format!("^(?s:{re})$")).unwrap();
            proptest::prop_assert_eq!(m(&pat, &hay), re.is_match(&hay));
        }
    }
}
