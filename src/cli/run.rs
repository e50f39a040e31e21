//! `tocsin run`: the streaming pipeline as configured, until its input
//! ends or SIGINT/SIGTERM; without a configuration, the built-in demo.

use super::{count_limit_problems, init_logging, inputs_outcome, runtime, ConfigArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tocsin::config::RuleSet;
use tocsin::event::InputFormat;
use tocsin::pipeline::health::Health;
use tocsin::pipeline::metrics::Metrics;
use tocsin::pipeline::reload::Reloader;
use tocsin::pipeline::sinks::{OutputFormat, SinkConfig, StdoutConfig};
use tocsin::pipeline::sources::{Follow, Input, ReadFrom, SourceConfig};
use tocsin::pipeline::{Pipeline, Shutdown};

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Address for /metrics and /healthz (overrides metrics.listen).
    #[arg(long)]
    pub(crate) metrics_listen: Option<String>,
    /// Detection threads, 0 = one per core (overrides engine.workers).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// The engine's now: system, event-time or simulated (overrides clock.mode).
    #[arg(long, value_enum)]
    pub(crate) clock: Option<tocsin::vocab::ClockMode>,
    /// Simulated clock: where it starts, RFC 3339 (overrides clock.start).
    #[arg(long)]
    pub(crate) clock_start: Option<String>,
    /// Simulated clock: simulated seconds per real second (overrides clock.rate).
    #[arg(long)]
    pub(crate) clock_rate: Option<f64>,
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
    .map(|p| {
        let path = p.display().to_string();
        SourceConfig::new(
            Input::File {
                name: Some(path.clone()),
                paths: vec![path],
                // The demo shows every alert on every run: no saved positions.
                follow: Some(Follow {
                    read_from: ReadFrom::Beginning,
                    checkpoint: false,
                }),
            },
            InputFormat::Auto,
        )
    })
    .collect())
}

pub(crate) fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let mut overrides: Vec<(&str, ::config::Value)> = Vec::new();
    if let Some(listen) = &args.metrics_listen {
        overrides.push(("metrics.listen", listen.clone().into()));
    }
    if let Some(mode) = args.clock {
        let mode = match mode {
            tocsin::vocab::ClockMode::System => "system",
            tocsin::vocab::ClockMode::EventTime => "event-time",
            tocsin::vocab::ClockMode::Simulated => "simulated",
        };
        overrides.push(("clock.mode", mode.into()));
    }
    if let Some(start) = &args.clock_start {
        overrides.push(("clock.start", start.clone().into()));
    }
    if let Some(rate) = args.clock_rate {
        overrides.push(("clock.rate", rate.into()));
    }
    let mut cfg = args.config.load(args.workers, overrides)?;
    init_logging(&cfg);
    let mut demo = false;
    if cfg.sources.is_empty() {
        if args.config.config.is_some() {
            bail!("the configuration has no [[sources]]");
        }
        cfg.sources = demo_sources()?;
        demo = true;
    }
    if cfg.sinks.is_empty() {
        cfg.sinks.push(SinkConfig::Stdout(StdoutConfig {
            format: OutputFormat::Text,
        }));
    }
    let rules = RuleSet::from_config(&cfg)?;
    let summary = &rules.summary;
    for p in &summary.problems {
        tracing::warn!("{p}");
    }
    if let Some(line) = super::rule_warnings_line(summary) {
        tracing::warn!("{line}");
    }
    if summary.loaded == 0 {
        bail!("no rules loaded from {:?}", cfg.engine.rules);
    }
    let counts = rules.counts();
    tracing::info!(
        rejected = summary.rejected,
        sources = cfg.sources.len(),
        "starting pipeline: {counts}"
    );
    let metrics = Arc::new(Metrics::new()?);
    metrics.rules_loaded.set(counts.total() as i64);
    metrics.rules_rejected.set(summary.rejected as i64);
    count_limit_problems(summary, &metrics);
    let health = Health::new();
    health.set_rules(counts);
    let loader = RuleSet::loader(&cfg, &rules.summary);
    let mut pipeline = Pipeline::from_config(&cfg, rules)?;
    pipeline.metrics = Some(metrics.clone());
    pipeline.health = health.clone();
    let reloader = Arc::new(Reloader::new(
        pipeline.rules.clone(),
        loader,
        Some(metrics.clone()),
        health.clone(),
    ));
    // Kept for the whole run: dropping it stops watching.
    let _watcher = match cfg.engine.watch_rules {
        true => {
            let mut paths = cfg.engine.rules.clone();
            paths.extend(cfg.engine.logsource_map.clone());
            match tocsin::pipeline::reload::watch(&paths, reloader.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "rule folders are not watched; reload with SIGHUP or POST /reload");
                    None
                }
            }
        }
        false => None,
    };

    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let mut triage_routes = match &cfg.incident.http_token {
            Some(token) if !token.is_empty() => Some(tocsin::pipeline::reload_http::router(
                token.clone(),
                reloader.clone(),
            )),
            _ => None,
        };
        match (&cfg.incident.http_token, cfg.incident.enabled, cfg.metrics.enabled) {
            (Some(token), true, true) if !token.is_empty() => {
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                pipeline.triage_requests = Some(rx);
                let triage = tocsin::pipeline::triage_http::router(
                    token.clone(),
                    tx,
                    cfg.metrics.max_body_bytes,
                    Some(metrics.clone()),
                );
                triage_routes = Some(match triage_routes {
                    Some(reload) => reload.merge(triage),
                    None => triage,
                });
            }
            (Some(_), _, _) => tracing::warn!(
                "incident.http_token is set but POST /triage needs incident.enabled and metrics.enabled (and a non-empty token): not served"
            ),
            _ => {}
        }
        if cfg.metrics.enabled {
            let listener = tocsin::pipeline::http::bind(&cfg.metrics.listen)
                .await
                .with_context(|| {
                    format!("binding the metrics endpoint on {}", cfg.metrics.listen)
                })?;
            let address = listener
                .local_addr()
                .map_or(cfg.metrics.listen.clone(), |a| a.to_string());
            tracing::info!(%address, "serving /metrics, /healthz and /readyz");
            if demo {
                eprintln!(
                    "tocsin demo: the sample logs' alerts print below; tocsin then follows samples/ for new lines.\n  metrics: http://{address}/metrics   health: http://{address}/readyz\n  stop: press Ctrl-C"
                );
            }
            let (m, h, limits) = (metrics.clone(), health.clone(), cfg.metrics.limits());
            tokio::spawn(async move {
                if let Err(e) =
                    tocsin::pipeline::http::serve(listener, m, h, triage_routes, limits).await
                {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        let shutdown = Shutdown::new();
        tokio::spawn(reload_on_sighup(reloader.clone()));
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

/// First SIGINT/SIGTERM: graceful shutdown (stop reading, drain, flush,
/// commit). A second signal, or a drain longer than `limit`, exits at once:
/// what was not committed is read again after the restart.
async fn watch_signals(
    shutdown: Shutdown,
    health: tocsin::pipeline::health::Health,
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

/// SIGHUP reloads the rules, as daemons reload their configuration.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be caught here: reload with POST /reload");
            return;
        };
        while hangups.recv().await.is_some() {
            let reloader = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload("SIGHUP")).await;
        }
    }
    #[cfg(not(unix))]
    drop(reloader);
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
