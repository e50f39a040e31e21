//! Large literal sets, found through one hashed window per literal.
//!
//! Indicator lists make the largest literal sets: thousands of file hashes,
//! domains and command-line fragments under one field. No vectorised
//! prefilter takes that many literals (Teddy stops at a few dozen), so an
//! aho-corasick search walks every byte of every value through an automaton
//! of megabytes, a cache miss or more per byte: on Mordor, the `Hashes`
//! values (5,700 literals) cost about 50 ns a byte.
//!
//! Here each literal is represented by one of its windows, a run of `width`
//! bytes: the one the fewest other literals share, so that a prefix common
//! to many (`sha256=`, `c:\windows\`) is not what the text is checked for.
//! A text is searched by hashing each of its windows into a bitmap small
//! enough for the cache. Almost every window misses it; a window that hits
//! is looked up exactly, and each literal with that window is compared where
//! it would have to start. Every occurrence of a literal contains its window
//! at that offset, so none is missed.

use std::collections::HashMap;
use std::ops::Range;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Fibonacci hashing: an odd constant near 2^64 / golden ratio spreads the
/// windows over the bitmap's index bits (the high bits of the product).
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// Bitmap bits per distinct window: a text window that is no literal's
/// hits the bitmap about once in this many (the exact lookup it then pays
/// costs about as much as hashing this many windows).
const BITS_PER_WINDOW: usize = 64;

/// Bounds of the bitmap: from one cache line's worth of words to 256 KiB.
const MIN_BITMAP_BITS: usize = 1 << 12;
const MAX_BITMAP_BITS: usize = 1 << 21;

/// Literals of at least `width` bytes (4 or 8), each found by one window.
#[derive(Debug, Clone)]
pub(super) struct WindowSet {
    width: usize,
    /// One bit per window hash, `1 << (64 - shift)` bits.
    bitmap: Box<[u64]>,
    shift: u32,
    /// A window -> the range of `entries` that have it.
    by_window: FastMap<u64, Range<u32>>,
    /// (literal, its window's offset in it), grouped by window.
    entries: Box<[(u32, u32)]>,
    /// The literals, ASCII lowercase, with their hit ids.
    literals: Box<[(Box<[u8]>, u32)]>,
}

impl WindowSet {
    /// The set of `literals` (text and hit id), each at least `width` bytes
    /// long; `width` is 4 or 8.
    pub(super) fn build(literals: &[(&[u8], u32)], width: usize) -> WindowSet {
        let literals: Box<[(Box<[u8]>, u32)]> = literals
            .iter()
            .map(|(l, id)| (l.to_ascii_lowercase().into_boxed_slice(), *id))
            .collect();
        // How many literals have each window.
        let mut sharing: FastMap<u64, u32> = FastMap::default();
        let mut seen = Vec::new();
        for (literal, _) in literals.iter() {
            seen.clear();
            seen.extend(literal.windows(width).map(|w| key(w, width)));
            seen.sort_unstable();
            seen.dedup();
            for k in &seen {
                *sharing.entry(*k).or_default() += 1;
            }
        }
        let mut chosen: Vec<(u64, u32, u32)> = Vec::with_capacity(literals.len());
        for (i, (literal, _)) in literals.iter().enumerate() {
            let best = literal
                .windows(width)
                .enumerate()
                .map(|(offset, w)| (key(w, width), offset))
                .min_by_key(|(k, _)| sharing.get(k).copied().unwrap_or(0));
            if let Some((k, offset)) = best {
                chosen.push((k, i as u32, offset as u32));
            }
        }
        chosen.sort_unstable();
        let mut by_window: FastMap<u64, Range<u32>> = FastMap::default();
        for (at, (k, _, _)) in chosen.iter().enumerate() {
            let at = at as u32;
            by_window
                .entry(*k)
                .and_modify(|r| r.end = at + 1)
                .or_insert(at..at + 1);
        }
        let bits = by_window
            .len()
            .saturating_mul(BITS_PER_WINDOW)
            .next_power_of_two()
            .clamp(MIN_BITMAP_BITS, MAX_BITMAP_BITS);
        let shift = 64 - bits.trailing_zeros();
        let mut bitmap = vec![0u64; bits / 64].into_boxed_slice();
        for k in by_window.keys() {
            let h = slot(*k, shift);
            if let Some(word) = bitmap.get_mut(h / 64) {
                *word |= 1 << (h % 64);
            }
        }
        WindowSet {
            width,
            bitmap,
            shift,
            by_window,
            entries: chosen.into_iter().map(|(_, l, o)| (l, o)).collect(),
            literals,
        }
    }

    /// Reports every literal that occurs in `folded`, a text in ASCII lower
    /// case (a literal may be reported more than once).
    pub(super) fn scan(&self, folded: &[u8], hit: &mut dyn FnMut(usize)) {
        match self.width {
            8 => self.scan_width::<8>(folded, hit),
            _ => self.scan_width::<4>(folded, hit),
        }
    }

