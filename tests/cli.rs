//! End-to-end tests of the `tocsin` binary: the commands users and scripts rely on.

mod common;

use common::{lines, run_ok, shared_dir, tocsin};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `SIEM ALERT -- <type> - [<severity>] <message>. Check <link>`
fn assert_alert_line(line: &str) {
    let re = regex::Regex::new(
        r"^SIEM ALERT -- STATIC RULE - \[(Critical|High|Medium|Low)\] [^\n]+: [^\n]+\. Check https://siem\.example\.com/alerts/[0-9a-f-]{36}$",
    )
    .unwrap();
    assert!(re.is_match(line), "not an alert line: {line:?}");
}

/// Runs `tocsin` with `input` on stdin and returns its output.
fn with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

const RULE: &str = "title: Invalid SSH user
id: 6a1b3c4d-0000-4000-8000-000000000001
level: medium
logsource: {product: linux, service: sshd}
detection:
  selection:
    message|startswith: 'Invalid user '
  condition: selection
";

#[test]
fn scan_prints_alert_lines_and_a_summary_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.yml"), RULE).unwrap();
    let out = with_stdin(
        tocsin().args(["scan", "--rules"]).arg(dir.path()),
        b"Nov 20 08:14:02 bastion1 sshd[4121]: Invalid user admin from 203.0.113.9\n\
              Nov 20 08:14:03 bastion1 sshd[4121]: Accepted publickey for deploy from 192.0.2.4\n\
              this line is no known format\n\n",
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_alert_line(lines[0]);
    assert!(
        lines[0].contains("[Medium] Invalid SSH user: host=bastion1"),
        "{}",
        lines[0]
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    // The unparseable line is dead-lettered to stderr with its reason, and counted.
    assert!(
        stderr.contains("\"reason\":\"auto: not a JSON object"),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 records, 2 events, 1 parse failures"),
        "{stderr}"
    );
    assert!(stderr.contains("alerts: 1 (medium=1)"), "{stderr}");
}

#[test]
fn scan_json_records_carry_rule_sla_event_and_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.yml"), RULE).unwrap();
    let input = dir.path().join("auth.log");
    std::fs::write(
        &input,
        "Nov 20 08:14:02 bastion1 sshd[4121]: Invalid user admin from 203.0.113.9\n",
    )
    .unwrap();
    let out = tocsin()
        .args(["scan", "--format", "json", "--rules"])
        .arg(dir.path().join("r.yml"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["type"], "STATIC RULE");
    assert_eq!(record["severity"], "medium");
    assert_eq!(record["rule"]["id"], "6a1b3c4d-0000-4000-8000-000000000001");
    assert_eq!(record["sla"]["policy"], "static_rule");
    assert_eq!(record["sla"]["triage_within"], "5 business days");
    assert_eq!(record["event"]["fields"]["program"], "sshd");
    assert!(record["event"]["raw"]
        .as_str()
        .unwrap()
        .contains("Invalid user admin"));
    assert_eq!(record["source"]["line"], 1);
    assert!(record["event_time"]
        .as_str()
        .unwrap()
        .ends_with("-11-20T08:14:02Z"));
    assert_alert_line(record["message"].as_str().unwrap());
    // The same event and rule give the same id on a replay.
    let again = tocsin()
        .args(["scan", "--format", "json", "--rules"])
        .arg(dir.path().join("r.yml"))
        .arg(&input)
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(record["id"], again["id"]);
}

#[test]
fn scan_fails_on_missing_input_or_unusable_rules() {
    let out = tocsin()
        .args(["scan", "--rules", "rules/", "no/such/file.log"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.log"));
    let dir = tempfile::tempdir().unwrap();
    let out = tocsin()
        .args(["scan", "--rules"])
        .arg(dir.path())
        .arg("README.md")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no usable rules"));
}

#[test]
fn rules_check_reports_file_line_column_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yml"), RULE).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        RULE.replace("message|startswith", "message|startwith")
            .replace("Invalid SSH user", "Broken"),
    )
    .unwrap();
    let out = tocsin()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "{}:7:5: `message|startwith`: unknown value modifier `startwith`",
        bad.display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        stdout.contains(
            "2 files: 1 rules (1 detection, 0 correlation, 0 anomaly jobs), 0 filters, 1 rejected"
        ),
        "{stdout}"
    );
}

