//! [`Span`]: a length of time as rules and configuration write it
//! (`90s`, `5m`, `1h`, `2d`, `1w`, `500ms`, `0`).
//!
//! One type for every duration in the crate, so a timespan in a Sigma
//! correlation, a bucket span in an anomaly job and an interval in the
//! configuration are read, bounded and printed the same way.
//!
//! Spans are bounded by [`Span::MAX`] (100 years). The bound is what makes
//! time arithmetic safe: event times are kept within years 0000-9999
//! ([`crate::event::time::plausible`]), chrono represents about ±262,000
//! years, so an event time plus or minus a few spans can never overflow.
//! [`Span::after`] and [`Span::before`] saturate anyway, for times that
//! arrive by other roads (snapshots, saved models).

use chrono::{DateTime, TimeDelta, Utc};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A non-negative length of time, at most [`Span::MAX`], in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Duration);

/// Why a text is not a span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// Not a whole number followed by a known unit; holds the text.
    #[error("`{0}` is not a number and a unit (ms, s, m, h, d, w)")]
    Syntax(String),
    /// Well formed, but longer than [`Span::MAX`].
    #[error("`{text}` is longer than the longest span, {max}")]
    TooLong {
        /// The text as given.
        text: String,
        /// The longest span, [`Span::MAX`].
        max: Span,
    },
    /// Zero where a positive span is needed; holds the config key.
    #[error("`{0}` must be longer than zero")]
    Zero(String),
}

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;

impl Span {
    /// No time at all.
    pub const ZERO: Span = Span(Duration::ZERO);
    /// 100 years of 365 days: longer than any window, retention or SLA
    /// anyone configures, short enough that time arithmetic cannot overflow.
    pub const MAX: Span = Span(Duration::from_secs(36_500 * 86_400));

    /// A whole number of seconds. Not capped at [`Span::MAX`].
    pub const fn from_secs(secs: u64) -> Span {
        Span(Duration::from_secs(secs))
    }

    /// A whole number of milliseconds. Not capped at [`Span::MAX`].
    pub const fn from_millis(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }

    /// A std duration as a span, capped at [`Span::MAX`].
    pub fn from_std(d: Duration) -> Span {
        Span(d.min(Span::MAX.0))
    }

