//! End to end: alerts through triage, deadlines, escalation and the review,
//! driven by an event-time clock through `tocsin run` (restarted between
//! steps, so the alert state must survive), across a weekend and a holiday.

mod common;

use common::tocsin;
use serde_json::Value;
use std::path::Path;

const RULE: &str = r#"title: Test action {level}
id: 00000000-0000-4000-8000-00000000000{n}
logsource:
    product: test
detection:
    selection:
        action: {level}
    condition: selection
level: {level}
"#;

fn write_rules(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (n, level) in ["critical", "high", "medium", "low"].iter().enumerate() {
        std::fs::write(
            dir.join(format!("{level}.yml")),
            RULE.replace("{level}", level)
                .replace("{n}", &n.to_string()),
        )
        .unwrap();
    }
}

/// `[[incident.escalation]]` levels, all to the escalation sink; an
/// `immediately` level is for critical alerts only.
fn escalation_levels(levels: &[(&str, &str)]) -> String {
    levels
        .iter()
        .map(|(level, at)| {
            let severities = if *at == "immediately" {
                "severities = [\"critical\"]\n"
            } else {
                ""
            };
            format!("[[incident.escalation]]\nlevel = \"{level}\"\nat = \"{at}\"\n{severities}destination = \"escalations\"\n")
        })
        .collect()
}

