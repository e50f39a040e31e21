//! `tocsin scan`: rules over files or stdin once; alerts to stdout, a
//! summary to stderr.

use super::{init_logging, inputs_outcome, runtime, ConfigArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tocsin::anomaly::SampleLateReport;
use tocsin::config::RuleSet;
use tocsin::correlate::{LateReport, Reordered};
use tocsin::event::InputFormat;
use tocsin::pipeline::dead_letter::DeadLetterConfig;
use tocsin::pipeline::metrics::Metrics;
use tocsin::pipeline::sinks::{OutputFormat, SinkConfig, StdoutConfig};
use tocsin::pipeline::sources::{Input, SourceConfig};
use tocsin::pipeline::{Pipeline, RuleCounts, RunStats, Shutdown};

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
    /// Write unparseable records here (JSON lines, each with the reason);
    /// by default they go to stderr, in the same form.
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
    if let Some(line) = super::rule_warnings_line(&rules.summary) {
        eprintln!("{line}");
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
    let rule_counts = (rules.counts(), rules.summary.rejected);
    let mut pipeline = Pipeline::from_config(&cfg, rules)?;
    // A scan scores with the saved models but does not change them.
    pipeline.models.save_to = None;
    // A scan has the whole input: correlation must not depend on its order.
    pipeline.reorder_limit = Some(tocsin::correlate::REORDER_LIMIT);
    // Progress for a person watching a long scan; nothing in a pipe or a log.
    let progress = match std::io::stderr().is_terminal() {
        true => {
            let m = Arc::new(Metrics::new()?);
            pipeline.metrics = Some(m.clone());
            Some(m)
        }
        false => None,
    };
    // The process ends with the scan: freeing the compiled rules (tens of
    // thousands of automata, programs and strings) one by one would only
    // delay the exit by tens of milliseconds.
    std::mem::forget(pipeline.rules.clone());
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let ticker = progress.map(|m| tokio::spawn(show_progress(m)));
        let outcome = pipeline.run(Shutdown::new()).await;
        if let Some(ticker) = ticker {
            ticker.abort();
            eprint!("\r{:width$}\r", "", width = PROGRESS_WIDTH);
        }
        outcome
    });
    rt.shutdown_background();
    let stats = outcome?;
    print_scan_summary(rule_counts, &stats);
    let outcome = inputs_outcome(&stats)?;
    let p = &stats.process;
    if outcome == ExitCode::SUCCESS && p.events == 0 && p.parse_failures > 0 {
        eprintln!(
            "tocsin: error: not one of the {} records could be parsed (each went to the dead-letter destination with the reason); is --input-format right?",
            p.parse_failures
        );
        return Ok(ExitCode::from(super::EXIT_NOTHING_PARSED));
    }
    Ok(outcome)
}

/// The progress line's width: it is rewritten in place.
const PROGRESS_WIDTH: usize = 96;

/// Every half second: records and bytes read, the rate, alerts so far, on
/// one line of stderr rewritten in place.
async fn show_progress(m: Arc<Metrics>) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let records = Metrics::total(&m.events_read);
        let bytes = Metrics::total(&m.bytes_read);
        let alerts = Metrics::total(&m.alerts);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "tocsin scan: {records} records, {:.1} MiB read, {:.0} records/s, {alerts} alerts",
            bytes as f64 / (1024.0 * 1024.0),
            records as f64 / secs
        );
        eprint!("\r{line:width$}", width = PROGRESS_WIDTH);
    }
}

/// `(loaded, rejected)` rules, and what the run did.
fn print_scan_summary((counts, rejected): (RuleCounts, usize), stats: &RunStats) {
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
        "tocsin scan: {} records, {} events, {} parse failures (dead-lettered), {} blank; {counts}, {} rejected; alerts: {} ({}); {:.0} events/s",
        stats.process.records,
        stats.process.events,
        stats.process.parse_failures,
        stats.process.blank,
        rejected,
        stats.alerts(),
        if by_severity.is_empty() { "none".to_string() } else { by_severity.join(", ") },
        stats.events_per_second(),
    );
    if let Some(line) = late_line(&stats.late) {
        eprintln!("tocsin scan: {line}");
    }
    if let Some(line) = anomaly_late_line(&stats.anomaly_late) {
        eprintln!("tocsin scan: {line}");
    }
}

/// What happened to rule matches that arrived out of time order, if any did.
fn late_line(late: &LateReport) -> Option<String> {
    if late.late == 0 {
        return None;
    }
    let rules = tocsin::vocab::tally::describe(&late.by_rule);
    let outcome = match late.reordered {
        Reordered::Replayed { added } => format!(
            "correlation ran them again in event-time order and found {added} more firing{}",
            if added == 1 { "" } else { "s" }
        ),
        Reordered::TooMany { limit } => format!(
            "more than {limit} correlation matches to reorder, so they were left out; sort the input by time or raise correlation.allowed_lateness"
        ),
        Reordered::NotNeeded => "they were left out".to_string(),
    };
    Some(format!(
        "correlation: {} rule matches were out of time order by more than correlation.allowed_lateness ({rules}); {outcome}",
        late.late,
    ))
}

/// What happened to anomaly samples that arrived after their bucket had
/// closed, if any did.
fn anomaly_late_line(late: &SampleLateReport) -> Option<String> {
    let total: u64 = late.by_job.iter().map(|(_, n)| n).sum();
    let outcome = match late.replayed {
        Some(added) => format!(
            "the jobs ran every sample again in event-time order and found {added} more anomal{}",
            if added == 1 { "y" } else { "ies" }
        ),
        None => format!(
            "more than {} samples to reorder, so they were left out; sort the input by time or raise the job's latency",
            tocsin::correlate::REORDER_LIMIT
        ),
    };
    (total > 0).then(|| {
        format!(
            "anomaly: {total} job samples were out of time order, their bucket already scored ({}); {outcome}",
            tocsin::vocab::tally::describe(&late.by_job)
        )
    })
}