    fn scan_width<const W: usize>(&self, text: &[u8], hit: &mut dyn FnMut(usize)) {
        for (p, window) in text.windows(W).enumerate() {
            let k = key(window, W);
            let h = slot(k, self.shift);
            let set = self
                .bitmap
                .get(h / 64)
                .is_some_and(|w| w & (1 << (h % 64)) != 0);
            if set {
                self.confirm(text, p, k, hit);
            }
        }
    }

    /// Reports the literals whose window `k` is at `p` and that occur whole there.
    #[cold]
    fn confirm(&self, text: &[u8], p: usize, k: u64, hit: &mut dyn FnMut(usize)) {
        let Some(range) = self.by_window.get(&k) else {
            return;
        };
        let entries = self
            .entries
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default();
        for &(literal, offset) in entries {
            let Some((literal, id)) = self.literals.get(literal as usize) else {
                continue;
            };
            let Some(start) = p.checked_sub(offset as usize) else {
                continue;
            };
            if text.get(start..start.saturating_add(literal.len())) == Some(&literal[..]) {
                hit(*id as usize);
            }
        }
    }
}

/// A window's bytes as a number (little-endian, the rest zero).
#[inline(always)]
fn key(window: &[u8], width: usize) -> u64 {
    let mut bytes = [0u8; 8];
    if let (Some(to), Some(from)) = (bytes.get_mut(..width), window.get(..width)) {
        to.copy_from_slice(from);
    }
    u64::from_le_bytes(bytes)
}

#[inline(always)]
fn slot(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(MULTIPLIER) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(set: &WindowSet, text: &str) -> Vec<usize> {
        let mut found = Vec::new();
        set.scan(text.to_ascii_lowercase().as_bytes(), &mut |h| found.push(h));
        found.sort();
        found.dedup();
        found
    }

    fn set_of(literals: &[&str], width: usize) -> WindowSet {
        let with_ids: Vec<(&[u8], u32)> = literals
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_bytes(), i as u32 + 100))
            .collect();
        WindowSet::build(&with_ids, width)
    }

    #[test]
    fn a_shared_prefix_is_not_the_window_a_literal_is_found_by() {
        let hashes = [
            "sha256=2fb6c04c4f95fb8d",
            "sha256=b3d21940a10fdef5",
            "sha256=2fb6c04c00000000",
            "md5=0123456789abcdef",
        ];
        let set = set_of(&hashes, 8);
        // Each literal's window is one no other literal has.
        for (literal, offset) in set.entries.iter() {
            let (text, _) = &set.literals[*literal as usize];
            let window = key(&text[*offset as usize..], 8);
            assert_eq!(set.by_window[&window].len(), 1);
        }
        assert_eq!(
            hits(&set, "SHA1=AA,SHA256=2FB6C04C4F95FB8D,MD5=0123456789ABCDEF"),
            vec![100, 103]
        );
        assert_eq!(hits(&set, "sha256=2fb6c04c"), Vec::<usize>::new());
        assert_eq!(hits(&set, "sha256=2fb6c04c0000000"), Vec::<usize>::new());
    }

    #[test]
    fn literals_at_either_end_of_the_text_are_found() {
        let set = set_of(&["abcd", "wxyz", "bcdefgh"], 4);
        assert_eq!(hits(&set, "abcd"), vec![100]);
        assert_eq!(hits(&set, "..wxyz"), vec![101]);
        assert_eq!(hits(&set, "abcdefgh wxyz"), vec![100, 101, 102]);
        assert_eq!(hits(&set, "abc"), Vec::<usize>::new());
        assert_eq!(hits(&set, ""), Vec::<usize>::new());
    }

    proptest::proptest! {
        /// Every literal the text holds, in any ASCII case, and only those;
        /// over a small alphabet, so windows are shared and literals overlap.
        #[test]
        fn window_sets_find_exactly_the_literals_a_text_holds(
            literals in proptest::collection::vec("[abAB.\\\\é]{8,14}", 1..40),
            text in "[abAB.\\\\é]{0,60}",
            narrow in proptest::bool::ANY,
        ) {
            let mut literals: Vec<String> =
                literals.iter().map(|l| l.to_ascii_lowercase()).collect();
            literals.sort();
            literals.dedup();
            let as_str: Vec<&str> = literals.iter().map(String::as_str).collect();
            let set = set_of(&as_str, if narrow { 4 } else { 8 });
            let lower = text.to_ascii_lowercase();
            let expected: Vec<usize> = (0..literals.len())
                .filter(|&i| lower.contains(literals[i].as_str()))
                .map(|i| i + 100)
                .collect();
            proptest::prop_assert_eq!(hits(&set, &text), expected);
        }
    }
}