#[test]
fn rules_check_passes_on_the_bundled_rule_pack_even_when_strict() {
    let out = tocsin()
        .args(["rules", "check", "--strict", "rules/", "deploy/filters/"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" 0 rejected, 0 warnings"), "{stdout}");
}

#[test]
fn rules_check_warns_on_a_new_users_typos_and_strict_fails_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("typos.yml");
    std::fs::write(
        &rule,
        RULE.replace("level:", "levle:")
            .replace("service: sshd", "service: sshdd")
            .replace("6a1b3c4d-0000-4000-8000-000000000001", "not-a-uuid"),
    )
    .unwrap();
    let check = |strict: bool| {
        let mut cmd = tocsin();
        cmd.args(["rules", "check"]);
        if strict {
            cmd.arg("--strict");
        }
        let out = cmd.arg(dir.path()).output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, stdout) = check(false);
    assert_eq!(code, Some(0), "warnings alone pass: {stdout}");
    let at = |pos: &str, text: &str| {
        let line = format!("{}:{pos}: warning: {text}", rule.display());
        assert!(stdout.contains(&line), "{line} not in\n{stdout}");
    };
    at("3:1", "unknown key `levle`: did you mean `level`?");
    at("2:5", "`id` `not-a-uuid` is not a UUID");
    at("4:12", "`logsource` `service: sshdd`");
    assert!(stdout.contains("(did you mean `sshd`?)"), "{stdout}");
    assert!(stdout.contains("0 rejected, 3 warnings"), "{stdout}");
    assert_eq!(check(true).0, Some(1));

    // A misspelt `logsource` is an error that names the typo.
    std::fs::write(&rule, RULE.replace("logsource:", "logsoruce:")).unwrap();
    let (code, stdout) = check(false);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("missing `logsource` (is `logsoruce` at 4:1 a typo?)"),
        "{stdout}"
    );
}