/// Writes `<name>.toml` for `tocsin run`: the test rules; alerts, dead
/// letters and escalations to files in `dir`; the incident desk with its
/// journal and `incident_keys`; then `sections` (clock, sources, levels...).
fn config_file(dir: &Path, name: &str, incident_keys: &str, sections: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[engine]
rules = ["{rules}"]
workers = 1
[[sinks]]
type = "file"
path = "{alerts}"
[dead_letter]
type = "file"
path = "{dead}"
[incident]
enabled = true
state_file = "{state}"
{incident_keys}
[incident.escalation_sink]
type = "file"
path = "{escalations}"
{sections}
"#,
        rules = dir.join("rules").display(),
        alerts = dir.join("alerts.jsonl").display(),
        dead = dir.join("dead.jsonl").display(),
        state = dir.join("state/alerts.jsonl").display(),
        escalations = dir.join("escalations.jsonl").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The replay config: event-time clock, a holiday, `input` read as `records`.
fn config(dir: &Path, input: &Path, records: &str) -> std::path::PathBuf {
    let sections = format!(
        r#"
[metrics]
enabled = false
[clock]
mode = "event-time"
[sla]
holidays = ["2026-11-26"]
[[sources]]
type = "file"
paths = ["{input}"]
# A replay: read the file once and end.
follow = false
format = "json"
records = "{records}"
logsource = {{ product = "test" }}
{levels}"#,
        input = input.display(),
        levels = escalation_levels(&[
            ("on-call", "immediately"),
            ("reminder", "-2h"),
            ("breach", "0s"),
            ("second-level", "+1d"),
        ]),
    );
    config_file(dir, records, "", &sections)
}

fn run(cfg: &Path) {
    let out = tocsin()
        .args(["run", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (alert name, level) of every escalation so far.
fn escalations(
    dir: &Path,
    names: &std::collections::HashMap<String, String>,
) -> Vec<(String, String)> {
    json_lines(&dir.join("escalations.jsonl"))
        .iter()
        .map(|e| {
            (
                names[e["alert_id"].as_str().unwrap()].clone(),
                e["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn update(id: &str, status: &str, at: &str) -> String {
    serde_json::json!({"alert_id": id, "status": status, "by": "ana", "at": at}).to_string()
}

#[test]
fn alerts_escalate_exactly_as_the_policy_says_across_restarts_a_weekend_and_a_holiday() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_rules(&dir.join("rules"));

    // Friday 2026-11-20: six alerts. The week after has a holiday (Thu 26th).
    let events: Vec<String> = [
        ("A", "critical"),
        ("B", "high"),
        ("C", "medium"),
        ("D", "low"),
        ("E", "high"),
        ("F", "high"),
    ]
    .iter()
    .map(|(name, level)| {
        serde_json::json!({"@timestamp": "2026-11-20T10:00:00Z", "action": level, "name": name})
            .to_string()
    })
    .collect();
    std::fs::write(dir.join("events.jsonl"), events.join("\n") + "\n").unwrap();
    run(&config(dir, &dir.join("events.jsonl"), "events"));

    let alerts = json_lines(&dir.join("alerts.jsonl"));
    assert_eq!(alerts.len(), 6);
    let mut ids = std::collections::HashMap::new();
    let mut names = std::collections::HashMap::new();
    for a in &alerts {
        let name = a["event"]["name"].as_str().unwrap().to_string();
        let id = a["id"].as_str().unwrap().to_string();
        assert_eq!(
            a["detected_at"], "2026-11-20T10:00:00Z",
            "event time is the clock"
        );
        names.insert(id.clone(), name.clone());
        ids.insert(name, id);
    }
    let due = |name: &str| {
        alerts.iter().find(|a| a["event"]["name"] == name).unwrap()["sla"]["due_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        due("A"),
        "2026-11-21T10:00:00Z",
        "critical: 1 day, Saturday"
    );
    assert_eq!(
        due("C"),
        "2026-11-30T10:00:00Z",
        "medium: 5 business days, skipping the holiday"
    );
    assert_eq!(
        due("D"),
        "2026-12-07T10:00:00Z",
        "low: 10 business days, skipping the holiday"
    );
    // Only the critical alert pages on-call at once, on a Friday or any day.
    assert_eq!(
        escalations(dir, &names),
        vec![("A".into(), "on-call".into())]
    );

    // Restart with the first triage updates, over the weekend to Monday noon.
    let first = [
        update(&ids["E"], "false_positive", "2026-11-20T11:00:00Z"),
        update(&ids["F"], "triaged", "2026-11-20T12:00:00Z"),
        update(&ids["F"], "resolved", "2026-11-20T13:00:00Z"),
        update(&ids["F"], "resolved", "2026-11-20T13:00:00Z"), // redelivered: ignored
        update(&ids["B"], "acknowledged", "2026-11-20T14:00:00Z"),
        update(&ids["F"], "acknowledged", "2026-11-20T15:00:00Z"), // bad transition
        update("no-such-alert", "triaged", "2026-11-20T15:00:00Z"),
        r#"{"alert_id": "x", "status": "done"}"#.to_string(),
        update(&ids["C"], "acknowledged", "2026-11-23T12:00:00Z"),
    ];
    std::fs::write(dir.join("triage-1.jsonl"), first.join("\n") + "\n").unwrap();
    run(&config(dir, &dir.join("triage-1.jsonl"), "triage"));
    let expected_weekend: Vec<(String, String)> = [
        ("A", "on-call"),
        ("A", "reminder"),
        ("A", "breach"),
        ("B", "reminder"),
        ("B", "breach"),
        ("A", "second-level"),
        ("B", "second-level"),
    ]
    .iter()
    .map(|(a, l)| (a.to_string(), l.to_string()))
    .collect();
    assert_eq!(escalations(dir, &names), expected_weekend);
    let dead = json_lines(&dir.join("dead.jsonl"));
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("is resolved: it cannot become acknowledged"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("unknown alert id `no-such-alert`"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("status `done` is not one of"),
        "{reasons:?}"
    );

    // Restart again; the clock moves to Friday 4 December. The holiday moved
    // D's deadline to Monday the 7th, so D does not escalate yet; C (only
    // acknowledged) passes its deadline of Monday 30th.
    let second = [
        update(&ids["D"], "triaged", "2026-12-04T12:00:00Z"),
        update(&ids["B"], "incident", "2026-12-04T12:30:00Z"),
        update(&ids["B"], "resolved", "2026-12-04T13:00:00Z"),
    ];
    std::fs::write(dir.join("triage-2.jsonl"), second.join("\n") + "\n").unwrap();
    run(&config(dir, &dir.join("triage-2.jsonl"), "triage"));
    let mut expected = expected_weekend.clone();
    expected.extend(
        [("C", "reminder"), ("C", "breach"), ("C", "second-level")]
            .iter()
            .map(|(a, l)| (a.to_string(), l.to_string())),
    );
    assert_eq!(
        escalations(dir, &names),
        expected,
        "no level repeats across restarts"
    );
    let e = json_lines(&dir.join("escalations.jsonl"));
    let line_of = |level: &str| {
        let record = e.iter().find(|e| e["level"] == level).unwrap();
        record["message"].as_str().unwrap().to_string()
    };
    let line = line_of("breach");
    assert!(
        line.starts_with("SIEM ESCALATION -- breach - [Critical] Test action critical")
            && line.contains(" overdue since 2026-11-21T10:00:00Z. Check https://"),
        "{line}"
    );
    // A line says "overdue" exactly when the deadline had passed.
    for record in &e {
        let line = record["message"].as_str().unwrap();
        let overdue = record["overdue_seconds"].as_i64().unwrap() >= 0;
        assert_eq!(line.contains(" overdue since 20"), overdue, "{record}");
        if !overdue {
            assert!(line.contains(" due by 20"), "{line}");
        }
    }
    let line = line_of("on-call");
    assert!(line.contains(" paged at once, due by 20"), "{line}");

    // The journal written over three runs (each start compacts it) is an
    // intact hash chain; one edited line fails --verify, naming it.
    let journal = dir.join("state/alerts.jsonl");
    let verify = |path: &Path| {
        let out = tocsin()
            .args(["report", "--verify", "--state"])
            .arg(path)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, stdout) = verify(&journal);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("hash chain intact"), "{stdout}");
    let tampered = dir.join("tampered.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.lines().count() >= 3, "{text}");
    std::fs::write(
        &tampered,
        text.replacen("\"severity\":\"critical\"", "\"severity\":\"low\"", 1),
    )
    .unwrap();
    let (code, stdout) = verify(&tampered);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("the chain breaks here") && stdout.contains("was changed"),
        "{stdout}"
    );

    // The review, recomputed: 6 alerts; SLA met for D, E, F; B breached
    // (triaged on the 4th), A and C overdue.
    let out = tocsin()
        .args([
            "report",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-05",
            "--format",
            "csv",
            "--state",
        ])
        .arg(dir.join("state/alerts.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    for row in [
        "total,all,alerts,6",
        "sla,high,met,2",
        "sla,high,breached,1",
        "sla,critical,overdue,1",
        "sla,medium,overdue,1",
        "sla,low,met,1",
        "sla,high,compliance,0.6667",
        "escalation,on-call,escalations,1",
        "escalation,breach,escalations,3",
        "escalation,second-level,escalations,3",
        "status,false_positive,alerts,1",
        "status,resolved,alerts,2",
        // F: triaged after 2h; E: 1h; B: 14d 2h30m; D: 14d 2h. Median of 4 = (2h + 14d2h)/2.
        "time_to_triage,all,count,4",
        "time_to_triage,all,median_seconds,612000",
    ] {
        assert!(csv.lines().any(|l| l == row), "missing `{row}` in\n{csv}");
    }
    for format in ["markdown", "html"] {
        let out = tocsin()
            .args([
                "report",
                "--from",
                "2026-11-01",
                "--to",
                "2026-12-05",
                "--format",
                format,
                "--state",
            ])
            .arg(dir.join("state/alerts.jsonl"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Test action high"), "{format}: {text}");
    }
}

/// `POST /triage` with a bearer token; returns the status code and body.
fn post_triage(port: u16, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /triage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}

/// Polls `path` until `done` holds for its JSON lines (or fails after 60 s).
fn wait_for(path: &Path, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let lines = json_lines(path);
        if done(&lines) {
            return lines;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_simulated_clock_escalates_live_and_http_triage_stops_it() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_rules(&dir.join("rules"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Ten simulated hours per real second: the critical alert's one-day
    // deadline passes about 2.4 s after it is raised.
    let sections = format!(
        r#"
[metrics]
listen = "127.0.0.1:{port}"
[clock]
mode = "simulated"
start = "2026-11-20T09:00:00Z"
rate = 36000.0
[[sources]]
type = "stdin"
format = "json"
logsource = {{ product = "test" }}
{levels}"#,
        levels = escalation_levels(&[
            ("on-call", "immediately"),
            ("breach", "0s"),
            ("second-level", "+10d"),
        ]),
    );
    let cfg = config_file(
        dir,
        "live",
        "check_interval = \"100ms\"\nhttp_token = \"s3cret\"",
        &sections,
    );
    let log = std::fs::File::create(dir.join("tocsin.log")).unwrap();
    let mut child = tocsin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"action": "critical", "name": "A"}}"#).unwrap();
    stdin.flush().unwrap();
    let alerts = wait_for(&dir.join("alerts.jsonl"), "the alert", |l| !l.is_empty());
    let id = alerts[0]["id"].as_str().unwrap().to_string();
    let detected: chrono::DateTime<chrono::Utc> =
        alerts[0]["detected_at"].as_str().unwrap().parse().unwrap();
    assert!(
        detected
            >= "2026-11-20T09:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        "simulated time: {detected}"
    );

    let ack = update(&id, "acknowledged", &detected.to_rfc3339());
    assert_eq!(post_triage(port, "wrong", &ack).0, 401);
    assert_eq!(post_triage(port, "s3cret", r#"{"alert_id":"x"}"#).0, 400);
    assert_eq!(
        post_triage(
            port,
            "s3cret",
            &update("nope", "triaged", "2026-11-20T10:00:00Z")
        )
        .0,
        404
    );
    let (code, body) = post_triage(port, "s3cret", &ack);
    assert_eq!(code, 200, "{body}");

    // Acknowledged is not triaged: the deadline passes and breaches.
    let escalated = wait_for(&dir.join("escalations.jsonl"), "the breach", |l| {
        l.iter().any(|e| e["level"] == "breach")
    });
    let levels: Vec<&str> = escalated
        .iter()
        .map(|e| e["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, vec!["on-call", "breach"]);
    let (code, body) = post_triage(
        port,
        "s3cret",
        &update(&id, "triaged", "2026-11-21T12:00:00Z"),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_triage(
        port,
        "s3cret",
        &update(&id, "acknowledged", "2026-11-21T13:00:00Z"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("is triaged: it cannot become acknowledged"),
        "{body}"
    );

    // The incident metrics, as Prometheus scrapes them (gauges refresh each check_interval).
    let scrape = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let expected = [
        "tocsin_incident_escalations_total{level=\"on-call\"} 1",
        "tocsin_incident_escalations_total{level=\"breach\"} 1",
        "tocsin_incident_sla_breaches_total{severity=\"critical\"} 1",
        "tocsin_incident_triage_rejected_total{reason=\"unknown_alert\"} 1",
        "tocsin_incident_triage_rejected_total{reason=\"bad_transition\"} 1",
        "tocsin_incident_time_to_triage_seconds_count{severity=\"critical\"} 1",
        "tocsin_incident_time_to_first_response_seconds_count{severity=\"critical\"} 1",
        "tocsin_incident_open_alerts{severity=\"critical\",sla_state=\"breached\"} 1",
    ];
    let started = std::time::Instant::now();
    loop {
        let text = scrape();
        let missing: Vec<&&str> = expected.iter().filter(|m| !text.contains(**m)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "missing {missing:?} in\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    drop(stdin);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(dir.join("tocsin.log")).unwrap()
    );
    let levels: Vec<String> = json_lines(&dir.join("escalations.jsonl"))
        .iter()
        .map(|e| e["level"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        levels,
        vec!["on-call", "breach"],
        "triaged: no second level"
    );
    let dead = json_lines(&dir.join("dead.jsonl"));
    assert_eq!(
        dead.len(),
        2,
        "HTTP rejections are dead-lettered too: {dead:?}"
    );
}

#[test]
fn a_silent_host_raises_an_alert_and_a_recovery_record_that_closes_it() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_rules(&dir.join("rules"));
    let cfg = config_file(
        dir,
        "silence",
        "",
        r#"
[metrics]
enabled = false
[clock]
mode = "event-time"
[[sources]]
type = "stdin"
format = "json"
logsource = { product = "test" }
[[incident.silence]]
host = "web-1"
max_silence = "1h"
severity = "high"
"#,
    );
    let mut child = tocsin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Separate writes, so each is its own batch and the clock moves between them.
    for (host, at) in [
        ("web-1", "2026-11-20T10:00:00Z"),
        ("db-1", "2026-11-20T10:30:00Z"),
        ("db-1", "2026-11-20T12:00:00Z"),
        ("web-1", "2026-11-20T12:30:00Z"),
    ] {
        writeln!(
            stdin,
            r#"{{"host": "{host}", "@timestamp": "{at}", "action": "none"}}"#
        )
        .unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let alerts = json_lines(&dir.join("alerts.jsonl"));
    let lines: Vec<&str> = alerts
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("SIEM ALERT -- STATIC RULE - [High] Log source silent: host=web-1, last event 2026-11-20T10:00:00Z, silent longer than 1h. Check "),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("Log source back: host=web-1, events resumed at 2026-11-20T12:30:00Z after silence since 2026-11-20T10:00:00Z"),
        "{lines:?}"
    );
    assert_eq!(alerts[1]["resolves"], alerts[0]["id"]);
    // The desk closed the silence alert.
    let (state, _) = tocsin::incident::store::read(&dir.join("state/alerts.jsonl")).unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].status, tocsin::incident::Status::Resolved);
    assert_eq!(state[0].history[0].by, "tocsin");
}
