//! `tocsin config check`: is this configuration ready to run? The checks
//! `vector validate` makes, with its exit codes: 0 when all is well, 78
//! (EX_CONFIG) when anything is not.

use super::ConfigArgs;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use tocsin::config::{Config, RuleSet};
use tocsin::pipeline::kafka::check::check_brokers;
use tocsin::pipeline::sources::{Input, POSITIONS_FILE};
use tocsin::pipeline::Pipeline;

/// EX_CONFIG from sysexits.h, as `vector validate` exits on a bad configuration.
const EXIT_CONFIG: u8 = 78;

/// How long the brokers have to answer `--connect`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate the configuration: load it, load and compile every rule,
    /// assemble the pipeline, check the data directory and the files read
    /// once; with --connect, check that the Kafka brokers answer and the
    /// topics exist. Exit 0 when all is well, 78 otherwise.
    Check(CheckArgs),
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also check that the Kafka brokers answer and every configured topic exists.
    #[arg(long)]
    connect: bool,
}

impl ConfigCommand {
    pub(crate) fn run(self) -> Result<ExitCode> {
        match self {
            ConfigCommand::Check(args) => Ok(check(&args)),
        }
    }
}

/// What the checks found, printed as they go.
#[derive(Default)]
struct Findings {
    errors: usize,
}

impl Findings {
    fn ok(&self, what: impl std::fmt::Display) {
        println!("ok: {what}");
    }
    fn note(&self, what: impl std::fmt::Display) {
        println!("note: {what}");
    }
    fn error(&mut self, what: impl std::fmt::Display) {
        println!("error: {what}");
        self.errors += 1;
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let mut found = Findings::default();
    let source = args
        .config
        .config
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| p.display().to_string());
    let cfg = match args.config.load(None, Vec::new()) {
        Ok(cfg) => {
            found.ok(format!("configuration {source}"));
            cfg
        }
        Err(e) => {
            found.error(format!("{e:#}"));
            return outcome(&found);
        }
    };
    let rules = match RuleSet::from_config(&cfg) {
        Ok(rules) => rules,
        Err(e) => {
            found.error(e);
            return outcome(&found);
        }
    };
    for p in &rules.summary.problems {
        found.error(p);
    }
    match rules.summary.loaded {
        0 => found.error(format!("no rules loaded from {:?}", cfg.engine.rules)),
        _ => found.ok(format!(
            "rules: {}, {} rejected, {} warnings, from {:?}",
            rules.counts(),
            rules.summary.rejected,
            rules.summary.warnings.len(),
            cfg.engine.rules
        )),
    }
    let pipeline = match Pipeline::from_config(&cfg, rules) {
        Ok(p) => {
            found.ok(format!(
                "pipeline: {} sources, {} sinks",
                cfg.sources.len(),
                cfg.sinks.len().max(1)
            ));
            p
        }
        Err(e) => {
            found.error(e);
            return outcome(&found);
        }
    };
    check_files(&cfg, &mut found);
    if args.connect {
        check_kafka(&pipeline, &mut found);
    }
    outcome(&found)
}

/// The data directory is writable when followed files save positions; files
/// read once exist (a followed file may appear later).
fn check_files(cfg: &Config, found: &mut Findings) {
    let mut checkpoints = false;
    for source in &cfg.sources {
        let Input::File { paths, follow, .. } = &source.input else {
            continue;
        };
        checkpoints |= follow.is_some_and(|f| f.checkpoint);
        let (files, errors) = tocsin::pipeline::sources::expand_paths(paths);
        match follow {
            None => errors
                .iter()
                .for_each(|e| found.error(format!("source {}: {e}", source.name()))),
            Some(_) => errors.iter().for_each(|e| {
                found.note(format!(
                    "source {}: {e} (followed: waits for it)",
                    source.name()
                ))
            }),
        }
        if !files.is_empty() {
            found.ok(format!("source {}: {} files", source.name(), files.len()));
        }
    }
    if checkpoints {
        let dir = &cfg.engine.data_dir;
        let probe = dir.join(format!("{POSITIONS_FILE}.check"));
        let writable = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&probe, b""))
            .and_then(|()| std::fs::remove_file(&probe));
        match writable {
            Ok(()) => found.ok(format!("engine.data_dir {} is writable", dir.display())),
            Err(e) => found.error(format!(
                "engine.data_dir {} is not writable: {e}",
                dir.display()
            )),
        }
    }
}

fn check_kafka(pipeline: &Pipeline, found: &mut Findings) {
    let topics = pipeline.kafka_topics();
    if topics.is_empty() && pipeline.kafka.properties.is_empty() {
        found.note("--connect: this configuration uses no Kafka");
        return;
    }
    match check_brokers(&pipeline.kafka.properties, &topics, CONNECT_TIMEOUT) {
        Ok(answer) => {
            found.ok(format!("kafka: {} brokers answer", answer.brokers));
            for topic in &topics {
                match answer.missing_topics.contains(topic) {
                    true => found.error(format!("kafka: topic {topic} does not exist")),
                    false => found.ok(format!("kafka: topic {topic} exists")),
                }
            }
        }
        Err(e) => found.error(format!("{e} (within {CONNECT_TIMEOUT:?})")),
    }
}

fn outcome(found: &Findings) -> ExitCode {
    match found.errors {
        0 => {
            println!("the configuration is valid");
            ExitCode::SUCCESS
        }
        n => {
            println!("{n} problems: the configuration is not valid");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
