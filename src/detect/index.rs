//! The prefilter index: which rules can possibly match an event.
//!
//! For each rule we derive, from its condition program, a requirement that
//! every matching event meets: a small boolean program over literal hits.
//! An atom is a `(field, anchor, literal)`, hit when the literal occurs (ASCII
//! case-insensitively) in that field where the anchor says (anywhere, at the
//! start, at the end, or as the whole value); a set of atoms is hit when any of them
//! is (the values of one search item); a conjunct when all its sets are
//! (up to three items that a selection or an `and` requires together); and
//! the rule is a candidate when any of its conjuncts is (the branches of
//! `or`s and selection lists). `not` gives nothing to require. All literals of
//! all rules that read a field go into one literal set for that field
//! (`literals.rs`), so the cost per event grows with the event, not with the number of
//! rules. Candidates are then evaluated in full; rules without a requirement
//! (negations only, regexes, comparisons...) are always evaluated.

use super::literals::{Literals, Speed};
use super::pattern::Anchor;
use super::value::ItemMatcher;
use super::{CompiledRule, EventView, Program};
use crate::event::{FieldText, JsonString};
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

/// Atoms of which any one hit satisfies the set (an `or`).
type Atoms = Vec<(Target, Anchor, String)>;

/// Atom sets that must all be hit (an `and`).
type Conjunct = Vec<Atoms>;

/// Conjuncts of which any one satisfies the requirement (an `or`).
type Requirement = Vec<Conjunct>;

/// Sets kept per conjunct: the most selective ones (each set is a bit).
const MAX_SETS: usize = 3;

/// A field set whose shortest literal is shorter than this (`GET`, an
/// event id) is weak: a keyword set beside it is kept (see `trim`).
const WEAK_FIELD_LITERAL: usize = 4;

/// An `and` of requirements multiplies their conjuncts; past this many the
/// most selective side alone is kept.
const MAX_CONJUNCTS: usize = 16;

/// Longest literal the index searches for. A longer one is cut to a part
/// of this length it implies (an index hit only makes its rule a
/// candidate; the rule's own matcher decides). Command-line literals of
/// fifty bytes and more made one field's automaton hundreds of kilobytes of
/// trie, about a third of a second to build on the first event that reads
/// the field; cut, the trie is a fraction of that and still selective.
const INDEXED_LITERAL_BYTES: usize = 24;

/// The part of `literal` (anchored as `anchor`) the index searches for:
/// itself, or for a long one its beginning (for a prefix or a whole value)
/// or its end (for a suffix, or a literal that may occur anywhere: the end
/// of a path or a command line tells more than its start).
fn indexed_part(anchor: Anchor, literal: &str) -> (Anchor, String) {
    if literal.len() <= INDEXED_LITERAL_BYTES {
        return (anchor, literal.to_string());
    }
    let head = (0..=INDEXED_LITERAL_BYTES)
        .rev()
        .find(|&i| literal.is_char_boundary(i))
        .unwrap_or(0);
    let tail = (literal.len() - INDEXED_LITERAL_BYTES..literal.len())
        .find(|&i| literal.is_char_boundary(i))
        .unwrap_or(literal.len());
    match anchor {
        Anchor::Start | Anchor::Whole => (Anchor::Start, literal[..head].to_string()),
        Anchor::End | Anchor::Anywhere => (anchor, literal[tail..].to_string()),
    }
}

/// A hit's meaning: set `bit` of conjunct `conjunct` is satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    conjunct: u32,
    bit: u8,
}

/// Every literal of one target, each searched only where it must occur
/// (see `literals`), and what a hit of each means.
#[derive(Debug, Clone)]
struct LiteralSet {
    /// Unique within the index (the scan memo's key).
    id: u32,
    literals: Literals,
    /// Hit id -> the conjunct sets it satisfies.
    slots: Vec<Vec<Slot>>,
}

/// A field's literals and the logsource groups with rules that read it.
#[derive(Debug, Clone)]
struct FieldIndex {
    literals: LiteralSet,
    groups: GroupSet,
}

/// A set of logsource groups, as a bitset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupSet(Vec<u64>);

impl GroupSet {
    pub(crate) fn insert(&mut self, g: usize) {
        if self.0.len() <= g / 64 {
            self.0.resize(g / 64 + 1, 0);
        }
        self.0[g / 64] |= 1 << (g % 64);
    }

