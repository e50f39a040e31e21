//! Sets of literals, each searched only where it must occur in a value.
//!
//! Most literals of Windows rules are anchored: `Image|endswith` paths,
//! `OriginalFileName` names, `ParentImage` prefixes. An unanchored
//! automaton holding them walks every byte of every value through a DFA of
//! megabytes, missing the cache as it goes; an anchored walk from the
//! value's first or last byte stops after a few bytes, as soon as no literal
//! continues, and stays in the hot states near the root. Only literals that
//! may occur anywhere go into an unanchored automaton; of a set too large
//! for its prefilter, only the short ones (the rest: `windowed.rs`).
//!
//! Every comparison folds ASCII case. The anchored tries and the large
//! unanchored automata hold the literals in ASCII lower case and are given
//! lowercased bytes, rather than built case-insensitive: aho-corasick's
//! case-insensitive build adds a transition per letter case and tracks
//! visited states in a `BTreeSet`, which made the first search of a Windows
//! event (the automata are built then) take 3-4 times as long for the
//! largest sets (5,700 literals: 78 ms against 21 ms), and their automata a
//! quarter larger. The small unanchored DFAs, which every value passes
//! through, fold case themselves at no cost and are cheap to build: they
//! are spared the copy of lowercased text.

use super::pattern::Anchor;
use super::prefilter::CaselessPrefilter;
use super::windowed::WindowSet;
use aho_corasick::automaton::Automaton as _;
use aho_corasick::nfa::contiguous;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, MatchKind};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Texts up to this length go straight to the overlapping search.
const SHORT_TEXT: usize = 32;

/// Texts up to this length are lowercased on the stack.
const FOLD_ON_STACK: usize = 128;

/// Lowercased copies of longer texts are kept for the next search up to
/// this size, so a thread does not allocate one per search.
const FOLD_KEPT: usize = 64 * 1024;

std::thread_local! {
    /// The thread's buffer for lowercased text. Thread-local, not passed
    /// down: literal sets are searched from shared matchers (`&self`) on
    /// every worker, under value sets and the rule index alike.
    static FOLDED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `search` over `text` in ASCII lower case.
fn with_folded<R>(text: &[u8], search: impl FnOnce(&[u8]) -> R) -> R {
    if text.len() <= FOLD_ON_STACK {
        let mut buf = [0u8; FOLD_ON_STACK];
        let folded = &mut buf[..text.len()];
        folded.copy_from_slice(text);
        folded.make_ascii_lowercase();
        return search(folded);
    }
    // Taken out of the cell while in use: a search that nests another
    // (none does today) gets a fresh buffer instead of a borrow error.
    let mut buf = FOLDED.take();
    buf.clear();
    buf.extend_from_slice(text);
    buf.make_ascii_lowercase();
    let found = search(&buf);
    if buf.capacity() <= FOLD_KEPT {
        FOLDED.set(buf);
    }
    found
}

/// How an unanchored automaton trades memory for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Speed {
    /// A DFA when its patterns add up to at most [`DFA_MAX_PATTERN_BYTES`]:
    /// for scans of every event.
    Scan,
    /// Always the compact NFA: for checks of the few events that get there.
    Compact,
}

/// Automata whose patterns add up to at most this many bytes are built as DFAs.
///
/// A DFA costs about 370 bytes per pattern byte (a full row of transitions
/// per trie node). Past a few thousand pattern bytes it no longer fits the
/// cache, and its walk misses as often as the NFA's does: on Mordor the two
/// largest (16 KB and 10 KB of patterns, `CommandLine`-like fields) were
/// 10 MB together and scanned no faster as DFAs, while the small ones that
/// every event passes through stay several times faster as DFAs. The
/// measurements are in BENCHMARKS.md.
const DFA_MAX_PATTERN_BYTES: usize = 8192;

/// A set of literals that may occur anywhere, too many for the vectorised
/// prefilter, has those of at least 8 (then 4) bytes found by their
/// windows (`windowed.rs`) when there are at least this many of them: an
/// automaton of that many literals without a prefilter walks each byte.
const WINDOWED_MIN_LITERALS: usize = 16;

