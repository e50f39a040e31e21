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
//!    handing it to the producer to reading its alert (ingest to alert).
//!
//! `TOCSIN_BENCH_EVENTS` (default 200000), `TOCSIN_BENCH_RATE` (events/s,
//! default 2000) and `TOCSIN_BENCH_SECONDS` (default 20) tune it. Under
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

fn line(i: u64) -> String {
    format!(
        "Mar  3 10:{:02}:{:02} bastion sshd[{}]: Failed password for invalid user b{i} from 10.{}.{}.{} port {} ssh2",
        (i / 60) % 60,
        i % 60,
        1000 + i % 30000,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255,
        1024 + i % 60000
    )
}

struct Run {
    brokers: String,
    input: String,
    alerts: String,
    engine: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Run {
    fn start(brokers: &str, name: &str) -> Run {
        let input = format!("bench-{name}-in-{}", std::process::id());
        let alerts = format!("bench-{name}-alerts-{}", std::process::id());
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("admin");
        let topics = [
            NewTopic::new(&input, 3, TopicReplication::Fixed(1)),
            NewTopic::new(&alerts, 3, TopicReplication::Fixed(1)),
        ];
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
"#,
                rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules")
            ),
        )
        .expect("config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        command
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null());
        // This harness's own TOCSIN_BENCH_* settings are not engine configuration.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOCSIN_BENCH_")) {
            command.env_remove(key);
        }
        let engine = command.spawn().expect("engine");
        Run {
            brokers: brokers.to_string(),
            input,
            alerts,
            engine,
            _dir: dir,
        }
    }

    /// Whether the engine is still running (a harness waiting on a dead
    /// engine would only time out).
    fn alive(&mut self) -> bool {
        match self.engine.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                eprintln!("the engine exited: {status}");
                false
            }
            Err(_) => false,
        }
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
        let _ = Command::new("kill")
            .args(["-TERM", &self.engine.id().to_string()])
            .status();
        let _ = self.engine.wait();
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

fn throughput(brokers: &str, events: u64) -> u64 {
    let mut run = Run::start(brokers, "throughput");
    let reader = run.reader();
    // Let the engine join its group before the clock starts.
    std::thread::sleep(Duration::from_secs(3));
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
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(100)) {
            seen += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = feeder.join();
    println!(
        "throughput: {seen}/{events} alerts in {elapsed:.2}s = {:.0} events/s end to end",
        seen as f64 / elapsed
    );
    seen
}

fn latency(brokers: &str, rate: u64, seconds: u64) -> usize {
    let mut run = Run::start(brokers, "latency");
    let reader = run.reader();
    std::thread::sleep(Duration::from_secs(3));
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
    let deadline = Instant::now() + Duration::from_secs(seconds + 120);
    while (arrived.len() as u64) < total && Instant::now() < deadline && run.alive() {
        if let Some(Ok(msg)) = reader.poll(Duration::from_millis(100)) {
            if let Some(i) = msg.payload().and_then(event_number) {
                arrived.entry(i).or_insert_with(|| origin.elapsed());
            }
        }
    }
    let sent_at = feeder.join().unwrap_or_default();
    let mut lat: Vec<f64> = arrived
        .iter()
        .filter_map(|(i, at)| {
            let sent = sent_at.get(*i as usize)?;
            Some(at.saturating_sub(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "latency at {rate} events/s for {seconds}s: {}/{total} alerts; ingest to alert p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    lat.len()
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
    if smoke {
        println!("smoke run: `cargo bench --bench kafka_pipeline` for numbers");
        // The harness must work end to end: every alert arrives.
        assert_eq!(throughput(&brokers, 500), 500, "smoke throughput run");
        assert_eq!(latency(&brokers, 200, 1), 200, "smoke latency run");
    } else {
        throughput(&brokers, env("TOCSIN_BENCH_EVENTS", 200_000));
        latency(
            &brokers,
            env("TOCSIN_BENCH_RATE", 2_000),
            env("TOCSIN_BENCH_SECONDS", 20),
        );
    }
}
