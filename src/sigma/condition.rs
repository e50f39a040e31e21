//! The Sigma condition language: `selection and not 1 of filter_*`.
//!
//! Precedence, least to most binding: `or`, `and`, `not`, `x of`, parentheses.

use std::fmt;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// A search identifier.
    Search(String),
    /// `not X`: true when X is false.
    Not(Box<Condition>),
    /// `X and Y and ...`: true when every term is.
    And(Vec<Condition>),
    /// `X or Y or ...`: true when any term is.
    Or(Vec<Condition>),
    /// `1 of X` (any) or `all of X`.
    Of(Quantifier, Selector),
}

/// How many of the searches an `x of` condition needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Quantifier {
    /// `1 of`: at least one.
    Any,
    /// `all of`: every one.
    All,
}

/// What `x of` ranges over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Selector {
    /// Every search identifier not starting with `_`.
    Them,
    /// Search identifiers matching a `*` pattern.
    Pattern(String),
}

impl Selector {
    /// Whether a search identifier is in the range of this selector.
    ///
    /// Identifiers starting with `_` are excluded by convention, unless the
    /// pattern itself starts with `_` (then the author asked for them).
    pub fn selects(&self, identifier: &str) -> bool {
        match self {
            Selector::Them => !identifier.starts_with('_'),
            Selector::Pattern(p) => {
                (p.starts_with('_') || !identifier.starts_with('_')) && glob_match(p, identifier)
            }
        }
    }
}

/// `*`-only glob, case-sensitive (search identifiers are case-sensitive).
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A condition syntax error; `offset` is the character offset in the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
    Pipe,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                tokens.push((i, Token::Open));
                chars.next();
            }
            ')' => {
                tokens.push((i, Token::Close));
                chars.next();
            }
            '|' => {
                // The rest is removed aggregation syntax: reported by the parser.
                tokens.push((i, Token::Pipe));
                break;
            }
            c if is_word_char(c) => {
                let start = i;
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push((start, Token::Word(word)));
            }
            other => {
                return Err(ConditionError {
                    offset: i,
                    message: format!("unexpected character `{other}`"),
                })
            }
        }
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '*' | '-' | '.')
}

/// Parses a condition expression; `not`s and parentheses may nest at most
/// `max_depth` deep (the parser recurses once per level).
pub fn parse(text: &str, max_depth: usize) -> Result<Condition, ConditionError> {
    let tokens = tokenize(text)?;
    let mut parser = ConditionParser {
        tokens,
        next: 0,
        end: text.len(),
        depth: 0,
        max_depth,
    };
    let cond = parser.or()?;
    if let Some((offset, token)) = parser.tokens.get(parser.next) {
        let message = match token {
            Token::Pipe => "aggregation expressions (`| count() ...`) were removed from Sigma; \
                            use a correlation rule instead"
                .to_string(),
            Token::Close => "unbalanced `)`".to_string(),
            Token::Word(w) => format!("expected `and` or `or` before `{w}`"),
            Token::Open => "expected `and` or `or` before `(`".to_string(),
        };
        return Err(ConditionError {
            offset: *offset,
            message,
        });
    }
    Ok(cond)
}

struct ConditionParser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    end: usize,
    /// `not`s and parentheses open around the current token.
    depth: usize,
    max_depth: usize,
}