/// Distinct literals with their anchors; a search reports literal `i` as hit `i`.
///
/// The automata are built on the first search, not when the rules are
/// compiled: most of a large rule set's literal sets serve logsources or
/// fields a given deployment never sees, and building them all was most of
/// the start-up time and memory (aho-corasick's failure transitions and DFA
/// tables, about 0.4 s and 60 MiB for the SigmaHQ corpus).
#[derive(Debug, Clone)]
pub(super) struct Literals {
    literals: Box<[(Anchor, Box<str>)]>,
    speed: Speed,
    searchers: OnceLock<Searchers>,
}

/// What a literal set searches with once built.
#[derive(Debug, Clone)]
enum Searchers {
    /// Boxed: a set not yet searched should not carry a kilobyte inline.
    Automata(Box<Automata>),
    /// The automata could not be built (too large for their state ids): each
    /// literal is compared on its own. Slow, but never loses a match.
    OneByOne,
}

#[derive(Debug, Clone)]
struct Automata {
    /// Literals that may occur anywhere.
    anywhere: Option<Unanchored>,
    /// More literals that may occur anywhere, of large sets, by their windows.
    windowed: Vec<WindowSet>,
    /// Prefix and whole-value literals, walked from the first byte.
    starts: Option<AnchoredTrie>,
    /// Suffix literals, reversed, walked from the last byte backwards.
    ends: Option<AnchoredTrie>,
}

impl Literals {
    /// A literal set over `literals`, which must be distinct and lowercase.
    pub(super) fn new<S: AsRef<str>>(literals: &[(Anchor, S)], speed: Speed) -> Literals {
        Literals {
            literals: literals
                .iter()
                .map(|(a, l)| (*a, l.as_ref().into()))
                .collect(),
            speed,
            searchers: OnceLock::new(),
        }
    }

    /// Builds the automata now rather than on the first search.
    #[cfg(test)]
    fn built(self) -> Literals {
        self.searchers();
        self
    }

    /// Searches literal by literal, as when the automata cannot be built.
    #[cfg(test)]
    fn one_by_one(self) -> Literals {
        let _ = self.searchers.set(Searchers::OneByOne);
        self
    }

    fn searchers(&self) -> &Searchers {
        self.searchers.get_or_init(|| {
            Automata::build(&self.literals, self.speed)
                .map_or(Searchers::OneByOne, |a| Searchers::Automata(Box::new(a)))
        })
    }

    /// Reports every literal that `text` holds where its anchor says (a
    /// literal may be reported more than once).
    pub(super) fn for_each_hit(&self, text: &str, hit: &mut dyn FnMut(usize)) {
        match self.searchers() {
            Searchers::Automata(a) => a.for_each_hit(text, hit),
            Searchers::OneByOne => {
                for (i, (anchor, literal)) in self.literals.iter().enumerate() {
                    if anchor.holds(text, literal) {
                        hit(i);
                    }
                }
            }
        }
    }
}

