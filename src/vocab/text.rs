//! Text shown to people: escaped so event data cannot break a line or
//! disguise it, and shortened on character boundaries.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest value shown per field in an alert's summary, in characters.
pub(crate) const MAX_VALUE_CHARS: usize = 120;
/// Most fields shown in an alert's summary.
pub(crate) const MAX_SUMMARY_FIELDS: usize = 5;

/// Appends `text` with control characters, line breaks, Unicode line
/// separators and invisible formatting characters escaped, so the line
/// stays one line and reads as what it says: a right-to-left override or a
/// zero-width space in event data could otherwise make a line display
/// differently from its bytes (as in "Trojan Source" attacks).
pub(crate) fn escape_into(out: &mut String, text: &str) {
    // Alert lines are mostly printable ASCII: such runs are copied whole,
    // and only the rest is judged character by character.
    let mut rest = text;
    while let Some(at) = rest.bytes().position(|b| !(b' '..=b'~').contains(&b)) {
        // `at` is a char boundary: every byte before it is ASCII.
        let Some((plain, tail)) = rest.split_at_checked(at) else {
            rest.chars().for_each(|c| escape_char_into(out, c));
            return;
        };
        out.push_str(plain);
        let mut chars = tail.chars();
        if let Some(c) = chars.next() {
            escape_char_into(out, c);
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
}

fn escape_char_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || is_invisible(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Line and paragraph separators, bidirectional controls, zero-width and
/// other invisible formatting characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{2028}'
            | '\u{2029}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// Shortens to at most `max` characters, marking the cut with `...`.
pub(crate) fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    // No more bytes than `max`, so no more characters: nothing to count.
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => {
            let head = text.get(..cut).unwrap_or_default();
            let keep = head
                .char_indices()
                .nth(max.saturating_sub(3))
                .map_or(cut, |(i, _)| i);
            Cow::Owned(format!("{}...", head.get(..keep).unwrap_or_default()))
        }
    }
}

/// Lowercase hex of bytes (hashes in records and state files).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Owned key-value pairs from string literals, for tests of property maps
/// and environments.
#[cfg(test)]
pub(crate) fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_shortened_on_character_boundaries() {
        assert_eq!(shorten("abcdef", 10), "abcdef");
        assert_eq!(shorten("abcdefghijkl", 8), "abcde...");
        assert_eq!(shorten("ééééééééé", 5), "éé...");
        assert_eq!(shorten("abc", 0), "...");
    }

    /// Each character on its own, as the escaping is defined.
    fn escaped_char_by_char(text: &str) -> String {
        let mut out = String::new();
        text.chars().for_each(|c| escape_char_into(&mut out, c));
        out
    }

    #[test]
    fn printable_runs_are_copied_and_everything_else_escaped() {
        let mut out = String::from("> ");
        escape_into(&mut out, "a\tb\r\nc\u{7f}d\u{85}é\u{202e}x\u{1F600}~");
        assert_eq!(
            out,
            "> a\\tb\\r\\nc\\u{007f}d\\u{0085}é\\u{202e}x\u{1F600}~"
        );
    }

    proptest::proptest! {
        #[test]
        fn escaping_runs_gives_what_escaping_each_character_gives(text in "(?s).{0,40}") {
            let mut out = String::new();
            escape_into(&mut out, &text);
            proptest::prop_assert_eq!(out, escaped_char_by_char(&text));
        }
    }
}
