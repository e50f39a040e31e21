//! `tocsin scan`: rules over files or stdin once; alerts to stdout, a
//! summary to stderr.

use super::{init_logging, inputs_outcome, runtime, ConfigArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tocsin::config::RuleSet;
use tocsin::event::InputFormat;
use tocsin::pipeline::dead_letter::DeadLetterConfig;
use tocsin::pipeline::sinks::{OutputFormat, SinkConfig, StdoutConfig};
use tocsin::pipeline::sources::{Input, SourceConfig};
use tocsin::pipeline::{Pipeline, RunStats, Shutdown};

#[derive(Args)]
pub(crate) struct ScanArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Output: the alert text line, or the alert record as JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
    /// How to parse the input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub(crate) input_format: InputFormat,
    /// Detection threads, 0 = one per core (overrides engine.workers).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Write unparseable records here (JSON lines) instead of counting them only.
    #[arg(long)]
    pub(crate) dead_letters: Option<PathBuf>,
    /// Input files or globs (`.gz` is read transparently); none or `-` reads stdin.
    pub(crate) inputs: Vec<String>,
}

pub(crate) fn cmd_scan(args: ScanArgs) -> Result<ExitCode> {
    let mut cfg = args
        .config
        .load(args.workers, vec![("log.level", "warn".into())])?;
    init_logging(&cfg);
    let rules = RuleSet::from_config(&cfg)?;
    for p in &rules.summary.problems {
        eprintln!("{p}");
    }
    if rules.summary.loaded == 0 {
        bail!("no usable rules in {:?}", cfg.engine.rules);
    }
    let files: Vec<String> = args
        .inputs
        .iter()
        .filter(|i| i.as_str() != "-")
        .cloned()
        .collect();
    let read_stdin = args.inputs.is_empty() || args.inputs.iter().any(|i| i == "-");
    cfg.sources.clear();
    if !files.is_empty() {
        cfg.sources.push(SourceConfig::new(
            Input::File {
                name: None,
                paths: files,
                follow: None,
            },
            args.input_format,
        ));
    }
    if read_stdin {
        cfg.sources
            .push(SourceConfig::new(Input::Stdin, args.input_format));
    }
    cfg.sinks = vec![SinkConfig::Stdout(StdoutConfig {
        format: args.format,
    })];
    cfg.dead_letter = match &args.dead_letters {
        Some(path) => DeadLetterConfig::File { path: path.clone() },
        None => DeadLetterConfig::Stderr,
    };
    // A scan evaluates files once; alert lifecycle belongs to `run`.
    cfg.incident.enabled = false;
    let rule_counts = (rules.summary.loaded, rules.summary.rejected);
    let mut pipeline = Pipeline::from_config(&cfg, rules)?;
    // A scan scores with the saved models but does not change them.
    pipeline.models.save_to = None;
    let rt = runtime()?;
    let outcome = rt.block_on(pipeline.run(Shutdown::new()));
    rt.shutdown_background();
    let stats = outcome?;
    print_scan_summary(rule_counts, &stats);
    inputs_outcome(&stats)
}

/// `(loaded, rejected)` rules, and what the run did.
fn print_scan_summary((loaded, rejected): (usize, usize), stats: &RunStats) {
    // Per input, so every line read can be accounted for: records = events
    // + dead-lettered + blank.
    for (input, n) in &stats.inputs {
        eprintln!(
            "tocsin scan: input {input}: {} records, {} events, {} dead-lettered, {} blank",
            n.records, n.events, n.parse_failures, n.blank
        );
    }
    let by_severity: Vec<String> = stats
        .alerts_by_severity
        .iter()
        .rev()
        .map(|(s, n)| format!("{}={n}", s.key()))
        .collect();
    eprintln!(
        "tocsin scan: {} records, {} events, {} parse failures (dead-lettered), {} blank; rules: {} loaded, {} rejected; alerts: {} ({}); {:.0} events/s",
        stats.process.records,
        stats.process.events,
        stats.process.parse_failures,
        stats.process.blank,
        loaded,
        rejected,
        stats.alerts(),
        if by_severity.is_empty() { "none".to_string() } else { by_severity.join(", ") },
        stats.events_per_second(),
    );
}
