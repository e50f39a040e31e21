//! Rules reloaded while events flow: by a change in the rule folder, by
//! SIGHUP and by `POST /reload`. No event is dropped or alerted twice, an
//! open correlation window survives, and a broken set never goes live.

mod common;

use common::tocsin;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "reload-s3cret";

fn rule(name: &str, action: &str) -> String {
    format!(
        "title: Rule {name}\nid: 7e1c0000-0000-4000-8000-0000000000{name}\nname: rule_{name}\nlogsource: {{product: test}}\ndetection:\n  sel: {{action: {action}}}\n  condition: sel\nlevel: high\n"
    )
}

const LOGINS: &str = "title: Three logins\nid: 7e1c0000-0000-4000-8000-0000000000cc\ncorrelation:\n  type: event_count\n  rules: [rule_1a]\n  group-by: [user]\n  timespan: 1h\n  condition: {gte: 3}\nlevel: critical\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let _ = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response
}

fn metric(port: u16, line_start: &str) -> u64 {
    http(port, "GET", "/metrics", None)
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn wait_until(what: &str, log: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn titled<'a>(alerts: &'a [Value], title: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["rule"]["title"] == title)
        .collect()
}

struct Running {
    child: Child,
    stdin: Arc<std::sync::Mutex<std::process::ChildStdin>>,
}

impl Running {
    fn send(&self, event: &str) {
        let mut stdin = self.stdin.lock().unwrap();
        writeln!(stdin, "{event}").unwrap();
        stdin.flush().unwrap();
    }
}

fn start(dir: &Path, port: u16) -> Running {
    let config = dir.join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nrules = [\"{rules}\"]\nworkers = 2\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n\
             [incident]\nhttp_token = \"{TOKEN}\"\n\
             [[sources]]\ntype = \"stdin\"\nformat = \"json\"\nlogsource = {{ product = \"test\" }}\n\
             [[sinks]]\ntype = \"file\"\npath = \"{alerts}\"\n",
            rules = dir.join("rules").display(),
            alerts = dir.join("alerts.jsonl").display(),
        ),
    )
    .unwrap();
    let mut child = tocsin()
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("tocsin.log")).unwrap())
        .spawn()
        .unwrap();
    let stdin = Arc::new(std::sync::Mutex::new(child.stdin.take().unwrap()));
    Running { child, stdin }
}

#[test]
fn rules_reload_while_events_flow_and_a_broken_set_never_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), rule("1a", "login")).unwrap();
    std::fs::write(rules.join("bulk.yml"), rule("0b", "bulk")).unwrap();
    std::fs::write(rules.join("logins.yml"), LOGINS).unwrap();
    let port = free_port();
    let log: PathBuf = dir.path().join("tocsin.log");
    let alerts_file = dir.path().join("alerts.jsonl");
    let mut run = start(dir.path(), port);
    wait_until("/readyz", &log, || {
        http(port, "GET", "/readyz", None).starts_with("HTTP/1.1 200")
    });

    // A steady flow of events throughout, each alerted by the bulk rule.
    let stop = Arc::new(AtomicBool::new(false));
    let flow = {
        let (stdin, stop) = (run.stdin.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let mut stdin = stdin.lock().unwrap();
                writeln!(stdin, r#"{{"action": "bulk", "n": {n}}}"#).unwrap();
                stdin.flush().unwrap();
                drop(stdin);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };

    // Two logins, then a rule added to the folder: the watcher reloads.
    run.send(r#"{"action": "login", "user": "ana"}"#);
    run.send(r#"{"action": "login", "user": "ana"}"#);
    std::fs::write(rules.join("d.yml"), rule("2d", "deploy")).unwrap();
    wait_until("the folder reload", &log, || {
        metric(port, "tocsin_rules_reload_total{result=\"reloaded\"}") >= 1
    });
    run.send(r#"{"action": "deploy"}"#);
    wait_until("the new rule's alert", &log, || {
        !titled(&alerts(&alerts_file), "Rule 2d").is_empty()
    });

    // SIGHUP reloads too; the third login completes the window opened
    // before both reloads.
    std::process::Command::new("kill")
        .args(["-HUP", &run.child.id().to_string()])
        .status()
        .unwrap();
    wait_until("the SIGHUP reload", &log, || {
        metric(port, "tocsin_rules_reload_total{result=\"reloaded\"}") >= 2
    });
    run.send(r#"{"action": "login", "user": "ana"}"#);
    wait_until("the correlation", &log, || {
        !titled(&alerts(&alerts_file), "Three logins").is_empty()
    });

    // A broken set: one good new rule and one broken one. Neither goes live.
    let broken = "title: broken\nlogsource: {product: test}\ndetection:\n  sel:\n    a|bogus: 1\n  condition: sel\n";
    std::fs::write(rules.join("e.yml"), rule("3e", "exfil")).unwrap();
    std::fs::write(rules.join("broken.yml"), broken).unwrap();
    let answer = http(port, "POST", "/reload", Some(TOKEN));
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(answer.contains("broken.yml:5:5:"), "{answer}");
    assert!(http(port, "POST", "/reload", Some("wrong")).starts_with("HTTP/1.1 401"));
    run.send(r#"{"action": "exfil"}"#);
    run.send(r#"{"action": "deploy"}"#);
    wait_until("the second deploy alert", &log, || {
        titled(&alerts(&alerts_file), "Rule 2d").len() >= 2
    });
    assert!(metric(port, "tocsin_rules_reload_total{result=\"rejected\"}") >= 1);
    assert!(metric(port, "tocsin_rules_last_reload_timestamp_seconds") > 1_700_000_000);

    // Fixed: the next reload takes it.
    std::fs::remove_file(rules.join("broken.yml")).unwrap();
    let answer = http(port, "POST", "/reload", Some(TOKEN));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.store(true, Ordering::SeqCst);
    let sent = flow.join().unwrap();
    drop(run.stdin);
    let status = run.child.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let all = alerts(&alerts_file);
    let mut bulk: Vec<u64> = titled(&all, "Rule 0b")
        .iter()
        .map(|a| a["event"]["n"].as_u64().unwrap())
        .collect();
    bulk.sort_unstable();
    assert_eq!(
        bulk,
        (0..u64::from(sent)).collect::<Vec<_>>(),
        "every event once, across every reload"
    );
    assert!(
        titled(&all, "Rule 3e").is_empty(),
        "the broken set went live"
    );
    assert_eq!(titled(&all, "Three logins").len(), 1);
}