#[test]
fn rules_test_runs_the_rule_pack_cases() {
    let out = tocsin()
        .args(["rules", "test", "--rules", "rules/", "tests/rules/"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// The lines of `output` that contain `text`, sorted.
#[test]
fn scan_caches_parsed_rules_and_a_cached_start_sees_edits_and_alerts_the_same() {
    let rules = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let input = b"Nov 20 08:14:02 bastion1 sshd[4121]: Invalid user admin from 203.0.113.9\n";
    let scan = |extra: &[(&str, &str)]| {
        let mut cmd = tocsin();
        cmd.env("XDG_CACHE_HOME", cache.path())
            .args(["scan", "--rules"])
            .arg(rules.path())
            .arg("-");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = with_stdin(&mut cmd, input);
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let summary: Vec<&str> = stderr.lines().filter(|l| !l.contains("events/s")).collect();
        (String::from_utf8(out.stdout).unwrap(), summary.join("\n"))
    };
    std::fs::write(rules.path().join("r.yml"), RULE).unwrap();
    std::fs::write(rules.path().join("broken.yml"), "title: [unclosed\n").unwrap();
    let uncached = scan(&[("TOCSIN_ENGINE__RULE_CACHE", "false")]);
    assert!(
        !cache.path().join("tocsin").exists(),
        "rule_cache = false wrote a cache"
    );
    let first = scan(&[]);
    let cached = scan(&[]);
    let stored: Vec<_> = std::fs::read_dir(cache.path().join("tocsin"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 1, "one cache file for one set of rule paths");
    assert_eq!(first, uncached);
    assert_eq!(cached, uncached);
    assert_eq!(uncached.0.lines().count(), 1, "{uncached:?}");
    assert!(uncached.1.contains("broken.yml:2:1"), "{uncached:?}");
    // An edited rule alerts as edited on the next (cached) start.
    std::fs::write(
        rules.path().join("r.yml"),
        RULE.replace("Invalid SSH user", "Edited SSH rule"),
    )
    .unwrap();
    let edited = scan(&[]);
    assert!(edited.0.contains("Edited SSH rule"), "{edited:?}");
}

/// Scans `input` from stdin with `rules`: the sorted alert lines holding
/// `text`, and the summary (stderr).
fn scan_stdin(rules: &str, input: &str, text: &str) -> (Vec<String>, String) {
    let out = with_stdin(
        tocsin().args(["scan", "--rules", rules, "-"]),
        input.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let lines = sorted_lines_with(&out.stdout, text);
    (lines, String::from_utf8(out.stderr).unwrap())
}

fn sorted_lines_with(output: &[u8], text: &str) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(output)
        .lines()
        .filter(|l| l.contains(text))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Waits for `child` to exit; fails the test naming `when` after `limit`.
fn wait_for_exit(
    child: &mut std::process::Child,
    limit: Duration,
    when: &str,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "tocsin kept running {when}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn run_without_config_runs_the_demo_prints_alert_lines_and_follows_until_ctrl_c() {
    let port = free_port();
    let mut child = tocsin()
        .args(["run", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                lines.lock().unwrap().push(line.unwrap());
            }
        })
    };
    let stderr = child.stderr.take().unwrap();
    let notes = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    // Every sample file contributes alerts.
    let needles = ["host=bastion", "c-ip=", "Computer="];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !needles
        .iter()
        .all(|n| lines.lock().unwrap().iter().any(|l| l.contains(n)))
    {
        assert!(
            Instant::now() < deadline,
            "demo alerts missing: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still running: it follows the samples, and /metrics answers.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the demo ended on its own"
    );
    let metrics = http_get(port, "/metrics").unwrap_or_default();
    assert!(metrics.contains("tocsin_events_read_total"), "{metrics}");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let notes = notes.join().unwrap();
    assert!(status.success(), "{notes}");
    assert!(notes.contains("Ctrl-C"), "{notes}");
    assert!(
        notes.contains(&format!("http://127.0.0.1:{port}/metrics")),
        "{notes}"
    );
    let lines = lines.lock().unwrap();
    assert!(lines.len() >= 10, "{lines:?}");
    for line in lines.iter() {
        assert_alert_line(line);
    }
}

/// A config that reads stdin and writes JSON alerts to a file, with metrics on a free port.
fn stdin_config(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("tocsin.toml");
    std::fs::write(
        &path,
        format!(
            "[engine]\nrules = [\"{rules}\"]\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
             [[sources]]\ntype = \"stdin\"\nformat = \"syslog\"\n\
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

#[test]
fn run_serves_metrics_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = stdin_config(dir.path(), port);
    let mut child = tocsin()
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"Nov 20 08:14:02 bastion1 sshd[4121]: Invalid user admin from 203.0.113.9\nnot syslog\n")
        .unwrap();
    stdin.flush().unwrap();
    // Wait until the record has gone through the pipeline, as seen by /metrics.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Some(body) = http_get(port, "/metrics") {
            if body.contains("tocsin_alerts_total") && body.contains("tocsin_events_failed_total") {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "metrics never showed the alert");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("tocsin_events_read_total{source=\"stdin\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tocsin_events_failed_total{source=\"stdin\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tocsin_rule_matches_total{"), "{metrics}");
    assert!(
        metrics.contains("tocsin_detection_latency_seconds_bucket"),
        "{metrics}"
    );
    let health = http_get(port, "/healthz").unwrap();
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    // SIGTERM with stdin still open: the engine must stop reading, flush and exit 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_for_exit(&mut child, Duration::from_secs(20), "after SIGTERM");
    drop(stdin);
    assert!(status.success(), "{status:?}");
    let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    assert!(alerts.contains("\"type\":\"STATIC RULE\""), "{alerts}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert!(dead.contains("\"payload\":\"not syslog\""), "{dead}");
}

#[test]
fn the_example_sigma_filter_silences_only_its_account() {
    let input = "Nov 20 09:06:30 bastion1 sudo: ops-breakglass : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/bash\n\
                 Nov 20 09:06:31 bastion1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash\n";
    let scan = |extra: &[&str]| {
        let out = with_stdin(
            tocsin().args(["scan", "--rules", "rules/"]).args(extra),
            input.as_bytes(),
        );
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let without = scan(&[]);
    assert_eq!(
        without
            .matches("Interactive Root Shell Opened With Sudo")
            .count(),
        2,
        "{without}"
    );
    let with = scan(&["--rules", "deploy/filters/"]);
    assert_eq!(
        with.matches("Interactive Root Shell Opened With Sudo")
            .count(),
        1,
        "{with}"
    );
    assert!(with.contains("alice"), "{with}");
    let check = tocsin()
        .args(["rules", "check", "rules/", "deploy/filters/"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(check.stdout).unwrap();
    assert!(check.status.success(), "{stdout}");
    assert!(stdout.contains(" 1 filters, "), "{stdout}");
    assert!(stdout.contains(" 0 rejected"), "{stdout}");
}

#[test]
fn scale_out_settings_leave_a_scan_of_files_correlating_in_one_instance_with_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scale-out.toml");
    std::fs::write(
        &config,
        "[correlation]\nrepartition_topic = \"r\"\nchangelog_topic = \"c\"\n",
    )
    .unwrap();
    let run = |config: Option<&Path>| {
        let mut cmd = tocsin();
        cmd.args(["scan", "--rules", "rules/"]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let out = cmd.args(["samples/auth.log"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (alone, _) = run(None);
    assert!(alone.contains("Password Spraying"), "{alone}");
    let (with, log) = run(Some(&config));
    assert_eq!(with, alone);
    assert!(log.contains("Kafka sources only"), "{log}");
}

#[test]
fn several_workers_give_the_same_alerts_in_the_same_order_as_one() {
    let run = |workers: &str| {
        let out = tocsin()
            .args(["scan", "--rules", "rules/", "--workers", workers])
            .args([
                "samples/auth.log",
                "samples/access.log",
                "samples/windows.jsonl",
                "samples/syslog-rfc5424.log",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let one = run("1");
    assert!(one.lines().count() > 40, "{one}");
    assert_eq!(run("4"), one);
    assert_eq!(run("0"), one);
}

#[test]
fn suppression_collapses_repeats_per_rule_and_group_into_one_alert_and_one_update() {
    for (config_text, group_fields) in [
        (
            "[[suppression.rules]]\nrule = \"SSH Password Authentication Failure\"\nwindow = \"1h\"\nby = [\"src_ip\"]\n",
            vec!["src_ip"],
        ),
        // Without `by`: per rule and subject (host, user, address), as the
        // shipped configuration does for every rule.
        ("[suppression]\nwindow = \"10m\"\n", vec!["host", "src_ip", "user"]),
    ] {
        suppression_collapses_repeats(config_text, &group_fields);
    }
}

fn suppression_collapses_repeats(config_text: &str, group_fields: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut input = String::new();
    for (i, ip) in ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.1"]
        .iter()
        .enumerate()
    {
        input.push_str(&format!("Nov 20 08:14:0{i} bastion1 sshd[41]: Failed password for bob from {ip} port 22{i} ssh2\n"));
    }
    let out = with_stdin(
        tocsin()
            .args(["scan", "--format", "json", "--rules", "rules/", "--config"])
            .arg(&config),
        input.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["rule"]["title"] == "SSH Password Authentication Failure")
        .collect();
    // One alert per address, then one update for 203.0.113.1 (two more) at the end of input.
    assert_eq!(records.len(), 3, "{records:#?}");
    assert_eq!(records[0]["group"]["src_ip"], "203.0.113.1");
    assert_eq!(records[1]["group"]["src_ip"], "203.0.113.2");
    let fields: Vec<&str> = records[0]["group"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, group_fields, "{config_text}");
    assert_eq!(records[2]["id"], records[0]["id"]);
    assert_eq!(records[2]["suppressed"]["count"], 2);
    assert!(records[2]["message"]
        .as_str()
        .unwrap()
        .contains("(+2 similar until "));
}

/// Exactly what the kubelet puts in a pod's environment for a Service named
/// `tocsin` with a port named `metrics` (docker link style variables).
const KUBELET_SERVICE_LINKS: [(&str, &str); 8] = [
    ("TOCSIN_SERVICE_HOST", "10.96.0.12"),
    ("TOCSIN_SERVICE_PORT", "9464"),
    ("TOCSIN_SERVICE_PORT_METRICS", "9464"),
    ("TOCSIN_PORT", "tcp://10.96.0.12:9464"),
    ("TOCSIN_PORT_9464_TCP", "tcp://10.96.0.12:9464"),
    ("TOCSIN_PORT_9464_TCP_PROTO", "tcp"),
    ("TOCSIN_PORT_9464_TCP_PORT", "9464"),
    ("TOCSIN_PORT_9464_TCP_ADDR", "10.96.0.12"),
];

#[test]
fn the_kubelet_service_link_variables_do_not_stop_tocsin_from_starting() {
    run_ok(
        tocsin()
            .args(["scan", "samples/auth.log"])
            .envs(KUBELET_SERVICE_LINKS),
    );
    let port = free_port();
    let mut child = tocsin()
        .args(["run", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .envs(KUBELET_SERVICE_LINKS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("tocsin exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// `tocsin config check --config CONFIG`: its exit code and what it printed.
fn config_check(config: &Path) -> (Option<i32>, String) {
    let out = tocsin()
        .args(["config", "check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn config_check_exits_0_for_a_valid_configuration_and_78_naming_each_problem() {
    let out = tocsin().args(["config", "check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok: rules:"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("broken.yml"),
        "title: t\nlogsource: {product: linux}\ndetection:\n  sel:\n    a|bogus: 1\n  condition: sel\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("good.yml"),
        "title: g\nlogsource: {product: linux}\ndetection:\n  sel: {a: 1}\n  condition: sel\n",
    )
    .unwrap();
    let config = dir.path().join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nrules = [\"{}\"]\n[[sources]]\ntype = \"file\"\npaths = [\"{}\"]\nfollow = false\n",
            rules.display(),
            dir.path().join("missing.log").display()
        ),
    )
    .unwrap();
    let (code, text) = config_check(&config);
    assert_eq!(code, Some(78), "{text}");
    assert!(text.contains("broken.yml:5:5:"), "{text}");
    assert!(text.contains("missing.log"), "{text}");
    assert!(text.contains("2 problems"), "{text}");

    std::fs::write(&config, "[[sinks]]\ntype = \"file\"\npaht = \"x\"\n").unwrap();
    let (code, text) = config_check(&config);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("tocsin.toml:3:1: sinks[0].paht: unknown field"),
        "{text}"
    );
    assert_eq!(
        text.matches("unknown field").count(),
        1,
        "said once: {text}"
    );
}

#[test]
fn a_scan_into_a_pipe_writes_no_progress_line_and_no_terminal_codes() {
    let out = run_ok(tocsin().args(["scan", "samples/auth.log", "samples/access.log"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tocsin scan: "), "the summary is there: {err}");
    assert!(!err.contains("records/s"), "no progress line: {err}");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn a_scan_whose_reader_goes_away_exits_at_once_and_quietly() {
    // `tocsin scan ... | head -1`: many alerts, one read, the pipe closed.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("auth.log");
    let line = "Nov 20 08:14:02 bastion1 sshd[4121]: Invalid user admin from 203.0.113.9\n";
    std::fs::write(&input, line.repeat(200_000)).unwrap();
    let mut child = tocsin()
        .args(["scan"])
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("SIEM ALERT"), "{first}");
    // The reader is gone (dropped above): the scan must end, not block.
    let status = wait_for_exit(&mut child, Duration::from_secs(30), "with nobody reading");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The specification's complete chain example ("Multiple Failed Logins
/// Followed by Successful Login"), as it is written there.
const SPEC_CHAIN: &str = "title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
";

#[test]
fn only_the_outermost_correlation_of_a_chain_alerts_unless_generate_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("chain.yml");
    let event = |sec: u32, id: u32, user: &str| {
        format!(
            "{{\"@timestamp\": \"2026-11-23T10:{:02}:{:02}Z\", \"Channel\": \"Security\", \"EventID\": {id}, \"User\": \"{user}\"}}\n",
            sec / 60,
            sec % 60
        )
    };
    let mut events = String::new();
    // bob: ten failures, then a success; alice: ten failures and no success.
    (0..10).for_each(|i| events += &event(i * 10, 4625, "bob"));
    events += &event(120, 4624, "bob");
    (0..10).for_each(|i| events += &event(200 + i, 529, "alice"));
    let alerts = |rules_text: &str| -> Vec<String> {
        std::fs::write(&rules, rules_text).unwrap();
        let out = with_stdin(
            tocsin().args(["scan", "--rules"]).arg(&rules).arg("-"),
            events.as_bytes(),
        );
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout
            .lines()
            .map(|l| l.split(" Check ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        alerts(SPEC_CHAIN),
        vec!["SIEM ALERT -- STATIC RULE - [High] Correlation - Multiple Failed Logins Followed by Successful Login: all 2 rules in order for User=bob within 10m (2026-11-23T10:01:30Z to 2026-11-23T10:02:00Z)."]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        "neither the inner burst nor the single logins alert on their own"
    );
    // `generate: true` on the outer rule generates what it refers to
    // stand-alone too: the inner correlation (both bursts) and the
    // successful login; the inner one still keeps its failed logins quiet.
    let generated = alerts(&SPEC_CHAIN.replacen("level: high", "level: high\ngenerate: true", 1));
    let inner: Vec<&String> = generated
        .iter()
        .filter(|l| l.contains("] Multiple failed logons:"))
        .collect();
    assert_eq!(inner.len(), 2, "{generated:?}");
    assert!(
        inner[0].contains("User=bob") && inner[1].contains("User=alice"),
        "{generated:?}"
    );
    assert!(generated
        .iter()
        .any(|l| l.contains("] Successful login: User=bob")));
    assert!(!generated.iter().any(|l| l.contains("Single failed login")));
    assert_eq!(generated.len(), 4, "{generated:?}");
}

#[test]
fn a_scan_correlates_the_same_whatever_the_order_of_its_input() {
    // Two brute forces a day apart, each ten failed passwords in a minute.
    let burst = |day: u32, addr: &str| -> String {
        (0..10)
            .map(|i| {
                format!("Nov {day} 08:10:{:02} bastion1 sshd[4121]: Failed password for root from {addr} port 5{i}000 ssh2\n", i * 5)
            })
            .collect()
    };
    let (older, newer) = (burst(19, "203.0.113.7"), burst(20, "198.51.100.9"));
    let scan = |input: String| scan_stdin("rules/", &input, "SSH Brute Force From One Address");
    let (in_order, stderr) = scan(format!("{older}{newer}"));
    assert_eq!(in_order.len(), 2, "{in_order:?}");
    assert!(!stderr.contains("out of time order"), "{stderr}");
    let (reversed, stderr) = scan(format!("{newer}{older}"));
    assert_eq!(
        reversed, in_order,
        "zcat auth.log* feeds the newest file first"
    );
    assert!(
        stderr.contains(
            "rule matches were out of time order by more than correlation.allowed_lateness ("
        ) && stderr.contains("SSH Brute Force From One Address: 10")
            && stderr.contains("ran them again in event-time order and found"),
        "{stderr}"
    );
}

#[test]
fn anomaly_jobs_score_an_input_written_newest_first_as_when_in_order() {
    // Three hours of six users' failed logins, one user bursting once.
    let mut lines: Vec<(u32, String)> = Vec::new();
    for b in 0..19u32 {
        for u in 0..6u32 {
            let n = if (b, u) == (15, 2) {
                60
            } else {
                1 + (b * 7 + u) % 3
            };
            for k in 0..n {
                let secs = b * 600 + u * 70 + k * 500 / n;
                lines.push((
                    secs,
                    format!(
                        "Mar  3 {:02}:{:02}:{:02} bastion sshd[{}]: Failed password for user{u} from 10.9.0.{u} port {} ssh2",
                        8 + secs / 3600,
                        secs / 60 % 60,
                        secs % 60,
                        100 + k,
                        50_000 + k
                    ),
                ));
            }
        }
    }
    lines.sort();
    let text = |lines: &[(u32, String)]| -> String {
        lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    };
    let scan = |input: String| scan_stdin("rules/anomaly", &input, "ANOMALY DETECTED");
    let (in_order, stderr) = scan(text(&lines));
    assert!(
        in_order
            .iter()
            .any(|a| a.contains("user=user2 high_count was")),
        "{in_order:?}"
    );
    assert!(!stderr.contains("out of time order"), "{stderr}");
    let reversed: Vec<(u32, String)> = lines.iter().rev().cloned().collect();
    let (newest_first, stderr) = scan(text(&reversed));
    assert_eq!(
        newest_first, in_order,
        "zcat auth.log* feeds the newest file first"
    );
    assert!(
        stderr.contains("job samples were out of time order, their bucket already scored (ssh_failed_logins_per_user: ")
            && stderr.contains(&format!(
                "ran every sample again in event-time order and found {} more",
                in_order.len()
            )),
        "{stderr}"
    );
}

#[test]
fn a_real_log_written_newest_first_correlates_as_when_reversed_or_shuffled() {
    // apache_access_scanners.log is newest first; its content discovery
    // scans must not depend on that.
    let Some(shared) = shared_dir() else { return };
    let log = lines(&shared.join("datasets/raw/apache_access_scanners.log.gz"));
    let dir = tempfile::tempdir().unwrap();
    let scans = |order: &str, lines: Vec<String>| -> Vec<String> {
        let path = dir.path().join(format!("{order}.log"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let out = tocsin()
            .args(["scan", "--rules", "rules/"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{order}: {out:?}");
        sorted_lines_with(&out.stdout, "Web Content Discovery Scan")
    };
    let reversed: Vec<String> = log.iter().rev().cloned().collect();
    // A fixed permutation: position i goes to i * 7919 mod n (7919 is prime
    // and does not divide n).
    let n = log.len();
    assert_ne!(n % 7919, 0);
    let mut shuffled = vec![String::new(); n];
    for (i, line) in log.iter().enumerate() {
        shuffled[i * 7919 % n] = line.clone();
    }
    let as_written = scans("as-written", log);
    assert!(as_written.len() > 20, "{}", as_written.len());
    assert_eq!(scans("reversed", reversed), as_written);
    assert_eq!(scans("shuffled", shuffled), as_written);
}

#[test]
fn a_scan_where_no_record_parses_exits_65_and_says_why() {
    let scan = |input: &[u8], format: &str| {
        let out = with_stdin(
            tocsin().args(["scan", "--rules", "rules/", "--input-format", format, "-"]),
            input,
        );
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, stderr) = scan(b"not json\nnor this\n", "json");
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains("not one of the 2 records could be parsed"),
        "{stderr}"
    );
    // One good line is enough, and an empty input is not an error.
    let (code, stderr) = scan(b"not json\n{\"a\": 1}\n", "json");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(scan(b"", "json").0, Some(0));
}

#[test]
fn evtx_originals_raise_the_same_alerts_as_their_json_exports_and_damage_is_dead_lettered() {
    let Some(shared) = shared_dir() else { return };
    let data = shared.join("sigma/regression_data/rules/windows");
    let (mut evtx, mut json) = (Vec::new(), Vec::new());
    let mut dirs = vec![data];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            match p.extension().and_then(|e| e.to_str()) {
                _ if p.is_dir() => dirs.push(p),
                Some("evtx") => evtx.push(p),
                Some("json") => json.push(p),
                _ => {}
            }
        }
    }
    assert!(evtx.len() >= 100, "{}", evtx.len());
    let rules = shared.join("sigma/rules");
    let alerts = |files: &[PathBuf]| -> (Vec<String>, String) {
        let out = tocsin()
            .args(["scan", "--rules"])
            .arg(&rules)
            .args(files)
            .output()
            .unwrap();
        let tail = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}",
            tail.lines().last().unwrap_or_default()
        );
        // The text before the link: ids derive from each file's own bytes.
        let mut lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split(". Check ").next().unwrap().to_string())
            .collect();
        lines.sort();
        (lines, String::from_utf8(out.stderr).unwrap())
    };
    let (from_evtx, stderr) = alerts(&evtx);
    assert!(
        stderr.contains(" 0 parse failures"),
        "{}",
        stderr.lines().last().unwrap_or_default()
    );
    // The exports are pretty-printed objects one after another: one per line here.
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports.jsonl");
    let mut lines = String::new();
    for file in &json {
        let text = std::fs::read_to_string(file).unwrap();
        for v in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            lines.push_str(&v.unwrap().to_string());
            lines.push('\n');
        }
    }
    std::fs::write(&exports, lines).unwrap();
    let (from_json, _) = alerts(&[exports]);
    assert!(from_evtx.len() >= 150, "{}", from_evtx.len());
    assert_eq!(from_evtx, from_json);

    // A damaged chunk: its records are dead-lettered with the decoder's
    // reason; nothing panics and the scan says no record parsed.
    let mut bytes = std::fs::read(&evtx[0]).unwrap();
    for b in bytes.iter_mut().skip(4096 + 512 + 200).take(60) {
        *b = 0xAA;
    }
    let damaged = dir.path().join("damaged.evtx");
    std::fs::write(&damaged, bytes).unwrap();
    let out = tocsin()
        .args(["scan", "--rules", "rules/"])
        .arg(&damaged)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("\"reason\":\"record 1: EVTX: Failed to parse chunk number 0"),
        "{stderr}"
    );
}
