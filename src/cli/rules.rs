//! `tocsin rules check|test`: rule problems at `file:line:col`, rule test cases.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use tocsin::config::RuleSet;
use tocsin::detect::CompileOptions;

#[derive(Subcommand)]
pub(crate) enum RulesCommand {
    /// Load and compile rules; print each problem as file:line:col: message.
    Check {
        /// Rule files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also list the rules that no logsource mapping routes events to.
        #[arg(long)]
        unrouted: bool,
        /// Exit 1 on warnings too (unknown keys, ids that are not UUIDs,
        /// logsource values the mapping does not know, ...), as CI for a
        /// rule repository wants.
        #[arg(long)]
        strict: bool,
    },
    /// Run rule test cases (events that must and must not match).
    Test {
        /// Rule files or folders.
        #[arg(long, required = true)]
        rules: Vec<PathBuf>,
        /// Test case files or folders.
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
}

impl RulesCommand {
    pub(crate) fn run(self) -> Result<ExitCode> {
        match self {
            RulesCommand::Check {
                paths,
                unrouted,
                strict,
            } => check(&paths, unrouted, strict),
            RulesCommand::Test { rules, cases } => test(&rules, &cases),
        }
    }
}

fn check(paths: &[PathBuf], unrouted: bool, strict: bool) -> Result<ExitCode> {
    let RuleSet {
        engine,
        correlations,
        anomalies,
        summary,
    } = RuleSet::load(paths, None, &CompileOptions::default())?;
    for p in &summary.problems {
        println!("{p}");
    }
    for w in &summary.warnings {
        println!("{}:{}: warning: {}", w.file.display(), w.pos, w.message);
    }
    if unrouted {
        for r in engine.unrouted_rules() {
            println!(
                "{}: note: no logsource mapping routes events to {:?}",
                r.file.display(),
                r.rule.logsource
            );
        }
    }
    let counts = tocsin::pipeline::RuleCounts::of(&engine, &correlations, &anomalies);
    println!(
        "{} files: {counts}, {} rejected, {} warnings",
        summary.files,
        summary.rejected,
        summary.warnings.len(),
    );
    let warnings_fail = strict && !summary.warnings.is_empty();
    Ok(if summary.rejected == 0 && !warnings_fail {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn test(rules: &[PathBuf], cases: &[PathBuf]) -> Result<ExitCode> {
    let RuleSet {
        engine, summary, ..
    } = RuleSet::load(rules, None, &CompileOptions::default())?;
    for p in &summary.problems {
        println!("{p}");
    }
    let results = tocsin::ruletest::run_paths(&engine, cases);
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        if r.failure.is_some() {
            println!("{r}");
        }
    }
    println!("{} passed, {} failed", results.len() - failed, failed);
    Ok(
        if failed == 0 && summary.rejected == 0 && !results.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
