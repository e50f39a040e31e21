//! JSON lines: one object per line.

use super::fields::{key_hash, Fields, Key, Member, MAX_LAZY_MEMBERS};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::ops::Range;

/// Keys that may make an object a Windows event to reshape (evtx_dump's
/// `Event`, Winlogbeat's `winlog` and `event_id`): `windows.rs` judges
/// the shape.
const RESHAPED_KEYS: &[&str] = &["Event", "winlog", "event_id"];

/// A container value with this many opening brackets could reach
/// serde_json's nesting limit (128) when read on its own; such objects are
/// parsed as a tree, which applies the limit as it always has.
const MAX_LAZY_BRACKETS: usize = 64;

/// Whether a validated value's text is not a container deep enough to
/// reach serde_json's nesting limit (see [`MAX_LAZY_BRACKETS`]). Parts of
/// a line the lazy form neither holds nor reads must be shallow too: a
/// tree parse would refuse the line for them.
pub(crate) fn is_shallow(text: &str) -> bool {
    !text.starts_with(['{', '['])
        || text.bytes().filter(|b| matches!(b, b'{' | b'[')).count() < MAX_LAZY_BRACKETS
}

/// A JSON line validated once, as a whole, and its top-level members.
pub(crate) struct Validated<'a> {
    /// The object's text (the line without surrounding whitespace).
    pub(crate) raw: &'a RawValue,
    /// Its members, split from that text (see [`members_of_validated`]).
    pub(crate) members: FoundMembers<'a>,
}

/// The line validated in full (serde_json, as strictly as a tree parse,
/// but for the nesting limit: see [`is_shallow`]) and split into its
/// members; None when it is no valid object, or one the lazy form does
/// not take (more than [`MAX_LAZY_MEMBERS`] members): it is read as a tree.
pub(crate) fn validated(line: &str) -> Option<Validated<'_>> {
    let raw: &RawValue = serde_json::from_str(line).ok()?;
    let members = members_of_validated(raw.get())?;
    Some(Validated { raw, members })
}

/// What [`index_object`] made of a line.
pub(crate) enum Indexed<'a> {
    /// A flat object, in the lazy form.
    Flat(Fields),
    /// An object with a key of a Windows shape: `windows.rs` judges it.
    Reshape(Validated<'a>),
    /// Anything else: parse it as a tree ([`parse_object`]), which also
    /// gives the reason a line is invalid.
    Tree,
}

/// A flat JSON object's fields in the lazy form (see `fields.rs`), when
/// the line is one that form reads exactly as a tree would: an object, not
/// a Windows shape to reshape, at most [`MAX_LAZY_MEMBERS`] members, no
/// duplicate keys, no deep containers.
pub(crate) fn index_object(line: &str) -> Indexed<'_> {
    let Some(line) = validated(line) else {
        return Indexed::Tree;
    };
    if line
        .members
        .iter()
        .any(|(key, _)| RESHAPED_KEYS.contains(&key.as_ref()))
    {
        return Indexed::Reshape(line);
    }
    let mut fields = LazyBuilder::new(line.raw);
    for (key, value) in line.members {
        if fields.push(key, value.text, None).is_none() {
            return Indexed::Tree;
        }
    }
    Indexed::Flat(fields.finish())
}

/// An object's members: keys (borrowed from the text unless escaped) and
/// values.
pub(crate) type FoundMembers<'a> = Vec<(Cow<'a, str>, Found<'a>)>;

/// A member's value: its text and, for an object the split descended into
/// (a Windows event's parts, see [`DESCENDED_KEYS`]), its members.
#[derive(Debug, PartialEq)]
pub(crate) struct Found<'a> {
    pub(crate) text: &'a str,
    pub(crate) members: Option<FoundMembers<'a>>,
}

/// Top-level keys whose objects are split on the way, with the objects in
/// them down to [`DESCENT_DEPTH`]: a Windows event's `Event.System` and
/// `Event.EventData` (evtx_dump) or `winlog.event_data` (Winlogbeat) and
/// the elements in them. Splitting them in the same pass, rather than
/// each again on the way down, reads every byte once.
const DESCENDED_KEYS: &[&str] = &["Event", "winlog", "event_data", "user_data"];

/// The deepest object that is split (the line's object is at 0):
/// `Event.System.Provider.#attributes` is at 4.
const DESCENT_DEPTH: usize = 4;

