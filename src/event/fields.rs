//! An event's fields: a JSON object under Sigma names, read lazily when the
//! event arrived as JSON (flat, evtx_dump or Winlogbeat).
//!
//! Why lazy: building a serde_json tree of every record (a `String` per key
//! and value, an index map per object, all freed again) was 40% of a scan
//! of Mordor's Windows events, more than detection itself, while the rules
//! of an event's logsource read a handful of its fields. So a JSON line is
//! validated in full (serde_json, every value, as strictly as a tree parse)
//! and indexed as its fields' names and value positions (for Windows
//! shapes, the positions of the nested values the flattening takes, under
//! their Sigma names); a value becomes a [`Value`] the first time
//! something reads it, once. What is never read never allocates.
//!
//! The lazy form holds only what a tree parse gives exactly the same
//! answers for: no duplicate keys (a tree keeps the last value at the
//! first position), at most [`MAX_LAZY_MEMBERS`] members (lookups are
//! linear), strings with `\u` escapes decoded at once (validation accepts a
//! lone surrogate a tree parse refuses), containers shallow enough that
//! serde_json's nesting limit cannot bite. Anything else is parsed as a
//! tree (`json.rs` and `windows.rs` decide; unit tests, property tests and
//! the `parse_auto` fuzz target hold the lazy form to the tree's fields).

use serde::ser::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

/// Most members an object keeps in the lazy form; a wider one is a tree.
pub(crate) const MAX_LAZY_MEMBERS: usize = 64;

/// The fields of one event.
#[derive(Clone)]
pub struct Fields(Repr);

#[derive(Clone)]
enum Repr {
    /// Parsed in full (text formats, JSON the lazy form does not hold, tests).
    Tree(Map<String, Value>),
    /// A JSON object's text and its members' positions.
    Lazy(LazyObject),
}

#[derive(Clone)]
struct LazyObject {
    /// Validated once, when the line was read: alerts carry it as their
    /// evidence as it is, without validating it again. A `Box`, not an
    /// `Arc`: most events raise no alert, and making the shared copy only
    /// for those that do saves a copy of every line.
    text: Box<RawValue>,
    members: Vec<Member>,
}

/// One field of the lazy form, as `json::LazyBuilder` finds it.
#[derive(Clone)]
pub(crate) struct Member {
    /// [`key_hash`] of the key: lookups compare it before any text.
    pub(crate) hash: u64,
    pub(crate) key: Key,
    /// The value's JSON text within the line.
    raw: Range<usize>,
    value: OnceLock<Value>,
}

impl Member {
    /// A field whose value is the JSON text at `raw`, or `decoded` when it
    /// had to be decoded at once.
    pub(crate) fn new(hash: u64, key: Key, raw: Range<usize>, decoded: Option<Value>) -> Member {
        Member {
            hash,
            key,
            raw,
            value: decoded.map(OnceLock::from).unwrap_or_default(),
        }
    }
}

/// A key as it is in the text, a Sigma name, or made (decoded escapes,
/// joined names).
#[derive(Clone)]
pub(crate) enum Key {
    At(Range<usize>),
    Sigma(&'static str),
    Decoded(Box<str>),
}

impl Fields {
    /// The lazy form of a JSON line `text`, whose fields `json.rs`
    /// validated and found (positions are into `text`).
    pub(crate) fn lazy(text: &RawValue, members: Vec<Member>) -> Fields {
        Fields(Repr::Lazy(LazyObject {
            text: text.to_owned(),
            members,
        }))
    }