impl ConditionParser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.next), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(keyword))
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(o, _)| *o)
    }

    fn error(&self, message: impl Into<String>) -> ConditionError {
        ConditionError {
            offset: self.offset(),
            message: message.into(),
        }
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        self.joined("or", Self::and, Condition::Or)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        self.joined("and", Self::not, Condition::And)
    }

    /// Terms parsed by `term`, joined by `keyword`; a single term stands alone.
    fn joined(
        &mut self,
        keyword: &str,
        term: fn(&mut Self) -> Result<Condition, ConditionError>,
        join: fn(Vec<Condition>) -> Condition,
    ) -> Result<Condition, ConditionError> {
        let mut terms = vec![term(self)?];
        while self.peek_keyword(keyword) {
            self.next += 1;
            terms.push(term(self)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            join(terms)
        })
    }

    fn not(&mut self) -> Result<Condition, ConditionError> {
        if self.peek_keyword("not") {
            self.next += 1;
            let inner = self.nested(Self::not)?;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// Parses one nesting level deeper, within the depth limit.
    fn nested(
        &mut self,
        parse: fn(&mut Self) -> Result<Condition, ConditionError>,
    ) -> Result<Condition, ConditionError> {
        if self.depth >= self.max_depth {
            // At the `not` or `(` just taken, the one too many.
            let offset = self
                .next
                .checked_sub(1)
                .and_then(|i| self.tokens.get(i))
                .map_or(self.end, |(o, _)| *o);
            return Err(ConditionError {
                offset,
                message: format!(
                    "`not` and parentheses nested more than {} deep; rule_limits.max_condition_depth",
                    self.max_depth
                ),
            });
        }
        self.depth += 1;
        let inner = parse(self);
        self.depth -= 1;
        inner
    }

    fn primary(&mut self) -> Result<Condition, ConditionError> {
        let Some((_, token)) = self.tokens.get(self.next).cloned() else {
            return Err(self.error("expected a search identifier, `not`, `(` or `1 of`/`all of`"));
        };
        match token {
            Token::Open => {
                self.next += 1;
                let inner = self.nested(Self::or)?;
                match self.tokens.get(self.next) {
                    Some((_, Token::Close)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error("missing `)`")),
                }
            }
            Token::Close => Err(self.error("unexpected `)`")),
            Token::Pipe => Err(self.error(
                "aggregation expressions (`| count() ...`) were removed from Sigma; use a correlation rule instead",
            )),
            Token::Word(word) => {
                let lower = word.to_ascii_lowercase();
                if matches!(lower.as_str(), "and" | "or" | "of" | "them") {
                    return Err(self.error(format!("unexpected keyword `{word}`")));
                }
                let followed_by_of = matches!(
                    self.tokens.get(self.next + 1),
                    Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("of")
                );
                if followed_by_of {
                    let quantifier = match lower.as_str() {
                        "1" => Quantifier::Any,
                        "all" => Quantifier::All,
                        _ => {
                            return Err(self.error(format!(
                                "`{word} of` is not Sigma: only `1 of` and `all of` are defined"
                            )))
                        }
                    };
                    self.next += 2;
                    let selector = match self.tokens.get(self.next) {
                        Some((_, Token::Word(w))) if w.eq_ignore_ascii_case("them") => {
                            Selector::Them
                        }
                        Some((_, Token::Word(w))) => Selector::Pattern(w.clone()),
                        _ => {
                            return Err(self.error(
                                "expected `them` or a search identifier pattern after `of`",
                            ))
                        }
                    };
                    self.next += 1;
                    return Ok(Condition::Of(quantifier, selector));
                }
                self.next += 1;
                Ok(Condition::Search(word))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Condition, ConditionError> {
        super::parse(text, 64)
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_an_error_not_a_stack_overflow() {
        let parens = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        let nots = format!("{}a", "not ".repeat(30_000));
        for text in [&parens, &nots] {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains("max_condition_depth"), "{err}");
            assert_eq!(err.offset, if text == &parens { 64 } else { 256 });
        }
        assert!(parse(&format!("{}a{}", "(".repeat(64), ")".repeat(64))).is_ok());
        assert!(parse(&format!("{}a", "not ".repeat(64))).is_ok());
        assert!(super::parse("not not a", 1).is_err());
    }

    fn s(name: &str) -> Condition {
        Condition::Search(name.to_string())
    }

    fn not(c: Condition) -> Condition {
        Condition::Not(Box::new(c))
    }

    /// Precedence, grouping and case: each row is (why, text, tree).
    #[test]
    fn operators_parse_with_sigma_precedence() {
        use Condition::{And, Of, Or};
        let rows = [
            (
                "and binds tighter than or",
                "a or b and c",
                Or(vec![s("a"), And(vec![s("b"), s("c")])]),
            ),
            (
                "not binds tighter than and",
                "a and not b",
                And(vec![s("a"), not(s("b"))]),
            ),
            (
                "parentheses group",
                "(a or b) and c",
                And(vec![Or(vec![s("a"), s("b")]), s("c")]),
            ),
            (
                "keywords are case-insensitive",
                "a AND NOT b",
                And(vec![s("a"), not(s("b"))]),
            ),
            (
                "quantifiers take patterns",
                "1 of selection_* and not all of filter*",
                And(vec![
                    Of(Quantifier::Any, Selector::Pattern("selection_*".into())),
                    not(Of(Quantifier::All, Selector::Pattern("filter*".into()))),
                ]),
            ),
            (
                "quantifiers take them",
                "all of them",
                Of(Quantifier::All, Selector::Them),
            ),
        ];
        for (why, text, tree) in rows {
            assert_eq!(parse(text), Ok(tree), "{why}: {text:?}");
        }
    }

    #[test]
    fn aggregations_are_rejected_with_a_hint() {
        let err = parse("selection | count() by host > 5").unwrap_err();
        assert!(err.message.contains("correlation"), "{err}");
        assert_eq!(err.offset, 10);
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        assert!(parse("a and").unwrap_err().message.contains("expected"));
        assert!(parse("(a or b")
            .unwrap_err()
            .message
            .contains("missing `)`"));
        assert!(parse("a b")
            .unwrap_err()
            .message
            .contains("expected `and` or `or`"));
        assert!(parse("2 of x").unwrap_err().message.contains("only `1 of`"));
        assert!(parse("a and )").is_err());
    }

    #[test]
    fn selectors_skip_underscore_identifiers_unless_asked() {
        assert!(Selector::Them.selects("selection"));
        assert!(!Selector::Them.selects("_private"));
        let p = Selector::Pattern("sel*".into());
        assert!(p.selects("selection_1"));
        assert!(!p.selects("filter"));
        assert!(!Selector::Pattern("*".into()).selects("_x"));
        assert!(Selector::Pattern("_x*".into()).selects("_xyz"));
        assert!(Selector::Pattern("a*b*c".into()).selects("a_b_c"));
        assert!(!Selector::Pattern("a*b*c".into()).selects("a_c"));
    }
}
