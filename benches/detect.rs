//! Criterion benchmarks of the detection hot path on real Windows events.
//! Needs ../shared (Mordor events, SigmaHQ rules); prints a skip note otherwise.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tocsin::detect::Scratch;

fn bench(c: &mut Criterion) {
    let Some(shared) = common::shared() else {
        eprintln!("SKIPPED: ../shared is absent");
        return;
    };
    let lines = common::mordor_lines(&shared, 2_000);
    let corpus = common::corpus(&shared);
    let parser = common::parser();
    let mut group = c.benchmark_group("mordor_2000_events");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(10);
    group.bench_function("parse_only", |b| b.iter(|| common::parse_only(&lines)));
    for n in [10, 500] {
        let engine = common::compile(common::spread(&corpus, n));
        group.bench_function(format!("rules_{n}"), |b| {
            b.iter(|| common::detect_all(&engine, &parser, &lines, &mut Scratch::default()))
        });
    }
    let full = common::compile(corpus);
    group.bench_function("full_corpus", |b| {
        b.iter(|| common::detect_all(&full, &parser, &lines, &mut Scratch::default()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
