//! Any record through what a pipeline worker and its writer do with it:
//! parse, match against the bundled rules, build alerts, then correlate
//! and score anomalies over the matches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};
use tocsin::alert::{AlertBuilder, SlaPolicy};
use tocsin::anomaly::{AnomalySet, Detector};
use tocsin::correlate::{CorrelationSet, Correlator};
use tocsin::detect::{load_engine, CompileOptions};
use tocsin::event::{Origin, Parser, Position};
use tocsin::pipeline::sources::Record;
use tocsin::pipeline::{Output, Processor, SourceContext};

struct Stages {
    processor: Processor,
    correlator: Correlator,
    detector: Detector,
}

fn stages() -> &'static Mutex<Stages> {
    static STAGES: OnceLock<Mutex<Stages>> = OnceLock::new();
    STAGES.get_or_init(|| {
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
        let (engine, mut summary) =
            load_engine(&[rules], None, &CompileOptions::default()).expect("bundled rules load");
        let (correlations, _) =
            CorrelationSet::build(std::mem::take(&mut summary.correlations), &engine);
        let (anomalies, _) = AnomalySet::build(std::mem::take(&mut summary.anomaly_jobs), &engine);
        let (correlations, anomalies) = (Arc::new(correlations), Arc::new(anomalies));
        let sla = SlaPolicy::from_config(&Default::default()).expect("default SLA");
        let context = SourceContext {
            name: "fuzz".into(),
            parser: Parser::default(),
            tags: Vec::new(),
            records: Default::default(),
            watches: Default::default(),
        };
        Mutex::new(Stages {
            processor: Processor::new(
                Arc::new(engine),
                AlertBuilder::new(Default::default(), sla),
                (correlations.clone(), anomalies.clone()),
                vec![context],
                None,
                Default::default(),
            ),
            correlator: Correlator::new(correlations),
            detector: Detector::new(anomalies),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut stages) = stages().lock() else {
        return;
    };
    let record = Record {
        source: 0,
        payload: data.to_vec(),
        origin: Origin {
            source: "fuzz".into(),
            position: Position::Line { line: 1 },
        },
        ingest_time: chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default(),
        read_at: std::time::Instant::now(),
        fault: None,
        mark: None,
    };
    let mut outputs = Vec::new();
    stages.processor.process(&record, &mut outputs);
    for output in outputs {
        match output {
            Output::Observation(o) => {
                std::hint::black_box(stages.correlator.observe(*o));
            }
            Output::Sample(s) => {
                std::hint::black_box(stages.detector.observe(*s));
            }
            other => {
                std::hint::black_box(other);
            }
        }
    }
});
