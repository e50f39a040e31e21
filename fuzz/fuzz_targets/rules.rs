//! A rule file: YAML, every document kind (rule, filter, correlation,
//! anomaly job), then compiled as the engine compiles rule sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tocsin::detect::LogsourceRouter;
use tocsin::detect::{CompileOptions, Engine};
use tocsin::sigma::{LoadReport, RuleLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Small limits keep each run fast; the limits themselves are checked.
    let limits = RuleLimits {
        max_yaml_nodes: 20_000,
        max_values_per_rule: 2_000,
        ..RuleLimits::default()
    };
    let mut report = LoadReport::default();
    tocsin::sigma::load_text(text, Path::new("fuzz.yml"), &mut report, &limits);
    let Ok(router) = LogsourceRouter::builtin() else {
        return;
    };
    let options = CompileOptions {
        limits,
        ..CompileOptions::default()
    };
    let rules = report
        .rules
        .into_iter()
        .chain(
            report
                .anomaly_jobs
                .iter()
                .map(|j| tocsin::sigma::LoadedRule {
                    rule: j.job.rule.clone(),
                    file: j.file.clone(),
                }),
        )
        .collect();
    let (engine, _) = Engine::compile(rules, report.filters, router, &options);
    let _ = tocsin::correlate::CorrelationSet::build(report.correlations, &engine);
    let _ = tocsin::anomaly::AnomalySet::build(report.anomaly_jobs, &engine);
});
