//! Anomaly scoring benchmark: samples per second through a `high_count`
//! job and a `rare` job, bucket-close (score + retrain) time, and memory
//! per 10,000 entities, measured with a counting allocator. Then scale-out's
//! costs (`exchanged`): what the repartition record, holding for the
//! watermark and the changelog add per sample, the changelog's bytes per
//! entity, and the time to restore a partition of 100k and 1M entities.
//!
//! ```sh
//! cargo bench --bench anomaly            # 10k and 100k entities, 48 buckets
//! ```
//!
//! Under `cargo test --all-targets` it runs a small smoke version.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tocsin::anomaly::exchange::{SampleOwner, SampleRecord};
use tocsin::anomaly::{AnomalySet, Detector, Sample};
use tocsin::vocab::watermark::Progress;
use tocsin::vocab::Span;

/// Live heap bytes, to report memory per entity.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn job_set(function: &str) -> Arc<AnomalySet> {
    let dir = std::env::temp_dir().join(format!(
        "tocsin-bench-anomaly-{}-{function}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let field = if function == "rare" {
        "  field: process\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("job.yml"),
        format!("title: Bench\nid: bench-{function}\nlogsource: {{product: bench}}\ndetection:\n  s: {{a: 1}}\n  condition: s\nanomaly:\n  function: {function}\n{field}  by: user\n  bucket_span: 10m\n  min_history: 12\n"),
    )
    .expect("job file");
    let (engine, summary) =
        tocsin::detect::load_engine(&[&dir], None, &Default::default()).expect("engine");
    let (set, problems) = AnomalySet::build(summary.anomaly_jobs, &engine);
    assert!(problems.is_empty() && set.len() == 1, "{problems:?}");
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(set)
}

fn run(function: &str, entities: usize, buckets: i64, per_bucket: u64) {
    let set = job_set(function);
    let before = LIVE.load(Ordering::Relaxed);
    let mut detector = Detector::new(set);
    let origin = tocsin::event::Origin {
        source: "bench".into(),
        position: tocsin::event::Position::Line { line: 1 },
    };
    let names: Vec<Box<str>> = (0..entities).map(|i| format!("user{i}").into()).collect();
    let processes = ["svchost.exe", "explorer.exe", "chrome.exe", "conhost.exe"];
    let mut samples = 0u64;
    let mut alerts = 0usize;
    let started = Instant::now();
    let mut closing = std::time::Duration::ZERO;
    for b in 0..buckets {
        for (i, name) in names.iter().enumerate() {
            for k in 0..per_bucket {
                let value = (function == "rare")
                    .then(|| processes[(i + k as usize) % processes.len()].to_string());
                let t0 = Instant::now();
                alerts += detector
                    .observe(Sample {
                        job: 0,
                        numerator: false,
                        entity: name.clone(),
                        value,
                        time: chrono::DateTime::from_timestamp(b * 600 + (k as i64 * 7) % 600, 0)
                            .unwrap_or_default(),
                        origin: origin.clone(),
                    })
                    .len();
                // The first sample of a bucket closes the previous one.
                if i == 0 && k == 0 {
                    closing += t0.elapsed();
                }
                samples += 1;
            }
        }
    }
    alerts += detector.finish().len();
    let secs = started.elapsed().as_secs_f64();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "anomaly {function:>10}: {entities:>7} entities x {buckets} buckets x {per_bucket}/bucket: {samples} samples in {secs:.2}s = {:.0} samples/s; bucket close (score + retrain all entities) {:.1} ms avg; {:.1} MB live = {:.0} bytes/entity ({:.1} MB per 10k); {alerts} alerts",
        samples as f64 / secs,
        closing.as_secs_f64() * 1000.0 / (buckets - 1).max(1) as f64,
        bytes as f64 / 1e6,
        bytes as f64 / entities as f64,
        bytes as f64 / entities as f64 * 10_000.0 / 1e6,
    );
}

/// Three buckets of one sample per entity, fed to a detector directly and
/// through an owner of a repartition partition (encoded, decoded, held,
/// released in event-time order; a progress record every 1,000 samples);
/// then the owner's changelog is written and restored into a new owner.
fn exchanged(entities: usize) {
    let set = job_set("high_count");
    let origin = |i: usize| tocsin::event::Origin {
        source: "bench".into(),
        position: tocsin::event::Position::Offset {
            partition: 0,
            offset: i as i64,
        },
    };
    let samples: Vec<Sample> = (0..3i64)
        .flat_map(|b| (0..entities).map(move |i| (b, i)))
        .enumerate()
        .map(|(n, (b, i))| Sample {
            job: 0,
            numerator: false,
            entity: format!("user{i}").into(),
            value: None,
            time: chrono::DateTime::from_timestamp(b * 600 + (i * 600 / entities) as i64, 0)
                .unwrap_or_default(),
            origin: origin(n),
        })
        .collect();
    let mut direct = Detector::new(set.clone());
    let t = Instant::now();
    for s in samples.iter().cloned() {
        direct.observe(s);
    }
    let direct_secs = t.elapsed().as_secs_f64();
    drop(direct);

    let owner_of = || {
        SampleOwner::new(
            set.clone(),
            Span::from_secs(0),
            std::time::Duration::from_secs(300),
        )
    };
    let mut owner = owner_of();
    let now = Instant::now();
    let t = Instant::now();
    let n = samples.len();
    for (k, s) in samples.into_iter().enumerate() {
        let time = s.time;
        let key = SampleRecord::route_key(&set, &s).expect("routed");
        let record = SampleRecord::of(&set, s).expect("known job");
        let bytes = serde_json::to_vec(&record).expect("encoded");
        std::hint::black_box(key);
        let record: SampleRecord = serde_json::from_slice(&bytes).expect("decoded");
        owner.offer_sample(record, now);
        if (k + 1) % 1000 == 0 || k + 1 == n {
            owner.offer_progress(
                &Progress {
                    input: "bench[0]".into(),
                    time,
                    inputs: 1,
                },
                now,
            );
        }
    }
    let exchanged_secs = t.elapsed().as_secs_f64();
    let entities_known = owner.detector_mut().entities();
    assert_eq!(
        entities_known, entities,
        "two buckets closed, every entity learned"
    );
    let changelog = owner.changelog();
    let bytes = common::changelog_bytes(&changelog);
    drop(owner);
    let mut restored = owner_of();
    let t = Instant::now();
    restored.restore(common::changelog_records(&changelog), Instant::now());
    let restore_secs = t.elapsed().as_secs_f64();
    assert_eq!(restored.detector_mut().entities(), entities);
    println!(
        "exchanged {entities:>8} entities: direct {:.0} samples/s, exchanged {:.0} samples/s, {:.0} ns added per sample; changelog {:.0} B/entity ({} records, open bucket included); restore {restore_secs:.2} s",
        n as f64 / direct_secs,
        n as f64 / exchanged_secs,
        (exchanged_secs - direct_secs) * 1e9 / n as f64,
        bytes as f64 / entities as f64,
        changelog.len(),
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if full {
        for function in ["high_count", "rare"] {
            run(function, 10_000, 48, 3);
            run(function, 100_000, 24, 2);
        }
        exchanged(100_000);
        exchanged(1_000_000);
    } else {
        run("high_count", 200, 14, 2);
        run("rare", 200, 14, 2);
        exchanged(1_000);
    }
}