/// The members of an object whose text serde_json has validated already
/// ([`validated`]): split, not validated again. A Windows event's
/// `EventData` sits three objects deep; validating each object again on
/// the way down made a Windows line cost twice a flat one.
///
/// The text is trusted to be valid JSON, but nothing here can panic or run
/// away on text that is not: what does not look as expected is None (the
/// caller reads the line as a tree), as is an object of more than
/// [`MAX_LAZY_MEMBERS`] members.
pub(crate) fn members_of_validated(text: &str) -> Option<FoundMembers<'_>> {
    let bytes = text.as_bytes();
    let (found, end) = split_object(text, skip_whitespace(bytes, 0), 0)?;
    (skip_whitespace(bytes, end) == bytes.len()).then_some(found)
}

/// The members of the object at `at`, `depth` objects deep, and where it ends.
fn split_object(text: &str, mut at: usize, depth: usize) -> Option<(FoundMembers<'_>, usize)> {
    let bytes = text.as_bytes();
    (bytes.get(at) == Some(&b'{')).then_some(())?;
    at = skip_whitespace(bytes, at + 1);
    let mut found = Vec::with_capacity(16);
    if bytes.get(at) == Some(&b'}') {
        return Some((found, at + 1));
    }
    loop {
        let key_end = string_end(bytes, at)?;
        let key_text = text.get(at..key_end)?;
        let key = match key_text.contains('\\') {
            true => Cow::Owned(serde_json::from_str::<String>(key_text).ok()?),
            false => Cow::Borrowed(key_text.get(1..key_text.len().checked_sub(1)?)?),
        };
        at = skip_whitespace(bytes, key_end);
        (bytes.get(at) == Some(&b':')).then_some(())?;
        at = skip_whitespace(bytes, at + 1);
        let descend = bytes.get(at) == Some(&b'{')
            && match depth {
                0 => DESCENDED_KEYS.contains(&key.as_ref()),
                _ => depth < DESCENT_DEPTH,
            };
        let (members, value_end) = match descend {
            true => {
                let (members, end) = split_object(text, at, depth + 1)?;
                (Some(members), end)
            }
            false => (None, value_end(bytes, at)?),
        };
        if found.len() == MAX_LAZY_MEMBERS {
            return None;
        }
        let text = text.get(at..value_end)?;
        found.push((key, Found { text, members }));
        at = skip_whitespace(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return Some((found, at + 1)),
            _ => return None,
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Where the string starting at `at` ends (after its closing quote).
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    (bytes.get(at) == Some(&b'"')).then_some(())?;
    let mut end = at + 1;
    loop {
        end += memchr::memchr2(b'"', b'\\', bytes.get(end..)?)?;
        match bytes.get(end)? {
            b'\\' => end += 2,
            _ => return Some(end + 1),
        }
    }
}

/// Where the value starting at `at` ends: a string, a container (strings
/// in it skipped whole, brackets counted), or a literal or number.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut end = at;
            loop {
                match bytes.get(end)? {
                    b'"' => {
                        end = string_end(bytes, end)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(end + 1);
                        }
                    }
                    _ => {}
                }
                end += 1;
            }
        }
        _ => {
            let len = bytes
                .get(at..)?
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            (len > 0).then_some(at + len)
        }
    }
}

/// Builds the lazy form of fields found in `line`, member by member.
pub(crate) struct LazyBuilder<'a> {
    /// The validated line (positions are into its text).
    raw: &'a RawValue,
    line: &'a str,
    /// Most lines have no `\u` escape at all: one search spares one per value.
    has_unicode_escapes: bool,
    members: Vec<Member>,
}

impl<'a> LazyBuilder<'a> {
    pub(crate) fn new(raw: &'a RawValue) -> Self {
        let line = raw.get();
        LazyBuilder {
            raw,
            line,
            has_unicode_escapes: line.contains("\\u"),
            members: Vec::with_capacity(32),
        }
    }

    /// Adds a field: its name (text of `line`, or made) and its value's
    /// text in `line`, or the value itself when it had to be made
    /// (`decoded`). None when the lazy form cannot hold it exactly (a
    /// duplicate name, a deep container): the caller takes the tree.
    pub(crate) fn push(
        &mut self,
        key: Cow<'_, str>,
        raw: &str,
        decoded: Option<Value>,
    ) -> Option<()> {
        let at = match self.position(&key) {
            Some(range) => Key::At(range),
            None => Key::Decoded(key.as_ref().into()),
        };
        self.push_key(&key, at, raw, decoded)
    }

