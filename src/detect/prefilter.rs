//! A SIMD prefilter for ASCII case-insensitive literal sets.
//!
//! The index's automata fold ASCII case, and aho-corasick gives
//! case-insensitive automata no vectorised prefilter: a keyword rule such as
//! "Mimikatz Use" (20 literals, every value of every Windows event) then walks
//! kilobytes per event byte by byte, almost always to find nothing.
//!
//! This prefilter picks from every literal a short window (two to three
//! bytes, preferring punctuation and rare letters, since each ASCII letter
//! doubles the spellings) and hands every spelling of every window to
//! aho-corasick's packed (Teddy) searcher, which is case-sensitive and runs at
//! memory speed. A text in which no window occurs cannot contain any literal;
//! around each window found, the automaton checks a region just large enough
//! to hold any literal that contains it.

use aho_corasick::packed;
use std::ops::Range;

/// Windows of this many bytes at most are taken from each literal.
const WINDOW: usize = 3;

/// The packed searcher's own limit for fast searching (Teddy).
const MAX_SPELLINGS: usize = 64;

/// The prefilter for one literal set.
#[derive(Debug, Clone)]
pub(super) struct CaselessPrefilter {
    windows: packed::Searcher,
    /// How far into a literal its window may start: a literal containing a
    /// window found at `p` starts at `p - lead` or later.
    lead: usize,
    /// The longest literal.
    longest: usize,
}

impl CaselessPrefilter {
    /// Builds a prefilter for `literals` (already ASCII-lowercased), or
    /// `None` when their windows have too many spellings to search fast.
    pub(super) fn new<S: AsRef<[u8]>>(literals: &[S]) -> Option<CaselessPrefilter> {
        let mut spellings: Vec<Vec<u8>> = Vec::new();
        let (mut lead, mut longest) = (0, 0);
        for literal in literals {
            let literal = literal.as_ref();
            longest = longest.max(literal.len());
            let (offset, window) = best_window(literal)?;
            lead = lead.max(offset);
            for spelling in case_spellings(window) {
                if !spellings.contains(&spelling) {
                    spellings.push(spelling);
                }
            }
            if spellings.len() > MAX_SPELLINGS {
                return None;
            }
        }
        let windows = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&spellings)
            .build()?;
        Some(CaselessPrefilter {
            windows,
            lead,
            longest,
        })
    }

    /// The parts of `text` that can hold a literal, in order and disjoint:
    /// every occurrence of every literal lies wholly inside one of them.
    ///
    /// Why that holds: an occurrence contains its window at some `q`. The
    /// leftmost-first search reports `q`, or skips it only because a reported
    /// window at `p <= q` overlaps it, so `q < p + WINDOW`. The occurrence
    /// starts at or after `q - lead` and ends by `q + longest`, which is
    /// inside `p - lead .. p + WINDOW + longest`.
    pub(super) fn regions<'t>(&'t self, text: &'t [u8]) -> impl Iterator<Item = Range<usize>> + 't {
        let mut found = self.windows.find_iter(text).map(move |m| {
            let p = m.start();
            p.saturating_sub(self.lead)..(p + WINDOW + self.longest).min(text.len())
        });
        let mut pending = found.next();
        std::iter::from_fn(move || {
            let mut region = pending.take()?;
            for next in found.by_ref() {
                if next.start <= region.end {
                    region.end = region.end.max(next.end);
                } else {
                    pending = Some(next);
                    break;
                }
            }
            Some(region)
        })
    }
}

/// The literal's window with the fewest spellings, then the rarest bytes;
/// with its offset in the literal.
fn best_window(literal: &[u8]) -> Option<(usize, &[u8])> {
    if literal.is_empty() {
        return None;
    }
    let len = WINDOW.min(literal.len());
    (0..=literal.len() - len)
        .map(|at| (at, &literal[at..at + len]))
        .min_by_key(|(_, w)| {
            let letters = w.iter().filter(|b| b.is_ascii_alphabetic()).count();
            let commonness: u32 = w.iter().map(|&b| commonness(b)).sum();
            (letters, commonness)
        })
}

