//! A YAML tree that remembers where each node came from.
//!
//! Rule authors need `file:line:col` for every problem, not only for YAML
//! syntax errors, so the loader builds its own small tree from the parser's
//! marked events instead of going through an untyped `serde` value.

use super::limits::{RuleLimit, RuleLimits};
use std::collections::HashMap;
use std::fmt;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a source file, 1-based line and column.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Pos {
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts in the file.
    pub pos: Pos,
    /// What the node holds.
    pub value: Value,
}

/// The YAML data model after plain-scalar type resolution (YAML 1.2 core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A plain `null`, `~` or empty scalar.
    Null,
    /// A plain `true` or `false`.
    Bool(bool),
    /// A plain integer, decimal or `0x` hex, that fits in an `i64`.
    Int(i64),
    /// A plain floating-point number.
    Float(f64),
    /// A string, quoted or plain.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// Keys in document order; duplicates are kept so the loader can report them.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar as text, as a Sigma value is read: numbers and booleans in their YAML form.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The text of a string node; None for every other kind, numbers too.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping node, in document order; None for other kinds.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name of the node's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    /// Converts to JSON (for rule test events and custom attributes). Map keys become strings.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error, or a broken limit, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong, for the rule author.
    pub message: String,
    /// The limit the file broke, when it is not a syntax error.
    pub limit: Option<RuleLimit>,
}

/// Parses every document of a YAML stream, within `limits`.
///
/// Events are pulled one at a time and the tree is built with an explicit
/// stack: the YAML crate's own loader recurses once per nesting level.
pub fn parse_documents(text: &str, limits: &RuleLimits) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = TreeBuilder {
        limits: *limits,
        ..TreeBuilder::default()
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            // The reader refuses flow collections nested over 255 deep
            // before any of them reaches the tree.
            let too_deep = e.info() == "recursion limit exceeded";
            SyntaxError {
                pos: Pos::from(*e.marker()),
                message: if too_deep {
                    format!(
                        "YAML nested deeper than the reader allows; rule_limits.max_yaml_depth is {}",
                        limits.max_yaml_depth
                    )
                } else {
                    e.info().to_string()
                },
                limit: too_deep.then_some(RuleLimit::YamlDepth),
            }
        })?;
        if event == Event::StreamEnd {
            return Ok(builder.documents);
        }
        builder.on_event(event, mark)?;
    }
}

/// Builds [`Node`]s from the parser's event stream.
#[derive(Default)]
struct TreeBuilder {
    documents: Vec<Node>,
    /// Open collections: the node being filled, for maps a pending key, the
    /// anchor id and the nodes in it so far.
    stack: Vec<Open>,
    /// Anchored nodes and their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes built so far, aliases counted at their expanded size.
    nodes: usize,
    limits: RuleLimits,
}

struct Open {
    node: Node,
    pending_key: Option<Node>,
    anchor: usize,
    size: usize,
}

