//! End-to-end Kafka benchmark: producer -> broker -> `tocsin run` -> alerts
//! topic, on the tansu test broker.
//!
//! ```sh
//! TEST_KAFKA_BROKERS=$(scripts/kafka-broker.sh start /tmp/tansu.pid) \
//!     cargo bench --bench kafka_pipeline
//! ```
//!
//! Two phases, each with a fresh engine and topics (3 partitions):
//! 1. throughput: N sshd failure lines (one alert each) produced as fast as
//!    possible; events/s from the first record produced to the last alert read;
//! 2. latency: a steady rate for some seconds; per event, the time from
//!    handing it to the producer to reading its alert (ingest to alert);
//!    per brute force (every tenth event completes one: ten failures from
//!    one address, one event-time second apart), the time from handing the
//!    tenth to the producer to reading the correlation alert.
//!
//! Both phases run with one engine as configured by default, then with 1, 2
//! and 3 engines in one group correlating across instances (the repartition
//! and changelog topics, docs/correlation.md "Scaling out"): every failed
//! login also feeds the two sshd correlations, so each event makes two
//! matches that go through the repartition topic. Only per-event alerts
//! count for throughput.
//!
//! `TOCSIN_BENCH_EVENTS` (default 200000), `TOCSIN_BENCH_RATE` (events/s,
//! default 2000), `TOCSIN_BENCH_SECONDS` (default 20) and
//! `TOCSIN_BENCH_INSTANCES` (default `1,2,3`) tune it. Under
//! `cargo test --all-targets` it runs a small smoke version.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Failures come in tens from one address (a brute force each), one
/// event-time second apart, from Mar 3 00:00:00 on.
const PER_ADDRESS: u64 = 10;

fn line(i: u64) -> String {
    let address = i / PER_ADDRESS;
    format!(
        "Mar {:2} {:02}:{:02}:{:02} bastion sshd[{}]: Failed password for invalid user b{i} from 10.{}.{}.{} port {} ssh2",
        3 + i / 86_400,
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        1000 + i % 30000,
        (address >> 16) & 255,
        (address >> 8) & 255,
        address & 255,
        1024 + i % 60000
    )
}

/// The number of the event that completed a brute-force correlation alert:
/// the tenth failure from its address.
fn brute_force_completed_by(payload: &[u8]) -> Option<u64> {
    let alert: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if !alert["message"].as_str()?.contains("Brute Force") {
        return None;
    }
    let ip = alert["group"]["src_ip"].as_str()?;
    let mut octets = ip.split('.').skip(1).map(|o| o.parse::<u64>().ok());
    let (a, b, c) = (octets.next()??, octets.next()??, octets.next()??);
    Some(((a << 16) | (b << 8) | c) * PER_ADDRESS + PER_ADDRESS - 1)
}

/// How the engines of a run are set up.
#[derive(Clone, Copy)]
struct Shape {
    engines: usize,
    /// Correlation across instances through the repartition topic.
    scale_out: bool,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scale_out {
            false => write!(f, "{} engine, local correlation", self.engines),
            true => write!(f, "{} engine(s), scale-out", self.engines),
        }
    }
}

