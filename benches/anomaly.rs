//! Anomaly scoring benchmark: samples per second through a `high_count`
//! job and a `rare` job, bucket-close (score + retrain) time, and memory
//! per 10,000 entities, measured with a counting allocator.
//!
//! ```sh
//! cargo bench --bench anomaly            # 10k and 100k entities, 48 buckets
//! ```
//!
//! Under `cargo test --all-targets` it runs a small smoke version.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tocsin::anomaly::{AnomalySet, Detector, Sample};

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

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if full {
        for function in ["high_count", "rare"] {
            run(function, 10_000, 48, 3);
            run(function, 100_000, 24, 2);
        }
    } else {
        run("high_count", 200, 14, 2);
        run("rare", 200, 14, 2);
    }
}