    /// The field named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match &self.0 {
            Repr::Tree(map) => map.get(name),
            Repr::Lazy(object) => object.find(name).map(|m| object.value(m)),
        }
    }

    /// The field named `name`, else the value at `name` as a dotted path
    /// into nested objects. Exact names win because real field names
    /// contain dots (flattened `winlog.event_data.x` keys).
    pub fn get_path(&self, name: &str) -> Option<&Value> {
        if let Some(v) = self.get(name) {
            return Some(v);
        }
        if !name.contains('.') {
            return None;
        }
        let mut parts = name.split('.');
        let mut current = self.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// Whether a field is named `name`, without reading its value.
    pub fn contains_key(&self, name: &str) -> bool {
        match &self.0 {
            Repr::Tree(map) => map.contains_key(name),
            Repr::Lazy(object) => object.find(name).is_some(),
        }
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Tree(map) => map.len(),
            Repr::Lazy(object) => object.members.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every field with its value, in the object's order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.0 {
            Repr::Tree(map) => IterRepr::Tree(map.iter()),
            Repr::Lazy(object) => IterRepr::Lazy { object, next: 0 },
        })
    }

    /// Every value, in the object's order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.iter().map(|(_, v)| v)
    }

    /// Calls `then` with the text of each field `pick` chooses by name (see
    /// [`Fields::for_each_text`]).
    pub fn for_each_picked<T>(
        &self,
        mut pick: impl FnMut(&str) -> Option<T>,
        mut then: impl FnMut(T, FieldText<'_>),
    ) {
        match &self.0 {
            Repr::Tree(map) => {
                for (name, value) in map {
                    if let Some(t) = pick(name) {
                        then(t, FieldText::Value(value));
                    }
                }
            }
            Repr::Lazy(object) => {
                for member in &object.members {
                    if let Some(t) = pick(object.key(member)) {
                        then(t, object.text_of(member));
                    }
                }
            }
        }
    }

    /// Calls `f` with each field's value for a scan of its text: a string
    /// not decoded yet as its JSON text (so scans, such as the prefilter's,
    /// decode and allocate nothing), anything else as a value.
    pub fn for_each_text(&self, mut f: impl FnMut(FieldText<'_>)) {
        match &self.0 {
            Repr::Tree(map) => map.values().for_each(|v| f(FieldText::Value(v))),
            Repr::Lazy(object) => object.members.iter().for_each(|m| f(object.text_of(m))),
        }
    }

    /// The JSON text the fields are read from, in the lazy form.
    pub(crate) fn json_text(&self) -> Option<&str> {
        self.json_raw().map(|raw| raw.get())
    }

    /// [`Fields::json_text`], validated.
    pub(crate) fn json_raw(&self) -> Option<&RawValue> {
        match &self.0 {
            Repr::Tree(_) => None,
            Repr::Lazy(object) => Some(&object.text),
        }
    }

    /// The fields as a serde_json object (a copy).
    pub fn to_map(&self) -> Map<String, Value> {
        match &self.0 {
            Repr::Tree(map) => map.clone(),
            Repr::Lazy(_) => self
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// A key's hash for lookups in the lazy form (fixed seed: a hash only
/// narrows the search, the key's text decides).
pub(crate) fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0).hash_one(key)
}

impl LazyObject {
    fn find(&self, name: &str) -> Option<&Member> {
        let hash = key_hash(name);
        self.members
            .iter()
            .find(|m| m.hash == hash && self.key(m) == name)
    }

    fn key<'a>(&'a self, member: &'a Member) -> &'a str {
        match &member.key {
            Key::At(range) => self.text.get().get(range.clone()).unwrap_or_default(),
            Key::Sigma(key) => key,
            Key::Decoded(key) => key,
        }
    }

    /// A member's string as JSON text while it is not decoded, else its value.
    fn text_of<'a>(&'a self, member: &'a Member) -> FieldText<'a> {
        if member.value.get().is_none() {
            let raw = self.text.get().get(member.raw.clone()).unwrap_or_default();
            if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                return FieldText::Json(JsonString(inner));
            }
        }
        FieldText::Value(self.value(member))
    }

    /// A member's value, decoded on first use.
    fn value<'a>(&'a self, member: &'a Member) -> &'a Value {
        member.value.get_or_init(|| {
            let raw = self.text.get().get(member.raw.clone()).unwrap_or_default();
            decode(raw)
        })
    }
}

/// A validated JSON value's text as a [`Value`]: a string by
/// [`JsonString::push_to`] (its `\u` escapes were decoded by `json.rs`
/// already), anything else by serde_json. Validation leaves nothing
/// serde_json refuses here; if it ever did, the text itself stands in
/// rather than a panic.
fn decode(raw: &str) -> Value {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut text = String::with_capacity(inner.len());
        JsonString(inner).push_to(&mut text);
        return Value::String(text);
    }
    // Event ids, ports, process ids: digits only read as serde_json reads them.
    if raw.len() < 20 && raw.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = raw.parse::<u64>() {
            return Value::from(n);
        }
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// A field's value as [`Fields::for_each_text`] gives it.
pub enum FieldText<'a> {
    /// A string still in its JSON form.
    Json(JsonString<'a>),
    /// Any other value, or a string already decoded.
    Value(&'a Value),
}

/// The text between a JSON string's quotes, validated, with no `\u`
/// escapes (`json.rs` decodes those at once).
pub struct JsonString<'a>(&'a str);

impl<'a> JsonString<'a> {
    /// The text itself when it has no escapes.
    pub fn plain(&self) -> Option<&'a str> {
        (!self.0.contains('\\')).then_some(self.0)
    }

    /// A string from the text between its quotes, which must be valid JSON
    /// string content without `\u` escapes.
    #[cfg(test)]
    pub(crate) fn new_for_tests(escaped: &'a str) -> Self {
        JsonString(escaped)
    }

    /// The string's text as it is in the JSON, escapes and all.
    pub(crate) fn escaped(&self) -> &'a str {
        self.0
    }

    /// Appends the string's decoded text to `out`.
    ///
    /// Hand-written rather than serde_json's because serde_json decodes
    /// only into a new `String` (or a `Value`); this appends to a reused
    /// buffer, and needs no `\u` case.
    pub fn push_to(&self, out: &mut String) {
        let mut rest = self.0;
        for at in memchr::memchr_iter(b'\\', self.0.as_bytes()) {
            // An escaped backslash's second byte was taken with the first.
            let Some(plain_len) = at.checked_sub(self.0.len() - rest.len()) else {
                continue;
            };
            let (Some(plain), Some(escape)) = (rest.get(..plain_len), rest.get(plain_len..)) else {
                break;
            };
            out.push_str(plain);
            let mut chars = escape.chars();
            chars.next();
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                // `\"`, `\\`, `\/`; validation allows no other escape here.
                Some(c) => out.push(c),
                None => {}
            }
            rest = chars.as_str();
        }
        out.push_str(rest);
    }
}

impl From<Map<String, Value>> for Fields {
    fn from(map: Map<String, Value>) -> Fields {
        Fields(Repr::Tree(map))
    }
}

impl Default for Fields {
    fn default() -> Fields {
        Fields(Repr::Tree(Map::new()))
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As a JSON object, in the object's order: the same text a tree of the
/// same fields serialises to (alert ids hash it).
impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// Iterator over an event's fields and their values.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Tree(serde_json::map::Iter<'a>),
    Lazy { object: &'a LazyObject, next: usize },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Tree(iter) => iter.next().map(|(k, v)| (k.as_str(), v)),
            IterRepr::Lazy { object, next } => {
                let member = object.members.get(*next)?;
                *next += 1;
                Some((object.key(member), object.value(member)))
            }
        }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
