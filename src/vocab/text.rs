//! Text shown to people: shortened on character boundaries.

use std::borrow::Cow;

/// Shortens to at most `max` characters, marking the cut with `...`.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
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
}