    /// The span as a std duration.
    pub const fn as_std(self) -> Duration {
        self.0
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// True for a span of no time.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The span as a chrono delta (always representable: see the bound).
    pub fn as_delta(self) -> TimeDelta {
        TimeDelta::from_std(self.0).unwrap_or(TimeDelta::MAX)
    }

    /// `time + self`, saturating at the latest representable time.
    pub fn after(self, time: DateTime<Utc>) -> DateTime<Utc> {
        time.checked_add_signed(self.as_delta())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `time - self`, saturating at the earliest representable time.
    pub fn before(self, time: DateTime<Utc>) -> DateTime<Utc> {
        time.checked_sub_signed(self.as_delta())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// This span, or an error naming `key` when it is zero (intervals,
    /// windows and timeouts of zero would mean a busy loop or nothing at all).
    pub fn nonzero(self, key: &str) -> Result<Span, SpanError> {
        if self.is_zero() {
            Err(SpanError::Zero(key.to_string()))
        } else {
            Ok(self)
        }
    }
}

impl FromStr for Span {
    type Err = SpanError;

    /// A whole number and a unit: `ms`, `s`, `m`, `h`, `d` or `w`; or a bare `0`.
    fn from_str(text: &str) -> Result<Span, SpanError> {
        let t = text.trim();
        let syntax = || SpanError::Syntax(text.to_string());
        if t == "0" {
            return Ok(Span::ZERO);
        }
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = t.split_at_checked(digits).ok_or_else(syntax)?;
        let per_unit = match unit {
            "ms" => 1,
            "s" => SECOND,
            "m" => MINUTE,
            "h" => HOUR,
            "d" => DAY,
            "w" => WEEK,
            _ => return Err(syntax()),
        };
        let too_long = || SpanError::TooLong {
            text: text.to_string(),
            max: Span::MAX,
        };
        // More digits than a u64 holds is "too long", not a syntax error.
        let n: u64 = match number.parse() {
            Ok(n) => n,
            Err(_) if !number.is_empty() => return Err(too_long()),
            Err(_) => return Err(syntax()),
        };
        let ms = n.checked_mul(per_unit).ok_or_else(too_long)?;
        let span = Span::from_millis(ms);
        if span > Span::MAX {
            return Err(too_long());
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    /// The largest unit that divides the span exactly: `90m`, `1d`, `1500ms`.
    /// Weeks print as days (`14d`), as analysts read them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        match ms {
            0 => f.write_str("0s"),
            ms if ms % DAY == 0 => write!(f, "{}d", ms / DAY),
            ms if ms % HOUR == 0 => write!(f, "{}h", ms / HOUR),
            ms if ms % MINUTE == 0 => write!(f, "{}m", ms / MINUTE),
            ms if ms % SECOND == 0 => write!(f, "{}s", ms / SECOND),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl serde::Serialize for Span {
    /// As text (`"5m"`) for people; as seconds and nanoseconds in binary
    /// formats (the rule cache), which cannot ask what a value looks like.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match s.is_human_readable() {
            true => s.collect_str(self),
            false => serde::Serialize::serialize(&(self.0.as_secs(), self.0.subsec_nanos()), s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    /// From text (`"5m"`); a bare integer is seconds, as TOML users write `0`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a span such as \"90s\", \"5m\", \"1h\" or \"2d\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Span, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Span, E> {
                format!("{v}s").parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Span, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("`{v}` is negative"))),
                }
            }
        }
        if !d.is_human_readable() {
            let (secs, nanos): (u64, u32) = serde::Deserialize::deserialize(d)?;
            if nanos >= 1_000_000_000 {
                return Err(serde::de::Error::custom(format!(
                    "{nanos} nanoseconds is not below a second"
                )));
            }
            return Ok(Span::from_std(Duration::new(secs, nanos)));
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(t: &str) -> Span {
        t.parse().unwrap()
    }

    #[test]
    fn every_unit_reads_and_prints_in_its_largest_exact_unit() {
        assert_eq!(span("90m"), Span::from_secs(5400));
        assert_eq!(span("90m").to_string(), "90m");
        assert_eq!(span("120m").to_string(), "2h");
        assert_eq!(span("1w").to_string(), "7d");
        assert_eq!(span("1500ms").to_string(), "1500ms");
        assert_eq!(span("3000ms").to_string(), "3s");
        assert_eq!(span(" 30s ").to_string(), "30s");
        assert_eq!(span("0").to_string(), "0s");
        assert_eq!(span("0m"), Span::ZERO);
    }

    #[test]
    fn malformed_spans_are_errors_that_quote_the_text() {
        for bad in ["", "m", "5", "5x", "-5m", "5 m", "1.5h", "5M", "ms", "٣m"] {
            let err = bad.parse::<Span>().unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{bad}`")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn spans_longer_than_a_century_are_refused_not_wrapped() {
        assert_eq!(span("36500d"), Span::MAX);
        for long in [
            "36501d",
            "999999999d",
            "99999999999999999999999s",
            "18446744073709551615w",
        ] {
            assert!(
                matches!(long.parse::<Span>(), Err(SpanError::TooLong { .. })),
                "{long}"
            );
        }
    }

    #[test]
    fn arithmetic_saturates_at_the_ends_of_time() {
        let max = DateTime::<Utc>::MAX_UTC;
        let min = DateTime::<Utc>::MIN_UTC;
        assert_eq!(Span::MAX.after(max), max);
        assert_eq!(Span::MAX.before(min), min);
        let t = DateTime::from_timestamp(1_000_000, 0).unwrap();
        assert_eq!(span("1m").after(t).timestamp(), 1_000_060);
        assert_eq!(span("1m").before(t).timestamp(), 999_940);
    }

    #[test]
    fn zero_is_refused_where_a_positive_span_is_needed() {
        assert!(Span::ZERO.nonzero("incident.check_interval").is_err());
        assert_eq!(span("1s").nonzero("x"), Ok(span("1s")));
    }

    #[test]
    fn configuration_reads_text_and_bare_seconds() {
        #[derive(serde::Deserialize)]
        struct C {
            a: Span,
            b: Span,
        }
        let c: C = serde_json::from_str(r#"{"a": "5m", "b": 0}"#).unwrap();
        assert_eq!((c.a, c.b), (span("5m"), Span::ZERO));
        assert!(serde_json::from_str::<C>(r#"{"a": "5y", "b": 0}"#).is_err());
        assert!(serde_json::from_str::<C>(r#"{"a": -1, "b": 0}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn printing_then_reading_gives_the_same_span(ms in 0u64..=36_500 * DAY) {
            let s = Span::from_millis(ms);
            proptest::prop_assert_eq!(s.to_string().parse::<Span>(), Ok(s));
        }

        #[test]
        fn no_text_makes_reading_panic(text in "\\PC{0,24}") {
            let _ = text.parse::<Span>();
        }
    }
}
