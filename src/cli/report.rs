//! `tocsin report`: the alert review from the alert state.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tocsin::config;

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Start of the window (RFC 3339 time or YYYY-MM-DD, UTC), inclusive.
    #[arg(long, required_unless_present = "verify")]
    pub(crate) from: Option<String>,
    /// Check the alert journal's hash chain instead: exit 0 and print its
    /// head (record it for the next check), or exit 1 naming the first
    /// record that was changed, removed or inserted.
    #[arg(long)]
    pub(crate) verify: bool,
    /// End of the window (RFC 3339 time or YYYY-MM-DD, UTC), exclusive; the
    /// report is as of this time. Default: now.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// The alert-state journal (default: incident.state_file, or
    /// incident.state_topic on Kafka, from the configuration).
    #[arg(long)]
    pub(crate) state: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    pub(crate) format: ReportFormat,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    Markdown,
    Html,
    Csv,
}

/// A report bound: an RFC 3339 time, or a date (midnight UTC).
fn report_time(flag: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .with_context(|| format!("--{flag} `{text}` is not an RFC 3339 time or a YYYY-MM-DD date"))
}

pub(crate) fn cmd_report(args: ReportArgs) -> Result<ExitCode> {
    let cfg = config::load(args.config.as_deref(), &[])?;
    super::init_logging(&cfg);
    if args.verify {
        let Some(path) = args.state.as_ref().or(cfg.incident.state_file.as_ref()) else {
            bail!("--verify checks a journal file: pass --state FILE, or a --config with incident.state_file");
        };
        return Ok(match tocsin::incident::store::verify(path)? {
            Ok(chain) => {
                println!(
                    "{}: hash chain intact: {} records; chained to {}; head {}",
                    path.display(),
                    chain.records,
                    chain.anchor,
                    chain.head
                );
                ExitCode::SUCCESS
            }
            Err(broken) => {
                println!("{broken}");
                ExitCode::from(1)
            }
        });
    }
    let Some(from) = &args.from else {
        bail!("--from is required");
    };
    let from = report_time("from", from)?;
    let now = chrono::Utc::now();
    let mut note = None;
    let to = match &args.to {
        Some(t) => {
            let to = report_time("to", t)?;
            // Judging as of a future date would call every open alert
            // overdue that is not yet.
            if to > now {
                let text = format!(
                    "--to {} is in the future: the period ends now, {}",
                    t,
                    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                eprintln!("tocsin: warning: {text}");
                note = Some(text);
                now
            } else {
                to
            }
        }
        None => now,
    };
    if to <= from {
        bail!("--to must be after --from");
    }
    let (alerts, problems) = match (
        &args.state,
        &cfg.incident.state_file,
        &cfg.incident.state_topic,
    ) {
        (Some(path), _, _) | (None, Some(path), None) => tocsin::incident::store::read(path)?,
        (None, _, Some(topic)) => {
            tocsin::pipeline::kafka::state::read_alert_state(&cfg.kafka_properties(), topic)?
        }
        (None, None, None) => bail!(
            "no alert state: pass --state FILE, or a --config with incident.state_file or incident.state_topic"
        ),
    };
    for p in problems {
        eprintln!("tocsin: warning: skipped unreadable alert state: {p}");
    }
    let header = tocsin::incident::report::Header {
        generated_at: now,
        tool: format!("tocsin {}", env!("CARGO_PKG_VERSION")),
        sla: cfg.sla.clone(),
        note,
    };
    let report = tocsin::incident::report::review(&alerts, from, to, Some(header));
    let text = match args.format {
        ReportFormat::Markdown => tocsin::incident::report::markdown(&report),
        ReportFormat::Html => tocsin::incident::report::html(&report),
        ReportFormat::Csv => tocsin::incident::report::csv(&report),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
