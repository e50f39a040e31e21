//! The prefilter index: which rules can possibly match an event.
//!
//! For each rule we derive, from its condition program, a set of
//! `(field, literal)` atoms such that the rule can only match an event in
//! which at least one atom's literal occurs (ASCII case-insensitively) in
//! that field. `and` needs any one side (we keep the most selective),
//! `or` needs one atom of every side, `not` gives nothing. All literals of
//! all rules that read a field go into one Aho-Corasick automaton for that
//! field, so the cost per event grows with the event, not with the number of
//! rules. Candidates are then evaluated in full; rules without atoms
//! (negations only, regexes, comparisons...) are always evaluated.

use super::prefilter::CaselessPrefilter;
use super::value::ItemMatcher;
use super::{CompiledRule, EventView, Program};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};

/// Texts up to this length go straight to the overlapping search.
const SHORT_TEXT: usize = 32;

/// Automata whose patterns add up to at most this many bytes are built as DFAs.
const DFA_MAX_PATTERN_BYTES: usize = 60000;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where an atom's literal must occur.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Field(String),
    /// Keyword searches: anywhere in the event.
    Anywhere,
}

type Atoms = Vec<(Target, String)>;

/// One automaton over every literal of one target.
#[derive(Debug, Clone)]
struct Automaton {
    /// Unique within the index (the scan memo's key).
    id: u32,
    ac: AhoCorasick,
    /// A vectorised first pass, when the patterns allow one.
    prefilter: Option<CaselessPrefilter>,
    /// Pattern id -> rules that need it.
    rules: Vec<Vec<u32>>,
}

/// A field's automaton and the logsource groups with rules that read it.
#[derive(Debug, Clone)]
struct FieldIndex {
    automaton: Automaton,
    groups: GroupSet,
}

/// A set of logsource groups, as a bitset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSet(Vec<u64>);

impl GroupSet {
    pub fn insert(&mut self, g: usize) {
        if self.0.len() <= g / 64 {
            self.0.resize(g / 64 + 1, 0);
        }
        self.0[g / 64] |= 1 << (g % 64);
    }

    pub fn contains(&self, g: usize) -> bool {
        self.0.get(g / 64).is_some_and(|w| w & (1 << (g % 64)) != 0)
    }

