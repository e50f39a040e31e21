//! `tocsin run` follows its files as a service: lines appended and files
//! rotated while it runs are read, a kill -9 loses no line, and a clean
//! restart reads none twice. Real processes, real files.

mod common;

use common::{run_ok, tocsin};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const RULE: &str = "title: Follow test hit
id: 6d1f0b7e-5b1a-4c57-9b0e-0f0110f0f011
status: test
logsource: {product: test}
detection:
  sel: {action: hit}
  condition: sel
level: high
";

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/hit.yml"), RULE).unwrap();
        let config = dir.path().join("tocsin.toml");
        std::fs::write(
            &config,
            format!(
                r#"[engine]
rules = ["{rules}"]
data_dir = "{data}"
[metrics]
enabled = false
[[sources]]
type = "file"
name = "app"
paths = ["{log}"]
format = "json"
logsource = {{ product = "test" }}
[[sinks]]
type = "file"
path = "{alerts}"
[dead_letter]
type = "file"
path = "{dead}"
"#,
                rules = dir.path().join("rules").display(),
                data = dir.path().join("data").display(),
                log = dir.path().join("app.log").display(),
                alerts = dir.path().join("alerts.jsonl").display(),
                dead = dir.path().join("dead.jsonl").display(),
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self) -> Child {
        tocsin()
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("tocsin.log")).unwrap())
            .spawn()
            .unwrap()
    }

    /// Appends events `range` (each a rule match carrying its number) to `file`.
    fn write(&self, file: &str, range: std::ops::Range<u32>) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(file))
            .unwrap();
        for n in range {
            writeln!(f, r#"{{"action": "hit", "n": {n}}}"#).unwrap();
        }
    }

    /// Alerts written so far per event number.
    fn alerts(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        let text = std::fs::read_to_string(self.path("alerts.jsonl")).unwrap_or_default();
        for line in text.lines().filter(|l| l.ends_with('}')) {
            let alert: Value = serde_json::from_str(line).unwrap();
            let n = alert["event"]["n"].as_u64().expect("the event's number");
            *counts.entry(n).or_default() += 1;
        }
        counts
    }

    /// Waits until every event below `n` has an alert.
    fn wait_for_alerts(&self, n: u64) -> BTreeMap<u64, usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let alerts = self.alerts();
            if (0..n).all(|i| alerts.contains_key(&i)) {
                return alerts;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.path("tocsin.log")).unwrap_or_default();
                panic!("events below {n} not all alerted: {alerts:?}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn checkpointed(&self) -> bool {
        self.path("data/file-positions.json").exists()
    }
}

/// SIGTERM, then the exit status.
fn stop(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "tocsin did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn appended_and_rotated_lines_survive_a_kill_and_a_clean_restart_reads_none_twice() {
    let s = Setup::new();
    s.write("app.log", 0..100);
    let child = s.start();
    s.wait_for_alerts(100);
    // Appended while running, then a rename-and-create rotation; the writer
    // adds a last line to the renamed file.
    s.write("app.log", 100..150);
    std::fs::rename(s.path("app.log"), s.path("app.log.1")).unwrap();
    s.write("app.log.1", 150..151);
    s.write("app.log", 151..200);
    s.wait_for_alerts(200);
    wait_until("a checkpoint", || s.checkpointed());

    // kill -9: nothing is lost, whatever was not checkpointed is read again.
    let mut child = child;
    s.write("app.log", 200..230);
    child.kill().unwrap();
    child.wait().unwrap();
    s.write("app.log", 230..260);
    let child = s.start();
    let after_kill = s.wait_for_alerts(260);
    assert!(after_kill.values().all(|&c| c >= 1));

    // A clean stop, more lines and a copy-truncate rotation while stopped,
    // then a restart: exactly the new lines are alerted.
    assert!(stop(child).success());
    let before = s.alerts();
    s.write("app.log", 260..280);
    let child = s.start();
    let alerts = s.wait_for_alerts(280);
    std::fs::copy(s.path("app.log"), s.path("app.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.path("app.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    s.write("app.log", 280..300);
    let alerts_after = s.wait_for_alerts(300);
    // Give a late duplicate time to show up before judging.
    std::thread::sleep(Duration::from_secs(2));
    assert!(stop(child).success());
    let last = s.alerts();
    assert_eq!(last, alerts_after);
    for n in 0..260 {
        assert_eq!(
            last[&n], before[&n],
            "event {n} was alerted again after a clean restart"
        );
    }
    for n in 260..300 {
        assert_eq!(last[&n], 1, "event {n}: {:?}", alerts.get(&n));
    }
}

#[test]
fn a_damaged_positions_file_stops_the_start_and_names_the_file() {
    let s = Setup::new();
    s.write("app.log", 0..1);
    std::fs::create_dir_all(s.path("data")).unwrap();
    std::fs::write(s.path("data/file-positions.json"), "{not json").unwrap();
    let out = tocsin()
        .args(["run", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("file-positions.json"), "{err}");
}

#[test]
fn follow_false_reads_the_files_once_and_ends() {
    let s = Setup::new();
    s.write("app.log", 0..3);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace("format = \"json\"", "format = \"json\"\nfollow = false"),
    )
    .unwrap();
    run_ok(tocsin().args(["run", "--config"]).arg(&s.config));
    assert_eq!(s.alerts().len(), 3);
    assert!(!s.checkpointed(), "a file read once keeps no position");
}