struct Run {
    brokers: String,
    input: String,
    alerts: String,
    engines: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Run {
    fn start(brokers: &str, name: &str, shape: Shape) -> Run {
        let mode = if shape.scale_out { "out" } else { "local" };
        let id = format!("{name}-{mode}{}-{}", shape.engines, std::process::id());
        let input = format!("bench-{id}-in");
        let alerts = format!("bench-{id}-alerts");
        let repartition = format!("bench-{id}-repartition");
        let changelog = format!("bench-{id}-changelog");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("admin");
        let mut topics = vec![
            NewTopic::new(&input, 3, TopicReplication::Fixed(1)),
            NewTopic::new(&alerts, 3, TopicReplication::Fixed(1)),
        ];
        if shape.scale_out {
            topics.push(NewTopic::new(&repartition, 3, TopicReplication::Fixed(1)));
            topics.push(NewTopic::new(&changelog, 3, TopicReplication::Fixed(1)));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for r in rt
            .block_on(admin.create_topics(&topics, &AdminOptions::new()))
            .expect("topics")
        {
            r.map_err(|(t, e)| format!("{t}: {e}"))
                .expect("topic created");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("bench.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[engine]
rules = ["{rules}"]
[kafka]
"bootstrap.servers" = "{brokers}"
"group.id" = "{input}-group"
[[sources]]
type = "kafka"
topic = "{input}"
format = "syslog"
[[sinks]]
type = "kafka"
topic = "{alerts}"
[metrics]
enabled = false
[log]
level = "warn"
{correlation}
"#,
                rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
                correlation = match shape.scale_out {
                    true => format!(
                        "[correlation]\nrepartition_topic = \"{repartition}\"\nchangelog_topic = \"{changelog}\"\nallowed_lateness = \"0s\"\nidle_source_timeout = \"5s\""
                    ),
                    false => String::new(),
                },
            ),
        )
        .expect("config");
        let engines = (0..shape.engines)
            .map(|_| {
                let mut command = Command::new(env!("CARGO_BIN_EXE_tocsin"));
                command
                    .args(["run", "--config"])
                    .arg(&config)
                    .stdout(Stdio::null());
                // This harness's own TOCSIN_BENCH_* settings are not engine configuration.
                for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOCSIN_BENCH_")) {
                    command.env_remove(key);
                }
                command.spawn().expect("engine")
            })
            .collect();
        Run {
            brokers: brokers.to_string(),
            input,
            alerts,
            engines,
            _dir: dir,
        }
    }

    /// Whether every engine is still running (a harness waiting on a dead
    /// engine would only time out).
    fn alive(&mut self) -> bool {
        self.engines
            .iter_mut()
            .all(|engine| match engine.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    eprintln!("an engine exited: {status}");
                    false
                }
                Err(_) => false,
            })
    }

    /// Lets the engines join their group (and, with several, settle)
    /// before the clock starts.
    fn settle(&self) {
        std::thread::sleep(Duration::from_secs(3 * self.engines.len() as u64));
    }

    fn producer(&self) -> ThreadedProducer<DefaultProducerContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "2")
            .create()
            .expect("producer")
    }

    fn reader(&self) -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}-reader", self.alerts))
            // Measure the engine, not this reader's fetch wait.
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset(&self.alerts, p, Offset::Beginning)
                .expect("offset");
        }
        c.assign(&tpl).expect("assign");
        c
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for engine in &mut self.engines {
            let _ = Command::new("kill")
                .args(["-TERM", &engine.id().to_string()])
                .status();
        }
        for engine in &mut self.engines {
            let _ = engine.wait();
        }
    }
}