/// A rough rank of how often a byte occurs in log text (higher: more often).
fn commonness(b: u8) -> u32 {
    match b {
        b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' | b'l' | b'd' | b'c' => 3,
        b' ' | b'0'..=b'9' | b'.' | b'\\' | b'/' | b'-' | b'_' | b'"' | b'=' => 3,
        b'a'..=b'z' | b':' | b',' => 2,
        _ => 1,
    }
}

/// Every ASCII case spelling of a lowercase window.
fn case_spellings(window: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::with_capacity(window.len())];
    for &b in window {
        if b.is_ascii_alphabetic() {
            let mut upper = out.clone();
            upper
                .iter_mut()
                .for_each(|s| s.push(b.to_ascii_uppercase()));
            out.iter_mut().for_each(|s| s.push(b));
            out.extend(upper);
        } else {
            out.iter_mut().for_each(|s| s.push(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::AhoCorasick;

    const MIMIKATZ: &[&str] = &[
        "dpapi::masterkey",
        "eo.oe.kiwi",
        "event::clear",
        "event::drop",
        "gentilkiwi.com",
        "kerberos::golden",
        "kerberos::ptc",
        "kerberos::ptt",
        "kerberos::tgt",
        "kiwi legit printer",
        "lsadump::",
        "mimidrv.sys",
        "\\mimilib.dll",
        "misc::printnightmare",
        "misc::shadowcopies",
        "misc::skeleton",
        "privilege::backup",
        "privilege::debug",
        "privilege::driver",
        "sekurlsa::",
    ];

    #[test]
    fn windows_prefer_punctuation_over_letters() {
        assert_eq!(best_window(b"lsadump::"), Some((6, &b"p::"[..])));
        assert_eq!(best_window(b"ab"), Some((0, &b"ab"[..])));
        assert_eq!(best_window(b""), None);
    }

    #[test]
    fn spellings_cover_every_case_of_the_letters_only() {
        let mut s = case_spellings(b"a:b");
        s.sort();
        assert_eq!(
            s,
            vec![
                b"A:B".to_vec(),
                b"A:b".to_vec(),
                b"a:B".to_vec(),
                b"a:b".to_vec()
            ]
        );
    }

    #[test]
    fn a_literal_set_with_too_many_spellings_gets_no_prefilter() {
        let words: Vec<String> = (0..40).map(|i| format!("word{i}xyz")).collect();
        assert!(CaselessPrefilter::new(&words).is_none());
    }

    #[test]
    fn nearby_windows_share_one_region() {
        let pre = CaselessPrefilter::new(&["ab::cd", "xy::zz"]).expect("fits");
        let text =
            b"........................ab::cd.xy::zz..........................................";
        let regions: Vec<_> = pre.regions(text).collect();
        assert_eq!(regions.len(), 1, "{regions:?}");
        assert!(
            regions[0].start <= 24 && regions[0].end >= 37,
            "{regions:?}"
        );
        assert_eq!(pre.regions(&[b'.'; 80]).count(), 0);
    }

    /// The prefilter may only skip text in which no literal occurs, in any
    /// case: every occurrence must lie inside a region.
    #[test]
    fn never_skips_a_literal_in_any_case_or_position() {
        let pre = CaselessPrefilter::new(MIMIKATZ).expect("mimikatz keywords fit");
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(MIMIKATZ)
            .expect("automaton");
        let filler = "C:\\Windows\\System32\\svchost.exe -k netsvcs -p fe80::1 ";
        for (i, lit) in MIMIKATZ.iter().enumerate() {
            let spelled: String = lit
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if (i + j) % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let next = MIMIKATZ[(i + 1) % MIMIKATZ.len()].to_ascii_uppercase();
            for text in [
                spelled.clone(),
                format!("{filler}{spelled}"),
                format!("{filler}{spelled}{filler}"),
                format!("{spelled}{next}{filler}{spelled}"),
            ] {
                let regions: Vec<_> = pre.regions(text.as_bytes()).collect();
                for m in ac.find_overlapping_iter(&text) {
                    assert!(
                        regions
                            .iter()
                            .any(|r| r.start <= m.start() && m.end() <= r.end),
                        "{text}: {:?} outside {regions:?}",
                        m.range()
                    );
                }
            }
        }
        let quiet = filler.repeat(50);
        assert_eq!(ac.find(&quiet), None);
        assert_eq!(pre.regions(quiet.as_bytes()).count(), 0, "nothing to find");
    }
}
