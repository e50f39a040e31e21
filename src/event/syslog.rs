//! Syslog lines: RFC 3164 (BSD) and RFC 5424.
//!
//! RFC 3164 timestamps carry no year and no zone: the year is the one that
//! puts the event closest before the reference time (so a December line read
//! in January belongs to last year), and the zone is UTC.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Utc};
use serde_json::{Map, Value};

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A parsed syslog line: fields and the time it states.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyslogLine {
    pub fields: Map<String, Value>,
    pub time: Option<DateTime<Utc>>,
}

/// Parses a syslog line; `reference` resolves RFC 3164's missing year.
pub(crate) fn parse(line: &str, reference: DateTime<Utc>) -> Result<SyslogLine, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (pri, rest) = split_pri(line)?;
    if let Some(after_version) = rest.strip_prefix("1 ") {
        return parse_5424(pri, after_version);
    }
    parse_3164(pri, rest, reference)
}

fn split_pri(line: &str) -> Result<(Option<u8>, &str), String> {
    let Some(after) = line.strip_prefix('<') else {
        return Ok((None, line));
    };
    let end = after.find('>').ok_or("unterminated <PRI>")?;
    let pri: u8 = after[..end]
        .parse()
        .ok()
        .filter(|p| *p <= 191)
        .ok_or("invalid <PRI>")?;
    Ok((Some(pri), &after[end + 1..]))
}

fn insert_pri(fields: &mut Map<String, Value>, pri: Option<u8>) {
    if let Some(pri) = pri {
        fields.insert("facility".into(), FACILITIES[(pri / 8) as usize].into());
        fields.insert("severity".into(), SEVERITIES[(pri % 8) as usize].into());
    }
}

fn parse_3164(pri: Option<u8>, rest: &str, reference: DateTime<Utc>) -> Result<SyslogLine, String> {
    // "Mmm dd hh:mm:ss " is 16 ASCII bytes. The checked split keeps a line
    // whose 15th byte falls inside a multi-byte character from being cut there.
    let bsd_stamp = rest
        .split_at_checked(15)
        .filter(|_| rest.len() >= 16 && rest.as_bytes().get(3) == Some(&b' '));
    let (time, rest) = if let Some((stamp, rest)) = bsd_stamp {
        let time = bsd_time(stamp, reference).ok_or("not a syslog timestamp")?;
        (
            time,
            rest.strip_prefix(' ')
                .ok_or("missing space after timestamp")?,
        )
    } else {
        // rsyslog's high-precision form: an RFC 3339 timestamp in place of the BSD one.
        let (stamp, rest) = rest.split_once(' ').ok_or("not a syslog line")?;
        let time = DateTime::parse_from_rfc3339(stamp)
            .map_err(|_| "not a syslog timestamp")?
            .with_timezone(&Utc);
        (time, rest)
    };
    let (host, rest) = rest.split_once(' ').ok_or("missing host")?;
    if host.is_empty() {
        return Err("missing host".into());
    }
    let mut fields = Map::new();
    fields.insert("timestamp".into(), time.to_rfc3339().into());
    fields.insert("host".into(), host.into());
    insert_pri(&mut fields, pri);
    let (program, pid, message) = split_tag(rest);
    if let Some(program) = program {
        fields.insert("program".into(), program.into());
    }
    if let Some(pid) = pid {
        fields.insert("pid".into(), pid_value(pid));
    }
    fields.insert("message".into(), message.into());
    Ok(SyslogLine {
        fields,
        time: Some(time),
    })
}

fn pid_value(pid: &str) -> Value {
    pid.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| pid.into())
}

/// `program[pid]: message` -> parts. A line without a tag is all message.
fn split_tag(rest: &str) -> (Option<&str>, Option<&str>, &str) {
    let Some(colon) = rest
        .find(": ")
        .or_else(|| rest.strip_suffix(':').map(|s| s.len()))
    else {
        return (None, None, rest);
    };
    let tag = &rest[..colon];
    if tag.is_empty() || tag.contains(' ') {
        return (None, None, rest);
    }
    let message = rest.get(colon + 2..).unwrap_or("");
    match tag.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((program, pid)) => (Some(program), Some(pid), message),
        None => (Some(tag), None, message),
    }
}