    fn intersects(&self, other: &GroupSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    pub fn clear(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The compiled prefilter for all rules.
///
/// Field automata are shared by all logsource groups, so each field of an
/// event is scanned at most once, and only when a group the event belongs
/// to reads it. Keyword automata are per group: they scan the whole event,
/// which only the groups that have keyword rules should pay for.
#[derive(Debug, Clone)]
pub struct RuleIndex {
    /// Automata for top-level (and mapped) field names.
    fields: FastMap<String, FieldIndex>,
    /// Automata for dotted names, looked up by path.
    paths: Vec<(String, FieldIndex)>,
    /// Keyword automata, per group (small, so they stay DFAs).
    anywhere: Vec<(usize, Automaton)>,
    /// Rules without atoms: evaluated for every event of their group.
    always: Vec<u32>,
    /// Rule -> its group.
    group_of: Vec<u32>,
    /// Tells a scratch's scan memo which index filled it (rules are reloaded).
    id: u64,
}

static NEXT_INDEX_ID: AtomicU64 = AtomicU64::new(1);

/// Per-event scratch for the index.
#[derive(Debug, Default)]
pub struct IndexScratch {
    marked: Vec<bool>,
    candidates: Vec<u32>,
    number_text: String,
    /// Every text of the event, for keyword automata (see `join_texts`).
    joined: String,
    memo: ScanMemo,
}

/// Remembered field scans.
///
/// Windows telemetry repeats itself: the same image paths, call traces,
/// hashes and registry keys come back event after event. Walking them
/// through a multi-megabyte automaton again costs a cache miss per byte or
/// so; looking up what the last walk found costs one hash and one compare.
#[derive(Debug, Default)]
struct ScanMemo {
    index: u64,
    hasher: foldhash::fast::FixedState,
    /// By hash of (automaton, text); a colliding entry is simply replaced.
    entries: FastMap<u64, MemoEntry>,
}

#[derive(Debug)]
struct MemoEntry {
    automaton: u32,
    text: Box<str>,
    patterns: Box<[u32]>,
}

/// Texts shorter than this are cheaper to scan than to look up; longer ones
/// (script blocks, messages) rarely repeat.
const MEMO_TEXTS: std::ops::RangeInclusive<usize> = 16..=512;

/// Entries per worker; past it the memo starts over, bounding its memory
/// (about 1.5 MiB at the longest texts).
const MEMO_ENTRIES: usize = 4096;

impl ScanMemo {
    /// Reports the patterns of `text`, from memory or by scanning it.
    fn scan(&mut self, a: &Automaton, text: &str, hit: &mut dyn FnMut(usize)) {
        if !MEMO_TEXTS.contains(&text.len()) {
            return scan_text(a, text, hit);
        }
        let key = self.hasher.hash_one((a.id, text));
        if let Some(e) = self.entries.get(&key) {
            if e.automaton == a.id && *e.text == *text {
                e.patterns.iter().for_each(|&p| hit(p as usize));
                return;
            }
        }
        let mut patterns = Vec::new();
        scan_text(a, text, &mut |p| {
            patterns.push(p as u32);
            hit(p);
        });
        if self.entries.len() >= MEMO_ENTRIES {
            self.entries.clear();
        }
        let entry = MemoEntry {
            automaton: a.id,
            text: text.into(),
            patterns: patterns.into(),
        };
        self.entries.insert(key, entry);
    }
}

impl RuleIndex {
    /// Indexes every rule; `group_of[rule]` is the rule's logsource group.
    pub fn build(rules: &[CompiledRule], group_of: Vec<u32>) -> RuleIndex {
        let mut by_field: FastMap<String, (FastMap<String, Vec<u32>>, GroupSet)> =
            FastMap::default();
        let mut by_group_keywords: FastMap<usize, FastMap<String, Vec<u32>>> = FastMap::default();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let group = group_of.get(i).copied().unwrap_or(0) as usize;
            let Some(atoms) =
                program_atoms(&rule.detection.program, rule).filter(|a| !a.is_empty())
            else {
                always.push(i as u32);
                continue;
            };
            for (target, literal) in atoms {
                let needles = match target {
                    Target::Field(name) => {
                        let (needles, groups) = by_field.entry(name).or_default();
                        groups.insert(group);
                        needles
                    }
                    Target::Anywhere => by_group_keywords.entry(group).or_default(),
                };
                let rules = needles.entry(literal.to_ascii_lowercase()).or_default();
                if rules.last() != Some(&(i as u32)) {
                    rules.push(i as u32);
                }
            }
        }
        let mut fields = FastMap::default();
        let mut paths = Vec::new();
        let mut next_id = 0;
        let mut build_automaton = |needles| {
            next_id += 1;
            build_automaton(next_id, needles)
        };
        for (name, (needles, groups)) in by_field {
            match build_automaton(needles) {
                Some(automaton) if name.contains('.') => {
                    paths.push((name, FieldIndex { automaton, groups }))
                }
                Some(automaton) => {
                    fields.insert(name, FieldIndex { automaton, groups });
                }
                // Only on an automaton build failure: keep those rules correct by
                // evaluating them always (handled below by rebuilding `always`).
                None => {}
            }
        }
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        let mut anywhere: Vec<(usize, Automaton)> = by_group_keywords
            .into_iter()
            .filter_map(|(g, needles)| Some((g, build_automaton(needles)?)))
            .collect();
        anywhere.sort_by_key(|(g, _)| *g);
        RuleIndex {
            fields,
            paths,
            anywhere,
            always,
            group_of,
            id: NEXT_INDEX_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Rules evaluated on every event of their group because they have no atoms.
    pub fn unindexed(&self) -> usize {
        self.always.len()
    }

    /// The candidate rules for an event whose admitted groups are `admitted`, ascending.
    pub fn candidates<'s>(
        &self,
        view: &EventView<'_>,
        aliases: &[(&str, &str)],
        admitted: &GroupSet,
        scratch: &'s mut IndexScratch,
    ) -> &'s [u32] {
        if scratch.marked.len() != self.group_of.len() {
            scratch.marked = vec![false; self.group_of.len()];
        }
        for &r in &scratch.candidates {
            scratch.marked[r as usize] = false;
        }
        scratch.candidates.clear();
        if scratch.memo.index != self.id {
            scratch.memo.entries.clear();
            scratch.memo.index = self.id;
        }
        let IndexScratch {
            marked,
            candidates,
            number_text,
            joined,
            memo,
        } = scratch;
        let group_of = &self.group_of;
        let mut mark = |automaton: &Automaton, value: Scan<'_>| {
            scan(automaton, value, number_text, memo, &mut |pattern| {
                for &r in &automaton.rules[pattern] {
                    let r = r as usize;
                    if !marked[r] && admitted.contains(group_of[r] as usize) {
                        marked[r] = true;
                        candidates.push(r as u32);
                    }
                }
            })
        };
        let event = view.event;
        for (name, value) in &event.fields {
            if let Some(f) = self.fields.get(name.as_str()) {
                if f.groups.intersects(admitted) {
                    mark(&f.automaton, Scan::Value(value));
                }
            }
        }
        // Mapped names (Image -> NewProcessName): scan the actual field under the Sigma name.
        for (sigma, actual) in aliases {
            if let (Some(f), Some(value)) = (self.fields.get(*sigma), event.get(actual)) {
                if f.groups.intersects(admitted) {
                    mark(&f.automaton, Scan::Value(value));
                }
            }
        }
        for (path, f) in &self.paths {
            if f.groups.intersects(admitted) {
                if let Some(value) = view.get(path) {
                    mark(&f.automaton, Scan::Value(value));
                }
            }
        }
        let mut is_joined = false;
        for (g, a) in &self.anywhere {
            if !admitted.contains(*g) {
                continue;
            }
            if !is_joined {
                join_texts(view, joined);
                is_joined = true;
            }
            mark(a, Scan::Text(joined));
        }
        for &r in &self.always {
            if !marked[r as usize] && admitted.contains(group_of[r as usize] as usize) {
                marked[r as usize] = true;
                candidates.push(r);
            }
        }
        candidates.sort_unstable();
        candidates
    }
}

fn build_automaton(id: u32, needles: FastMap<String, Vec<u32>>) -> Option<Automaton> {
    let (patterns, rules): (Vec<String>, Vec<Vec<u32>>) = needles.into_iter().unzip();
    // Overlapping search walks every byte through the automaton; a DFA does
    // that several times faster than an NFA but its size grows with the
    // patterns, so only automata up to a bounded size get one.
    let total: usize = patterns.iter().map(String::len).sum();
    let kind = (total <= DFA_MAX_PATTERN_BYTES).then_some(AhoCorasickKind::DFA);
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(kind)
        .build(&patterns)
        .ok()?;
    let prefilter = CaselessPrefilter::new(&patterns);
    Some(Automaton {
        id,
        ac,
        prefilter,
        rules,
    })
}

/// What to scan: a JSON value, or raw text.
#[derive(Clone, Copy)]
enum Scan<'a> {
    Value(&'a Value),
    Text(&'a str),
}

fn scan(
    a: &Automaton,
    what: Scan<'_>,
    number_text: &mut String,
    memo: &mut ScanMemo,
    hit: &mut dyn FnMut(usize),
) {
    match what {
        Scan::Value(v) => scan_value(a, v, number_text, memo, hit),
        Scan::Text(t) => scan_text(a, t, hit),
    }
}

/// Reports every pattern in `text`. Most texts contain none: a prefilter
/// (ours, else the automaton's own in `is_match`) answers that quickly, and
/// only a text with a possible hit pays for the byte-by-byte overlapping
/// search, and with our prefilter only around the possible hits.
fn scan_text(a: &Automaton, text: &str, hit: &mut dyn FnMut(usize)) {
    if text.len() < a.ac.min_pattern_len() {
        return;
    }
    if text.len() > SHORT_TEXT {
        match &a.prefilter {
            Some(p) => {
                for region in p.regions(text.as_bytes()) {
                    for m in a.ac.find_overlapping_iter(Input::new(text).range(region)) {
                        hit(m.pattern().as_usize());
                    }
                }
                return;
            }
            None if !a.ac.is_match(text) => return,
            None => {}
        }
    }
    for m in a.ac.find_overlapping_iter(text) {
        hit(m.pattern().as_usize());
    }
}

/// Writes every text of the event (the raw line, then every string, number
/// and boolean at any depth) into `out`, separated by NUL.
///
/// Keyword automata scan this one text instead of each value on its own: a
/// Windows event has dozens of short values, and one pass over all of them
/// lets the prefilter skip the lot at once. A pattern found across a
/// separator only makes a rule a candidate; the full evaluation decides.
fn join_texts(view: &EventView<'_>, out: &mut String) {
    fn push(value: &Value, out: &mut String) {
        use std::fmt::Write;
        match value {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Array(items) => items.iter().for_each(|v| push(v, out)),
            Value::Object(map) => map.values().for_each(|v| push(v, out)),
            Value::Null => {}
        }
        out.push('\0');
    }
    out.clear();
    if let Some(raw) = view.event.raw_text() {
        out.push_str(raw);
        out.push('\0');
    }
    view.event.fields.values().for_each(|v| push(v, out));
}

/// Reports every pattern occurring in the value's text (strings, numbers, array elements, nested values).
fn scan_value(
    a: &Automaton,
    value: &Value,
    number_text: &mut String,
    memo: &mut ScanMemo,
    hit: &mut dyn FnMut(usize),
) {
    match value {
        Value::String(s) => memo.scan(a, s, hit),
        Value::Number(n) => {
            use std::fmt::Write;
            number_text.clear();
            let _ = write!(number_text, "{n}");
            scan_text(a, number_text, hit);
        }
        Value::Bool(b) => scan_text(a, if *b { "true" } else { "false" }, hit),
        Value::Array(items) => items
            .iter()
            .for_each(|v| scan_value(a, v, number_text, memo, hit)),
        Value::Object(map) => map
            .values()
            .for_each(|v| scan_value(a, v, number_text, memo, hit)),
        Value::Null => {}
    }
}

/// How good a set of atoms is as a key: field atoms beat keyword atoms
/// (those scan the whole event), then a longer shortest literal is better,
/// then fewer atoms. Event ids and other short numbers are poor keys.
fn selectivity(atoms: &Atoms) -> (bool, usize, std::cmp::Reverse<usize>) {
    let shortest = atoms
        .iter()
        .map(|(target, lit)| match target {
            Target::Field(f) if f == "EventID" => 1,
            _ => lit.len(),
        })
        .min()
        .unwrap_or(0);
    let fields_only = atoms.iter().all(|(t, _)| matches!(t, Target::Field(_)));
    (
        fields_only,
        shortest.min(16),
        std::cmp::Reverse(atoms.len()),
    )
}

fn item_atoms(item: &ItemMatcher) -> Option<Atoms> {
    let target = match item.field() {
        Some(f) => Target::Field(f.to_string()),
        None => Target::Anywhere,
    };
    let literals = item.index_atoms()?;
    Some(literals.into_iter().map(|l| (target.clone(), l)).collect())
}

fn best(options: impl Iterator<Item = Atoms>) -> Option<Atoms> {
    options.max_by_key(selectivity)
}

fn program_atoms(p: &Program, rule: &CompiledRule) -> Option<Atoms> {
    match p {
        Program::Search(i) => {
            let search = rule.detection.searches.get(*i)?;
            // An `or` of groups: every group must contribute atoms.
            let mut all = Vec::new();
            for group in &search.any_of {
                // An `and` of items: any one item's atoms are necessary.
                all.extend(best(group.iter().filter_map(item_atoms))?);
            }
            Some(all)
        }
        Program::Not(_) => None,
        Program::And(terms) => best(terms.iter().filter_map(|t| program_atoms(t, rule))),
        Program::Or(terms) => {
            if terms.is_empty() {
                return None;
            }
            let mut all = Vec::new();
            for t in terms {
                all.extend(program_atoms(t, rule)?);
            }
            Some(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automaton(id: u32, needles: &[&str]) -> Automaton {
        let needles = needles
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), vec![i as u32]))
            .collect();
        build_automaton(id, needles).expect("automaton")
    }

    /// The needles found, by their position in the list given to `automaton`.
    fn patterns(memo: &mut ScanMemo, a: &Automaton, text: &str) -> Vec<u32> {
        let mut found = Vec::new();
        memo.scan(a, text, &mut |p| found.push(a.rules[p][0]));
        found.sort();
        found
    }

    #[test]
    fn remembered_scans_report_what_a_fresh_scan_reports_per_automaton() {
        let images = automaton(1, &["\\whoami.exe", "system32", "who"]);
        let hashes = automaton(2, &["md5="]);
        let text = "C:\\Windows\\System32\\WHOAMI.EXE";
        let mut memo = ScanMemo::default();
        let first = patterns(&mut memo, &images, text);
        assert_eq!(first, vec![0, 1, 2]);
        assert_eq!(memo.entries.len(), 1);
        assert_eq!(patterns(&mut memo, &images, text), first, "from memory");
        assert!(
            patterns(&mut memo, &hashes, text).is_empty(),
            "another automaton scans afresh"
        );
        assert_eq!(memo.entries.len(), 2);
        let short = "who";
        assert_eq!(patterns(&mut memo, &images, short).len(), 1);
        assert_eq!(memo.entries.len(), 2, "short texts are not remembered");
    }
}