    /// [`LazyBuilder::push`] under a Sigma name, which needs no copy.
    pub(crate) fn push_sigma(
        &mut self,
        name: &'static str,
        raw: &str,
        decoded: Option<Value>,
    ) -> Option<()> {
        self.push_key(name, Key::Sigma(name), raw, decoded)
    }

    fn push_key(&mut self, name: &str, key: Key, raw: &str, decoded: Option<Value>) -> Option<()> {
        // Equal hashes are taken for duplicate keys: rare either way, and
        // the tree is right for both.
        let hash = key_hash(name);
        if self.members.iter().any(|m| m.hash == hash) {
            return None;
        }
        let text = raw;
        if !is_shallow(text) {
            return None;
        }
        // Validation skips `\u` escapes without judging them (a lone
        // surrogate passes); decoding now refuses what a tree parse refuses.
        let decoded = match decoded {
            Some(value) => Some(value),
            None if self.has_unicode_escapes && text.contains("\\u") => {
                Some(serde_json::from_str::<Value>(text).ok()?)
            }
            None => None,
        };
        let raw = self.position(text)?;
        self.members.push(Member::new(hash, key, raw, decoded));
        Some(())
    }

    /// Whether a field is named `key` already.
    pub(crate) fn contains(&self, key: &str) -> bool {
        let hash = key_hash(key);
        self.members.iter().any(|m| {
            m.hash == hash
                && match &m.key {
                    Key::At(range) => self.line.get(range.clone()) == Some(key),
                    Key::Sigma(k) => *k == key,
                    Key::Decoded(k) => &**k == key,
                }
        })
    }

    pub(crate) fn finish(self) -> Fields {
        Fields::lazy(self.raw, self.members)
    }

    /// Where `part` is in the line, if it is a slice of it.
    fn position(&self, part: &str) -> Option<Range<usize>> {
        let start = (part.as_ptr() as usize).checked_sub(self.line.as_ptr() as usize)?;
        let range = start..start.checked_add(part.len())?;
        self.line.get(range.clone())?;
        Some(range)
    }
}

/// Appends valid JSON `text` to `out` without the whitespace between its
/// tokens: what alert ids hash, so they do not depend on how a sender
/// spaced its JSON. For text a serde_json encoder wrote, this is exactly
/// serde_json's compact form, at a fraction of a parse and a serialisation.
pub(crate) fn compact_into(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => at += 1,
            b'"' => {
                // Copy the string whole, up to its closing quote.
                let mut end = at + 1;
                while let Some(found) = bytes
                    .get(end..)
                    .and_then(|r| memchr::memchr2(b'"', b'\\', r))
                {
                    end += found;
                    match bytes.get(end) {
                        Some(b'\\') => end += 2,
                        _ => break,
                    }
                }
                let end = (end + 1).min(bytes.len());
                out.extend_from_slice(bytes.get(at..end).unwrap_or_default());
                at = end;
            }
            _ => {
                out.push(b);
                at += 1;
            }
        }
    }
}