fn bsd_time(stamp: &str, reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // "Dec 10 06:55:46" (day may be space-padded: "Dec  1 06:55:46").
    let normalized = stamp.split_whitespace().collect::<Vec<_>>().join(" ");
    let year = reference.year();
    let candidate = |y: i32| {
        NaiveDateTime::parse_from_str(&format!("{y} {normalized}"), "%Y %b %d %H:%M:%S")
            .ok()
            .map(|n| n.and_utc())
    };
    // Feb 29 only exists in leap years: try earlier years if needed.
    let this_year = candidate(year).or_else(|| candidate(year - 1))?;
    // A time more than a day ahead of the reference is from last year.
    if this_year > reference + Duration::days(1) {
        candidate(this_year.year() - 1).or(Some(this_year))
    } else {
        Some(this_year)
    }
}

fn nil(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

fn parse_5424(pri: Option<u8>, rest: &str) -> Result<SyslogLine, String> {
    let mut parts = rest.splitn(5, ' ');
    let mut next = |what: &str| {
        parts
            .next()
            .ok_or_else(|| format!("RFC 5424: missing {what}"))
    };
    let stamp = next("timestamp")?;
    let host = next("hostname")?;
    let app = next("app-name")?;
    let procid = next("procid")?;
    let tail = next("msgid")?;
    let (msgid, after_msgid) = tail.split_once(' ').unwrap_or((tail, "-"));
    let time = match nil(stamp) {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| format!("RFC 5424: invalid timestamp `{s}`"))?
                .with_timezone(&Utc),
        ),
    };
    let (sd, message) = split_structured_data(after_msgid)?;
    let mut fields = Map::new();
    if let Some(t) = time {
        fields.insert("timestamp".into(), t.to_rfc3339().into());
    }
    insert_pri(&mut fields, pri);
    for (key, value) in [
        ("host", nil(host)),
        ("program", nil(app)),
        ("msgid", nil(msgid)),
    ] {
        if let Some(v) = value {
            fields.insert(key.into(), v.into());
        }
    }
    if let Some(p) = nil(procid) {
        fields.insert("pid".into(), pid_value(p));
    }
    if !sd.is_empty() {
        fields.insert("structured_data".into(), Value::Object(sd));
    }
    // A UTF-8 byte order mark may start the message.
    fields.insert(
        "message".into(),
        message.trim_start_matches('\u{feff}').into(),
    );
    Ok(SyslogLine { fields, time })
}

/// `[id k="v" ...][id2 ...] message` -> ({id: {k: v}}, message).
fn split_structured_data(s: &str) -> Result<(Map<String, Value>, &str), String> {
    let mut sd = Map::new();
    if let Some(rest) = s.strip_prefix("- ") {
        return Ok((sd, rest));
    }
    if s == "-" {
        return Ok((sd, ""));
    }
    let mut rest = s;
    while let Some(body) = rest.strip_prefix('[') {
        let (element, after) = parse_sd_element(body)?;
        let (id, params) = element;
        sd.insert(id, Value::Object(params));
        rest = after;
    }
    if sd.is_empty() {
        return Err("RFC 5424: invalid structured data".into());
    }
    Ok((sd, rest.strip_prefix(' ').unwrap_or(rest)))
}

type SdElement = (String, Map<String, Value>);

