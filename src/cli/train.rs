//! `tocsin train`: an anomaly job's baseline from log files, saved to the
//! model directory.

use super::{init_logging, runtime, ConfigArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tocsin::config::RuleSet;
use tocsin::correlate::CorrelationSet;
use tocsin::event::InputFormat;
use tocsin::pipeline::sources::{Input, SourceConfig};
use tocsin::pipeline::{Pipeline, Shutdown};

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// The job's `name` (or id), as in its rule file.
    #[arg(long)]
    pub(crate) job: String,
    /// Input files or globs (`.gz` is read transparently), in time order.
    #[arg(long, required = true, num_args = 1..)]
    pub(crate) from: Vec<String>,
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Where to save the model (overrides anomaly.model_dir).
    #[arg(long)]
    pub(crate) model_dir: Option<PathBuf>,
    /// How to parse the input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub(crate) input_format: InputFormat,
}

pub(crate) fn cmd_train(args: TrainArgs) -> Result<ExitCode> {
    let mut overrides: Vec<(&str, ::config::Value)> = vec![("log.level", "warn".into())];
    if let Some(dir) = &args.model_dir {
        overrides.push(("anomaly.model_dir", dir.display().to_string().into()));
    }
    let mut cfg = args.config.load(None, overrides)?;
    init_logging(&cfg);
    let mut rules = RuleSet::from_config(&cfg)?;
    for p in &rules.summary.problems {
        eprintln!("{p}");
    }
    let Some(only) = rules.anomalies.only(&args.job) else {
        let names: Vec<&str> = rules.anomalies.jobs().iter().map(|j| j.name()).collect();
        bail!(
            "no anomaly job named {:?} in {:?}; jobs: {}",
            args.job,
            cfg.engine.rules,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let Some(dir) = cfg.anomaly.model_dir().map(Path::to_path_buf) else {
        bail!("no model directory: set anomaly.model_dir or pass --model-dir");
    };
    let job = only.jobs()[0].clone();
    rules.anomalies = only;
    rules.correlations = CorrelationSet::default();
    cfg.sources = vec![SourceConfig::new(
        Input::File {
            name: None,
            paths: args.from.clone(),
            follow: None,
        },
        args.input_format,
    )];
    cfg.sinks.clear();
    cfg.dead_letter = Default::default();
    cfg.incident.enabled = false;
    let mut pipeline = Pipeline::from_config(&cfg, rules)?;
    // Training starts from nothing: the saved model is replaced, not extended.
    pipeline.models.load_from = None;
    pipeline.models.save_to = Some(dir.clone());
    let rt = runtime()?;
    let stats = rt.block_on(pipeline.run(Shutdown::new()))?;
    let model = tocsin::anomaly::store::load(&dir, &job)?;
    let path = tocsin::anomaly::store::model_path(&dir, &job);
    match model {
        Some(m) => eprintln!(
            "tocsin train: job {}: {} events read, {} buckets closed, {} entities, {} buckets scored; {:.2}s; saved {}",
            job.name(),
            stats.process.events,
            m.buckets_closed,
            m.entities(),
            m.normalizer.count(),
            stats.elapsed.as_secs_f64(),
            path.display()
        ),
        None => bail!(
            "job {}: no event in {:?} matched the job's detection; nothing to train",
            job.name(),
            args.from
        ),
    }
    Ok(ExitCode::SUCCESS)
}
