//! The subcommands, one file each, and what they share.

pub(crate) mod config;
pub(crate) mod report;
pub(crate) mod rules;
pub(crate) mod run;
pub(crate) mod scan;
pub(crate) mod train;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use tocsin::config::{Config, LogFormat};
use tocsin::detect::RuleLoadSummary;
use tocsin::pipeline::metrics::Metrics;
use tocsin::pipeline::RunStats;

/// Exit codes: 0 success; 1 rule problems (`rules check`, `rules test`);
/// 2 unusable configuration, rules or input; 70 an internal error stopped
/// a pipeline stage (EX_SOFTWARE: restart it).
pub(crate) const EXIT_UNUSABLE: u8 = 2;
pub(crate) const EXIT_INTERNAL: u8 = 70;
/// `scan`: there were records, and not one could be parsed (sysexits' EX_DATAERR).
pub(crate) const EXIT_NOTHING_PARSED: u8 = 65;

pub(crate) fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal who has not said NO_COLOR.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// The flags `run`, `scan` and `train` share: the configuration file and
/// the rules, which override `engine.rules`.
#[derive(clap::Args)]
pub(crate) struct ConfigArgs {
    /// TOML configuration file (defaults < file < TOCSIN_* environment < flags).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Rule files or folders (overrides engine.rules).
    #[arg(long)]
    pub(crate) rules: Vec<PathBuf>,
}

impl ConfigArgs {
    /// The configuration, with these flags, `workers` and `overrides` on top.
    pub(crate) fn load(
        &self,
        workers: Option<usize>,
        mut overrides: Vec<(&str, ::config::Value)>,
    ) -> Result<Config> {
        if !self.rules.is_empty() {
            let rules: Vec<String> = self.rules.iter().map(|p| p.display().to_string()).collect();
            overrides.push(("engine.rules", rules.into()));
        }
        if let Some(workers) = workers {
            overrides.push(("engine.workers", (workers as u64).into()));
        }
        Ok(tocsin::config::load(self.config.as_deref(), &overrides)?)
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Exit code 2, with each failed input named, when an input could not be
/// read (the others were).
pub(crate) fn inputs_outcome(stats: &RunStats) -> Result<ExitCode> {
    if stats.input_errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for e in &stats.input_errors {
        eprintln!("tocsin: error: input {e}");
    }
    Ok(ExitCode::from(EXIT_UNUSABLE))
}

/// One line for the rule warnings a command that is not `rules check` found,
/// pointing to where they are listed; None without warnings.
pub(crate) fn rule_warnings_line(summary: &RuleLoadSummary) -> Option<String> {
    match summary.warnings.len() {
        0 => None,
        n => Some(format!(
            "rules: {n} warning{} (unknown keys, ids, logsource values); `tocsin rules check PATH...` lists them",
            if n == 1 { "" } else { "s" }
        )),
    }
}

/// Rules refused for a broken limit, counted for `tocsin_limit_exceeded_total`.
pub(crate) fn count_limit_problems(summary: &RuleLoadSummary, metrics: &Metrics) {
    for p in &summary.problems {
        if let Some(limit) = p.limit {
            metrics
                .limit_exceeded
                .with_label_values(&[limit.key()])
                .inc();
        }
    }
}