impl Automata {
    /// `None` when an automaton cannot be built (too large for its state ids).
    fn build(literals: &[(Anchor, Box<str>)], speed: Speed) -> Option<Automata> {
        let mut anywhere: Vec<&str> = Vec::new();
        let mut anywhere_ids = Vec::new();
        // Trie literal -> (hit id when met, hit id when whole).
        let mut starts: Vec<(Vec<u8>, Option<u32>, Option<u32>)> = Vec::new();
        let mut start_of: HashMap<&[u8], usize> = HashMap::new();
        let mut ends = Vec::new();
        for (i, (anchor, literal)) in literals.iter().enumerate() {
            let hit = Some(i as u32);
            match anchor {
                Anchor::Anywhere => {
                    anywhere.push(literal);
                    anywhere_ids.push(i as u32);
                }
                Anchor::End => ends.push((literal.bytes().rev().collect(), hit, None)),
                Anchor::Start | Anchor::Whole => {
                    let at = *start_of.entry(literal.as_bytes()).or_insert_with(|| {
                        starts.push((literal.as_bytes().to_vec(), None, None));
                        starts.len() - 1
                    });
                    if *anchor == Anchor::Start {
                        starts[at].1 = hit;
                    } else {
                        starts[at].2 = hit;
                    }
                }
            }
        }
        let (windowed, anywhere, anywhere_ids) = split_windowed(anywhere, anywhere_ids);
        let anywhere = match anywhere.is_empty() {
            true => None,
            false => Some(Unanchored::build(&anywhere, anywhere_ids, speed)?),
        };
        Some(Automata {
            anywhere,
            windowed,
            starts: AnchoredTrie::build(starts)?,
            ends: AnchoredTrie::build(ends)?,
        })
    }

    fn for_each_hit(&self, text: &str, hit: &mut dyn FnMut(usize)) {
        if let Some(u) = &self.anywhere {
            u.scan(text, hit);
        }
        if !self.windowed.is_empty() {
            with_folded(text.as_bytes(), |folded| {
                self.windowed.iter().for_each(|w| w.scan(folded, hit))
            });
        }
        let bytes = text.as_bytes();
        if let Some(t) = &self.starts {
            t.walk(bytes.iter().copied(), bytes.len(), hit);
        }
        if let Some(t) = &self.ends {
            t.walk(bytes.iter().rev().copied(), bytes.len(), hit);
        }
    }
}

/// Takes out of `patterns` (with their hit `ids`) the literals found by
/// windows: see [`WINDOWED_MIN_LITERALS`]. Returns those sets and the rest.
fn split_windowed(
    mut patterns: Vec<&str>,
    mut ids: Vec<u32>,
) -> (Vec<WindowSet>, Vec<&str>, Vec<u32>) {
    let mut sets = Vec::new();
    for width in [8, 4] {
        if patterns.len() < WINDOWED_MIN_LITERALS || CaselessPrefilter::new(&patterns).is_some() {
            break;
        }
        let long: Vec<(&[u8], u32)> = patterns
            .iter()
            .zip(&ids)
            .filter(|(p, _)| p.len() >= width)
            .map(|(p, id)| (p.as_bytes(), *id))
            .collect();
        if long.len() < WINDOWED_MIN_LITERALS {
            continue;
        }
        sets.push(WindowSet::build(&long, width));
        (patterns, ids) = patterns
            .iter()
            .zip(&ids)
            .filter(|(p, _)| p.len() < width)
            .map(|(p, id)| (*p, *id))
            .unzip();
    }
    (sets, patterns, ids)
}

/// An unanchored automaton, with a vectorised first pass when its patterns allow one.
#[derive(Debug, Clone)]
struct Unanchored {
    ac: AhoCorasick,
    /// Whether the automaton holds its literals in lower case only, and
    /// is given lowercased text; else it folds case itself.
    lowercase_only: bool,
    prefilter: Option<CaselessPrefilter>,
    /// Whether `is_match` is worth asking first: only aho-corasick's own
    /// prefilter makes it cheaper than the search itself, and it has one
    /// only for a few literals (ours covers the case-folded ones).
    precheck: bool,
    /// Pattern -> hit id.
    ids: Vec<u32>,
}

/// Most literals for which aho-corasick may build a prefilter of its own.
const PRECHECK_MAX_PATTERNS: usize = 100;

