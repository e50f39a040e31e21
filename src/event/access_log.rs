//! Apache/nginx access logs (common and combined format) -> Sigma webserver fields.

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Servers that log raw quotes inside the request (`"GET" /x HTTP/1.0"`) break
/// the strict form; this one takes the request up to the first `" status bytes`.
fn lenient_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "(.*?)" (\d{3}|-) (\d+|-)(?: "(.*?)" "(.*)")?$"#,
        )
        .unwrap_or_else(|e| panic!("lenient access log regex is valid: {e}"))
    })
}

fn line_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // host ident user [time] "request" status bytes ["referer" "user-agent"]
        // Quoted parts may contain backslash-escaped quotes.
        Regex::new(
            r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}|-) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?"#,
        )
        .unwrap_or_else(|e| panic!("access log regex is valid: {e}"))
    })
}

/// A parsed access log line: fields and the request time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessLine {
    pub fields: Map<String, Value>,
    pub time: DateTime<Utc>,
}

/// Parses one line of common or combined log format.
pub(crate) fn parse(line: &str) -> Result<AccessLine, String> {
    let line = line.trim_end();
    let caps = line_regex()
        .captures(line)
        .or_else(|| lenient_regex().captures(line))
        .ok_or("not a common/combined access log line")?;
    let get = |i| caps.get(i).map_or("", |m| m.as_str());
    let time = DateTime::parse_from_str(get(4), "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|_| format!("invalid access log time `{}`", get(4)))?
        .with_timezone(&Utc);
    let mut f = Map::new();
    f.insert("c-ip".into(), get(1).into());
    if get(3) != "-" {
        f.insert("cs-username".into(), get(3).into());
    }
    let request = unescape(get(5));
    // METHOD URI VERSION, where attacks put spaces into the URI: the version
    // is the last word only if it looks like one.
    let (method, rest) = request.split_once(' ').unwrap_or((request.as_str(), ""));
    let (uri, version) = match rest.rsplit_once(' ') {
        Some((uri, v)) if v.starts_with("HTTP/") => (uri, Some(v)),
        _ => (rest, None),
    };
    match (Some(method), Some(uri), version) {
        (Some(method), Some(uri), version) if !method.is_empty() && !uri.is_empty() => {
            f.insert("cs-method".into(), method.into());
            let (stem, query) = match uri.split_once('?') {
                Some((s, q)) => (s, Some(q)),
                None => (uri, None),
            };
            f.insert("cs-uri-stem".into(), stem.into());
            if let Some(q) = query {
                f.insert("cs-uri-query".into(), q.into());
            }
            if let Some(v) = version {
                f.insert("cs-version".into(), v.into());
            }
        }
        // Malformed requests (raw probes, "-") keep the whole request text where URI rules look.
        _ => {
            if request != "-" && !request.is_empty() {
                f.insert("cs-uri-stem".into(), request.clone().into());
            }
        }
    }
    if let Ok(status) = get(6).parse::<u64>() {
        f.insert("sc-status".into(), status.into());
    }
    if let Ok(bytes) = get(7).parse::<u64>() {
        f.insert("sc-bytes".into(), bytes.into());
    }
    if caps.get(8).is_some() {
        let referer = unescape(get(8));
        if referer != "-" {
            f.insert("cs-referer".into(), referer.into());
        }
        let agent = unescape(get(9));
        if agent != "-" {
            f.insert("cs-user-agent".into(), agent.into());
        }
    }
    f.insert("timestamp".into(), time.to_rfc3339().into());
    Ok(AccessLine { fields: f, time })
}

/// Apache escapes `"` and `\` in logged strings with a backslash.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_lines_map_to_sigma_webserver_fields() {
        let l = parse(r#"192.168.4.25 - bob [22/Dec/2016:16:30:52 +0300] "POST /admin/index.php?id=1%27 HTTP/1.1" 303 382 "http://x/DVWA" "Mozilla/5.0 (X)""#).unwrap();
        let f = &l.fields;
        assert_eq!(f["c-ip"], "192.168.4.25");
        assert_eq!(f["cs-username"], "bob");
        assert_eq!(f["cs-method"], "POST");
        assert_eq!(f["cs-uri-stem"], "/admin/index.php");
        assert_eq!(f["cs-uri-query"], "id=1%27");
        assert_eq!(f["cs-version"], "HTTP/1.1");
        assert_eq!(f["sc-status"], 303);
        assert_eq!(f["sc-bytes"], 382);
        assert_eq!(f["cs-referer"], "http://x/DVWA");
        assert_eq!(f["cs-user-agent"], "Mozilla/5.0 (X)");
        assert_eq!(l.time.to_rfc3339(), "2016-12-22T13:30:52+00:00");
    }

    #[test]
    fn common_format_and_dashes_leave_fields_out() {
        let l =
            parse(r#"66.1.1.1 - - [21/Apr/2004:10:56:07 -0400] "GET / HTTP/1.1" 200 -"#).unwrap();
        assert!(l.fields.get("cs-username").is_none());
        assert!(l.fields.get("sc-bytes").is_none());
        assert!(l.fields.get("cs-user-agent").is_none());
        assert!(l.fields.get("cs-uri-query").is_none());
    }

    #[test]
    fn escaped_quotes_and_malformed_requests_are_kept() {
        let l = parse(
            r#"1.2.3.4 - - [21/Apr/2004:10:56:07 -0400] "\x16\x03" 400 226 "-" "say \"hi\"""#,
        )
        .unwrap();
        assert_eq!(l.fields["cs-uri-stem"], "\\x16\\x03");
        assert!(l.fields.get("cs-method").is_none());
        assert_eq!(l.fields["cs-user-agent"], "say \"hi\"");
    }

    #[test]
    fn spaces_inside_the_uri_stay_in_the_uri() {
        let l = parse(r#"1.2.3.4 - - [21/Apr/2004:10:56:07 -0400] "GET /site/' UNION ALL SELECT 1 HTTP/1.0" 200 1"#).unwrap();
        assert_eq!(l.fields["cs-uri-stem"], "/site/' UNION ALL SELECT 1");
        assert_eq!(l.fields["cs-version"], "HTTP/1.0");
        let l = parse(r#"1.2.3.4 - - [21/Apr/2004:10:56:07 -0400] "GET /a b" 200 1"#).unwrap();
        assert_eq!(l.fields["cs-uri-stem"], "/a b");
        assert!(l.fields.get("cs-version").is_none());
    }

    #[test]
    fn raw_quotes_inside_the_request_are_tolerated() {
        let l = parse(r#"68.49.152.86 - - [22/Apr/2004:11:55:13 -0400] "GET" /hostadmin/?page=' HTTP/1.0" 501 345 "-" "Mozilla/4.75 (Nikto/1.32 )""#).unwrap();
        assert_eq!(l.fields["sc-status"], 501);
        assert_eq!(l.fields["cs-uri-stem"], "/hostadmin/");
        assert_eq!(l.fields["cs-uri-query"], "page='");
        assert_eq!(l.fields["cs-user-agent"], "Mozilla/4.75 (Nikto/1.32 )");
    }

    #[test]
    fn non_access_lines_are_errors() {
        assert!(parse("Dec 10 06:55:46 LabSZ sshd[24200]: x").is_err());
        assert!(parse(r#"1.2.3.4 - - [bad time] "GET / HTTP/1.1" 200 1"#).is_err());
    }
}
