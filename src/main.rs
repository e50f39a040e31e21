//! The `tocsin` command line: run, scan, rules check|test.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tocsin::alert::suppress::SuppressionPolicy;
use tocsin::alert::{AlertBuilder, SlaPolicy};
use tocsin::anomaly::AnomalySet;
use tocsin::config::{
    self, Config, DeadLetterConfig, LogFormat, OutputFormat, SinkConfig, SourceConfig,
};
use tocsin::correlate::CorrelationSet;
use tocsin::detect::{load_engine, CompileOptions, Engine, RuleLoadSummary};
use tocsin::event::InputFormat;
use tocsin::metrics::Metrics;
use tocsin::pipeline::{Pipeline, PipelineError, RunStats, Shutdown};

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
    Run(RunArgs),
    /// Evaluate rules over files or stdin once; alerts to stdout, a summary to stderr.
    Scan(ScanArgs),
    /// Rule tools.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Train an anomaly job's baseline from log files and save it to the model directory.
    Train(TrainArgs),
    /// The alert review from the alert state: volumes, SLA compliance,
    /// triage and resolution times, noisy rules, escalations.
    Report(ReportArgs),
}

#[derive(Args)]
struct ReportArgs {
    /// Start of the window (RFC 3339 time or YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    from: String,
    /// End of the window (RFC 3339 time or YYYY-MM-DD, UTC), exclusive; the
    /// report is as of this time. Default: now.
    #[arg(long)]
    to: Option<String>,
    /// The alert-state journal (default: incident.state_file, or
    /// incident.state_topic on Kafka, from the configuration).
    #[arg(long)]
    state: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    format: ReportFormat,
    /// Write here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Markdown,
    Html,
    Csv,
}

#[derive(Args)]
struct TrainArgs {
    /// The job's `name` (or id), as in its rule file.
    #[arg(long)]
    job: String,
    /// Input files or globs (`.gz` is read transparently), in time order.
    #[arg(long, required = true, num_args = 1..)]
    from: Vec<String>,
    /// TOML configuration file (rules, logsource map, anomaly.model_dir).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Rule files or folders (default: engine.rules from the configuration).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Where to save the model (overrides anomaly.model_dir).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// How to parse the input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
}

#[derive(Args)]
struct RunArgs {
    /// TOML configuration file (defaults < file < TOCSIN_* environment < flags).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Rule files or folders (overrides engine.rules).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Address for /metrics and /healthz (overrides metrics.listen).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Detection threads, 0 = one per core (overrides engine.workers).
    #[arg(long)]
    workers: Option<usize>,
    /// The engine's now: system, event-time or simulated (overrides clock.mode).
    #[arg(long, value_enum)]
    clock: Option<tocsin::vocab::clock::ClockMode>,
    /// Simulated clock: where it starts, RFC 3339 (overrides clock.start).
    #[arg(long)]
    clock_start: Option<String>,
    /// Simulated clock: simulated seconds per real second (overrides clock.rate).
    #[arg(long)]
    clock_rate: Option<f64>,
}