fn parse_sd_element(body: &str) -> Result<(SdElement, &str), String> {
    let id_end = body
        .find([' ', ']'])
        .ok_or("RFC 5424: unterminated structured data")?;
    let id = body[..id_end].to_string();
    let mut params = Map::new();
    let mut rest = &body[id_end..];
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(after) = rest.strip_prefix(']') {
            return Ok(((id, params), after));
        }
        let eq = rest
            .find('=')
            .ok_or("RFC 5424: structured data parameter without `=`")?;
        let name = rest[..eq].to_string();
        let after_eq = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("RFC 5424: structured data value must be quoted")?;
        let mut value = String::new();
        let mut chars = after_eq.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        if !matches!(n, '"' | '\\' | ']') {
                            value.push('\\');
                        }
                        value.push(n);
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or("RFC 5424: unterminated structured data value")?;
        params.insert(name, value.into());
        rest = &after_eq[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .map(|n| n.and_utc())
            .unwrap()
    }

    /// A line that must parse, read with noon of `date` as the reference.
    fn parsed(line: &str, (y, m, d): (i32, u32, u32)) -> SyslogLine {
        parse(line, at(y, m, d)).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn rfc3164_lines_give_host_program_pid_and_message() {
        let l = parsed(
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            (2026, 11, 23),
        );
        assert_eq!(l.fields["host"], "LabSZ");
        assert_eq!(l.fields["program"], "sshd");
        assert_eq!(l.fields["pid"], 24200);
        assert_eq!(
            l.fields["message"],
            "Invalid user webmaster from 173.234.31.186"
        );
        // December is after the November reference: last year.
        assert_eq!(l.time.unwrap().to_rfc3339(), "2025-12-10T06:55:46+00:00");
    }

    #[test]
    fn rfc3164_year_is_the_reference_year_when_not_in_the_future() {
        let l = parsed("Nov 20 08:14:02 bastion1 CRON[1]: ok", (2026, 11, 23));
        assert_eq!(l.time.unwrap().to_rfc3339(), "2026-11-20T08:14:02+00:00");
        let l = parsed("Jan  3 08:14:02 h su: x", (2027, 1, 5));
        assert_eq!(l.time.unwrap().to_rfc3339(), "2027-01-03T08:14:02+00:00");
    }

    #[test]
    fn programs_with_parentheses_and_pri_are_understood() {
        let l = parsed("<38>Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=1.2.3.4", (2026, 7, 1));
        assert_eq!(l.fields["program"], "sshd(pam_unix)");
        assert_eq!(l.fields["facility"], "auth");
        assert_eq!(l.fields["severity"], "info");
    }

    #[test]
    fn rfc5424_lines_with_structured_data_parse() {
        let l = parsed(
            r#"<165>1 2026-11-20T08:15:00.123Z bastion1 sshd 4121 ID47 [exampleSDID@32473 iut="3" eventSource="App\"x"][b@1 k="v"] Failed password for root"#,
            (2026, 11, 23),
        );
        assert_eq!(l.fields["program"], "sshd");
        assert_eq!(l.fields["pid"], 4121);
        assert_eq!(l.fields["msgid"], "ID47");
        assert_eq!(l.fields["facility"], "local4");
        assert_eq!(l.fields["severity"], "notice");
        assert_eq!(
            l.fields["structured_data"]["exampleSDID@32473"]["eventSource"],
            "App\"x"
        );
        assert_eq!(l.fields["message"], "Failed password for root");
        assert_eq!(
            l.time.unwrap().to_rfc3339(),
            "2026-11-20T08:15:00.123+00:00"
        );
    }

    /// A line without a tag keeps everything as message; RFC 5424 nil
    /// values (`-`) are left out.
    #[test]
    fn what_a_line_does_not_say_is_left_out() {
        for (line, absent, message) in [
            (
                "Jun 14 15:16:01 combo kernel message here",
                "program",
                "kernel message here",
            ),
            (
                "<38>1 2026-11-20T08:15:00Z - - - - - hello",
                "host",
                "hello",
            ),
        ] {
            let l = parsed(line, (2026, 11, 23));
            assert!(l.fields.get(absent).is_none(), "{line}");
            assert_eq!(l.fields["message"], message, "{line}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for line in [
            "",
            "hello",
            "<999>x",
            "<1",
            "Xyz 10 06:55:46 h p: m",
            "<38>1 notatime h a p m - x",
            "<38>1 2026-11-20T08:15:00Z h a p m [unterminated",
        ] {
            assert!(parse(line, at(2026, 1, 1)).is_err(), "{line:?}");
        }
    }

    #[test]
    fn a_multibyte_character_across_the_bsd_timestamp_width_is_not_cut() {
        // "The naïve café is open": byte 15 falls inside "é".
        let line = "The na\u{ef}ve caf\u{e9} is open";
        assert!(parse(line, at(2026, 1, 1)).is_err());
        for prefix in ["", "<13>", "<13>1 "] {
            for cut in 0..=20 {
                let text = format!("{prefix}{}\u{e9}\u{e9}\u{e9} x y: z", "a".repeat(cut));
                let _ = parse(&text, at(2026, 1, 1));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn no_line_makes_the_parser_panic(line in "\\PC{0,64}", reference in 0i64..4_000_000_000) {
            let reference = DateTime::from_timestamp(reference, 0).unwrap_or_default();
            let _ = parse(&line, reference);
        }

        #[test]
        fn syslog_shaped_lines_with_any_characters_never_panic(
            pri in proptest::option::of(0u16..300),
            body in "[a-zA-Z0-9 :\\[\\]=\"\u{e9}\u{2028}-]{0,40}",
        ) {
            let line = match pri {
                Some(p) => format!("<{p}>Jan  1 00:00:00 {body}"),
                None => format!("Feb 29 12:00:00 {body}"),
            };
            let _ = parse(&line, at(2026, 3, 1));
        }
    }
}