    pub(crate) fn contains(&self, g: usize) -> bool {
        self.0.get(g / 64).is_some_and(|w| w & (1 << (g % 64)) != 0)
    }

    fn intersects(&self, other: &GroupSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    pub(crate) fn clear(&mut self) {
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
pub(crate) struct RuleIndex {
    /// Automata for top-level (and mapped) field names.
    fields: FastMap<String, FieldIndex>,
    /// Automata for dotted names, looked up by path.
    paths: Vec<(String, FieldIndex)>,
    /// Keyword literals, per group (small, so their automata stay DFAs).
    anywhere: Vec<(usize, LiteralSet)>,
    /// Rules without atoms: evaluated for every event of their group.
    always: Vec<u32>,
    /// Rule -> its group.
    group_of: Vec<u32>,
    /// Conjunct -> its rule, and the bits of all its sets.
    conjuncts: Vec<(u32, u8)>,
    /// See `id()`.
    id: u64,
}

static NEXT_INDEX_ID: AtomicU64 = AtomicU64::new(1);

/// Per-event scratch for the index.
#[derive(Debug, Default)]
pub(crate) struct IndexScratch {
    marked: Vec<bool>,
    candidates: Vec<u32>,
    /// Per conjunct, the bits of its sets hit so far, and which are non-zero.
    progress: Vec<u8>,
    touched: Vec<u32>,
    /// A number's text, or a JSON string's decoded text, being scanned.
    decoded_text: String,
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
/// A JSON string with escapes (any Windows path) is remembered by its
/// escaped text, so a repeat is not even decoded.
#[derive(Debug, Default)]
struct ScanMemo {
    index: u64,
    hasher: foldhash::fast::FixedState,
    /// By hash of (literal set, escaped or not, text); a colliding entry is
    /// simply replaced.
    entries: FastMap<u64, MemoEntry>,
    /// What the entries hold, in bytes (see [`MEMO_BYTES`]).
    bytes: usize,
}

#[derive(Debug)]
struct MemoEntry {
    set: u32,
    /// Whether `text` is a JSON string's escaped text, not the text itself.
    escaped: bool,
    text: Box<str>,
    patterns: Box<[u32]>,
}

impl MemoEntry {
    /// About what it holds: its texts and its share of the table.
    fn bytes(&self) -> usize {
        self.text.len() + 4 * self.patterns.len() + 64
    }
}

/// Texts shorter than this are cheaper to scan than to look up; longer ones
/// (script blocks, messages) rarely repeat. Call traces (300 bytes to 2 KB)
/// repeat a great deal and cost a cache miss per byte or two to scan.
const MEMO_TEXTS: std::ops::RangeInclusive<usize> = 16..=4096;

/// Bytes held per worker; past it the memo starts over, bounding its memory.
const MEMO_BYTES: usize = 3 << 20;

impl ScanMemo {
    /// Reports the patterns of `text`, from memory or by scanning it.
    fn scan(&mut self, a: &LiteralSet, text: &str, hit: &mut dyn FnMut(usize)) {
        self.recall(a, text, false, hit, |hit| {
            a.literals.for_each_hit(text, hit)
        });
    }

    /// [`ScanMemo::scan`] of a JSON string that has escapes: remembered by
    /// its escaped text, decoded into `decoded` only to be scanned.
    fn scan_escaped(
        &mut self,
        a: &LiteralSet,
        s: JsonString<'_>,
        decoded: &mut String,
        hit: &mut dyn FnMut(usize),
    ) {
        self.recall(a, s.escaped(), true, hit, |hit| {
            decoded.clear();
            s.push_to(decoded);
            a.literals.for_each_hit(decoded, hit)
        });
    }

    /// Reports the patterns remembered for `text` (escaped or not), else
    /// those `search` reports, and remembers them.
    fn recall(
        &mut self,
        a: &LiteralSet,
        text: &str,
        escaped: bool,
        hit: &mut dyn FnMut(usize),
        search: impl FnOnce(&mut dyn FnMut(usize)),
    ) {
        if !MEMO_TEXTS.contains(&text.len()) {
            return search(hit);
        }
        let key = self.hasher.hash_one((a.id, escaped, text));
        if let Some(e) = self.entries.get(&key) {
            if e.set == a.id && e.escaped == escaped && *e.text == *text {
                e.patterns.iter().for_each(|&p| hit(p as usize));
                return;
            }
        }
        let mut patterns = Vec::new();
        search(&mut |p| {
            patterns.push(p as u32);
            hit(p);
        });
        let entry = MemoEntry {
            set: a.id,
            escaped,
            text: text.into(),
            patterns: patterns.into(),
        };
        if self.bytes.saturating_add(entry.bytes()) > MEMO_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes = self.bytes.saturating_add(entry.bytes());
        if let Some(replaced) = self.entries.insert(key, entry) {
            self.bytes = self.bytes.saturating_sub(replaced.bytes());
        }
    }
}

impl RuleIndex {
    /// Indexes every rule; `group_of[rule]` is the rule's logsource group.
    pub(crate) fn build(rules: &[CompiledRule], group_of: Vec<u32>) -> RuleIndex {
        type Needles = FastMap<(Anchor, String), Vec<Slot>>;
        let mut by_field: FastMap<String, (Needles, GroupSet)> = FastMap::default();
        let mut by_group_keywords: FastMap<usize, Needles> = FastMap::default();
        let mut always = Vec::new();
        let mut conjuncts = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let group = group_of.get(i).copied().unwrap_or(0) as usize;
            let Some(requirement) = program_requirement(&rule.detection.program, rule) else {
                always.push(i as u32);
                continue;
            };
            for conjunct in requirement {
                let id = conjuncts.len() as u32;
                conjuncts.push((i as u32, ((1u16 << conjunct.len()) - 1) as u8));
                for (j, set) in conjunct.into_iter().enumerate() {
                    let slot = Slot {
                        conjunct: id,
                        bit: 1 << j,
                    };
                    for (target, anchor, literal) in set {
                        let (needles, anchor) = match target {
                            Target::Field(name) => {
                                let (needles, groups) = by_field.entry(name).or_default();
                                groups.insert(group);
                                (needles, anchor)
                            }
                            // Keywords are searched in the joined text of the event.
                            Target::Anywhere => (
                                by_group_keywords.entry(group).or_default(),
                                Anchor::Anywhere,
                            ),
                        };
                        let key = indexed_part(anchor, &literal.to_ascii_lowercase());
                        let slots = needles.entry(key).or_default();
                        if slots.last() != Some(&slot) {
                            slots.push(slot);
                        }
                    }
                }
            }
        }
        let mut fields = FastMap::default();
        let mut paths = Vec::new();
        let mut next_id = 0;
        let mut literal_set = |needles: Needles| {
            next_id += 1;
            LiteralSet::build(next_id, needles)
        };
        for (name, (needles, groups)) in by_field {
            let literals = literal_set(needles);
            match name.contains('.') {
                true => paths.push((name, FieldIndex { literals, groups })),
                false => {
                    fields.insert(name, FieldIndex { literals, groups });
                }
            }
        }
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        let mut anywhere: Vec<(usize, LiteralSet)> = by_group_keywords
            .into_iter()
            .map(|(g, needles)| (g, literal_set(needles)))
            .collect();
        anywhere.sort_by_key(|(g, _)| *g);
        always.sort_unstable();
        always.dedup();
        RuleIndex {
            fields,
            paths,
            anywhere,
            always,
            group_of,
            conjuncts,
            id: NEXT_INDEX_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Unique per build: scratch caches filled for another index (rules were
    /// reloaded) start over.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Rules evaluated on every event of their group because they have no atoms.
    pub(crate) fn unindexed(&self) -> usize {
        self.always.len()
    }

    /// The candidate rules for an event whose admitted groups are `admitted`, ascending.
    pub(crate) fn candidates<'s>(
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
        if scratch.progress.len() != self.conjuncts.len() {
            scratch.progress = vec![0; self.conjuncts.len()];
            scratch.touched.clear();
        }
        for &c in &scratch.touched {
            scratch.progress[c as usize] = 0;
        }
        scratch.touched.clear();
        if scratch.memo.index != self.id {
            scratch.memo.entries.clear();
            scratch.memo.bytes = 0;
            scratch.memo.index = self.id;
        }
        let IndexScratch {
            marked,
            candidates,
            progress,
            touched,
            decoded_text,
            joined,
            memo,
        } = scratch;
        let (group_of, conjuncts) = (&self.group_of, &self.conjuncts);
        let mut mark = |set: &LiteralSet, value: Scan<'_>| {
            scan(set, value, decoded_text, memo, &mut |pattern| {
                for slot in &set.slots[pattern] {
                    let c = slot.conjunct as usize;
                    let (r, full) = conjuncts[c];
                    let r = r as usize;
                    if marked[r] || !admitted.contains(group_of[r] as usize) {
                        continue;
                    }
                    if progress[c] == 0 {
                        touched.push(c as u32);
                    }
                    progress[c] |= slot.bit;
                    if progress[c] == full {
                        marked[r] = true;
                        candidates.push(r as u32);
                    }
                }
            })
        };
        let event = view.event;
        // Only the values of fields the index reads are looked at (and,
        // for a lazily read JSON object, decoded).
        event.fields.for_each_picked(
            |name| {
                self.fields
                    .get(name)
                    .filter(|f| f.groups.intersects(admitted))
            },
            |f, text| match text {
                FieldText::Json(s) => mark(&f.literals, Scan::Json(s)),
                FieldText::Value(v) => mark(&f.literals, Scan::Value(v)),
            },
        );
        // Mapped names (Image -> NewProcessName): scan the actual field under the Sigma name.
        for (sigma, actual) in aliases {
            if let (Some(f), Some(value)) = (self.fields.get(*sigma), event.get(actual)) {
                if f.groups.intersects(admitted) {
                    mark(&f.literals, Scan::Value(value));
                }
            }
        }
        for (path, f) in &self.paths {
            if f.groups.intersects(admitted) {
                if let Some(value) = view.get(path) {
                    mark(&f.literals, Scan::Value(value));
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

impl LiteralSet {
    fn build(id: u32, needles: FastMap<(Anchor, String), Vec<Slot>>) -> LiteralSet {
        let (keys, slots): (Vec<_>, Vec<_>) = needles.into_iter().unzip();
        LiteralSet {
            id,
            literals: Literals::new(&keys, Speed::Scan),
            slots,
        }
    }
}

/// What to scan: a JSON value, a string in its JSON form, or raw text.
enum Scan<'a> {
    Value(&'a Value),
    Json(JsonString<'a>),
    Text(&'a str),
}

fn scan(
    a: &LiteralSet,
    what: Scan<'_>,
    decoded_text: &mut String,
    memo: &mut ScanMemo,
    hit: &mut dyn FnMut(usize),
) {
    match what {
        Scan::Value(v) => scan_value(a, v, decoded_text, memo, hit),
        Scan::Json(s) => match s.plain() {
            Some(text) => memo.scan(a, text, hit),
            None => memo.scan_escaped(a, s, decoded_text, hit),
        },
        Scan::Text(t) => a.literals.for_each_hit(t, hit),
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
    view.event.fields.for_each_text(|text| match text {
        FieldText::Json(s) => {
            s.push_to(out);
            out.push('\0');
        }
        FieldText::Value(v) => push(v, out),
    });
}

/// Reports every pattern occurring in the value's text (strings, numbers, array elements, nested values).
fn scan_value(
    a: &LiteralSet,
    value: &Value,
    decoded_text: &mut String,
    memo: &mut ScanMemo,
    hit: &mut dyn FnMut(usize),
) {
    match value {
        Value::String(s) => memo.scan(a, s, hit),
        Value::Number(n) => {
            use std::fmt::Write;
            decoded_text.clear();
            let _ = write!(decoded_text, "{n}");
            a.literals.for_each_hit(decoded_text, hit);
        }
        Value::Bool(b) => a
            .literals
            .for_each_hit(if *b { "true" } else { "false" }, hit),
        Value::Array(items) => items
            .iter()
            .for_each(|v| scan_value(a, v, decoded_text, memo, hit)),
        Value::Object(map) => map
            .values()
            .for_each(|v| scan_value(a, v, decoded_text, memo, hit)),
        Value::Null => {}
    }
}

/// How good a set of atoms is as a key: field atoms beat keyword atoms
/// (those scan the whole event), then a longer shortest literal is better,
/// then fewer atoms. Event ids and other short numbers are poor keys.
fn selectivity(atoms: &Atoms) -> (bool, usize, std::cmp::Reverse<usize>) {
    let shortest = atoms
        .iter()
        .map(|(target, _, lit)| match target {
            Target::Field(f) if f == "EventID" => 1,
            _ => lit.len(),
        })
        .min()
        .unwrap_or(0);
    let fields_only = atoms.iter().all(|(t, _, _)| matches!(t, Target::Field(_)));
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
    Some(
        literals
            .into_iter()
            .map(|(anchor, l)| (target.clone(), anchor, l))
            .collect(),
    )
}

/// How good a conjunct is: as good as its best set.
fn conjunct_selectivity(c: &Conjunct) -> (bool, usize, std::cmp::Reverse<usize>) {
    c.iter()
        .map(selectivity)
        .max()
        .unwrap_or((false, 0, std::cmp::Reverse(usize::MAX)))
}

/// How good a requirement is: as good as its weakest conjunct.
fn requirement_selectivity(r: &Requirement) -> (bool, usize, std::cmp::Reverse<usize>) {
    r.iter()
        .map(conjunct_selectivity)
        .min()
        .unwrap_or((false, 0, std::cmp::Reverse(usize::MAX)))
}

/// Keeps a conjunct cheap to track: its most selective sets, at most
/// `MAX_SETS`; no set of very short literals (event ids) beside longer
/// ones, and no keyword set beside field sets (keyword sets scan the whole
/// event) unless those are weak: `cs-method: GET` beside SQL injection
/// keywords would otherwise make every GET request a candidate.
/// Dropping sets only weakens the requirement, which stays necessary.
fn trim(mut c: Conjunct) -> Conjunct {
    c.sort_by_key(|set| std::cmp::Reverse(selectivity(set)));
    c.dedup();
    let best = c.first().map(selectivity);
    if let Some((fields_only, shortest, _)) = best {
        let weak_fields = fields_only && shortest < WEAK_FIELD_LITERAL;
        c.retain(|set| {
            let (f, s, _) = selectivity(set);
            let keyword_kept = weak_fields && s >= WEAK_FIELD_LITERAL;
            (f || !fields_only || keyword_kept) && (s >= 3 || shortest < 3)
        });
    }
    c.truncate(MAX_SETS);
    c
}

fn program_requirement(p: &Program, rule: &CompiledRule) -> Option<Requirement> {
    match p {
        Program::Search(i) => {
            let search = rule.detection.searches.get(*i)?;
            // An `or` of groups, each an `and` of items: every group must
            // require something, and requires every item that has atoms.
            let mut all = Vec::new();
            for group in &search.any_of {
                let sets: Conjunct = group.iter().filter_map(item_atoms).collect();
                if sets.is_empty() {
                    return None;
                }
                all.push(trim(sets));
            }
            (!all.is_empty()).then_some(all)
        }
        Program::Not(_) => None,
        Program::And(terms) => {
            let mut sides: Vec<Requirement> = terms
                .iter()
                .filter_map(|t| program_requirement(t, rule))
                .collect();
            sides.sort_by_key(|r| std::cmp::Reverse(requirement_selectivity(r)));
            let mut sides = sides.into_iter();
            let mut acc = sides.next()?;
            for side in sides {
                if acc.len() * side.len() > MAX_CONJUNCTS {
                    continue;
                }
                acc = acc
                    .iter()
                    .flat_map(|a| {
                        side.iter()
                            .map(move |b| trim([a.clone(), b.clone()].concat()))
                    })
                    .collect();
            }
            Some(acc)
        }
        Program::Or(terms) => {
            if terms.is_empty() {
                return None;
            }
            let mut all = Vec::new();
            for t in terms {
                all.extend(program_requirement(t, rule)?);
            }
            Some(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Anchor::{Anywhere, End};

    proptest::proptest! {
        /// The index may search a part of a literal, never something the
        /// literal does not imply: wherever the literal holds, its part does.
        #[test]
        fn an_indexed_part_holds_wherever_its_literal_does(
            anchor in 0..4usize,
            literal in "[a-cé\\\\ ]{1,40}",
            before in "[a-c ]{0,8}",
            after in "[a-c ]{0,8}",
        ) {
            let anchor = [Anchor::Anywhere, Anchor::Start, Anchor::End, Anchor::Whole][anchor];
            let (part_anchor, part) = indexed_part(anchor, &literal);
            proptest::prop_assert!(part.len() <= INDEXED_LITERAL_BYTES);
            let text = match anchor {
                Anchor::Anywhere => format!("{before}{literal}{after}"),
                Anchor::Start => format!("{literal}{after}"),
                Anchor::End => format!("{before}{literal}"),
                Anchor::Whole => literal.clone(),
            };
            proptest::prop_assert!(anchor.holds(&text, &literal));
            proptest::prop_assert!(part_anchor.holds(&text, &part), "{part:?} ({part_anchor:?}) in {text:?}");
        }
    }

    /// A literal set whose hits are reported as the needle's position in `needles`.
    fn literal_set(id: u32, needles: &[(Anchor, &str)]) -> LiteralSet {
        let needles = needles
            .iter()
            .enumerate()
            .map(|(i, (anchor, n))| {
                let slot = Slot {
                    conjunct: i as u32,
                    bit: 1,
                };
                ((*anchor, n.to_string()), vec![slot])
            })
            .collect();
        LiteralSet::build(id, needles)
    }

    /// The needles found, by their position in the list given to `literal_set`.
    fn patterns(memo: &mut ScanMemo, a: &LiteralSet, text: &str) -> Vec<u32> {
        let mut found = Vec::new();
        memo.scan(a, text, &mut |p| found.push(a.slots[p][0].conjunct));
        found.sort();
        found.dedup();
        found
    }

    #[test]
    fn remembered_scans_report_what_a_fresh_scan_reports_per_literal_set() {
        let images = literal_set(
            1,
            &[
                (End, "\\whoami.exe"),
                (Anywhere, "system32"),
                (Anywhere, "who"),
            ],
        );
        let hashes = literal_set(2, &[(Anywhere, "md5=")]);
        let text = "C:\\Windows\\System32\\WHOAMI.EXE";
        let mut memo = ScanMemo::default();
        let first = patterns(&mut memo, &images, text);
        assert_eq!(first, vec![0, 1, 2]);
        assert_eq!(memo.entries.len(), 1);
        assert_eq!(patterns(&mut memo, &images, text), first, "from memory");
        assert!(
            patterns(&mut memo, &hashes, text).is_empty(),
            "another literal set scans afresh"
        );
        assert_eq!(memo.entries.len(), 2);
        let short = "who";
        assert_eq!(patterns(&mut memo, &images, short).len(), 1);
        assert_eq!(memo.entries.len(), 2, "short texts are not remembered");
    }

    #[test]
    fn an_escaped_json_string_is_remembered_apart_from_the_same_text_unescaped() {
        let paths = literal_set(1, &[(Anywhere, "\\temp\\"), (Anywhere, "\\\\temp")]);
        // `c:\\users\\temp\\a.exe` between the quotes; `c:\users\temp\a.exe` decoded.
        let json = "c:\\\\users\\\\temp\\\\a.exe";
        let mut memo = ScanMemo::default();
        let mut decoded = String::new();
        let mut found = Vec::new();
        for _ in 0..2 {
            found.clear();
            let escaped = crate::event::JsonString::new_for_tests(json);
            memo.scan_escaped(&paths, escaped, &mut decoded, &mut |p| {
                found.push(paths.slots[p][0].conjunct)
            });
            found.sort();
            assert_eq!(found, vec![0], "one backslash before temp, decoded");
        }
        assert_eq!(memo.entries.len(), 1);
        // The escaped text read as a text holds both: not the entry's answer.
        assert_eq!(patterns(&mut memo, &paths, json), vec![0, 1]);
        assert_eq!(memo.entries.len(), 2);
    }

    #[test]
    fn the_memo_starts_over_when_it_holds_its_bytes() {
        let set = literal_set(1, &[(Anywhere, "x")]);
        let mut memo = ScanMemo::default();
        let text = "a".repeat(*MEMO_TEXTS.end());
        let mut most = 0;
        for i in 0..2 * MEMO_BYTES / text.len() {
            let text = format!("{i:08}{text}");
            let text = &text[..*MEMO_TEXTS.end()];
            assert!(patterns(&mut memo, &set, text).is_empty());
            assert!(memo.bytes <= MEMO_BYTES);
            most = most.max(memo.entries.len());
        }
        assert!(
            most >= MEMO_BYTES / (2 * text.len()),
            "it filled up before starting over"
        );
        assert!(memo.entries.len() < most, "it started over");
    }
}
