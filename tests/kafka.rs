//! End-to-end tests against a real Kafka-protocol broker over TCP.
//!
//! `scripts/test.sh` installs (if absent) and starts the tansu broker and
//! sets `TEST_KAFKA_BROKERS` to its address and `TEST_TANSU_BIN` to its binary.
//! Without them these tests skip with a message, except under CI, where
//! they fail: the Kafka path must never go untested silently.
//!
//! The engine runs as a real process (`tocsin run --config ...`), so a
//! kill -9 is a real crash. Each test uses its own topics and group.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;

/// The test broker's address, or `None` (skip) outside CI.
fn broker() -> Option<String> {
    match std::env::var("TEST_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var_os("CI").is_some() => {
            panic!("TEST_KAFKA_BROKERS is not set under CI: run the tests with ./scripts/test.sh, which starts the broker")
        }
        _ => {
            eprintln!(
                "SKIPPED: no Kafka broker (TEST_KAFKA_BROKERS unset); ./scripts/test.sh starts one"
            );
            None
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Names unique to this test process and test, so tests never share topics or groups.
fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = client(brokers).create().expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            panic!("creating {topic}: {e}");
        }
    }
}

/// Produces `(key, value)` records and waits until the broker has them all.
fn produce(brokers: &str, topic: &str, records: &[(String, String)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = client(brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(value.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("test records delivered");
}

/// Produces `lines` in chunks of `chunk`, pausing between them, on a
/// thread: records keep arriving while a test starts, kills or adds engines.
fn feed_in_background(
    brokers: &str,
    topic: &str,
    lines: &[(String, String)],
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    let (brokers, topic, lines) = (brokers.to_string(), topic.to_string(), lines.to_vec());
    std::thread::spawn(move || {
        for part in lines.chunks(chunk) {
            produce(&brokers, &topic, part);
            std::thread::sleep(pause);
        }
    })
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
struct Received {
    key: Option<String>,
    value: Vec<u8>,
    headers: BTreeMap<String, String>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("alert record is JSON")
    }
}

/// Reads a topic from the beginning until `done` holds or `timeout` passes.
fn read_topic(
    brokers: &str,
    topic: &str,
    read_committed: bool,
    timeout: Duration,
    mut done: impl FnMut(&[Received]) -> bool,
) -> Vec<Received> {
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata")
        .topics()
        .first()
        .map_or(1, |t| t.partitions().len().max(1)) as i32;
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !done(&out) {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(msg) = msg else { continue };
        let mut headers = BTreeMap::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_string(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push(Received {
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: msg.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    out
}

/// Reads until nothing new arrives for `quiet`.
fn read_all(brokers: &str, topic: &str, read_committed: bool, quiet: Duration) -> Vec<Received> {
    let seen = std::cell::Cell::new((0usize, Instant::now()));
    read_topic(
        brokers,
        topic,
        read_committed,
        Duration::from_secs(60),
        |got| {
            let (n, since) = seen.get();
            if got.len() != n {
                seen.set((got.len(), Instant::now()));
                false
            } else {
                since.elapsed() >= quiet
            }
        },
    )
}

/// A running engine process.
struct Engine {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Engine {
    fn start(config: &Path) -> Engine {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["run", "--config"])
            .arg(config)
            .current_dir(root())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("engine starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Engine { child, log }
    }

    fn log_contains(&self, needle: &str) -> usize {
        self.log
            .lock()
            .map(|l| l.iter().filter(|x| x.contains(needle)).count())
            .unwrap_or(0)
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_contains(needle) == 0 {
            assert!(
                Instant::now() < deadline,
                "engine never logged `{needle}`:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        Engine::log_text_of(&self.log)
    }

    /// The log of an engine that has exited.
    fn log_text_of(log: &std::sync::Mutex<Vec<String>>) -> String {
        log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// SIGTERM, then the exit status, which must come within `within`.
    fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "engine did not exit within {within:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the engine to exit on its own; its status and log.
    fn exit_within(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the engine kept running:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        // Let the stderr reader take the last lines.
        std::thread::sleep(Duration::from_millis(200));
        (status, self.log_text())
    }

    fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum over all series of a counter on the engine's /metrics.
fn scrape_sum(port: u16, metric: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(
        body.lines()
            .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

/// Input topics of a test and the config that reads them.
struct Setup {
    dir: tempfile::TempDir,
    brokers: String,
    group: String,
    auth: String,
    web: String,
    windows: String,
    alerts: String,
    lines: String,
    dead: String,
    /// Serve /metrics on this port (off when `None`).
    metrics_port: Option<u16>,
    /// Lines for `[engine]`.
    engine_extra: String,
    /// Whole sections appended to the config.
    sections: String,
}

impl Setup {
    /// Names for a test's topics and group, created on the shared broker.
    fn new(brokers: &str, name: &str) -> Setup {
        let s = Setup::named(brokers, name);
        create_topics(brokers, &s.topics());
        s
    }

    fn named(brokers: &str, name: &str) -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("temp dir"),
            brokers: brokers.to_string(),
            group: unique(&format!("{name}-group")),
            auth: unique(&format!("{name}-auth")),
            web: unique(&format!("{name}-web")),
            windows: unique(&format!("{name}-windows")),
            alerts: unique(&format!("{name}-alerts")),
            lines: unique(&format!("{name}-lines")),
            dead: unique(&format!("{name}-dead")),
            metrics_port: None,
            engine_extra: String::new(),
            sections: String::new(),
        }
    }

    fn topics(&self) -> Vec<(&str, i32)> {
        vec![
            (&self.auth, PARTITIONS),
            (&self.web, PARTITIONS),
            (&self.windows, PARTITIONS),
            (&self.alerts, PARTITIONS),
            (&self.lines, 1),
            (&self.dead, 1),
        ]
    }

    /// Writes an engine config; `kafka_extra` lines go into `[kafka]`.
    fn config(&self, name: &str, kafka_extra: &str) -> PathBuf {
        self.config_with(name, kafka_extra, "")
    }

    /// [`Setup::config`] with lines for `[delivery]`.
    fn config_with(&self, name: &str, kafka_extra: &str, delivery_extra: &str) -> PathBuf {
        let text = format!(
            r#"
[engine]
rules = ["{rules}"]
workers = 2
{engine_extra}

[kafka]
"bootstrap.servers" = "{brokers}"
"group.id" = "{group}"
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
{kafka_extra}

[delivery]
commit_interval = "200ms"
shutdown_timeout = "20s"
{delivery_extra}

[[sources]]
type = "kafka"
topic = "{auth}"
format = "syslog"

[[sources]]
type = "kafka"
topic = "{web}"
format = "access-log"

[[sources]]
type = "kafka"
topic = "{windows}"
format = "auto"

[[sinks]]
type = "kafka"
topic = "{alerts}"
format = "json"

[[sinks]]
type = "kafka"
topic = "{lines}"
format = "text"

[dead_letter]
type = "kafka"
topic = "{dead}"

[metrics]
{metrics}

{sections}
"#,
            sections = self.sections,
            metrics = match self.metrics_port {
                Some(port) => format!("enabled = true\nlisten = \"127.0.0.1:{port}\""),
                None => "enabled = false".to_string(),
            },
            rules = root().join("rules").display(),
            engine_extra = self.engine_extra,
            brokers = self.brokers,
            group = self.group,
            auth = self.auth,
            web = self.web,
            windows = self.windows,
            alerts = self.alerts,
            lines = self.lines,
            dead = self.dead,
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("config written");
        path
    }
}

fn sample_lines(file: &str) -> Vec<String> {
    std::fs::read_to_string(root().join("samples").join(file))
        .expect("sample file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Records keyed by a constant: one partition, so the file keeps its order
/// (as a shipper keying by host does) and correlations see what a scan sees.
fn keyed_by_file(file: &str) -> Vec<(String, String)> {
    sample_lines(file)
        .into_iter()
        .map(|l| (file.to_string(), l))
        .collect()
}

/// Which alerts a scan oracle counts.
#[derive(Clone, Copy, PartialEq)]
enum Alerts {
    All,
    /// Per-event alerts only: correlations depend on how partitions
    /// interleave, per-event alerts do not.
    PerEvent,
}

/// The alert records `tocsin scan --format json` gives for a file.
fn scan_json(path: &Path, format: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args([
            "scan",
            "--rules",
            "rules/",
            "--format",
            "json",
            "--input-format",
            format,
        ])
        .arg(path)
        .current_dir(root())
        .stderr(Stdio::null())
        .output()
        .expect("scan runs");
    assert!(out.status.success(), "scan of {} failed", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("scan JSON line"))
        .collect()
}

/// What `tocsin scan` gives for a file: alert ids with their count.
fn scan_ids(path: &Path, format: &str, which: Alerts) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for alert in scan_json(path, format) {
        if which == Alerts::All || alert["group"].is_null() {
            *ids.entry(alert["id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    ids
}

/// What `tocsin scan` says a sample file must give.
fn expected_alerts(file: &str, format: &str) -> BTreeMap<String, usize> {
    scan_ids(&root().join("samples").join(file), format, Alerts::All)
}

fn count_ids(records: &[Received]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for r in records {
        *ids.entry(r.json()["id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    ids
}

#[test]
fn alerts_reach_the_alerts_topic_exactly_as_a_scan_of_the_same_events_gives_them() {
    let Some(brokers) = broker() else { return };
    let mut s = Setup::new(&brokers, "exact");
    let port = free_port();
    s.metrics_port = Some(port);
    let garbage = [
        ("bad".to_string(), "{\"truncated\": ".to_string()),
        ("bad".to_string(), "not a log line at all".to_string()),
    ];
    produce(&brokers, &s.auth, &keyed_by_file("auth.log"));
    produce(&brokers, &s.web, &keyed_by_file("access.log"));
    let mut windows = keyed_by_file("windows.jsonl");
    windows.extend(garbage.iter().take(1).cloned());
    produce(&brokers, &s.windows, &windows);
    produce(&brokers, &s.web, &garbage[1..]);

    let mut expected = expected_alerts("auth.log", "syslog");
    for (id, n) in expected_alerts("access.log", "access-log")
        .into_iter()
        .chain(expected_alerts("windows.jsonl", "auto"))
    {
        *expected.entry(id).or_default() += n;
    }
    let total: usize = expected.values().sum();
    assert!(total > 20, "the samples give alerts ({total})");

    let produced = sample_lines("auth.log").len()
        + sample_lines("access.log").len()
        + sample_lines("windows.jsonl").len()
        + garbage.len();
    let engine = Engine::start(&s.config("engine", ""));
    // Every consumed record is parsed or dead-lettered, by the engine's own count.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while Instant::now() < deadline {
        read = scrape_sum(port, "tocsin_events_read_total").unwrap_or(0);
        if read as usize >= produced {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        read as usize,
        produced,
        "records consumed:\n{}",
        engine.log_text()
    );
    let parsed = scrape_sum(port, "tocsin_events_parsed_total").unwrap_or(0);
    let failed = scrape_sum(port, "tocsin_events_failed_total").unwrap_or(0);
    assert_eq!(
        (parsed + failed, failed),
        (read, 2),
        "parsed + dead-lettered = consumed"
    );
    // Per-event alerts arrive while running; windows still open are decided
    // when the engine stops, as at the end of a scan.
    let first = read_topic(&brokers, &s.alerts, false, Duration::from_secs(60), |got| {
        got.len() * 10 >= total * 8
    });
    assert!(
        first.len() * 10 >= total * 8,
        "only {} of {total} alerts while running:\n{}",
        first.len(),
        engine.log_text()
    );
    let status = engine.terminate(Duration::from_secs(25));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let alerts = read_all(&brokers, &s.alerts, false, Duration::from_secs(2));
    assert_eq!(count_ids(&alerts), expected, "alert ids and counts");
    for a in &alerts {
        let record = a.json();
        assert_eq!(
            a.headers["type"],
            record["type"].as_str().unwrap_or_default()
        );
        assert_eq!(
            a.headers["severity"],
            record["severity"].as_str().unwrap_or_default()
        );
        assert_eq!(
            a.headers["rule_id"],
            record["rule"]["id"].as_str().unwrap_or_default()
        );
        let key = a.key.clone().unwrap_or_default();
        if record["group"].is_object() {
            assert!(
                key.starts_with(record["rule"]["id"].as_str().unwrap_or("?")),
                "group key {key}"
            );
        } else {
            assert_eq!(key, record["id"].as_str().unwrap_or_default());
        }
    }
    let text = read_all(&brokers, &s.lines, false, Duration::from_secs(1));
    assert_eq!(text.len(), alerts.len(), "one text line per alert");
    for t in &text {
        let line = String::from_utf8_lossy(&t.value);
        assert!(line.starts_with("SIEM ALERT -- STATIC RULE - ["), "{line}");
        assert!(line.contains(". Check https://"), "{line}");
    }
    // Every consumed record is parsed or dead-lettered: the two bad ones are
    // dead letters with their bytes and origin.
    let dead = read_all(&brokers, &s.dead, false, Duration::from_secs(1));
    assert_eq!(dead.len(), 2, "{dead:?}");
    let mut bad: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8_lossy(&d.value).into_owned())
        .collect();
    bad.sort();
    assert_eq!(bad, vec!["not a log line at all", "{\"truncated\": "]);
    for d in &dead {
        assert!(!d.headers["reason"].is_empty());
        assert!(d.headers["source_topic"] == s.web || d.headers["source_topic"] == s.windows);
        assert!(d.headers["source_offset"].parse::<i64>().is_ok());
        assert!(d.headers["source_partition"].parse::<i32>().is_ok());
    }
}

/// Unique sshd failures: each line gives per-event alerts with distinct ids.
fn sshd_failures(n: usize, tag: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("k{i}"),
                format!(
                    "Mar  3 10:{:02}:{:02} bastion sshd[{}]: Failed password for invalid user {tag}{i} from 10.9.{}.{} port {} ssh2",
                    (i / 60) % 60,
                    i % 60,
                    1000 + i,
                    (i / 250) % 250,
                    i % 250,
                    40000 + i % 20000
                ),
            )
        })
        .collect()
}

/// The per-event alert ids a scan gives for the given syslog lines.
fn expected_for_lines(dir: &Path, lines: &[(String, String)]) -> BTreeMap<String, usize> {
    let path = dir.join("expected.log");
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&path, text).expect("lines written");
    scan_ids(&path, "syslog", Alerts::PerEvent)
}

/// Distinct per-event alert ids seen so far, updated incrementally (a
/// predicate of `read_topic` runs after every record).
fn distinct_per_event() -> impl FnMut(&[Received]) -> usize {
    let mut seen = BTreeSet::new();
    let mut looked = 0;
    move |got: &[Received]| {
        for r in &got[looked..] {
            let alert = r.json();
            if alert["group"].is_null() {
                seen.insert(alert["id"].to_string());
            }
        }
        looked = got.len();
        seen.len()
    }
}

fn per_event(records: &[Received]) -> Vec<Received> {
    records
        .iter()
        .filter(|r| r.json()["group"].is_null())
        .cloned()
        .collect()
}

#[test]
fn two_engines_in_one_group_share_the_partitions_without_duplicates() {
    let Some(brokers) = broker() else { return };
    let s = Setup::new(&brokers, "pair");
    let config = s.config("engine", "");
    let a = Engine::start(&config);
    let b = Engine::start(&config);
    // Both members must hold partitions before records flow, or the first
    // would take everything and hand some back in a rebalance.
    a.wait_for_log("partitions assigned", Duration::from_secs(30));
    b.wait_for_log("partitions assigned", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let lines = sshd_failures(600, "pair");
    let expected = expected_for_lines(s.dir.path(), &lines);
    produce(&brokers, &s.auth, &lines);
    let mut distinct = distinct_per_event();
    let got = read_topic(&brokers, &s.alerts, false, Duration::from_secs(90), |got| {
        distinct(got) >= expected.len()
    });
    let got = per_event(&got);
    let ids = count_ids(&got);
    let duplicates: usize = ids.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "no alert twice");
    assert_eq!(ids, expected, "every alert once");
    // Both did work: each handled some partitions.
    assert!(a.log_contains("partitions assigned") > 0 && b.log_contains("partitions assigned") > 0);
    assert!(a.terminate(Duration::from_secs(25)).success());
    assert!(b.terminate(Duration::from_secs(25)).success());
}

#[test]
fn an_engine_killed_mid_stream_loses_no_alert_after_restart() {
    let Some(brokers) = broker() else { return };
    let s = Setup::new(&brokers, "crash");
    let config = s.config("engine", "");
    let lines = sshd_failures(20_000, "crash");
    let expected = expected_for_lines(s.dir.path(), &lines);
    let total: usize = expected.values().sum();

    // Records keep arriving while the engine runs, is killed and restarts.
    let feeder = feed_in_background(&brokers, &s.auth, &lines, 500, Duration::from_millis(150));
    let first = Engine::start(&config);
    let mut distinct = distinct_per_event();
    let before = read_topic(&brokers, &s.alerts, false, Duration::from_secs(60), |got| {
        distinct(got) >= total / 4
    });
    assert!(before.len() >= total / 4, "the engine got going");
    first.kill_9();

    let second = Engine::start(&config);
    let mut distinct = distinct_per_event();
    let got = read_topic(
        &brokers,
        &s.alerts,
        false,
        Duration::from_secs(180),
        |got| distinct(got) >= expected.len(),
    );
    let _ = feeder.join();
    let log = second.log_text();
    assert!(second.terminate(Duration::from_secs(25)).success());
    let got = per_event(&got);
    let ids = count_ids(&got);
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !ids.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} alerts lost, e.g. {:?}\n{log}",
        missing.len(),
        expected.len(),
        missing.first()
    );
    let duplicates: usize = ids.values().map(|n| n - 1).sum();
    // At-least-once: a crash may repeat what was produced but not yet committed.
    eprintln!(
        "kill -9 mid-stream: {total} alerts expected, {} received, {duplicates} duplicates (at-least-once)",
        got.len()
    );
    assert!(
        duplicates < total / 2,
        "duplicates stay bounded by the uncommitted window"
    );
}

/// A broker of our own (the shared one must not be restarted under other tests).
struct OwnBroker {
    child: Child,
    port: u16,
}

impl OwnBroker {
    fn start(port: u16) -> Option<OwnBroker> {
        let bin = std::env::var("TEST_TANSU_BIN").ok()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(OwnBroker { child, port })
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A broker of this test's own, on a free port; `None` (the test skips,
/// saying why) without the shared broker or the tansu binary, never under CI.
fn own_broker() -> Option<OwnBroker> {
    broker()?;
    let own = OwnBroker::start(free_port());
    if own.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_TANSU_BIN is not set under CI"
        );
        eprintln!("SKIPPED: TEST_TANSU_BIN unset (path of the tansu binary)");
    }
    own
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn the_engine_recovers_when_the_broker_restarts() {
    let Some(own) = own_broker() else { return };
    let brokers = format!("127.0.0.1:{}", own.port);
    let s = Setup::new(&brokers, "restart");
    // tansu's memory storage forgets producer ids on restart, so an
    // idempotent producer's retries are refused forever (a real broker keeps
    // them in its log). This test is about reconnecting, so it turns
    // idempotence off through the librdkafka pass-through.
    let engine = Engine::start(&s.config("engine", "\"enable.idempotence\" = \"false\""));
    // Before the restart the records go to one topic, after it to another:
    // the memory broker comes back empty, and the engine's positions in a
    // topic it read before point past the new, shorter logs.
    let before = sshd_failures(50, "before");
    produce(&brokers, &s.windows, &before);
    let got = read_topic(&brokers, &s.alerts, false, Duration::from_secs(60), |g| {
        g.len() >= 50
    });
    assert!(
        got.len() >= 50,
        "alerts before the restart:\n{}",
        engine.log_text()
    );

    // The broker goes away for a while; its memory storage comes back empty.
    let port = own.stop();
    std::thread::sleep(Duration::from_secs(3));
    let _own = OwnBroker::start(port).expect("tansu restarts");
    let s2 = Setup {
        dir: tempfile::tempdir().expect("temp dir"),
        ..s
    };
    create_topics(&brokers, &s2.topics());
    let after = sshd_failures(50, "after");
    let expected = expected_for_lines(s2.dir.path(), &after);
    produce(&brokers, &s2.auth, &after);
    let mut distinct = distinct_per_event();
    let got = read_topic(&brokers, &s2.alerts, false, Duration::from_secs(90), |g| {
        distinct(g) >= expected.len()
    });
    assert_eq!(
        count_ids(&per_event(&got)).keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "alerts after the restart:\n{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(25)).success());
}

/// A mock cluster with a test's topics.
type Mock = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

fn mock_topics(name: &str) -> (Mock, Setup) {
    let mock = Mock::new(1).expect("mock cluster");
    let s = Setup::named(&mock.bootstrap_servers(), name);
    for (topic, partitions) in s.topics() {
        mock.create_topic(topic, partitions, 1).expect("mock topic");
    }
    (mock, s)
}

/// A mock cluster (librdkafka's, in this process, over real TCP) with the
/// test topics. tansu has no transactions, so exactly-once mode is tested
/// here. The mock neither keeps offsets sent to a transaction nor hides
/// aborted records from `read_committed` readers, so "no duplicates after a
/// crash" needs a real Kafka (>= 2.5); these tests check the transactional
/// flow and its failure handling.
fn mock_cluster(name: &str) -> (Mock, Setup, PathBuf) {
    let (mock, s) = mock_topics(name);
    let config = s.config_with(
        "engine",
        "",
        &format!(
            "mode = \"exactly-once\"\ntransactional_id = \"{}\"",
            unique(name)
        ),
    );
    (mock, s, config)
}

#[test]
fn exactly_once_mode_delivers_every_alert_once_through_committed_transactions() {
    let (_mock, s, config) = mock_cluster("eos");
    let lines = sshd_failures(3_000, "eos");
    let expected = expected_for_lines(s.dir.path(), &lines);
    let engine = Engine::start(&config);
    for chunk in lines.chunks(500) {
        produce(&s.brokers, &s.auth, chunk);
    }
    let mut distinct = distinct_per_event();
    read_topic(
        &s.brokers,
        &s.alerts,
        true,
        Duration::from_secs(60),
        |got| distinct(got) >= expected.len(),
    );
    let log = engine.log_text();
    assert!(engine.terminate(Duration::from_secs(25)).success(), "{log}");
    let all = read_all(&s.brokers, &s.alerts, true, Duration::from_secs(2));
    assert_eq!(count_ids(&per_event(&all)), expected, "{log}");
}

#[test]
fn exactly_once_mode_stops_when_the_producer_is_fenced() {
    let (mock, s, config) = mock_cluster("fenced");
    // Another instance with the same transactional.id took over: the broker
    // refuses this one's commits. It must stop, not carry on uncommitted.
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::EndTxn,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 10],
    );
    let mut engine = Engine::start(&config);
    produce(&s.brokers, &s.auth, &sshd_failures(100, "fenced"));
    let (status, log) = engine.exit_within(Duration::from_secs(60));
    assert!(
        !status.success(),
        "a fenced engine exits with an error:\n{log}"
    );
    assert!(
        log.contains("committing the transaction"),
        "the error says what failed:\n{log}"
    );
}

#[test]
fn a_refused_alert_stops_the_engine_before_its_offset_is_committed() {
    let (mock, s) = mock_topics("refused");
    let mut engine = Engine::start(&s.config("engine", "\"message.timeout.ms\" = \"5000\""));
    // The test's own records go in first; then the broker refuses every
    // produce for good (not a retriable error), the engine's alerts included.
    produce(&s.brokers, &s.auth, &sshd_failures(20, "refused"));
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Produce,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1000],
    );
    let (status, log) = engine.exit_within(Duration::from_secs(60));
    assert!(!status.success(), "exits with an error:\n{log}");
    assert!(
        log.contains("delivery to"),
        "names the failed delivery:\n{log}"
    );
    // Nothing was committed: a restart reads the records again.
    let c: BaseConsumer = client(&s.brokers)
        .set("group.id", &s.group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&s.auth, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Invalid,
            "partition {} committed",
            e.partition()
        );
    }
}

const BRUTE_FORCE_RULE: &str = "826d52a0-e64d-43fc-9582-6f872fa207f3";

/// `n` failed logins from one address, starting at second `from`.
fn failures_from(address: &str, from: usize, n: usize) -> Vec<(String, String)> {
    (from..from + n)
        .map(|i| {
            (
                address.to_string(),
                format!(
                    "Mar  3 11:00:{i:02} bastion sshd[{}]: Failed password for root from {address} port {} ssh2",
                    2000 + i,
                    50000 + i
                ),
            )
        })
        .collect()
}

/// Where a test keeps correlation state.
#[derive(Clone, Copy, PartialEq)]
enum Store {
    Nowhere,
    File,
    Topic,
}

/// Six failures, kill -9, restart, four more: with correlation state kept
/// (a file or a topic) the brute-force window (10 in 10 minutes) fires
/// once; without it, the restarted engine has forgotten the first six.
fn brute_force_alerts_across_a_kill(brokers: &str, name: &str, store: Store) -> Vec<Received> {
    let s = Setup::new(brokers, name);
    let state = s.dir.path().join("correlation-state.json");
    let state_topic = unique(&format!("{name}-state"));
    let extra = match store {
        Store::Nowhere => String::new(),
        Store::File => format!("\n[correlation]\nstate_file = \"{}\"", state.display()),
        Store::Topic => {
            create_topics(brokers, &[(&state_topic, 1)]);
            format!("\n[correlation]\nstate_topic = \"{state_topic}\"")
        }
    };
    let snapshots = store != Store::Nowhere;
    let config = s.config_with("engine", "", &extra);
    let first = Engine::start(&config);
    produce(brokers, &s.auth, &failures_from("203.0.113.9", 0, 6));
    let got = read_topic(brokers, &s.alerts, false, Duration::from_secs(60), |g| {
        g.len() >= 6
    });
    assert_eq!(got.len(), 6, "per-event alerts before the kill");
    // Past a checkpoint (commit_interval is 200ms): offsets and snapshot saved.
    std::thread::sleep(Duration::from_secs(2));
    match store {
        Store::File => assert!(state.exists(), "snapshot written:\n{}", first.log_text()),
        Store::Topic => assert!(
            !read_topic(brokers, &state_topic, false, Duration::from_secs(10), |g| {
                !g.is_empty()
            })
            .is_empty(),
            "snapshot written to the topic:\n{}",
            first.log_text()
        ),
        Store::Nowhere => {}
    }
    first.kill_9();

    let second = Engine::start(&config);
    if snapshots {
        second.wait_for_log("restored from the snapshot", Duration::from_secs(30));
    }
    produce(brokers, &s.auth, &failures_from("203.0.113.9", 6, 4));
    // Ten per-event alerts, and with the snapshot the correlation alert;
    // anything else still in flight is read after the engine stops.
    let wanted = 10 + usize::from(snapshots);
    read_topic(brokers, &s.alerts, false, Duration::from_secs(30), |g| {
        g.len() >= wanted
    });
    let log = second.log_text();
    assert!(second.terminate(Duration::from_secs(25)).success(), "{log}");
    read_all(brokers, &s.alerts, false, Duration::from_secs(2))
        .into_iter()
        .filter(|r| r.json()["rule"]["id"] == BRUTE_FORCE_RULE)
        .collect()
}

#[test]
fn correlation_windows_survive_a_kill_9_in_the_middle_of_a_window() {
    let Some(brokers) = broker() else { return };
    let alerts = brute_force_alerts_across_a_kill(&brokers, "window", Store::File);
    assert_eq!(alerts.len(), 1, "one brute-force alert: {alerts:?}");
    let alert = alerts[0].json();
    assert_eq!(alert["group"]["src_ip"], "203.0.113.9");
    assert!(
        alert["message"]
            .as_str()
            .unwrap_or_default()
            .contains("10 events"),
        "{}",
        alert["message"]
    );
    // The control: without the state file the window is lost in the crash.
    let control = brute_force_alerts_across_a_kill(&brokers, "nowindow", Store::Nowhere);
    assert!(control.is_empty(), "{control:?}");
}

#[test]
fn correlation_windows_survive_a_kill_9_with_the_state_in_a_kafka_topic() {
    let Some(brokers) = broker() else { return };
    let alerts = brute_force_alerts_across_a_kill(&brokers, "topicstate", Store::Topic);
    assert_eq!(alerts.len(), 1, "one brute-force alert: {alerts:?}");
    assert_eq!(alerts[0].json()["group"]["src_ip"], "203.0.113.9");
}

/// The alert lifecycle on Kafka: triage updates from a topic, the alert
/// state in a compacted topic keyed by alert id, escalations to their own
/// topic, and no escalation repeated after a kill -9 and restart; beside
/// the topic, the hash-chained journal an auditor verifies.
#[test]
fn alert_state_lives_in_a_compacted_topic_and_escalations_are_not_repeated_after_a_kill() {
    let Some(brokers) = broker() else { return };
    let s = Setup::new(&brokers, "incident");
    let evidence = tempfile::tempdir().unwrap();
    let journal = evidence.path().join("alerts.jsonl");
    let (triage, state, escalations) = (
        unique("incident-triage"),
        unique("incident-state"),
        unique("incident-escalations"),
    );
    create_topics(&brokers, &[(&triage, 1), (&state, 1), (&escalations, 1)]);
    let extra = format!(
        r#"
[incident]
enabled = true
state_topic = "{state}"
state_file = "{journal}"
check_interval = "100ms"
[[incident.escalation]]
level = "page"
at = "immediately"
destination = "escalations"
[incident.escalation_sink]
type = "kafka"
topic = "{escalations}"
format = "json"

[[sources]]
type = "kafka"
topic = "{triage}"
records = "triage"
"#,
        journal = journal.display()
    );
    let config = s.config_with("engine", "", &extra);
    let first = Engine::start(&config);
    produce(&brokers, &s.auth, &failures_from("203.0.113.77", 0, 1));
    let alerts = read_topic(&brokers, &s.alerts, false, Duration::from_secs(60), |g| {
        !g.is_empty()
    });
    assert_eq!(alerts.len(), 1, "{}", first.log_text());
    let alert = alerts[0].json();
    let id = alert["id"].as_str().expect("alert id").to_string();
    let paged = read_topic(
        &brokers,
        &escalations,
        false,
        Duration::from_secs(30),
        |g| !g.is_empty(),
    );
    assert_eq!(paged.len(), 1, "{}", first.log_text());
    assert_eq!(paged[0].json()["alert_id"], id.as_str());
    assert_eq!(paged[0].key.as_deref(), Some(id.as_str()));
    assert!(paged[0].json()["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("SIEM ESCALATION -- page - [")));

    let at = alert["detected_at"].as_str().expect("detected_at");
    let update = |alert_id: &str| {
        serde_json::json!({"alert_id": alert_id, "status": "triaged", "by": "ana", "at": at})
            .to_string()
    };
    produce(
        &brokers,
        &triage,
        &[
            (id.clone(), update(&id)),
            ("x".into(), update("no-such-alert")),
        ],
    );
    let dead = read_topic(&brokers, &s.dead, false, Duration::from_secs(30), |g| {
        !g.is_empty()
    });
    assert!(
        dead[0].headers["reason"].contains("unknown alert id `no-such-alert`"),
        "{:?}",
        dead[0].headers
    );
    // The state topic's latest record for the alert says triaged.
    let latest_status = || {
        read_all(&brokers, &state, false, Duration::from_secs(2))
            .iter()
            .rev()
            .find(|r| r.key.as_deref() == Some(id.as_str()))
            .map(|r| r.json()["status"].as_str().unwrap_or_default().to_string())
    };
    let started = Instant::now();
    while latest_status().as_deref() != Some("triaged") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "state never said triaged:\n{}",
            first.log_text()
        );
    }
    first.kill_9();

    let second = Engine::start(&config);
    second.wait_for_log("alert state loaded", Duration::from_secs(30));
    // A redelivered update is not an error, and nothing escalates again.
    produce(&brokers, &triage, &[(id.clone(), update(&id))]);
    std::thread::sleep(Duration::from_secs(2));
    let log = second.log_text();
    assert!(second.terminate(Duration::from_secs(25)).success(), "{log}");
    assert_eq!(
        read_all(&brokers, &escalations, false, Duration::from_secs(2)).len(),
        1,
        "{log}"
    );
    assert_eq!(
        read_all(&brokers, &s.dead, false, Duration::from_secs(2)).len(),
        1,
        "{log}"
    );
    assert_eq!(latest_status().as_deref(), Some("triaged"));
    // The journal beside the topic recorded every change, chained.
    assert!(
        log.contains("audit journal beside the state topic"),
        "{log}"
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&id) && l.contains("\"triaged\"")),
        "{text}"
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["report", "--verify", "--state"])
        .arg(&journal)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && said.contains("hash chain intact"),
        "{said}"
    );
}

#[test]
fn exactly_once_against_a_broker_without_transactions_stops_at_start_naming_what_is_missing() {
    let Some(brokers) = broker() else { return };
    // tansu 0.6 has no EndTxn: the first commit would fail with records read.
    let s = Setup::new(&brokers, "no-txn");
    let mut engine = Engine::start(&s.config_with(
        "engine",
        "",
        "mode = \"exactly-once\"\ntransactional_id = \"no-txn-test\"",
    ));
    let started = Instant::now();
    let (status, log) = engine.exit_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "a configuration problem:\n{log}");
    assert!(log.contains("does not support EndTxn"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Produces records of any size (the test producer's own limit raised).
fn produce_large(brokers: &str, topic: &str, records: &[(String, String)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = client(brokers)
        .set("message.max.bytes", "10000000")
        .create()
        .expect("producer");
    for (key, value) in records {
        producer
            .send(BaseRecord::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
}

#[test]
fn records_larger_than_their_topic_takes_are_cut_to_fit_and_the_partition_moves_on() {
    use sha2::Digest;
    let Some(brokers) = broker() else { return };
    let mut s = Setup::named(&brokers, "oversize");
    // Read whole: the 2 MB records are parsed, and what they produce (a dead
    // letter, an alert carrying the event) is larger than a topic takes.
    s.engine_extra = "max_record_bytes = 4194304".into();
    let mut topics = s.topics();
    for t in topics.iter_mut() {
        t.1 = 1;
    }
    create_topics(&brokers, &topics);
    let junk = "x".repeat(2_000_000);
    let huge_user = format!(
        "Mar  3 09:00:00 bastion sshd[7]: Failed password for invalid user {} from 10.0.0.1 port 22 ssh2",
        "u".repeat(2_000_000)
    );
    let mut records = vec![
        ("a".to_string(), junk.clone()),
        ("b".to_string(), huge_user),
    ];
    records.extend(sshd_failures(5, "after"));
    produce_large(&brokers, &s.auth, &records);
    let engine = Engine::start(&s.config("engine", ""));

    let dead = read_topic(&brokers, &s.dead, false, Duration::from_secs(60), |got| {
        !got.is_empty()
    });
    let letter = dead.first().expect("the junk record is dead-lettered");
    assert!(
        letter.value.len() < 1_000_000,
        "cut: {} bytes",
        letter.value.len()
    );
    assert!(junk.as_bytes().starts_with(&letter.value));
    assert_eq!(letter.headers["tocsin-cut"], "true");
    assert_eq!(letter.headers["tocsin-original-size"], "2000000");
    let expected: String = sha2::Sha256::digest(junk.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(letter.headers["tocsin-original-sha256"], expected);

    // The alert on the huge line keeps everything but its event body; the
    // alerts of the lines after it arrive: nothing stalled.
    let alerts = read_topic(&brokers, &s.alerts, false, Duration::from_secs(60), |got| {
        got.iter()
            .filter(|r| r.value.windows(5).any(|w| w == b"after"))
            .count()
            >= 5
    });
    let big = alerts
        .iter()
        .find(|r| r.headers.contains_key("tocsin-cut"))
        .expect("the alert on the huge line, cut");
    assert!(big.value.len() < 1_000_000);
    let record = big.json();
    assert!(
        record["event"]["cut"]["event_bytes"].as_u64().unwrap() > 2_000_000,
        "{record}"
    );
    assert!(record["message"]
        .as_str()
        .unwrap()
        .starts_with("SIEM ALERT -- STATIC RULE"));
    assert_eq!(
        alerts
            .iter()
            .filter(|r| r.value.windows(5).any(|w| w == b"after"))
            .count(),
        5,
        "the records after the large ones alert"
    );
    let status = engine.terminate(Duration::from_secs(30));
    assert!(status.success());
    // Every input record is committed.
    let c: BaseConsumer = client(&s.brokers)
        .set("group.id", &s.group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&s.auth, 0);
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Offset(records.len() as i64)
    );
}

#[test]
fn config_check_connect_finds_the_brokers_and_names_a_missing_topic() {
    let Some(brokers) = broker() else { return };
    let check = |s: &Setup| {
        let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["config", "check", "--connect", "--config"])
            .arg(s.config("engine", ""))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    let all = Setup::new(&brokers, "check");
    let (code, text) = check(&all);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("ok: kafka: topic {} exists", all.alerts)),
        "{text}"
    );
    // The same configuration with its topics never created.
    let none = Setup::named(&brokers, "check-missing");
    let (code, text) = check(&none);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains(&format!(
            "error: kafka: topic {} does not exist",
            none.alerts
        )),
        "{text}"
    );
}

/// `GET path` on the engine's listener: the raw response.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Waits until `/readyz` answers with `status` (200 or 503); the response.
fn wait_for_readyz(engine: &Engine, port: u16, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let response = http_get(port, "/readyz").unwrap_or_default();
        if response.starts_with(&format!("HTTP/1.0 {status}"))
            || response.starts_with(&format!("HTTP/1.1 {status}"))
        {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status}; last: {response}\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn readyz_follows_the_broker_and_the_log_stays_quiet_while_it_is_away() {
    let Some(own) = own_broker() else { return };
    let brokers = format!("127.0.0.1:{}", own.port);
    let mut s = Setup::new(&brokers, "ready");
    let port = free_port();
    s.metrics_port = Some(port);
    let engine = Engine::start(&s.config("engine", "\"enable.idempotence\" = \"false\""));
    let ready = wait_for_readyz(&engine, port, 200, Duration::from_secs(60));
    assert!(ready.contains("\"consumer\":\"up"), "{ready}");

    let port_of_broker = own.stop();
    let away = wait_for_readyz(&engine, port, 503, Duration::from_secs(30));
    assert!(away.contains("no broker answers since"), "{away}");
    assert!(
        http_get(port, "/healthz").is_some_and(|r| r.contains(" 200 ")),
        "alive while the broker is away"
    );
    let lines_when_down = engine.log.lock().map(|l| l.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(15));
    let logged: Vec<String> = engine
        .log
        .lock()
        .map(|l| l.iter().skip(lines_when_down).cloned().collect())
        .unwrap_or_default();
    // One line per client as the brokers go, and the group's own state
    // changes (session timeout, revoke): no line per failed attempt.
    let unreachable = logged
        .iter()
        .filter(|l| l.contains("Kafka brokers unreachable"))
        .count();
    assert!(
        logged.len() <= 8 && unreachable <= 2,
        "15 s of an absent broker took {} log lines:\n{}",
        logged.len(),
        logged.join("\n")
    );

    let _back = OwnBroker::start(port_of_broker).expect("tansu restarts");
    let ready = wait_for_readyz(&engine, port, 200, Duration::from_secs(60));
    assert!(ready.contains("\"status\":\"ready\""), "{ready}");
    assert!(
        engine.log_contains("Kafka brokers reachable again") >= 1,
        "{}",
        engine.log_text()
    );
    assert!(engine.terminate(Duration::from_secs(25)).success());
}

/// sshd failures from eight addresses, one per second in time order: the
/// even addresses guess root's password (brute force), the odd ones try a
/// new user each time (spraying). Keyed by line number, so every attack is
/// spread over all partitions, as a shipper that does not key by address
/// spreads it.
fn attacks(per_address: usize, tag: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for j in 0..per_address {
        for k in 0..8 {
            let i = lines.len();
            let user = if k % 2 == 0 {
                "root".to_string()
            } else {
                format!("{tag}{j}")
            };
            lines.push((
                format!("line{i}"),
                format!(
                    "Mar  3 11:{:02}:{:02} bastion sshd[{}]: Failed password for {user} from 10.66.0.{k} port {} ssh2",
                    (i / 60) % 60,
                    i % 60,
                    2000 + i,
                    50000 + i
                ),
            ));
        }
    }
    lines
}

/// Three hours of failed logins of six users, two to four per user and
/// ten minutes, after [`attacks`] in time; in the 16th ten minutes one
/// user fails fifty-odd times: the anomaly job of failed logins per user
/// scores it against the user's history (which needs 12 buckets). Keyed
/// by line number like the attacks: a job's samples come from every
/// partition.
fn logins_with_a_burst(tag: &str, first: usize) -> Vec<(String, String)> {
    let mut timed = Vec::new();
    for b in 0..19usize {
        for u in 0..6usize {
            let n = if b == 15 && u == 2 {
                60
            } else {
                2 + (b + u) % 3
            };
            for k in 0..n {
                let secs = b * 600 + u * 90 + k * 480 / n;
                timed.push((secs, u));
            }
        }
    }
    timed.sort();
    timed
        .into_iter()
        .enumerate()
        .map(|(j, (secs, u))| {
            let i = first + j;
            (
                format!("line{i}"),
                format!(
                    "Mar  3 {:02}:{:02}:{:02} bastion sshd[{}]: Failed password for {tag}{u} from 10.77.0.{u} port {} ssh2",
                    12 + secs / 3600,
                    (secs / 60) % 60,
                    secs % 60,
                    3000 + i,
                    40000 + i
                ),
            )
        })
        .collect()
}

/// The correlation and anomaly alerts (id and message) a scan of `lines` gives.
fn scanned_correlations(dir: &Path, lines: &[(String, String)]) -> BTreeMap<String, usize> {
    let path = dir.join("attacks.log");
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&path, text).expect("lines written");
    correlation_alerts(scan_json(&path, "syslog").iter())
}

/// Alerts about a group or an entity: correlations and anomalies (an
/// anomaly's `group` is its entity), by id and message.
fn correlation_alerts<'a>(
    alerts: impl Iterator<Item = &'a serde_json::Value>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in alerts.filter(|a| !a["group"].is_null()) {
        let key = format!("{} {}", a["id"].as_str().unwrap_or_default(), a["message"]);
        *out.entry(key).or_default() += 1;
    }
    out
}

/// A setup whose engines correlate over a repartition topic.
fn scale_out(brokers: &str, name: &str) -> Setup {
    let mut s = Setup::named(brokers, name);
    let repartition = unique(&format!("{name}-repartition"));
    let changelog = unique(&format!("{name}-changelog"));
    let mut topics = s.topics();
    topics.push((&repartition, PARTITIONS));
    topics.push((&changelog, PARTITIONS));
    create_topics(brokers, &topics);
    // Idle: how long an input not heard from yet may hold the watermark
    // back; engines starting on a loaded 2-core machine can be seconds apart.
    s.sections = format!(
        "[correlation]\nrepartition_topic = \"{repartition}\"\nchangelog_topic = \"{changelog}\"\nallowed_lateness = \"0s\"\nidle_source_timeout = \"15s\"\n"
    );
    s
}

/// Runs `instances` engines in one group over attacks and a burst of
/// failed logins spread across the partitions; their correlation and
/// anomaly alerts must be a scan's, each once.
fn correlations_as_a_scan_gives_them(instances: usize, name: &str, quiet: Duration) {
    let Some(brokers) = broker() else { return };
    let s = scale_out(&brokers, name);
    let config = s.config("engine", "");
    let engines: Vec<Engine> = (0..instances).map(|_| Engine::start(&config)).collect();
    for e in &engines {
        e.wait_for_log("partitions assigned", Duration::from_secs(30));
    }
    std::thread::sleep(quiet);
    let mut lines = attacks(30, name);
    lines.extend(logins_with_a_burst(name, lines.len()));
    let expected = scanned_correlations(s.dir.path(), &lines);
    let total: usize = expected.values().sum();
    assert!(
        total >= 16,
        "the attack makes correlation alerts: {expected:?}"
    );
    assert!(
        expected.keys().any(|k| k.contains("high_count was")),
        "the burst makes an anomaly alert: {expected:?}"
    );
    produce(&brokers, &s.auth, &lines);
    let got = read_topic(&brokers, &s.alerts, false, Duration::from_secs(90), |got| {
        got.iter().filter(|r| !r.json()["group"].is_null()).count() >= total
    });
    // Anything that would come twice comes within the next checkpoints.
    std::thread::sleep(Duration::from_secs(3));
    let more = read_topic(&brokers, &s.alerts, false, Duration::from_secs(3), |_| {
        false
    });
    let json: Vec<serde_json::Value> = more.iter().map(Received::json).collect();
    let logs: Vec<String> = engines.iter().map(Engine::log_text).collect();
    for e in engines {
        assert!(e.terminate(Duration::from_secs(25)).success());
    }
    assert!(got.len() <= more.len());
    assert_eq!(
        correlation_alerts(json.iter()),
        expected,
        "{instances} instances\n{}",
        logs.join("\n---\n")
    );
}

#[test]
fn one_instance_correlates_and_scores_over_the_repartition_topic_as_a_scan_does() {
    correlations_as_a_scan_gives_them(1, "exchange1", Duration::from_secs(3));
}

#[test]
fn three_instances_correlate_and_score_attacks_spread_over_all_partitions_as_a_scan_does() {
    // The group stays quiet for longer than `idle_source_timeout` (15 s)
    // before the first event: an owner's inputs must not time out before
    // they had anything to say.
    correlations_as_a_scan_gives_them(3, "exchange3", Duration::from_secs(18));
}

#[test]
fn correlations_and_anomalies_survive_scaling_up_a_kill_9_a_replacement_and_scaling_down_mid_window(
) {
    let Some(brokers) = broker() else { return };
    let s = scale_out(&brokers, "exchange-churn");
    let config = s.config("engine", "");
    let first = Engine::start(&config);
    let second = Engine::start(&config);
    first.wait_for_log("partitions assigned", Duration::from_secs(30));
    second.wait_for_log("partitions assigned", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let mut lines = attacks(60, "churn");
    lines.extend(logins_with_a_burst("churn", lines.len()));
    let expected = scanned_correlations(s.dir.path(), &lines);
    let total: usize = expected.values().sum();
    // Events keep arriving while a third engine joins and the first is
    // killed: windows are open on every partition when that happens.
    let feeder = feed_in_background(&brokers, &s.auth, &lines, 24, Duration::from_millis(800));
    std::thread::sleep(Duration::from_secs(2));
    let third = Engine::start(&config);
    third.wait_for_log("partitions assigned", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    first.kill_9();
    // A replacement joins (as a Deployment restarts a killed pod) once the
    // killed member's session (6 s) has expired, and the group settles over
    // the three. tansu does not rebalance the survivors when a session
    // expires, and a member joining before it does can get nothing while
    // the dead member's partitions stay unowned (seen here; not a tocsin
    // property, see docs/correlation.md).
    std::thread::sleep(Duration::from_secs(8));
    let fourth = Engine::start(&config);
    fourth.wait_for_log("partitions assigned", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    // Scaled down while events still arrive (SIGTERM, as a Deployment
    // scaling down does): its partitions move, with their open windows and
    // buckets, to the two left.
    let second_log = second.log.clone();
    let assigned_before = third.log_contains("partitions assigned");
    assert!(second.terminate(Duration::from_secs(25)).success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while third.log_contains("partitions assigned") <= assigned_before && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        third.log_contains("partitions assigned") > assigned_before,
        "the group rebalanced over the two left\n{}",
        third.log_text()
    );
    let _ = feeder.join();
    let distinct = |got: &[Received]| {
        let json: Vec<serde_json::Value> = got.iter().map(Received::json).collect();
        correlation_alerts(json.iter()).len()
    };
    let got = read_topic(
        &brokers,
        &s.alerts,
        false,
        Duration::from_secs(150),
        |got| distinct(got) >= expected.len(),
    );
    let logs = [
        Engine::log_text_of(&second_log),
        third.log_text(),
        fourth.log_text(),
    ]
    .join("\n---\n");
    std::fs::write(s.dir.path().join("engines.log"), &logs).expect("log saved");
    for e in [third, fourth] {
        assert!(e.terminate(Duration::from_secs(25)).success());
    }
    let json: Vec<serde_json::Value> = got.iter().map(Received::json).collect();
    let seen = correlation_alerts(json.iter());
    let missing: Vec<&String> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<&String> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} of {} correlation and anomaly alerts missing, {} not a scan's (a match counted twice or lost makes another firing)\nmissing e.g. {:?}\nextra e.g. {:?}\nengine logs: {}",
        missing.len(),
        expected.len(),
        extra.len(),
        missing.first(),
        extra.first(),
        logs.lines()
            .filter(|l| l.contains("assigned") || l.contains("restored") || l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // At-least-once: an alert sent just before the kill may be sent again,
    // the same alert with the same id.
    let repeated: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "scale-out churn: {total} correlation and anomaly alerts expected, all there, {repeated} repeated"
    );
}

#[test]
fn exactly_once_scale_out_puts_matches_changelog_alerts_and_offsets_in_one_transaction() {
    let (mock, mut s) = mock_topics("eos-exchange");
    let repartition = unique("eos-exchange-repartition");
    let changelog = unique("eos-exchange-changelog");
    for topic in [&repartition, &changelog] {
        mock.create_topic(topic, PARTITIONS, 1).expect("mock topic");
    }
    s.sections = format!(
        "[correlation]\nrepartition_topic = \"{repartition}\"\nchangelog_topic = \"{changelog}\"\nallowed_lateness = \"0s\"\nidle_source_timeout = \"5s\"\n"
    );
    let config = s.config_with(
        "engine",
        "",
        &format!(
            "mode = \"exactly-once\"\ntransactional_id = \"{}\"",
            unique("eos-exchange")
        ),
    );
    let mut lines = attacks(30, "eosx");
    lines.extend(logins_with_a_burst("eosx", lines.len()));
    let expected = scanned_correlations(s.dir.path(), &lines);
    let total: usize = expected.values().sum();
    let engine = Engine::start(&config);
    engine.wait_for_log("partitions assigned", Duration::from_secs(30));
    produce(&s.brokers, &s.auth, &lines);
    let got = read_topic(
        &s.brokers,
        &s.alerts,
        true,
        Duration::from_secs(90),
        |got| got.iter().filter(|r| !r.json()["group"].is_null()).count() >= total,
    );
    let log = engine.log_text();
    assert!(engine.terminate(Duration::from_secs(25)).success(), "{log}");
    let json: Vec<serde_json::Value> = got.iter().map(Received::json).collect();
    assert_eq!(correlation_alerts(json.iter()), expected, "{log}");
    // The owner's state went through the transactions too.
    let state = read_all(&s.brokers, &changelog, true, Duration::from_secs(2));
    assert!(!state.is_empty(), "changelog records were committed\n{log}");
}

/// A member killed with nobody joining after it: a broker that does not
/// rebalance on session expiry (tansu) leaves its partitions assigned to
/// it. The survivor finds them unread with records waiting, says so, and
/// rejoins the group, which hands them over: every event is alerted on.
#[test]
fn a_member_killed_with_no_replacement_leaves_no_partition_unread() {
    let Some(brokers) = broker() else { return };
    let s = Setup::new(&brokers, "orphans");
    let config = s.config("engine", "");
    let first = Engine::start(&config);
    let second = Engine::start(&config);
    first.wait_for_log("partitions assigned", Duration::from_secs(30));
    second.wait_for_log("partitions assigned", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    first.kill_9();
    // Keyed by line number: every partition gets some, the dead member's too.
    let lines = attacks(10, "orphan");
    let path = s.dir.path().join("orphans.log");
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&path, text).expect("lines written");
    let expected = scan_json(&path, "syslog")
        .iter()
        .filter(|a| a["group"].is_null())
        .count();
    assert!(
        expected >= lines.len(),
        "one alert per failed login at least"
    );
    produce(&brokers, &s.auth, &lines);
    let per_event = |got: &[Received]| got.iter().filter(|r| r.json()["group"].is_null()).count();
    let got = read_topic(
        &brokers,
        &s.alerts,
        false,
        Duration::from_secs(150),
        |got| per_event(got) >= expected,
    );
    let log = second.log_text();
    assert!(second.terminate(Duration::from_secs(25)).success(), "{log}");
    assert_eq!(
        per_event(&got),
        expected,
        "every event alerted on, the dead member's partitions included\n{log}"
    );
    eprintln!(
        "orphaned partitions: the survivor rejoined {} time(s)",
        log.matches("no reader for three session timeouts").count()
    );
}
