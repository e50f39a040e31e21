//! Sigma value modifiers (`field|contains|all`), as named in the modifiers appendix.

use std::fmt;
use std::str::FromStr;

/// One value modifier. Transformations apply in the order written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Modifier {
    /// `contains`: the value may appear anywhere in the field.
    Contains,
    /// `startswith`: the field begins with the value.
    StartsWith,
    /// `endswith`: the field ends with the value.
    EndsWith,
    /// `all`: every value of the list must match, not any one.
    All,
    /// `exists`: `true` or `false`, whether the event has the field at all.
    Exists,
    /// `cased`: compare case-sensitively (the default is case-insensitive).
    Cased,
    /// `neq`: the field exists and matches none of the values.
    Neq,
    /// `windash`: a dash that starts a command-line flag also matches `/` and the
    /// Unicode dashes.
    Windash,
    /// `re`: the value is a regular expression.
    Re,
    /// `re` sub-modifier `i`: case-insensitive.
    ReIgnoreCase,
    /// `re` sub-modifier `m`: `^`/`$` match at line breaks.
    ReMultiLine,
    /// `re` sub-modifier `s`: `.` matches newlines.
    ReDotAll,
    /// `base64`: match the Base64 encoding of the value.
    Base64,
    /// `base64offset`: match the value Base64-encoded at any of the three byte offsets.
    Base64Offset,
    /// `utf16le`: encode the value as UTF-16 little-endian before later steps.
    Utf16le,
    /// `utf16be`: encode the value as UTF-16 big-endian before later steps.
    Utf16be,
    /// `utf16`: UTF-16 little-endian with a byte order mark.
    Utf16,
    /// `wide`: the same as `utf16le`.
    Wide,
    /// `cidr`: the field is an IP address inside the given network.
    Cidr,
    /// `lt`: the field is a number less than the value.
    Lt,
    /// `lte`: the field is a number less than or equal to the value.
    Lte,
    /// `gt`: the field is a number greater than the value.
    Gt,
    /// `gte`: the field is a number greater than or equal to the value.
    Gte,
    /// `minute`: compare the minute (0-59) of a timestamp field.
    Minute,
    /// `hour`: compare the hour (0-23) of a timestamp field.
    Hour,
    /// `day`: compare the day of the month of a timestamp field.
    Day,
    /// `week`: compare the ISO week number of a timestamp field.
    Week,
    /// `month`: compare the month (1-12) of a timestamp field.
    Month,
    /// `year`: compare the year of a timestamp field.
    Year,
    /// `fieldref`: the value names another field whose content to compare with.
    FieldRef,
    /// `expand`: replace `%name%` placeholders with their configured values.
    Expand,
}

impl Modifier {
    /// The modifier as written in a rule (`startswith`, `re`, `i`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Modifier::Contains => "contains",
            Modifier::StartsWith => "startswith",
            Modifier::EndsWith => "endswith",
            Modifier::All => "all",
            Modifier::Exists => "exists",
            Modifier::Cased => "cased",
            Modifier::Neq => "neq",
            Modifier::Windash => "windash",
            Modifier::Re => "re",
            Modifier::ReIgnoreCase => "i",
            Modifier::ReMultiLine => "m",
            Modifier::ReDotAll => "s",
            Modifier::Base64 => "base64",
            Modifier::Base64Offset => "base64offset",
            Modifier::Utf16le => "utf16le",
            Modifier::Utf16be => "utf16be",
            Modifier::Utf16 => "utf16",
            Modifier::Wide => "wide",
            Modifier::Cidr => "cidr",
            Modifier::Lt => "lt",
            Modifier::Lte => "lte",
            Modifier::Gt => "gt",
            Modifier::Gte => "gte",
            Modifier::Minute => "minute",
            Modifier::Hour => "hour",
            Modifier::Day => "day",
            Modifier::Week => "week",
            Modifier::Month => "month",
            Modifier::Year => "year",
            Modifier::FieldRef => "fieldref",
            Modifier::Expand => "expand",
        }
    }
}

impl fmt::Display for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Modifier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "contains" => Modifier::Contains,
            "startswith" => Modifier::StartsWith,
            "endswith" => Modifier::EndsWith,
            "all" => Modifier::All,
            "exists" => Modifier::Exists,
            "cased" => Modifier::Cased,
            "neq" => Modifier::Neq,
            "windash" => Modifier::Windash,
            "re" => Modifier::Re,
            "i" => Modifier::ReIgnoreCase,
            "m" => Modifier::ReMultiLine,
            "s" => Modifier::ReDotAll,
            "base64" => Modifier::Base64,
            "base64offset" => Modifier::Base64Offset,
            "utf16le" => Modifier::Utf16le,
            "utf16be" => Modifier::Utf16be,
            "utf16" => Modifier::Utf16,
            "wide" => Modifier::Wide,
            "cidr" => Modifier::Cidr,
            "lt" => Modifier::Lt,
            "lte" => Modifier::Lte,
            "gt" => Modifier::Gt,
            "gte" => Modifier::Gte,
            "minute" => Modifier::Minute,
            "hour" => Modifier::Hour,
            "day" => Modifier::Day,
            "week" => Modifier::Week,
            "month" => Modifier::Month,
            "year" => Modifier::Year,
            "fieldref" => Modifier::FieldRef,
            "expand" => Modifier::Expand,
            other => return Err(format!("unknown value modifier `{other}`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_modifier_name_round_trips() {
        let names = [
            "contains",
            "startswith",
            "endswith",
            "all",
            "exists",
            "cased",
            "neq",
            "windash",
            "re",
            "i",
            "m",
            "s",
            "base64",
            "base64offset",
            "utf16le",
            "utf16be",
            "utf16",
            "wide",
            "cidr",
            "lt",
            "lte",
            "gt",
            "gte",
            "minute",
            "hour",
            "day",
            "week",
            "month",
            "year",
            "fieldref",
            "expand",
        ];
        for name in names {
            let m: Modifier = name.parse().unwrap();
            assert_eq!(m.name(), name);
        }
    }

    #[test]
    fn unknown_modifiers_are_named_in_the_error() {
        let err = "containz".parse::<Modifier>().unwrap_err();
        assert!(err.contains("containz"), "{err}");
    }
}