impl TreeBuilder {
    /// Counts `size` more nodes, or fails past the limit.
    fn count(&mut self, size: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes > self.limits.max_yaml_nodes {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "more than {} YAML nodes (aliases count as what they repeat); rule_limits.max_yaml_nodes",
                    self.limits.max_yaml_nodes
                ),
                limit: Some(RuleLimit::YamlNodes),
            });
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(open) = self.stack.last_mut() else {
            self.documents.push(node);
            return;
        };
        open.size = open.size.saturating_add(size);
        match &mut open.node.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match open.pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => open.pending_key = Some(node),
            },
            _ => {}
        }
    }

    fn open(&mut self, value: Value, anchor: usize, pos: Pos) -> Result<(), SyntaxError> {
        if self.stack.len() >= self.limits.max_yaml_depth {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "YAML nested more than {} levels deep; rule_limits.max_yaml_depth",
                    self.limits.max_yaml_depth
                ),
                limit: Some(RuleLimit::YamlDepth),
            });
        }
        self.count(1, pos)?;
        self.stack.push(Open {
            node: Node { pos, value },
            pending_key: None,
            anchor,
            size: 1,
        });
        Ok(())
    }

    fn close(&mut self) {
        if let Some(open) = self.stack.pop() {
            self.push_value(open.node, open.anchor, open.size);
        }
    }

    fn on_event(&mut self, ev: Event, mark: Marker) -> Result<(), SyntaxError> {
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.count(1, pos)?;
                let value = if style == TScalarStyle::Plain {
                    resolve_plain(text)
                } else {
                    Value::Str(text)
                };
                self.push_value(Node { pos, value }, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => self.open(Value::Seq(Vec::new()), anchor, pos)?,
            Event::MappingStart(anchor, _) => self.open(Value::Map(Vec::new()), anchor, pos)?,
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => {
                // Counted before the copy is made: an alias bomb is refused
                // while it is still small.
                let size = self.anchors.get(&id).map_or(1, |(_, size)| *size);
                self.count(size, pos)?;
                let node = self.anchors.get(&id).map_or(
                    Node {
                        pos,
                        value: Value::Null,
                    },
                    |(node, _)| node.clone(),
                );
                self.push_value(node, 0, size);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
        Ok(())
    }
}

/// YAML 1.2 core schema resolution of plain scalars.
fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_documents_default(text: &str) -> Result<Vec<Node>, SyntaxError> {
        parse_documents(text, &RuleLimits::default())
    }

    #[test]
    fn deep_nesting_is_refused_at_the_limit_not_by_the_stack() {
        for text in [
            "- ".repeat(100_000) + "x",
            "[".repeat(100_000),
            "a:\n  ".to_string() + &"- ".repeat(70_000),
        ] {
            let err = parse_documents_default(&text).unwrap_err();
            assert_eq!(err.limit, Some(RuleLimit::YamlDepth), "{err:?}");
        }
        let limits = RuleLimits {
            max_yaml_depth: 3,
            ..RuleLimits::default()
        };
        assert!(parse_documents("a: {b: {c: 1}}", &limits).is_ok());
        let err = parse_documents("a: {b: {c: [1]}}", &limits).unwrap_err();
        assert_eq!(err.limit, Some(RuleLimit::YamlDepth));
        assert_eq!(err.pos, Pos { line: 1, col: 12 });
    }

    #[test]
    fn an_alias_bomb_is_refused_before_it_grows() {
        // Each level doubles: 2^30 nodes if expanded.
        let mut text = String::from("a0: &a0 [x, x]\n");
        for i in 1..30 {
            text.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        let started = std::time::Instant::now();
        let err = parse_documents_default(&text).unwrap_err();
        assert_eq!(err.limit, Some(RuleLimit::YamlNodes));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Small aliases stay fine.
        assert!(parse_documents_default("a: &x [1, 2]\nb: [*x, *x, *x]\n").is_ok());
    }

    #[test]
    fn nodes_remember_their_line_and_column() {
        let docs = parse_documents_default("title: x\ndetection:\n  sel:\n    a: 1\n").unwrap();
        let sel = docs[0].get("detection").unwrap().get("sel").unwrap();
        let (key, value) = &sel.as_map().unwrap()[0];
        assert_eq!(key.pos, Pos { line: 4, col: 5 });
        assert_eq!(value.value, Value::Int(1));
    }

    #[test]
    fn several_documents_are_returned_in_order() {
        let docs = parse_documents_default("a: 1\n---\na: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].get("a").unwrap().value, Value::Int(2));
    }

    #[test]
    fn quoted_numbers_stay_strings_and_plain_ones_resolve() {
        let docs =
            parse_documents_default("a: '4688'\nb: 4688\nc: null\nd: ''\ne: 1.5\nf: 1.2.3\n")
                .unwrap();
        let d = &docs[0];
        assert_eq!(d.get("a").unwrap().value, Value::Str("4688".into()));
        assert_eq!(d.get("b").unwrap().value, Value::Int(4688));
        assert_eq!(d.get("c").unwrap().value, Value::Null);
        assert_eq!(d.get("d").unwrap().value, Value::Str(String::new()));
        assert_eq!(d.get("e").unwrap().value, Value::Float(1.5));
        assert_eq!(d.get("f").unwrap().value, Value::Str("1.2.3".into()));
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse_documents_default("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let docs = parse_documents_default("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(
            docs[0].get("b").unwrap().to_json(),
            serde_json::json!([1, 2])
        );
    }
}