/// Parses one JSON object. Anything else is an error with a reason.
pub(crate) fn parse_object(line: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "JSON value is {}, not an object",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compact_into` as a string: whole strings and ASCII bytes outside
    /// them are copied, so the result is still UTF-8.
    fn compact(text: &str) -> String {
        let mut out = Vec::new();
        compact_into(text, &mut out);
        String::from_utf8(out).expect("compact text stays UTF-8")
    }

    #[test]
    fn objects_parse_and_other_values_are_rejected_with_a_reason() {
        assert!(parse_object(r#"{"a": {"b": [1]}}"#).is_ok());
        assert!(parse_object("[1]").unwrap_err().contains("array"));
        assert!(parse_object("{oops").unwrap_err().contains("invalid JSON"));
    }

    use crate::event::FieldText;
    use proptest::prelude::*;

    fn index_flat(line: &str) -> Option<Fields> {
        match index_object(line) {
            Indexed::Flat(fields) => Some(fields),
            Indexed::Reshape(_) | Indexed::Tree => None,
        }
    }

    /// The lazy form of `line` reads exactly as the tree of it: the same
    /// fields in the same order, each value (decoded or scanned as text),
    /// the same serialisation (alert ids hash it).
    fn assert_lazy_reads_as_tree(line: &str) {
        let tree = parse_object(line).expect("a valid object");
        let lazy = index_flat(line).expect("the lazy form");
        // Texts first, while nothing is decoded: strings go through `push_to`.
        let mut texts = Vec::new();
        lazy.for_each_text(|t| {
            texts.push(match t {
                FieldText::Json(s) => {
                    let mut out = String::new();
                    s.push_to(&mut out);
                    Value::String(out)
                }
                FieldText::Value(v) => v.clone(),
            })
        });
        assert_eq!(texts, tree.values().cloned().collect::<Vec<_>>(), "{line}");
        for (key, value) in &tree {
            assert_eq!(lazy.get(key), Some(value), "{key} in {line}");
        }
        assert_eq!(lazy, Fields::from(tree.clone()), "{line}");
        assert_eq!(
            serde_json::to_string(&lazy).unwrap(),
            serde_json::to_string(&tree).unwrap()
        );
    }

    #[test]
    fn flat_objects_read_lazily_as_their_tree_reads() {
        for line in [
            r#"{}"#,
            r#"  {"EventID": 4688, "Image": "C:\\Windows\\cmd.exe", "x": null}  "#,
            r#"{"esc": "q\"b\\s\/n\nt\tr\rb\bf\f", "t": true, "f": false}"#,
            r#"{"n": -0, "f": 1.50, "e": 1E2, "big": 12345678901234567890123, "u": 18446744073709551615}"#,
            r#"{"pair": "\ud83d\ude00", "bmp": "\u00e9\u0001", "raw": "é😀"}"#,
            r#"{"a\"b": 1, "\u0041": 2, "nested": {"k": [1, "two", {"three": 3}]}, "arr": []}"#,
        ] {
            assert_lazy_reads_as_tree(line);
        }
    }

    #[test]
    fn lines_a_tree_reads_differently_are_left_to_the_tree() {
        let wide = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
            format!("{{{}}}", members.join(","))
        };
        assert!(index_flat(&wide(MAX_LAZY_MEMBERS)).is_some());
        let deep = |n: usize| format!("{{\"a\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(index_flat(&deep(MAX_LAZY_BRACKETS - 1)).is_some());
        for line in [
            // The tree keeps the last value at the first key's position.
            r#"{"a": 1, "b": 2, "a": 3}"#.to_string(),
            wide(MAX_LAZY_MEMBERS + 1),
            deep(MAX_LAZY_BRACKETS),
            // Windows shapes are reshaped from the tree.
            r#"{"Event": {"System": {}}}"#.to_string(),
            r#"{"winlog": {"channel": "Security", "event_id": 1}}"#.to_string(),
            r#"{"channel": "Security", "event_id": 1}"#.to_string(),
        ] {
            assert!(index_flat(&line).is_none(), "{line}");
            assert!(parse_object(&line).is_ok(), "{line}");
        }
    }

    #[test]
    fn what_a_tree_refuses_has_no_lazy_form() {
        for line in [
            r#"{"a": "\ud800"}"#,
            r#"{"a": ["\udc00 lone trailing"]}"#,
            r#"{"a": 1} trailing"#,
            r#"{"a": 01}"#,
            r#"{"a": "tab	inside"}"#,
            r#"{"a": "\x"}"#,
            r#"[1, 2]"#,
            r#"{"a": 1,}"#,
            &format!("{{\"a\": {}1{}}}", "[".repeat(200), "]".repeat(200)),
        ] {
            assert!(index_flat(line).is_none(), "{line}");
            assert!(parse_object(line).is_err(), "{line}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let text = "[a-z\\\\\"/\n\t\r\u{8}\u{c}\u{1}\u{7f}é😀 ]{0,12}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(text, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn compact_text_is_serde_json_compact_form_of_its_encoding() {
        let spaced = "{ \"a\" : [ 1 , \"x \\\" y\\\\\" ] ,\n\t\"b\":{ } }\r\n";
        assert_eq!(compact(spaced), r#"{"a":[1,"x \" y\\"],"b":{}}"#);
        assert_eq!(compact(r#""unterminated \"#), r#""unterminated \"#);
    }

    proptest! {
        #[test]
        fn compact_text_of_any_encoded_value_is_its_compact_encoding(value in json_value()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            prop_assert_eq!(compact(&pretty), serde_json::to_string(&value).unwrap());
        }

        #[test]
        fn any_flat_object_reads_lazily_as_its_tree_reads(
            members in prop::collection::btree_map("[A-Za-z_\\\\\"é\u{1}]{1,8}", json_value(), 0..12),
            spaced in any::<bool>(),
        ) {
            let object: Map<String, Value> = members
                .into_iter()
                .filter(|(k, _)| !RESHAPED_KEYS.contains(&k.as_str()))
                .collect();
            let line = match spaced {
                true => serde_json::to_string_pretty(&object).unwrap().replace('\n', " "),
                false => serde_json::to_string(&object).unwrap(),
            };
            assert_lazy_reads_as_tree(&line);
        }

        #[test]
        fn validated_objects_split_into_the_members_serde_json_reads(
            pairs in prop::collection::btree_map("[A-Za-z_\\\\\"é\u{1}]{1,8}", json_value(), 0..12),
            spaced in any::<bool>(),
        ) {
            let object = Value::Object(pairs.into_iter().collect());
            let text = match spaced {
                true => serde_json::to_string_pretty(&object).unwrap(),
                false => serde_json::to_string(&object).unwrap(),
            };
            let split = members_of_validated(&text).expect("an object");
            // What a tree parse of the same text reads (floats are read
            // back inexactly, alike).
            let tree: Value = serde_json::from_str(&text).unwrap_or_default();
            assert_split_reads_as_tree(&split, &tree, 0);
            // The same object where the split descends into it.
            let windows = format!(r#"{{"Event": {{"System": {text}}}, "other": {text}}}"#);
            let split = members_of_validated(&windows).expect("an object");
            let tree: Value = serde_json::from_str(&windows).unwrap_or_default();
            assert_split_reads_as_tree(&split, &tree, 0);
        }

        #[test]
        fn splitting_any_text_never_panics(text in "[{}\\[\\]\":,\\\\ a1-]{0,24}") {
            let _ = members_of_validated(&text);
        }
    }

    /// Each member of `split` reads as the tree's member of the same
    /// name, in the same order, its text trimmed; the objects the split
    /// descended into, at the depths it descends to, likewise.
    fn assert_split_reads_as_tree(split: &FoundMembers<'_>, tree: &Value, depth: usize) {
        let members: Vec<(&String, &Value)> = tree.as_object().into_iter().flatten().collect();
        assert_eq!(split.len(), members.len());
        for ((key, found), (tree_key, tree_value)) in split.iter().zip(members) {
            assert_eq!(key, tree_key);
            assert_eq!(found.text.trim(), found.text);
            let read: Value = serde_json::from_str(found.text).expect("a value's text");
            assert_eq!(&read, tree_value);
            let descends = tree_value.is_object()
                && match depth {
                    0 => DESCENDED_KEYS.contains(&key.as_ref()),
                    _ => depth < DESCENT_DEPTH,
                };
            match &found.members {
                Some(inner) => {
                    assert!(descends, "{key} at {depth}");
                    assert_split_reads_as_tree(inner, tree_value, depth + 1);
                }
                None => assert!(!descends, "{key} at {depth}"),
            }
        }
    }

    #[test]
    fn splitting_reads_keys_with_escapes_and_leaves_broken_text() {
        let text = " { \"a\\\"b\" : [1, {\"x\": \"]}\"}] ,\"c\":-1.5e3 , \"d\":{}}\n";
        let split = members_of_validated(text).expect("an object");
        let texts: Vec<(&str, &str)> = split.iter().map(|(k, v)| (k.as_ref(), v.text)).collect();
        assert_eq!(
            texts,
            [
                ("a\"b", r#"[1, {"x": "]}"}]"#),
                ("c", "-1.5e3"),
                ("d", "{}")
            ]
        );
        for broken in [
            "",
            "{",
            "[1]",
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":"x}"#,
            r#"{"a":[1}"#,
            r#"{"a":}"#,
        ] {
            assert_eq!(members_of_validated(broken), None, "{broken}");
        }
        let wide = format!(
            "{{{}}}",
            (0..=MAX_LAZY_MEMBERS)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(members_of_validated(&wide), None);
    }

    #[test]
    fn a_windows_events_parts_are_split_in_the_same_pass_down_to_the_descent_depth() {
        let text = r##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"x","Deep":{"a":1}}}}},"other":{"b":{"c":2}}}"##;
        let split = members_of_validated(text).expect("an object");
        let tree: Value = serde_json::from_str(text).expect("JSON");
        assert_split_reads_as_tree(&split, &tree, 0);
        let attributes = split[0].1.members.as_ref().unwrap()[0]
            .1
            .members
            .as_ref()
            .unwrap()[0]
            .1
            .members
            .as_ref()
            .unwrap()[0]
            .1
            .members
            .as_ref()
            .expect("#attributes is split");
        assert_eq!(attributes[1].1.text, r#"{"a":1}"#);
        assert!(attributes[1].1.members.is_none(), "below the descent depth");
        assert!(split[1].1.members.is_none(), "not a Windows part");
    }
}
