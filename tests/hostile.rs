//! Hostile and merely unusual input, through `scan`, `run` and the HTTP
//! endpoints. Nothing may panic, hang or lose a line: every record read is
//! an event, a dead letter or a blank line, for every input, even when a
//! later input fails; every fault is reported, and a failed stage is loud.

mod common;

use common::tocsin;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What a finished process printed, and its peak resident memory.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_rss_kib: u64,
}

/// The high-water mark of a process's resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Waits for `child` within `timeout` (a hang fails the test instead of
/// hanging it), feeding `input` to its stdin and watching its memory.
fn finish(mut child: Child, input: Vec<u8>, timeout: Duration) -> Finished {
    let pid = child.id();
    let writer = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("tocsin hung: no exit within {timeout:?}\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Finished {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
        peak_rss_kib: peak,
    }
}

/// `tocsin scan --rules rules/ ARGS` with `input` on stdin.
fn scan(args: &[&str], input: &[u8]) -> Finished {
    scan_with(args, input, &[])
}

fn scan_with(args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Finished {
    let mut cmd = tocsin();
    cmd.args(["scan", "--rules", "rules/"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tocsin starts");
    finish(child, input.to_vec(), Duration::from_secs(120))
}

/// The per-input counts of a scan's summary: records, events, dead letters, blank.
fn inputs(stderr: &str) -> BTreeMap<String, [u64; 4]> {
    let re = regex::Regex::new(
        r"tocsin scan: input (.+): (\d+) records, (\d+) events, (\d+) dead-lettered, (\d+) blank",
    )
    .unwrap();
    re.captures_iter(stderr)
        .map(|c| {
            let n = |i: usize| c[i].parse::<u64>().unwrap();
            (c[1].to_string(), [n(2), n(3), n(4), n(5)])
        })
        .collect()
}

/// No panic escaped, every input's records are accounted for, and there
/// are as many as `lines`.
fn assert_conserved(f: &Finished, input: &str, lines: u64) {
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
    let counts = inputs(&f.stderr);
    let [records, events, dead, blank] = *counts
        .get(input)
        .unwrap_or_else(|| panic!("no summary for {input}:\n{}", f.stderr));
    assert_eq!(records, lines, "records read of {input}");
    assert_eq!(
        records,
        events + dead + blank,
        "{input}: {:?}",
        counts[input]
    );
}

/// Lines of the bundled samples, every format.
fn sample_lines() -> Vec<String> {
    [
        "auth.log",
        "access.log",
        "syslog-rfc5424.log",
        "windows.jsonl",
    ]
    .iter()
    .flat_map(|f| {
        std::fs::read_to_string(root().join("samples").join(f))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(12)
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .collect()
}

#[test]
fn malformed_utf8_at_every_offset_is_dead_lettered_and_every_line_counted() {
    let mut input = Vec::new();
    let mut lines = 0;
    let mut broken = 0;
    for line in sample_lines().iter().take(20) {
        for at in 0..=line.len() {
            // A lone continuation byte, and a multi-byte character cut short.
            for bad in [&b"\x80"[..], &b"\xe2\x82"[..], &b"\xff\xfe"[..]] {
                input.extend_from_slice(&line.as_bytes()[..at]);
                input.extend_from_slice(bad);
                input.extend_from_slice(&line.as_bytes()[at..]);
                input.push(b'\n');
                lines += 1;
                broken += 1;
            }
        }
    }
    input.extend_from_slice(b"\n   \n");
    lines += 2;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let f = scan(&["--dead-letters", dead.to_str().unwrap()], &input);
    // Not one line parses: the documented exit code 65, after the summary.
    assert_eq!(f.code, Some(65), "{}", f.stderr);
    assert_conserved(&f, "stdin", lines);
    let counts = inputs(&f.stderr)["stdin"];
    assert_eq!(
        counts[2], broken,
        "every line with invalid UTF-8 is dead-lettered"
    );
    let letters = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(letters.lines().count() as u64, broken);
    assert!(letters.lines().all(|l| l.contains("not valid UTF-8")));
    assert!(
        letters.contains("payload_base64"),
        "the exact bytes are kept"
    );
}

#[test]
fn multibyte_characters_at_every_offset_never_panic_any_parser() {
    let mut input = String::from("The na\u{ef}ve caf\u{e9} is open\n");
    let mut lines = 1;
    for line in sample_lines() {
        for (at, _) in line.char_indices() {
            for c in ["\u{e9}", "\u{20ac}", "\u{1f600}", "\u{202e}"] {
                input.push_str(&line[..at]);
                input.push_str(c);
                input.push_str(&line[at..]);
                input.push('\n');
                lines += 1;
            }
        }
    }
    let f = scan(&[], input.as_bytes());
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_conserved(&f, "stdin", lines);
}

#[test]
fn extreme_numbers_and_times_are_events_or_dead_letters_never_crashes() {
    let stamps = [
        "\"0000-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59.999999999Z\"",
        "\"+262142-12-31T23:59:59Z\"",
        "\"-262143-01-01T00:00:00Z\"",
        "\"1970-01-01T00:00:00Z\"",
        "1e308",
        "-1e308",
        "1e999",
        "18446744073709551616",
        "-9223372036854775808",
        "9999999999999",
        "\"NaN\"",
        "\"\"",
        "null",
        "[]",
        "{}",
    ];
    let mut input = String::new();
    for stamp in stamps {
        for field in ["@timestamp", "timestamp", "UtcTime", "ts", "EventTime"] {
            input.push_str(&format!(
                "{{\"{field}\": {stamp}, \"EventID\": 4625, \"Channel\": \"Security\", \"TargetUserName\": \"x\", \"IpAddress\": \"10.0.0.1\"}}\n"
            ));
        }
    }
    // The year a BSD syslog line gets, at the ends of the calendar.
    input.push_str("Feb 29 23:59:59 h sshd[1]: Invalid user x from 1.2.3.4\n");
    input.push_str("Dec 31 23:59:60 h sshd[1]: Invalid user x from 1.2.3.4\n");
    input.push_str("<191>1 9999-12-31T23:59:59Z h a 1 - - x\n");
    input.push_str("1.2.3.4 - - [31/Dec/9999:23:59:59 -2359] \"GET / HTTP/1.1\" 200 1\n");
    input.push_str("1.2.3.4 - - [01/Jan/0000:00:00:00 +2359] \"GET / HTTP/1.1\" 200 1\n");
    let lines = input.lines().count() as u64;
    // Correlation windows and lateness at their largest, over those times.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("corr.yml"),
        "title: failures\nname: failures\nid: 11111111-2222-4333-8444-555555555555\nlogsource: {product: windows, service: security}\ndetection:\n  s: {EventID: 4625}\n  condition: s\n---\ntitle: many failures\nid: 11111111-2222-4333-8444-555555555556\ncorrelation:\n  type: event_count\n  rules: [failures]\n  group-by: [TargetUserName]\n  timespan: 36500d\n  condition: {gte: 2}\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[correlation]\nallowed_lateness = \"36500d\"\n").unwrap();
    let f = scan(
        &[
            "--rules",
            dir.path().to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        input.as_bytes(),
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_conserved(&f, "stdin", lines);
    assert!(f.stdout.contains("many failures"), "{}", f.stdout);
}

#[test]
fn spans_beyond_a_century_are_refused_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("corr.yml");
    std::fs::write(
        &rule,
        "title: c\nid: 11111111-2222-4333-8444-555555555557\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 999999999d\n  condition: {gte: 2}\n",
    )
    .unwrap();
    let out = tocsin()
        .args(["rules", "check"])
        .arg(&rule)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("{}:6:13: `timespan`", rule.display())),
        "{text}"
    );
    for (key, value) in [
        ("correlation.allowed_lateness", "999999999d"),
        ("correlation.idle_source_timeout", "0s"),
        ("incident.check_interval", "0"),
        ("anomaly.save_interval", "0ms"),
        ("delivery.commit_interval", "0s"),
    ] {
        let (section, field) = key.split_once('.').unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, format!("[{section}]\n{field} = \"{value}\"\n")).unwrap();
        let out = tocsin()
            .args(["scan", "--config"])
            .arg(&config)
            .arg("samples/auth.log")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(err.contains(field), "{key}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused_with_a_position_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let head = "title: t\nid: ID\nlogsource: {product: linux}\ndetection:\n  sel: {a: 1}\n";
    let files = [
        (
            "parens.yml",
            format!(
                "{head}  condition: {}sel{}\n",
                "(".repeat(20_000),
                ")".repeat(20_000)
            ),
        ),
        (
            "nots.yml",
            format!("{head}  condition: {}sel\n", "not ".repeat(30_000)),
        ),
        (
            "yaml.yml",
            format!("{head}  condition: sel\nx: {}\n", "[".repeat(100_000)),
        ),
        (
            "block.yml",
            format!("{head}  condition: sel\nx:\n  {}y\n", "- ".repeat(100_000)),
        ),
        ("bomb.yml", {
            let mut t = format!("{head}  condition: sel\na0: &a0 [x, x, x, x, x, x, x, x, x]\n");
            for i in 1..12 {
                t.push_str(&format!(
                    "a{i}: &a{i} [{}]\n",
                    vec![format!("*a{}", i - 1); 9].join(", ")
                ));
            }
            t
        }),
    ];
    for (i, (name, text)) in files.iter().enumerate() {
        let id = format!("00000000-0000-4000-8000-00000000000{i}");
        std::fs::write(dir.path().join(name), text.replace("ID", &id)).unwrap();
    }
    let started = Instant::now();
    let child = tocsin()
        .args(["rules", "check"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let f = finish(child, Vec::new(), Duration::from_secs(60));
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        f.peak_rss_kib < 512 * 1024,
        "peak RSS {} KiB",
        f.peak_rss_kib
    );
    let position = regex::Regex::new(r"\.yml:\d+:\d+: ").unwrap();
    for (name, what) in [
        ("parens.yml", "rule_limits.max_condition_depth"),
        ("nots.yml", "rule_limits.max_condition_depth"),
        ("yaml.yml", "rule_limits.max_yaml_depth"),
        ("block.yml", "rule_limits.max_yaml_depth"),
        ("bomb.yml", "rule_limits.max_yaml_nodes"),
    ] {
        let line = f
            .stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not reported:\n{}", f.stdout));
        assert!(line.contains(what), "{line}");
        assert!(position.is_match(line), "file:line:col: {line}");
    }
    // A deeply nested JSON event is a dead letter.
    let event = format!("{}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let f = scan(&[], format!("{{\"a\": {event}").as_bytes());
    assert_eq!(
        f.code,
        Some(65),
        "the only record did not parse: {}",
        f.stderr
    );
    assert_conserved(&f, "stdin", 1);
}

/// Writes `n` bytes of `fill` with no newline, gzip-compressed.
fn gzip_one_line(path: &Path, fill: u8, n: usize) {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let chunk = vec![fill; 1 << 20];
    for _ in 0..n / chunk.len() {
        gz.write_all(&chunk).unwrap();
    }
    gz.write_all(
        b"\nDec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n",
    )
    .unwrap();
    gz.finish().unwrap();
}

#[test]
fn oversize_lines_are_dead_lettered_with_their_size_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.log.gz");
    gzip_one_line(&bomb, b'a', 400 << 20);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 4 << 20);
    let plain = dir.path().join("long.log");
    let mut long = vec![b'b'; 100 << 20];
    long.extend_from_slice(
        b"\nDec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n",
    );
    std::fs::write(&plain, long).unwrap();
    let dead = dir.path().join("dead.jsonl");
    let f = scan(
        &[
            "--dead-letters",
            dead.to_str().unwrap(),
            bomb.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_conserved(&f, bomb.to_str().unwrap(), 2);
    assert_conserved(&f, plain.to_str().unwrap(), 2);
    assert_eq!(
        f.stdout.lines().count(),
        2,
        "the lines after the long ones alert"
    );
    let letters = std::fs::read_to_string(&dead).unwrap();
    assert!(
        letters.contains("record of 419430400 bytes is longer than engine.max_record_bytes"),
        "{letters}"
    );
    assert!(letters.contains("record of 104857600 bytes"), "{letters}");
    assert!(letters.contains("\"sha256\""), "{letters}");
    // Neither line is ever held whole (the default limit is 1 MiB).
    assert!(
        f.peak_rss_kib < 200 * 1024,
        "peak RSS {} KiB",
        f.peak_rss_kib
    );
}

#[test]
fn control_and_bidi_characters_in_event_data_cannot_forge_or_disguise_an_alert_line() {
    let input = "Nov 20 08:14:03 bastion1 sshd[4121]: Invalid user ad\u{202e}nim\u{1b}[31m\r\u{2028}SIEM ALERT -- fake\u{200b} from 203.0.113.77 port 41800\n";
    let f = scan(&[], input.as_bytes());
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let lines: Vec<&str> = f.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", f.stdout);
    let line = lines[0];
    assert_eq!(
        line.matches("SIEM ALERT -- ").count(),
        2,
        "the fake one only as text: {line}"
    );
    assert!(line.starts_with("SIEM ALERT -- STATIC RULE - ["), "{line}");
    for escaped in ["\\u{202e}", "\\u{001b}", "\\r", "\\u{2028}", "\\u{200b}"] {
        assert!(line.contains(escaped), "{escaped} in {line}");
    }
    assert!(!line
        .chars()
        .any(|c| c.is_control() || ('\u{2000}'..='\u{206f}').contains(&c)));
}

#[test]
fn a_failing_later_input_keeps_the_alerts_and_counts_of_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = root().join("samples/auth.log");
    let good_lines = std::fs::read_to_string(&good).unwrap().lines().count() as u64;
    let alone = tocsin()
        .args(["scan", "--rules", "rules/", "--workers", "1"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(alone.status.success());
    // A gzip stream cut in the middle, a folder, and a path that is not there.
    let cut = dir.path().join("truncated.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..5000 {
        writeln!(
            gz,
            "Dec 10 06:55:46 LabSZ sshd[{i}]: Invalid user u{i} from 10.0.0.1"
        )
        .unwrap();
    }
    let whole = gz.finish().unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let folder = dir.path().join("folder.gz");
    std::fs::create_dir(&folder).unwrap();
    let f = scan(
        &[
            "--workers",
            "1",
            good.to_str().unwrap(),
            cut.to_str().unwrap(),
            folder.to_str().unwrap(),
            "no/such/file.log",
        ],
        b"",
    );
    assert_eq!(f.code, Some(2), "{}", f.stderr);
    let alone = String::from_utf8(alone.stdout).unwrap();
    assert!(
        f.stdout.starts_with(&alone),
        "good.log's alerts come out first and whole"
    );
    assert!(
        f.stdout.len() > alone.len(),
        "the truncated file's lines before the cut alert"
    );
    assert_conserved(&f, good.to_str().unwrap(), good_lines);
    let counts = inputs(&f.stderr);
    let [records, events, dead, _] = counts[cut.to_str().unwrap()];
    assert!(records > 100 && records < 5000, "{records}");
    assert!(dead <= 1, "at most the line the cut fell in");
    assert_eq!(records, events + dead);
    for named in [
        cut.to_str().unwrap(),
        folder.to_str().unwrap(),
        "no/such/file.log",
    ] {
        assert!(
            f.stderr
                .lines()
                .any(|l| l.starts_with("tocsin: error: input") && l.contains(named)),
            "{named} not named:\n{}",
            f.stderr
        );
    }
}

#[test]
fn a_record_that_panics_is_dead_lettered_and_detection_goes_on() {
    let input = std::fs::read_to_string(root().join("samples/auth.log")).unwrap();
    let lines = input.lines().count() as u64;
    let clean = scan(&["--workers", "1"], format!("{input}{input}").as_bytes());
    let poisoned = format!("{input}POISON-7f3a\n{input}");
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let f = scan_with(
        &["--workers", "2", "--dead-letters", dead.to_str().unwrap()],
        poisoned.as_bytes(),
        &[("TOCSIN_TEST_PANIC_ON", "POISON-7f3a")],
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert_conserved(&f, "stdin", 2 * lines + 1);
    // The panic is logged with its backtrace; the record is dead-lettered.
    assert!(f.stderr.contains("test hook"), "{}", f.stderr);
    assert!(f.stderr.contains("backtrace"), "{}", f.stderr);
    let letters = std::fs::read_to_string(&dead).unwrap();
    assert!(
        letters.contains("\"reason\":\"internal error: test hook"),
        "{letters}"
    );
    // Every other record alerted as it does without the poison.
    assert!(!clean.stdout.is_empty());
    assert_eq!(f.stdout, clean.stdout);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `run` configuration reading syslog from stdin, alerts to a file,
/// with the HTTP listener on `port`; `extra` is appended.
fn run_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("tocsin.toml");
    std::fs::write(
        &path,
        format!(
            "[engine]\nrules = [\"{rules}\"]\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\
             [[sources]]\ntype = \"stdin\"\nformat = \"auto\"\n\
             [[sinks]]\ntype = \"file\"\npath = \"{out}\"\n\
             [dead_letter]\ntype = \"file\"\npath = \"{dead}\"\n",
            rules = root().join("rules").display(),
            out = dir.join("alerts.jsonl").display(),
            dead = dir.join("dead.jsonl").display(),
        ),
    )
    .unwrap();
    path
}

/// One HTTP request; the status code and the body.
fn http(port: u16, request: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    Some((
        code,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_stays_healthy_through_hostile_stdin_and_ends_at_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = run_config(dir.path(), port, "");
    let mut child = tocsin()
        .args(["run", "--config"])
        .arg(&config)
        .env("TOCSIN_TEST_PANIC_ON", "POISON-7f3a")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut hostile = b"The na\xc3\xafve caf\xc3\xa9 is open\nPOISON-7f3a\n\xff\xfe\n".to_vec();
    hostile.extend_from_slice(
        format!("{{\"a\": {}1{}}}\n", "[".repeat(5000), "]".repeat(5000)).as_bytes(),
    );
    stdin.write_all(&hostile).unwrap();
    stdin
        .write_all(b"Nov 20 08:14:03 bastion1 sshd[4121]: Invalid user admin from 203.0.113.77 port 41800\n")
        .unwrap();
    stdin.flush().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    wait_for(
        "the alert after the hostile lines",
        Duration::from_secs(30),
        || std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("Invalid user admin")),
    );
    let (code, body) = get(port, "/healthz").expect("/healthz answers");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(port, "/readyz").expect("/readyz answers");
    assert_eq!(code, 200, "{body}");
    let (_, metrics) = get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("tocsin_internal_errors_total{stage=\"detect\"} 1"),
        "{metrics}"
    );
    drop(stdin);
    let f = finish(child, Vec::new(), Duration::from_secs(30));
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 4, "{dead}");
}

#[test]
fn a_failed_stage_is_loud_and_ends_run_with_exit_70() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = run_config(dir.path(), port, "");
    let mut child = tocsin()
        .args(["run", "--config"])
        .arg(&config)
        .env("TOCSIN_TEST_WRITER_PANIC_ON", "admin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    wait_for("/readyz", Duration::from_secs(30), || {
        get(port, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    stdin
        .write_all(b"Nov 20 08:14:03 bastion1 sshd[4121]: Invalid user admin from 203.0.113.77 port 41800\n")
        .unwrap();
    stdin.flush().unwrap();
    // Stdin stays open: the process must end on its own, not sit half-alive.
    let f = finish(child, Vec::new(), Duration::from_secs(30));
    drop(stdin);
    assert_eq!(f.code, Some(70), "{}", f.stderr);
    assert!(
        f.stderr.contains("the writer failed: test hook"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("backtrace"), "{}", f.stderr);
}

#[test]
fn the_http_listener_reads_no_unauthenticated_body_and_idle_connections_do_not_block_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = run_config(
        dir.path(),
        port,
        "header_timeout = \"2s\"\nmax_connections = 64\n[incident]\nenabled = true\nhttp_token = \"s3cret\"",
    );
    let child = tocsin()
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("/readyz", Duration::from_secs(30), || {
        get(port, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    // 300 unauthenticated requests announcing 2 MB bodies: refused before
    // any body is read.
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "POST /triage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{}",
            "x".repeat(1000)
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head[9..12], b"401");
        held.push(s);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // 1,100 idle connections: a scrape still gets through at once.
    let idle: Vec<_> = (0..1100)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let asked = Instant::now();
    let (code, body) = get(port, "/metrics").expect("/metrics answers with idle connections open");
    assert_eq!(code, 200);
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert!(idle.len() > 64, "{} connections opened", idle.len());
    assert!(
        body.contains("tocsin_limit_exceeded_total{limit=\"http_connections\"}"),
        "{body}"
    );
    drop(idle);
    drop(held);
    // The scheme is case-insensitive; the body limit applies once authenticated.
    let triage = |auth: &str, body: &str| {
        http(
            port,
            &format!(
                "POST /triage HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .expect("answer")
    };
    let update = r#"{"alert_id": "no-such-alert", "status": "triaged", "by": "ana", "at": "2026-01-01T00:00:00Z"}"#;
    assert_eq!(triage("bearer s3cret", update).0, 404);
    assert_eq!(triage("Bearer wrong", update).0, 401);
    assert_eq!(triage("Bearer s3cret", &"x".repeat(100_000)).0, 413);
    let (_, metrics) = get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("tocsin_limit_exceeded_total{limit=\"http_body_bytes\"} 1"),
        "{metrics}"
    );
    let f = finish(child, Vec::new(), Duration::from_secs(30));
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(
        f.peak_rss_kib < 300 * 1024,
        "peak RSS {} KiB",
        f.peak_rss_kib
    );
}

#[test]
fn a_broken_configuration_is_named_once_with_its_key_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[log]\nlevel = \"loud[\"\n").unwrap();
    let out = tocsin()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("log.level `loud[`"), "{err}");
    // A folder where a file should be: the message names the path.
    let out = tocsin()
        .args(["scan", "--config"])
        .arg(dir.path())
        .arg("samples/auth.log")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn a_correlation_group_value_of_any_length_gives_a_short_alert_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("rules/linux/sshd/sshd_failed_password.yml"),
        dir.path().join("failed.yml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("per_user.yml"),
        "title: Failures per user\nid: 11111111-2222-4333-8444-555555555558\ncorrelation:\n  type: event_count\n  rules: [sshd_failed_password]\n  group-by: [user]\n  timespan: 10m\n  condition: {gte: 3}\ngenerate: false\nlevel: high\n",
    )
    .unwrap();
    let user = "u".repeat(100_000);
    let input: String = (0..3)
        .map(|i| format!("Mar  3 10:00:0{i} bastion sshd[7]: Failed password for invalid user {user} from 10.0.0.1 port 22 ssh2\n"))
        .collect();
    let f = scan(&["--rules", dir.path().to_str().unwrap()], input.as_bytes());
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let line = f
        .stdout
        .lines()
        .find(|l| l.contains("Failures per user"))
        .unwrap_or_else(|| panic!("no correlation alert:\n{}", f.stdout));
    assert!(line.len() < 1000, "{} characters", line.len());
    assert!(line.contains("user=uuu") && line.contains("..."), "{line}");
}