impl Unanchored {
    fn build(patterns: &[&str], ids: Vec<u32>, speed: Speed) -> Option<Unanchored> {
        // Overlapping search walks every byte through the automaton; a DFA does
        // that several times faster than an NFA but its size grows with the
        // patterns, so only automata up to a bounded size get one.
        let total: usize = patterns.iter().map(|p| p.len()).sum();
        let kind = match speed {
            Speed::Scan if total <= DFA_MAX_PATTERN_BYTES => AhoCorasickKind::DFA,
            _ => AhoCorasickKind::ContiguousNFA,
        };
        // A DFA folds case for free as it searches (case-insensitive
        // literals share byte classes), and is small by the bound above:
        // it is built case-insensitive, and searched without copies. The
        // larger NFAs, slow to build case-insensitive, hold lower case only.
        let lowercase_only = kind == AhoCorasickKind::ContiguousNFA;
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(!lowercase_only)
            .match_kind(MatchKind::Standard)
            .kind(Some(kind))
            .build(patterns.iter().map(|p| p.to_ascii_lowercase()))
            .ok()?;
        let prefilter = CaselessPrefilter::new(patterns);
        let precheck = patterns.len() <= PRECHECK_MAX_PATTERNS;
        Some(Unanchored {
            ac,
            lowercase_only,
            prefilter,
            precheck,
            ids,
        })
    }

    /// Reports every pattern in `text`. Most texts contain none: a prefilter
    /// (ours, else the automaton's own in `is_match`) answers that quickly, and
    /// only a text with a possible hit pays for the byte-by-byte overlapping
    /// search, and with our prefilter only around the possible hits.
    fn scan(&self, text: &str, hit: &mut dyn FnMut(usize)) {
        let text = text.as_bytes();
        if text.len() < self.ac.min_pattern_len() {
            return;
        }
        let mut report = |m: aho_corasick::Match| hit(self.ids[m.pattern().as_usize()] as usize);
        if text.len() <= SHORT_TEXT {
            return self.search(text, false, &mut report);
        }
        match &self.prefilter {
            Some(p) => {
                for region in p.regions(text) {
                    self.search(text.get(region).unwrap_or_default(), false, &mut report);
                }
            }
            None => self.search(text, self.precheck, &mut report),
        }
    }

    /// Reports every literal in `part`, asking `is_match` first with `precheck`.
    fn search(&self, part: &[u8], precheck: bool, report: &mut dyn FnMut(aho_corasick::Match)) {
        let run = |text: &[u8]| {
            if !precheck || self.ac.is_match(text) {
                self.ac.find_overlapping_iter(text).for_each(report);
            }
        };
        match self.lowercase_only {
            true => with_folded(part, run),
            false => run(part),
        }
    }
}

/// A trie of literals walked from one end of a value.
///
/// A contiguous NFA: dense near the root, where every walk passes, and
/// compact below, where a walk goes only as deep as some literal continues
/// (a DFA would spend a full transition row on every trie node).
#[derive(Debug, Clone)]
struct AnchoredTrie {
    trie: contiguous::NFA,
    /// Per trie pattern: its hit id when it is met (a prefix or suffix), and
    /// its hit id when it is the whole value.
    hits: Vec<(Option<u32>, Option<u32>)>,
}

impl AnchoredTrie {
    /// `Some(None)` for no literals; `None` when the automaton cannot be built.
    fn build(literals: Vec<(Vec<u8>, Option<u32>, Option<u32>)>) -> Option<Option<AnchoredTrie>> {
        if literals.is_empty() {
            return Some(None);
        }
        let (patterns, hits): (Vec<Vec<u8>>, Vec<_>) =
            literals.into_iter().map(|(l, a, b)| (l, (a, b))).unzip();
        let trie = contiguous::Builder::new()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(patterns.iter().map(|p| p.to_ascii_lowercase()))
            .ok()?;
        Some(Some(AnchoredTrie { trie, hits }))
    }