/// The user name in an alert (`b<i>`), i.e. the event's number.
fn event_number(payload: &[u8]) -> Option<u64> {
    let alert: serde_json::Value = serde_json::from_slice(payload).ok()?;
    alert["event"]["fields"]["user"]
        .as_str()?
        .strip_prefix('b')?
        .parse()
        .ok()
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, i: u64) {
    let payload = line(i);
    let key = i.to_string();
    let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn throughput(brokers: &str, events: u64, shape: Shape) -> u64 {
    let mut run = Run::start(brokers, "throughput", shape);
    let reader = run.reader();
    run.settle();
    let producer = run.producer();
    let started = Instant::now();
    let topic = run.input.clone();
    let feeder = std::thread::spawn(move || {
        for i in 0..events {
            send(&producer, &topic, i);
        }
        let _ = producer.flush(Duration::from_secs(60));
    });
    let mut seen = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < events && Instant::now() < deadline && run.alive() {
        if let Some(Ok(msg)) = reader.poll(Duration::from_millis(100)) {
            // Per-event alerts; correlation alerts come on top.
            seen += u64::from(msg.payload().and_then(event_number).is_some());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = feeder.join();
    println!(
        "{shape}: throughput {seen}/{events} alerts in {elapsed:.2}s = {:.0} events/s end to end",
        seen as f64 / elapsed
    );
    seen
}

fn latency(brokers: &str, rate: u64, seconds: u64, shape: Shape) -> usize {
    let mut run = Run::start(brokers, "latency", shape);
    let reader = run.reader();
    run.settle();
    let producer = run.producer();
    let total = rate * seconds;
    let topic = run.input.clone();
    let origin = Instant::now();
    let feeder = std::thread::spawn(move || {
        let mut sent_at = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(origin.elapsed()) {
                std::thread::sleep(wait);
            }
            sent_at.push(origin.elapsed());
            send(&producer, &topic, i);
        }
        let _ = producer.flush(Duration::from_secs(60));
        sent_at
    });
    let mut arrived: HashMap<u64, Duration> = HashMap::new();
    let mut fired: HashMap<u64, Duration> = HashMap::new();
    let brute_forces = total / PER_ADDRESS;
    let deadline = Instant::now() + Duration::from_secs(seconds + 120);
    while ((arrived.len() as u64) < total || (fired.len() as u64) < brute_forces)
        && Instant::now() < deadline
        && run.alive()
    {
        if let Some(Ok(msg)) = reader.poll(Duration::from_millis(100)) {
            let Some(payload) = msg.payload() else {
                continue;
            };
            if let Some(i) = event_number(payload) {
                arrived.entry(i).or_insert_with(|| origin.elapsed());
            } else if let Some(i) = brute_force_completed_by(payload) {
                fired.entry(i).or_insert_with(|| origin.elapsed());
            }
        }
    }
    let sent_at = feeder.join().unwrap_or_default();
    let missing: Vec<u64> = (0..brute_forces)
        .map(|g| g * PER_ADDRESS + PER_ADDRESS - 1)
        .filter(|i| !fired.contains_key(i))
        .take(10)
        .collect();
    if !missing.is_empty() {
        println!("{shape}: brute forces that did not fire, completed by events {missing:?}");
    }
    let per_event = latencies(&arrived, &sent_at);
    let correlated = latencies(&fired, &sent_at);
    println!(
        "{shape}: latency at {rate} events/s for {seconds}s: {}/{total} alerts; ingest to alert p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {}/{brute_forces} brute-force correlation alerts: from its tenth event p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        per_event.len(),
        percentile(&per_event, 0.5),
        percentile(&per_event, 0.99),
        percentile(&per_event, 1.0),
        correlated.len(),
        percentile(&correlated, 0.5),
        percentile(&correlated, 0.99),
        percentile(&correlated, 1.0),
    );
    per_event.len()
}

/// Milliseconds from sending event `i` to reading what it caused, sorted.
fn latencies(arrived: &HashMap<u64, Duration>, sent_at: &[Duration]) -> Vec<f64> {
    let mut lat: Vec<f64> = arrived
        .iter()
        .filter_map(|(i, at)| {
            let sent = sent_at.get(*i as usize)?;
            Some(at.saturating_sub(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    lat
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let Some(brokers) = std::env::var("TEST_KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!("SKIPPED: TEST_KAFKA_BROKERS unset; start a broker with scripts/kafka-broker.sh");
        return;
    };
    let local = Shape {
        engines: 1,
        scale_out: false,
    };
    if smoke {
        println!("smoke run: `cargo bench --bench kafka_pipeline` for numbers");
        // The harness must work end to end: every alert arrives.
        let two = Shape {
            engines: 2,
            scale_out: true,
        };
        assert_eq!(
            throughput(&brokers, 500, local),
            500,
            "smoke throughput run"
        );
        assert_eq!(latency(&brokers, 200, 1, local), 200, "smoke latency run");
        assert_eq!(throughput(&brokers, 300, two), 300, "smoke scale-out run");
        return;
    }
    let instances: Vec<usize> = std::env::var("TOCSIN_BENCH_INSTANCES")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let shapes = std::iter::once(local).chain(instances.into_iter().map(|engines| Shape {
        engines,
        scale_out: true,
    }));
    for shape in shapes {
        throughput(&brokers, env("TOCSIN_BENCH_EVENTS", 200_000), shape);
        latency(
            &brokers,
            env("TOCSIN_BENCH_RATE", 2_000),
            env("TOCSIN_BENCH_SECONDS", 20),
            shape,
        );
    }
}
