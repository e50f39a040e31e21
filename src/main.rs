//! The `tocsin` command line: run, scan, rules check|test, config check, train, report.

mod cli;

use clap::{Parser, Subcommand};
use cli::{EXIT_INTERNAL, EXIT_UNUSABLE};
use std::process::ExitCode;
use tocsin::pipeline::PipelineError;

#[derive(Parser)]
#[command(
    name = "tocsin",
    version,
    about = "Streaming SIEM alert engine for Sigma rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the streaming pipeline as configured, until input ends or SIGINT/SIGTERM.
    ///
    /// Without --config, runs the built-in demo: the sample events in samples/
    /// against the rules in rules/, alerts on stdout.
    Run(cli::run::RunArgs),
    /// Evaluate rules over files or stdin once; alerts to stdout, a summary to stderr.
    Scan(cli::scan::ScanArgs),
    /// Rule tools.
    #[command(subcommand)]
    Rules(cli::rules::RulesCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Train an anomaly job's baseline from log files and save it to the model directory.
    Train(cli::train::TrainArgs),
    /// The alert review from the alert state: volumes, SLA compliance,
    /// triage and resolution times, noisy rules, escalations.
    Report(cli::report::ReportArgs),
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::cmd_run(args),
        Command::Scan(args) => cli::scan::cmd_scan(args),
        Command::Train(args) => cli::train::cmd_train(args),
        Command::Report(args) => cli::report::cmd_report(args),
        Command::Rules(command) => command.run(),
        Command::Config(command) => command.run(),
    };
    match result {
        Ok(code) => code,
        // A closed stdout (`tocsin scan ... | head`) is how a reader says "enough".
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tocsin: error: {e:#}");
            let internal = e
                .chain()
                .any(|c| matches!(c.downcast_ref(), Some(PipelineError::Stage(_))));
            ExitCode::from(if internal {
                EXIT_INTERNAL
            } else {
                EXIT_UNUSABLE
            })
        }
    }
}

/// Logs every panic with its backtrace: where it is contained (a record
/// dead-lettered) and where it stops a stage, the log says what happened.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map_or_else(|| "unknown".to_string(), ToString::to_string);
        let message = tocsin::pipeline::panic_message(info.payload());
        if tracing::dispatcher::has_been_set() {
            tracing::error!(thread, %location, %message, %backtrace, "internal error");
        } else {
            eprintln!(
                "tocsin: internal error in thread {thread} at {location}: {message}\n{backtrace}"
            );
        }
    }));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