    /// Reports the literals that `bytes` (a value of `len` bytes, from one
    /// end) begins with.
    fn walk(&self, bytes: impl Iterator<Item = u8>, len: usize, hit: &mut dyn FnMut(usize)) {
        let Ok(mut sid) = self.trie.start_state(Anchored::Yes) else {
            return;
        };
        for (i, byte) in bytes.enumerate() {
            sid = self
                .trie
                .next_state(Anchored::Yes, sid, byte.to_ascii_lowercase());
            if !self.trie.is_special(sid) {
                continue;
            }
            if self.trie.is_dead(sid) {
                return;
            }
            // A match state also lists literals that end here but start
            // later (the unanchored automaton's inheritance): keep only those
            // that start at the end the walk began from.
            for k in 0..self.trie.match_len(sid) {
                let p = self.trie.match_pattern(sid, k);
                if self.trie.pattern_len(p) != i + 1 {
                    continue;
                }
                let (met, whole) = self.hits[p.as_usize()];
                if let Some(h) = met {
                    hit(h as usize);
                }
                if let (Some(h), true) = (whole, i + 1 == len) {
                    hit(h as usize);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Anchor::{Anywhere, End, Start, Whole};

    fn hits(set: &Literals, text: &str) -> Vec<usize> {
        let mut found = Vec::new();
        set.for_each_hit(text, &mut |h| found.push(h));
        found.sort();
        found.dedup();
        found
    }

    /// Generated literals, lowercase and distinct, each with `anchors[a]`.
    fn distinct_lowercase(
        literals: Vec<(u8, String)>,
        anchors: &[Anchor],
    ) -> Vec<(Anchor, String)> {
        let mut unique: Vec<(Anchor, String)> = literals
            .into_iter()
            .map(|(a, l)| (anchors[a as usize], l.to_ascii_lowercase()))
            .collect();
        unique.sort();
        unique.dedup();
        unique
    }

    /// The literals `text` holds where their anchors say, by plain string search.
    fn anchored_occurrences(literals: &[(Anchor, String)], text: &str) -> Vec<usize> {
        let lower = text.to_ascii_lowercase();
        let lower = lower.as_str();
        (0..literals.len())
            .filter(|&i| match &literals[i] {
                (Anywhere, l) => lower.contains(l.as_str()),
                (Start, l) => lower.starts_with(l.as_str()),
                (End, l) => lower.ends_with(l.as_str()),
                (Whole, l) => lower == l,
            })
            .collect()
    }

    #[test]
    fn a_large_set_finds_its_long_literals_by_window_and_its_short_ones_by_automaton() {
        // 80 hashes (no prefilter takes that many), a name and a short word.
        let mut literals: Vec<(Anchor, String)> = (0..80)
            .map(|i| {
                (
                    Anywhere,
                    format!("{:016x}", 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1)),
                )
            })
            .collect();
        literals.push((Anywhere, "mimi".to_string()));
        literals.push((Anywhere, "ab".to_string()));
        literals.push((End, "\\evil.exe".to_string()));
        let set = Literals::new(&literals, Speed::Scan).built();
        let Searchers::Automata(automata) = set.searchers() else {
            panic!("automata");
        };
        assert_eq!(automata.windowed.len(), 1);
        let text = format!(
            "MD5=00,SHA256={},SHA1=Mimikatz",
            literals[7].1.to_ascii_uppercase()
        );
        assert_eq!(hits(&set, &text), vec![7, 80]);
        assert_eq!(hits(&set, "C:\\Tools\\evil.exe ab"), vec![81]);
        assert_eq!(hits(&set, "C:\\Tools\\EVIL.EXE"), vec![82]);
        let prefix = literals[3].1[..15].to_string();
        assert_eq!(hits(&set, &prefix), Vec::<usize>::new());
    }

    #[test]
    fn anchored_literals_hit_only_at_their_end_of_the_value() {
        let set = Literals::new(
            &[
                (Start, "c:\\windows\\"),
                (End, "\\cmd.exe"),
                (Whole, "cmd.exe"),
                (Start, "cmd.exe"),
                (End, ".exe"),
                (Anywhere, "system32"),
            ],
            Speed::Compact,
        )
        .built();
        assert_eq!(
            hits(&set, "C:\\WINDOWS\\system32\\CMD.EXE"),
            vec![0, 1, 4, 5]
        );
        assert_eq!(hits(&set, "cmd.exe"), vec![2, 3, 4]);
        assert_eq!(hits(&set, "cmd.exe /c"), vec![3]);
        assert_eq!(
            hits(&set, "d:\\c:\\windows\\cmd.exe.txt"),
            Vec::<usize>::new()
        );
        assert_eq!(hits(&set, "x\\cmd.exe"), vec![1, 4]);
    }

    proptest::proptest! {
        #[test]
        fn literal_sets_find_exactly_the_anchored_occurrences(
            literals in proptest::collection::vec((0..4u8, "[abAB.]{1,4}"), 1..8),
            text in "[abAB.]{0,12}",
        ) {
            let unique = distinct_lowercase(literals, &[Anywhere, Start, End, Whole]);
            let set = Literals::new(&unique, Speed::Scan);
            let expected = anchored_occurrences(&unique, &text);
            proptest::prop_assert_eq!(&hits(&set, &text), &expected);
            let one_by_one = Literals::new(&unique, Speed::Scan).one_by_one();
            proptest::prop_assert_eq!(hits(&one_by_one, &text), expected);
        }

        /// Sets too large for the vectorised prefilter, whose longer
        /// literals are found by their windows (`windowed.rs`), the rest by
        /// the automata.
        #[test]
        fn large_literal_sets_find_exactly_the_anchored_occurrences(
            literals in proptest::collection::vec((0..8u8, "[a-hA-H.\\\\]{2,12}"), 40..120),
            pieces in proptest::collection::vec(("[a-hA-H.\\\\]{0,6}", 0..120usize, 0..13usize, proptest::bool::ANY), 0..6),
            speed in proptest::sample::select(vec![Speed::Scan, Speed::Compact]),
        ) {
            // Most may occur anywhere: those are the ones found by windows.
            let anchors = [Anywhere, Start, End, Whole, Anywhere, Anywhere, Anywhere, Anywhere];
            let unique = distinct_lowercase(literals, &anchors);
            // Filler, literals and cut literals, in either case.
            let mut text = String::new();
            for (filler, pick, cut, upper) in pieces {
                text.push_str(&filler);
                if let Some((_, l)) = unique.get(pick) {
                    let part = &l[..cut.min(l.len())];
                    text.push_str(&if upper { part.to_ascii_uppercase() } else { part.to_string() });
                }
            }
            let set = Literals::new(&unique, speed).built();
            let expected = anchored_occurrences(&unique, &text);
            proptest::prop_assert_eq!(hits(&set, &text), expected);
        }

        /// Long texts are searched in lowercased copies (of a prefilter's
        /// regions, on the stack or in the thread's buffer): every
        /// occurrence in any case is still found, and nothing else.
        #[test]
        fn literals_in_long_texts_are_found_in_any_case(
            literals in proptest::collection::vec("[a-z.\\\\]{2,6}", 1..6),
            pieces in proptest::collection::vec(("[ -~]{0,90}", 0..6usize, proptest::bool::ANY), 1..5),
            speed in proptest::sample::select(vec![Speed::Scan, Speed::Compact]),
            crowded in proptest::bool::ANY,
        ) {
            let mut literals = literals;
            if crowded {
                // Too many spellings for the prefilter: whole texts are searched.
                literals.extend(('a'..='l').map(|c| format!("kw{c}")));
            }
            literals.sort();
            literals.dedup();
            let mut text = String::new();
            for (filler, pick, upper) in pieces {
                text.push_str(&filler);
                if let Some(l) = literals.get(pick) {
                    text.push_str(&if upper { l.to_ascii_uppercase() } else { l.clone() });
                }
            }
            let anywhere: Vec<(Anchor, &str)> =
                literals.iter().map(|l| (Anywhere, l.as_str())).collect();
            let set = Literals::new(&anywhere, speed);
            let lower = text.to_ascii_lowercase();
            let expected: Vec<usize> = (0..literals.len())
                .filter(|&i| lower.contains(literals[i].as_str()))
                .collect();
            proptest::prop_assert_eq!(hits(&set, &text), expected);
        }
    }
}