#[derive(Args)]
struct ScanArgs {
    /// Rule files or folders (default: engine.rules from the configuration).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// TOML configuration file (SLA, alert link, placeholders, logsource map).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Output: the alert text line, or the alert record as JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// How to parse the input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
    /// Detection threads, 0 = one per core (overrides engine.workers).
    #[arg(long)]
    workers: Option<usize>,
    /// Write unparseable records here (JSON lines) instead of counting them only.
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// Input files or globs (`.gz` is read transparently); none or `-` reads stdin.
    inputs: Vec<String>,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Load and compile rules; print each problem as file:line:col: message.
    Check {
        /// Rule files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also list the rules that no logsource mapping routes events to.
        #[arg(long)]
        unrouted: bool,
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

/// Exit codes: 0 success; 1 rule problems (`rules check`, `rules test`);
/// 2 unusable configuration, rules or input; 70 an internal error stopped
/// a pipeline stage (EX_SOFTWARE: restart it).
const EXIT_UNUSABLE: u8 = 2;
const EXIT_INTERNAL: u8 = 70;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Scan(args) => cmd_scan(args),
        Command::Train(args) => cmd_train(args),
        Command::Report(args) => cmd_report(args),
        Command::Rules(RulesCommand::Check { paths, unrouted }) => {
            cmd_rules_check(&paths, unrouted)
        }
        Command::Rules(RulesCommand::Test { rules, cases }) => cmd_rules_test(&rules, &cases),
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
        let message = tocsin::pipeline::process::panic_message(info.payload());
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

fn init_logging(cfg: &Config) {
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

/// Detection rules, filters and correlation rules, compiled together.
fn load_rules(
    paths: &[PathBuf],
    mapping: Option<&Path>,
    options: &CompileOptions,
) -> Result<(Engine, CorrelationSet, AnomalySet, RuleLoadSummary)> {
    let (engine, mut summary) = load_engine(paths, mapping, options)?;
    let (correlations, problems) =
        CorrelationSet::build(std::mem::take(&mut summary.correlations), &engine);
    summary.rejected += problems.len();
    summary.problems.extend(problems);
    let (anomalies, problems) =
        AnomalySet::build(std::mem::take(&mut summary.anomaly_jobs), &engine);
    summary.rejected += problems.len();
    summary.problems.extend(problems);
    Ok((engine, correlations, anomalies, summary))
}

/// What `build_engine` makes of the configuration.
struct Built {
    engine: Engine,
    correlations: CorrelationSet,
    anomalies: AnomalySet,
    alerts: AlertBuilder,
    suppression: Arc<SuppressionPolicy>,
}

impl Built {
    /// The pipeline over these rules, with the configuration's engine and correlation settings.
    fn into_pipeline(
        self,
        cfg: &Config,
        sources: Vec<SourceConfig>,
        sinks: Vec<SinkConfig>,
        dead_letter: DeadLetterConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Pipeline> {
        Ok(Pipeline {
            engine: Arc::new(self.engine),
            alerts: self.alerts,
            correlations: Arc::new(self.correlations),
            anomalies: Arc::new(self.anomalies),
            anomaly_load_from: cfg.anomaly.model_dir().map(Path::to_path_buf),
            anomaly_save_to: cfg.anomaly.model_dir().map(Path::to_path_buf),
            anomaly_save_interval: cfg.anomaly.save_interval.as_std(),
            correlation_max_groups: cfg.correlation.max_groups,
            correlation_lateness: cfg.correlation.allowed_lateness.as_std(),
            correlation_state_file: cfg.correlation.state_file.clone(),
            correlation_state_topic: cfg.correlation.state_topic.clone().map(|topic| {
                tocsin::pipeline::kafka::state::StateTopic {
                    topic,
                    key: cfg
                        .correlation
                        .state_key
                        .clone()
                        .unwrap_or_else(|| format!("{}/{}", group_id(cfg), host_name())),
                }
            }),
            correlation_idle_timeout: cfg.correlation.idle_source_timeout.as_std(),
            suppression: self.suppression,
            sources,
            sinks,
            dead_letter,
            channel_capacity: cfg.engine.channel_capacity,
            workers: cfg.engine.worker_threads(),
            metrics,
            kafka: kafka_settings(cfg)?,
            clock: tocsin::vocab::clock::Clock::from_config(&cfg.clock),
            incident: incident_settings(cfg)?,
            triage_requests: None,
            max_record_bytes: cfg.engine.max_record_bytes,
            health: tocsin::health::Health::new(),
        })
    }
}

/// The `[incident]` section as the pipeline takes it (`None`: off).
fn incident_settings(cfg: &Config) -> Result<Option<tocsin::pipeline::IncidentSettings>> {
    let i = &cfg.incident;
    if !i.enabled {
        return Ok(None);
    }
    Ok(Some(tocsin::pipeline::IncidentSettings {
        policy: i.policy()?,
        watches: i.watches()?,
        state_file: i.state_file.clone(),
        state_topic: i.state_topic.clone(),
        check_interval: i.check_interval.as_std(),
        retention: i.retention.as_std(),
        escalation_sink: i.escalation_sink.clone(),
    }))
}

/// The consumer group (librdkafka's `group.id`; tocsin's default is `tocsin`).
fn group_id(cfg: &Config) -> String {
    cfg.kafka_properties()
        .into_iter()
        .find(|(k, _)| k == "group.id")
        .map_or_else(|| "tocsin".to_string(), |(_, v)| v)
}

/// This host's name, for per-instance defaults.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// The Kafka side of the configuration, with the exactly-once
/// `transactional.id` defaulted to one stable per host and group.
fn kafka_settings(cfg: &Config) -> anyhow::Result<tocsin::pipeline::kafka::KafkaSettings> {
    use tocsin::config::DeliveryMode;
    let properties = cfg.kafka_properties();
    let exactly_once = cfg.delivery.mode == DeliveryMode::ExactlyOnce;
    let transactional_id = cfg
        .delivery
        .transactional_id
        .clone()
        .or_else(|| exactly_once.then(|| format!("tocsin-{}-{}", group_id(cfg), host_name())));
    Ok(tocsin::pipeline::kafka::KafkaSettings {
        properties,
        exactly_once,
        transactional_id,
        commit_interval: cfg.delivery.commit_interval.as_std(),
    })
}

/// Flags shared by `run` and `scan` that override the configuration.
fn engine_overrides(
    rules: &[PathBuf],
    workers: Option<usize>,
    out: &mut Vec<(&str, ::config::Value)>,
) {
    if !rules.is_empty() {
        let rules: Vec<String> = rules.iter().map(|p| p.display().to_string()).collect();
        out.push(("engine.rules", rules.into()));
    }
    if let Some(workers) = workers {
        out.push(("engine.workers", (workers as u64).into()));
    }
}

/// The rules, the alert builder and the suppression policy, as configured.
fn build_engine(cfg: &Config) -> Result<(Built, RuleLoadSummary)> {
    let options = CompileOptions {
        placeholders: cfg.placeholders.clone(),
        limits: cfg.rule_limits,
    };
    let (engine, correlations, anomalies, summary) = load_rules(
        &cfg.engine.rules,
        cfg.engine.logsource_map.as_deref(),
        &options,
    )?;
    let sla = SlaPolicy::from_config(&cfg.sla)?;
    let suppression = Arc::new(SuppressionPolicy::from_config(&cfg.suppression)?);
    let alerts = AlertBuilder::new(cfg.alert.clone(), sla).with_suppression(suppression.clone());
    Ok((
        Built {
            engine,
            correlations,
            anomalies,
            alerts,
            suppression,
        },
        summary,
    ))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The demo sources used by `tocsin run` without a configuration file.
fn demo_sources() -> Result<Vec<SourceConfig>> {
    let dir = Path::new("samples");
    if !dir.is_dir() {
        bail!("no --config given and the demo samples were not found in ./samples: run from the repository root, or pass --config FILE (see deploy/tocsin.example.toml)");
    }
    Ok([
        "auth.log",
        "syslog-rfc5424.log",
        "access.log",
        "windows.jsonl",
    ]
    .iter()
    .map(|f| dir.join(f))
    .filter(|p| p.exists())
    .map(|p| SourceConfig::File {
        name: Some(p.display().to_string()),
        paths: vec![p.display().to_string()],
        format: InputFormat::Auto,
        time_field: None,
        time_format: None,
        logsource: Default::default(),
        records: Default::default(),
    })
    .collect())
}

fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let mut overrides: Vec<(&str, ::config::Value)> = Vec::new();
    engine_overrides(&args.rules, args.workers, &mut overrides);
    if let Some(listen) = &args.metrics_listen {
        overrides.push(("metrics.listen", listen.clone().into()));
    }
    if let Some(mode) = args.clock {
        let mode = match mode {
            tocsin::vocab::clock::ClockMode::System => "system",
            tocsin::vocab::clock::ClockMode::EventTime => "event-time",
            tocsin::vocab::clock::ClockMode::Simulated => "simulated",
        };
        overrides.push(("clock.mode", mode.into()));
    }
    if let Some(start) = &args.clock_start {
        overrides.push(("clock.start", start.clone().into()));
    }
    if let Some(rate) = args.clock_rate {
        overrides.push(("clock.rate", rate.into()));
    }
    let mut cfg = config::load(args.config.as_deref(), &overrides)?;
    init_logging(&cfg);
    if cfg.sources.is_empty() {
        if args.config.is_some() {
            bail!("the configuration has no [[sources]]");
        }
        cfg.sources = demo_sources()?;
    }
    if cfg.sinks.is_empty() {
        cfg.sinks.push(SinkConfig::Stdout {
            format: OutputFormat::Text,
        });
    }
    let (built, summary) = build_engine(&cfg)?;
    report_rule_problems(&summary);
    if summary.loaded == 0 {
        bail!("no rules loaded from {:?}", cfg.engine.rules);
    }
    tracing::info!(
        rules = summary.loaded,
        rejected = summary.rejected,
        sources = cfg.sources.len(),
        "starting pipeline"
    );
    let metrics = Arc::new(Metrics::new()?);
    metrics.rules_loaded.set(summary.loaded as i64);
    metrics.rules_rejected.set(summary.rejected as i64);
    count_limit_problems(&summary, &metrics);
    let health = tocsin::health::Health::new();
    health.set_rules_loaded(summary.loaded);

    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let mut pipeline = built.into_pipeline(
            &cfg,
            cfg.sources.clone(),
            cfg.sinks.clone(),
            cfg.dead_letter.clone(),
            Some(metrics.clone()),
        )?;
        pipeline.health = health.clone();
        let mut triage_routes = None;
        match (&cfg.incident.http_token, cfg.incident.enabled, cfg.metrics.enabled) {
            (Some(token), true, true) if !token.is_empty() => {
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                pipeline.triage_requests = Some(rx);
                triage_routes = Some(tocsin::pipeline::triage_http::router(
                    token.clone(),
                    tx,
                    cfg.metrics.max_body_bytes,
                    Some(metrics.clone()),
                ));
            }
            (Some(_), _, _) => tracing::warn!(
                "incident.http_token is set but POST /triage needs incident.enabled and metrics.enabled (and a non-empty token): not served"
            ),
            _ => {}
        }
        if cfg.metrics.enabled {
            let listener = tocsin::metrics::bind(&cfg.metrics.listen)
                .await
                .with_context(|| {
                    format!("binding the metrics endpoint on {}", cfg.metrics.listen)
                })?;
            let address = listener
                .local_addr()
                .map_or(cfg.metrics.listen.clone(), |a| a.to_string());
            tracing::info!(%address, "serving /metrics, /healthz and /readyz");
            let (m, h, limits) = (metrics.clone(), health.clone(), cfg.metrics.http_limits());
            tokio::spawn(async move {
                if let Err(e) = tocsin::metrics::serve(listener, m, h, triage_routes, limits).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        let shutdown = Shutdown::new();
        tokio::spawn(watch_signals(
            shutdown.clone(),
            health.clone(),
            cfg.delivery.shutdown_timeout.as_std(),
        ));
        pipeline.run(shutdown).await.map_err(anyhow::Error::from)
    });
    // Leave the runtime without waiting for the metrics server task, or for
    // a read blocked on a silent input.
    rt.shutdown_background();
    let stats = outcome?;
    tracing::info!(
        records = stats.process.records,
        events = stats.process.events,
        parse_failures = stats.process.parse_failures,
        alerts = stats.alerts(),
        elapsed_ms = stats.elapsed.as_millis() as u64,
        "pipeline finished"
    );
    inputs_outcome(&stats)
}

/// Exit code 2, with each failed input named, when an input could not be
/// read (the others were).
fn inputs_outcome(stats: &RunStats) -> Result<ExitCode> {
    if stats.input_errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for e in &stats.input_errors {
        eprintln!("tocsin: error: input {e}");
    }
    Ok(ExitCode::from(EXIT_UNUSABLE))
}

/// Rules refused for a broken limit, counted for `tocsin_limit_exceeded_total`.
fn count_limit_problems(summary: &RuleLoadSummary, metrics: &Metrics) {
    for p in &summary.problems {
        if let Some(limit) = p.limit {
            metrics
                .limit_exceeded
                .with_label_values(&[limit.key()])
                .inc();
        }
    }
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

fn cmd_report(args: ReportArgs) -> Result<ExitCode> {
    let cfg = config::load(args.config.as_deref(), &[])?;
    init_logging(&cfg);
    let from = report_time("from", &args.from)?;
    let to = match &args.to {
        Some(t) => report_time("to", t)?,
        None => chrono::Utc::now(),
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
    let report = tocsin::incident::report::build(&alerts, from, to);
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

/// First SIGINT/SIGTERM: graceful shutdown (stop reading, drain, flush,
/// commit). A second signal, or a drain longer than `limit`, exits at once:
/// what was not committed is read again after the restart.
async fn watch_signals(
    shutdown: Shutdown,
    health: tocsin::health::Health,
    limit: std::time::Duration,
) {
    wait_for_signal().await;
    health.draining();
    shutdown.trigger();
    tracing::info!(
        "shutdown requested: draining, flushing and committing (signal again to exit now)"
    );
    tokio::select! {
        _ = wait_for_signal() => {
            tracing::warn!("second signal: exiting without draining");
        }
        _ = tokio::time::sleep(limit) => {
            tracing::error!("shutdown took longer than delivery.shutdown_timeout ({limit:?}): exiting without a final commit");
        }
    }
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn report_rule_problems(summary: &RuleLoadSummary) {
    for p in &summary.problems {
        tracing::warn!("{p}");
    }
}

fn cmd_scan(args: ScanArgs) -> Result<ExitCode> {
    let mut overrides: Vec<(&str, ::config::Value)> = vec![("log.level", "warn".into())];
    engine_overrides(&args.rules, args.workers, &mut overrides);
    let cfg = config::load(args.config.as_deref(), &overrides)?;
    init_logging(&cfg);
    let (built, summary) = build_engine(&cfg)?;
    for p in &summary.problems {
        eprintln!("{p}");
    }
    if summary.loaded == 0 {
        bail!("no usable rules in {:?}", cfg.engine.rules);
    }
    let files: Vec<String> = args
        .inputs
        .iter()
        .filter(|i| i.as_str() != "-")
        .cloned()
        .collect();
    let read_stdin = args.inputs.is_empty() || args.inputs.iter().any(|i| i == "-");
    let mut sources = Vec::new();
    if !files.is_empty() {
        sources.push(SourceConfig::File {
            name: None,
            paths: files,
            format: args.input_format,
            time_field: None,
            time_format: None,
            logsource: Default::default(),
            records: Default::default(),
        });
    }
    if read_stdin {
        sources.push(SourceConfig::Stdin {
            format: args.input_format,
            time_field: None,
            time_format: None,
            logsource: Default::default(),
            records: Default::default(),
        });
    }
    let dead_letter = match &args.dead_letters {
        Some(path) => DeadLetterConfig::File { path: path.clone() },
        None => DeadLetterConfig::Stderr,
    };
    let mut pipeline = built.into_pipeline(
        &cfg,
        sources,
        vec![SinkConfig::Stdout {
            format: args.format,
        }],
        dead_letter,
        None,
    )?;
    // A scan evaluates files once; alert lifecycle belongs to `run`.
    pipeline.incident = None;
    // A scan scores with the saved models but does not change them.
    let pipeline = Pipeline {
        anomaly_save_to: None,
        ..pipeline
    };
    let rt = runtime()?;
    let outcome = rt.block_on(pipeline.run(Shutdown::new()));
    rt.shutdown_background();
    let stats = outcome?;
    print_scan_summary(&summary, &stats);
    inputs_outcome(&stats)
}

fn cmd_train(args: TrainArgs) -> Result<ExitCode> {
    let mut overrides: Vec<(&str, ::config::Value)> = vec![("log.level", "warn".into())];
    engine_overrides(&args.rules, None, &mut overrides);
    if let Some(dir) = &args.model_dir {
        overrides.push(("anomaly.model_dir", dir.display().to_string().into()));
    }
    let cfg = config::load(args.config.as_deref(), &overrides)?;
    init_logging(&cfg);
    let (built, summary) = build_engine(&cfg)?;
    for p in &summary.problems {
        eprintln!("{p}");
    }
    let Some(only) = built.anomalies.only(&args.job) else {
        let names: Vec<&str> = built.anomalies.jobs().iter().map(|j| j.name()).collect();
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
    let built = Built {
        anomalies: only,
        correlations: CorrelationSet::default(),
        ..built
    };
    let sources = vec![SourceConfig::File {
        name: None,
        paths: args.from.clone(),
        format: args.input_format,
        time_field: None,
        time_format: None,
        logsource: Default::default(),
        records: Default::default(),
    }];
    let pipeline =
        built.into_pipeline(&cfg, sources, Vec::new(), DeadLetterConfig::Stderr, None)?;
    // Training starts from nothing: the saved model is replaced, not extended.
    let pipeline = Pipeline {
        anomaly_load_from: None,
        anomaly_save_to: Some(dir.clone()),
        incident: None,
        ..pipeline
    };
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

fn print_scan_summary(rules: &RuleLoadSummary, stats: &RunStats) {
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
        rules.loaded,
        rules.rejected,
        stats.alerts(),
        if by_severity.is_empty() { "none".to_string() } else { by_severity.join(", ") },
        stats.events_per_second(),
    );
}

fn cmd_rules_check(paths: &[PathBuf], unrouted: bool) -> Result<ExitCode> {
    let (engine, correlations, anomalies, summary) =
        load_rules(paths, None, &CompileOptions::default())?;
    for p in &summary.problems {
        println!("{p}");
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
    println!(
        "{} files: {} rules loaded, {} filters, {} correlation rules, {} anomaly jobs, {} rejected",
        summary.files,
        summary.loaded - anomalies.detection_rules(),
        summary.filters,
        correlations.len(),
        anomalies.len(),
        summary.rejected,
    );
    Ok(if summary.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_rules_test(rules: &[PathBuf], cases: &[PathBuf]) -> Result<ExitCode> {
    let (engine, _, _, summary) = load_rules(rules, None, &CompileOptions::default())?;
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
