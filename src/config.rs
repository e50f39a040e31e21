//! Configuration: built-in defaults < TOML file < `TOCSIN_*` environment < command-line flags.
//!
//! Environment variables use `__` between levels: `TOCSIN_METRICS__LISTEN=0.0.0.0:9464`,
//! `TOCSIN_ENGINE__RULES=rules/,extra/` (lists are comma-separated).

use crate::alert::{AlertConfig, SlaConfig};
use crate::event::time::TimeOptions;
use crate::event::InputFormat;
use crate::vocab::{LogsourceTags, Span};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Default longest record: 1 MiB, the largest message a Kafka broker
/// accepts by default.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// The built-in defaults, as TOML (also the reference for every key).
pub const DEFAULTS_TOML: &str = r#"
[engine]
rules = ["rules/"]
channel_capacity = 1024
workers = 0

[dead_letter]
type = "stderr"

[alert]
link_template = "https://siem.example.com/alerts/{id}"
informational = false

[metrics]
enabled = true
listen = "127.0.0.1:9464"

[log]
format = "human"
level = "info"
"#;

/// Problems reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub engine: EngineConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub dead_letter: DeadLetterConfig,
    pub alert: AlertConfig,
    pub sla: SlaConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    /// Values for `expand` placeholders: `Administrators = ["admin*", "root"]`.
    pub placeholders: HashMap<String, Vec<String>>,
    pub correlation: CorrelationConfig,
    pub anomaly: AnomalyConfig,
    pub suppression: crate::alert::suppress::SuppressionConfig,
    /// librdkafka properties, passed through verbatim to the consumer and the
    /// producer (`"bootstrap.servers"`, TLS, SASL, timeouts). From the
    /// environment, `_` stands for `.`: `TOCSIN_KAFKA__BOOTSTRAP_SERVERS`.
    pub kafka: std::collections::BTreeMap<String, String>,
    /// How Kafka offsets and alerts are committed.
    pub delivery: DeliveryConfig,
    /// The engine's notion of now (system, event time, or simulated).
    pub clock: crate::vocab::clock::ClockConfig,
    /// Alert lifecycle: triage, escalation, silent sources.
    pub incident: IncidentConfig,
    /// How large, deep and wide a rule file may be.
    pub rule_limits: crate::sigma::RuleLimits,
}

/// The `[incident]` section: the alert lifecycle (docs/incident.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// Track alerts through triage and escalate missed deadlines.
    pub enabled: bool,
    /// Local alert-state journal (used when no state_topic is set).
    pub state_file: Option<PathBuf>,
    /// Compacted Kafka topic keyed by alert id, for runs on Kafka.
    pub state_topic: Option<String>,
    /// How often (real time) deadlines and silences are checked.
    pub check_interval: Span,
    /// Closed alerts are forgotten this long after closing.
    pub retention: Span,
    /// Escalation levels; empty: the defaults (docs/incident.md).
    pub escalation: Vec<crate::incident::escalation::LevelConfig>,
    /// Where the `escalations` destination writes; unset: the alert sinks.
    pub escalation_sink: Option<SinkConfig>,
    /// Watched log sources and their longest expected silence.
    pub silence: Vec<crate::incident::silence::SilenceConfig>,
    /// Bearer token for `POST /triage` on the metrics listener; unset: no endpoint.
    pub http_token: Option<String>,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            enabled: false,
            state_file: None,
            state_topic: None,
            check_interval: Span::from_secs(1),
            retention: Span::from_secs(90 * 86_400),
            escalation: Vec::new(),
            escalation_sink: None,
            silence: Vec::new(),
            http_token: None,
        }
    }
}

impl IncidentConfig {
    /// The configured escalation levels, or the defaults.
    pub fn policy(&self) -> Result<crate::incident::escalation::EscalationPolicy, ConfigError> {
        let levels = if self.escalation.is_empty() {
            crate::incident::escalation::default_levels()
        } else {
            self.escalation.clone()
        };
        crate::incident::escalation::EscalationPolicy::compile(&levels)
            .map_err(ConfigError::Invalid)
    }

    pub fn watches(&self) -> Result<Vec<crate::incident::silence::Watch>, ConfigError> {
        crate::incident::silence::compile(&self.silence).map_err(ConfigError::Invalid)
    }
}

/// Delivery guarantee between the input topics and the alerts topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Offsets are committed only after every alert derived from the records
    /// before them is acknowledged by the broker. A crash may repeat alerts.
    #[default]
    AtLeastOnce,
    /// Alerts and offsets are committed in one Kafka transaction.
    ExactlyOnce,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    pub mode: DeliveryMode,
    /// Most time between two commits while records keep arriving (`1s`, `500ms`).
    pub commit_interval: Span,
    /// Exactly-once only: the producer's `transactional.id`, unique per
    /// instance and stable across its restarts (default: `tocsin-<group.id>-<hostname>`).
    pub transactional_id: Option<String>,
    /// How long a shutdown may take to drain, flush and commit before giving up.
    pub shutdown_timeout: Span,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            mode: DeliveryMode::AtLeastOnce,
            commit_interval: Span::from_secs(1),
            transactional_id: None,
            shutdown_timeout: Span::from_secs(30),
        }
    }
}

/// A librdkafka property name from a config key: the environment cannot
/// spell `.`, so `bootstrap_servers` means `bootstrap.servers` (no librdkafka
/// property has an underscore in its name).
pub fn kafka_key(key: &str) -> String {
    key.replace('_', ".")
}

/// Anomaly jobs (`anomaly:` documents among the rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Where job models are loaded from at start and saved to; `tocsin
    /// train` writes here too. Unset (the default) keeps models in memory
    /// only: baselines are learned again from the stream on every start.
    pub model_dir: Option<PathBuf>,
    /// How often changed models are saved while running (also at the end).
    pub save_interval: Span,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            model_dir: None,
            save_interval: Span::from_secs(300),
        }
    }
}

impl AnomalyConfig {
    /// The model directory; an empty `model_dir` turns persistence off.
    pub fn model_dir(&self) -> Option<&std::path::Path> {
        self.model_dir
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Most correlation groups (rule and group key) tracked at once; past it
    /// the group expiring first is dropped (counted in a metric, logged).
    pub max_groups: usize,
    /// How far behind the newest event time an event may arrive and still be
    /// placed in its window (`90s`, `5m`); windows are final only after it.
    pub allowed_lateness: Span,
    /// Where open correlation windows are snapshotted with the Kafka
    /// positions they reflect, to resume them after a restart (off if unset).
    pub state_file: Option<PathBuf>,
    /// Or a compacted Kafka topic for the snapshots (one record per
    /// instance, written with the alerts; in exactly-once mode in the same
    /// transaction as the offsets).
    pub state_topic: Option<String>,
    /// This instance's key in `state_topic`, stable across its restarts
    /// (default `<group.id>/<hostname>`).
    pub state_key: Option<String>,
    /// A source silent this long (wall time) stops holding back the
    /// watermark that decides when windows are final.
    pub idle_source_timeout: Span,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            max_groups: crate::correlate::DEFAULT_MAX_GROUPS,
            allowed_lateness: Span::from_std(crate::correlate::DEFAULT_LATENESS),
            state_file: None,
            state_topic: None,
            state_key: None,
            idle_source_timeout: Span::from_std(crate::correlate::DEFAULT_IDLE_TIMEOUT),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Rule files or folders (searched recursively for `.yml`/`.yaml`).
    pub rules: Vec<PathBuf>,
    /// A logsource mapping file replacing the built-in one.
    pub logsource_map: Option<PathBuf>,
    /// Records buffered between stages; bounds memory and applies backpressure.
    pub channel_capacity: usize,
    /// Detection threads; 0 means one per core.
    pub workers: usize,
    /// Longest record read (a line, or a Kafka message), in bytes. Longer
    /// ones are dead-lettered with their size and a prefix, never read into
    /// memory whole.
    pub max_record_bytes: usize,
}

impl EngineConfig {
    /// The number of detection threads to run.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rules: vec![PathBuf::from("rules/")],
            logsource_map: None,
            channel_capacity: 1024,
            workers: 0,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// An input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// Files by path or glob; `.gz` files are decompressed.
    File {
        #[serde(default)]
        name: Option<String>,
        paths: Vec<String>,
        #[serde(default)]
        format: InputFormat,
        #[serde(default)]
        time_field: Option<String>,
        #[serde(default)]
        time_format: Option<String>,
        #[serde(default)]
        logsource: LogsourceTags,
        /// What the records are: events (default), triage updates, or alert records to track.
        #[serde(default)]
        records: RecordKind,
    },
    /// Standard input.
    Stdin {
        #[serde(default)]
        format: InputFormat,
        #[serde(default)]
        time_field: Option<String>,
        #[serde(default)]
        time_format: Option<String>,
        #[serde(default)]
        logsource: LogsourceTags,
        /// What the records are: events (default), triage updates, or alert records to track.
        #[serde(default)]
        records: RecordKind,
    },
    /// A Kafka topic, read by the consumer group of `[kafka]`; every Kafka
    /// source shares one consumer, each topic has its own parser.
    Kafka {
        topic: String,
        #[serde(default)]
        format: InputFormat,
        #[serde(default)]
        time_field: Option<String>,
        #[serde(default)]
        time_format: Option<String>,
        #[serde(default)]
        logsource: LogsourceTags,
        /// What the records are: events (default), triage updates, or alert records to track.
        #[serde(default)]
        records: RecordKind,
    },
}

/// What a source's records are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// Log events, parsed and matched against the rules.
    #[default]
    Events,
    /// Triage updates `{alert_id, status, by, at, note}` for the incident desk.
    Triage,
    /// Alert records (as tocsin writes them) for the incident desk to track.
    Alerts,
}

impl SourceConfig {
    pub fn records(&self) -> RecordKind {
        match self {
            SourceConfig::File { records, .. }
            | SourceConfig::Stdin { records, .. }
            | SourceConfig::Kafka { records, .. } => *records,
        }
    }

    pub fn format(&self) -> InputFormat {
        match self {
            SourceConfig::File { format, .. }
            | SourceConfig::Stdin { format, .. }
            | SourceConfig::Kafka { format, .. } => *format,
        }
    }

    pub fn time_options(&self) -> TimeOptions {
        match self {
            SourceConfig::File {
                time_field,
                time_format,
                ..
            }
            | SourceConfig::Stdin {
                time_field,
                time_format,
                ..
            }
            | SourceConfig::Kafka {
                time_field,
                time_format,
                ..
            } => TimeOptions {
                field: time_field.clone(),
                format: time_format.clone(),
            },
        }
    }

    pub fn logsource(&self) -> &LogsourceTags {
        match self {
            SourceConfig::File { logsource, .. }
            | SourceConfig::Stdin { logsource, .. }
            | SourceConfig::Kafka { logsource, .. } => logsource,
        }
    }
}

/// How alerts are written by a sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// The alert text line.
    #[default]
    Text,
    /// The alert record as one JSON line.
    Json,
}

/// An output for alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    Stdout {
        #[serde(default)]
        format: OutputFormat,
    },
    File {
        path: PathBuf,
        #[serde(default = "json_format")]
        format: OutputFormat,
    },
    /// A Kafka topic: the alert record as JSON (or the text line), keyed by
    /// the alert id (correlation alerts: the group key), with headers
    /// `type`, `severity` and `rule_id`.
    Kafka {
        topic: String,
        #[serde(default = "json_format")]
        format: OutputFormat,
    },
    /// A Slack-compatible incoming webhook: `{"text": <alert lines>}`.
    Webhook {
        /// Escalation levels name the webhook by this (`webhook:<name>`).
        #[serde(default = "webhook_name")]
        name: String,
        url: String,
        /// Lowest severity posted.
        #[serde(default = "webhook_min_severity")]
        min_severity: String,
        /// Post alerts (false: only escalations routed here).
        #[serde(default = "yes")]
        alerts: bool,
        #[serde(default = "webhook_batch_max")]
        batch_max: usize,
        #[serde(default = "webhook_batch_wait")]
        batch_wait: Span,
        #[serde(default = "webhook_max_per_minute")]
        max_per_minute: u32,
        #[serde(default = "webhook_retries")]
        retries: u32,
        #[serde(default = "webhook_queue")]
        queue: usize,
    },
}

fn json_format() -> OutputFormat {
    OutputFormat::Json
}

fn webhook_name() -> String {
    "chat".into()
}
fn webhook_min_severity() -> String {
    "high".into()
}
fn yes() -> bool {
    true
}
fn webhook_batch_max() -> usize {
    20
}
fn webhook_batch_wait() -> Span {
    Span::from_secs(2)
}
/// Slack accepts about one message per second per webhook.
fn webhook_max_per_minute() -> u32 {
    60
}
fn webhook_retries() -> u32 {
    5
}
fn webhook_queue() -> usize {
    10_000
}

impl SinkConfig {
    /// The webhook settings of a webhook sink, checked.
    pub fn webhook_settings(
        &self,
    ) -> Result<Option<crate::pipeline::webhook::WebhookSettings>, ConfigError> {
        let SinkConfig::Webhook {
            name,
            url,
            min_severity,
            alerts,
            batch_max,
            batch_wait,
            max_per_minute,
            retries,
            queue,
        } = self
        else {
            return Ok(None);
        };
        let min_severity =
            crate::vocab::Severity::from_sigma_level(min_severity).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "webhook {name}: unknown min_severity `{min_severity}`"
                ))
            })?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "webhook {name}: url `{url}` must start with https:// (or http://)"
            )));
        }
        Ok(Some(crate::pipeline::webhook::WebhookSettings {
            name: name.clone(),
            url: url.clone(),
            min_severity,
            alerts: *alerts,
            batch_max: (*batch_max).max(1),
            batch_wait: batch_wait.as_std(),
            max_per_minute: (*max_per_minute).max(1),
            retries: *retries,
            queue: (*queue).max(1),
        }))
    }
}

/// Where records that cannot be parsed go, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// JSON lines on standard error.
    #[default]
    Stderr,
    /// JSON lines appended to a file.
    File { path: PathBuf },
    /// A Kafka topic: the original bytes as the value, the reason and the
    /// source topic, partition and offset in headers.
    Kafka { topic: String },
}

/// The HTTP listener: `/metrics`, `/healthz`, `/readyz`, `/triage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
    /// Most connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Most time to receive a request's headers, idle kept-alive time included.
    pub header_timeout: Span,
    /// Most time for a whole request.
    pub request_timeout: Span,
    /// Largest request body (read only after the bearer token is checked).
    pub max_body_bytes: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        let limits = crate::metrics::HttpLimits::default();
        MetricsConfig {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            max_connections: limits.max_connections,
            header_timeout: Span::from_std(limits.header_timeout),
            request_timeout: Span::from_std(limits.request_timeout),
            max_body_bytes: limits.max_body_bytes,
        }
    }
}

impl MetricsConfig {
    pub fn http_limits(&self) -> crate::metrics::HttpLimits {
        crate::metrics::HttpLimits {
            max_connections: self.max_connections,
            header_timeout: self.header_timeout.as_std(),
            request_timeout: self.request_timeout.as_std(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `tocsin=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// The built-in defaults, the bottom layer.
fn defaults() -> config::ConfigBuilder<config::builder::DefaultState> {
    config::Config::builder().add_source(config::File::from_str(
        DEFAULTS_TOML,
        config::FileFormat::Toml,
    ))
}

/// A configuration from TOML text over the defaults (no file, no
/// environment, no flags), checked as [`load`] checks it.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    let cfg: Config = defaults()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()?
        .try_deserialize()?;
    cfg.validate()?;
    Ok(cfg)
}

/// Loads the layered configuration. `overrides` are `(key, value)` pairs from flags.
pub fn load(
    file: Option<&Path>,
    overrides: &[(&str, config::Value)],
) -> Result<Config, ConfigError> {
    load_with_env(file, overrides, std::env::vars())
}

/// [`load`] with an explicit environment, for tests.
pub fn load_with_env(
    file: Option<&Path>,
    overrides: &[(&str, config::Value)],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut builder = defaults();
    if let Some(path) = file {
        // Read errors carry the path here; the config crate's would not.
        if let Err(e) = std::fs::read_to_string(path) {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "file not found".to_string(),
                _ => e.to_string(),
            };
            return Err(ConfigError::Invalid(format!("{}: {why}", path.display())));
        }
        builder = builder.add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    // Only `TOCSIN_<SECTION>__<KEY>` is configuration. Other TOCSIN_*
    // variables are not ours to refuse: Kubernetes sets TOCSIN_PORT,
    // TOCSIN_SERVICE_HOST and the like for a Service named `tocsin`.
    let env: HashMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| {
            k.strip_prefix("TOCSIN_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("TOCSIN")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("engine.rules")
            .try_parsing(true)
            .source(Some(env)),
    );
    for (key, value) in overrides {
        builder = builder.set_override(*key, value.clone())?;
    }
    let cfg: Config = builder.build()?.try_deserialize()?;
    cfg.validate()?;
    Ok(cfg)
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        // Zero here would mean a busy loop, or a timeout that is always over.
        for (key, span) in [
            (
                "correlation.idle_source_timeout",
                self.correlation.idle_source_timeout,
            ),
            ("delivery.commit_interval", self.delivery.commit_interval),
            ("delivery.shutdown_timeout", self.delivery.shutdown_timeout),
            ("anomaly.save_interval", self.anomaly.save_interval),
            ("incident.check_interval", self.incident.check_interval),
            ("metrics.header_timeout", self.metrics.header_timeout),
            ("metrics.request_timeout", self.metrics.request_timeout),
        ] {
            span.nonzero(key)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::Invalid(format!(
                "log.level `{}` is not a level (error, warn, info, debug, trace) or a filter such as `tocsin=debug`",
                self.log.level
            )));
        }
        for (key, n) in [
            ("engine.max_record_bytes", self.engine.max_record_bytes),
            ("metrics.max_connections", self.metrics.max_connections),
            ("metrics.max_body_bytes", self.metrics.max_body_bytes),
        ] {
            if n == 0 {
                return Err(ConfigError::Invalid(format!("{key} must be at least 1")));
            }
        }
        if self.engine.channel_capacity == 0 {
            return Err(ConfigError::Invalid(
                "engine.channel_capacity must be at least 1".into(),
            ));
        }
        for s in &self.sources {
            if let SourceConfig::File { paths, .. } = s {
                if paths.is_empty() {
                    return Err(ConfigError::Invalid(
                        "a file source needs at least one path".into(),
                    ));
                }
            }
        }
        for sink in self.sinks.iter().chain(&self.incident.escalation_sink) {
            sink.webhook_settings()?;
        }
        if self.incident.enabled {
            let policy = self.incident.policy()?;
            self.incident.watches()?;
            for level in &policy.levels {
                if let crate::incident::escalation::Destination::Webhook(name) = &level.destination
                {
                    let known = self
                        .sinks
                        .iter()
                        .chain(&self.incident.escalation_sink)
                        .any(|s| matches!(s, SinkConfig::Webhook { name: n, .. } if n == name));
                    if !known {
                        return Err(ConfigError::Invalid(format!(
                            "incident.escalation `{}`: no webhook sink named `{name}`",
                            level.name
                        )));
                    }
                }
            }
        }
        if self.clock.mode == crate::vocab::clock::ClockMode::Simulated
            && self.clock.start.is_none()
        {
            return Err(ConfigError::Invalid(
                "clock.mode = \"simulated\" needs clock.start (an RFC 3339 time)".into(),
            ));
        }
        if self.uses_kafka()
            && !self
                .kafka
                .keys()
                .any(|k| kafka_key(k) == "bootstrap.servers")
        {
            return Err(ConfigError::Invalid(
                "Kafka sources or sinks are configured but [kafka] has no \"bootstrap.servers\""
                    .into(),
            ));
        }
        if self.delivery.mode == DeliveryMode::ExactlyOnce
            && !self
                .sources
                .iter()
                .any(|s| matches!(s, SourceConfig::Kafka { .. }))
        {
            return Err(ConfigError::Invalid(
                "delivery.mode = \"exactly-once\" needs Kafka sources".into(),
            ));
        }
        Ok(())
    }

    /// Whether any source, sink or the dead-letter destination is Kafka.
    pub fn uses_kafka(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, SourceConfig::Kafka { .. }))
            || self
                .sinks
                .iter()
                .any(|s| matches!(s, SinkConfig::Kafka { .. }))
            || matches!(self.dead_letter, DeadLetterConfig::Kafka { .. })
            || (self.incident.enabled
                && (self.incident.state_topic.is_some()
                    || matches!(
                        self.incident.escalation_sink,
                        Some(SinkConfig::Kafka { .. })
                    )))
    }

    /// The librdkafka properties with their keys normalised (see [`kafka_key`]).
    pub fn kafka_properties(&self) -> Vec<(String, String)> {
        self.kafka
            .iter()
            .map(|(k, v)| (kafka_key(k), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let cfg = load_with_env(None, &[], env(&[])).unwrap();
        assert_eq!(cfg.engine.rules, vec![PathBuf::from("rules/")]);
        assert_eq!(cfg.metrics.listen, "127.0.0.1:9464");
        assert_eq!(cfg.dead_letter, DeadLetterConfig::Stderr);
        assert!(cfg.sources.is_empty());
    }

    #[test]
    fn file_then_environment_then_flags_override_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[metrics]\nlisten = \"0.0.0.0:1\"\nenabled = false\n[log]\nlevel = \"debug\"\n[alert]\nlink_template = \"file\"\n\n[[sources]]\ntype = \"file\"\npaths = [\"a.log\"]\nformat = \"syslog\"\n\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
        )
        .unwrap();
        let cfg = load_with_env(
            Some(&path),
            &[("alert.link_template", config::Value::from("flag"))],
            env(&[
                ("TOCSIN_METRICS__LISTEN", "127.0.0.1:2"),
                ("TOCSIN_ALERT__LINK_TEMPLATE", "env"),
                ("TOCSIN_ENGINE__RULES", "a/,b/"),
            ]),
        )
        .unwrap();
        assert!(!cfg.metrics.enabled, "from file");
        assert_eq!(cfg.log.level, "debug", "from file");
        assert_eq!(cfg.metrics.listen, "127.0.0.1:2", "env beats file");
        assert_eq!(cfg.alert.link_template, "flag", "flag beats env");
        assert_eq!(
            cfg.engine.rules,
            vec![PathBuf::from("a/"), PathBuf::from("b/")]
        );
        assert_eq!(cfg.sources[0].format(), InputFormat::Syslog);
        assert_eq!(
            cfg.sinks[0],
            SinkConfig::File {
                path: "out.jsonl".into(),
                format: OutputFormat::Json
            }
        );
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[metrics]\nlisten_addr = \"x\"\n").unwrap();
        let err = load_with_env(Some(&path), &[], env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
        let err = load_with_env(Some(&dir.path().join("nope.toml")), &[], env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found"), "{err}");
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tocsin.example.toml");
        let cfg = load_with_env(Some(&path), &[], env(&[])).unwrap();
        assert!(!cfg.sources.is_empty());
        assert!(!cfg.sinks.is_empty());
    }

    #[test]
    fn the_kafka_config_in_deploy_is_valid_and_reaches_librdkafka_verbatim() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tocsin.kafka.toml");
        let cfg = load_with_env(Some(&path), &[], env(&[])).unwrap();
        assert!(cfg.uses_kafka());
        let props = cfg.kafka_properties();
        assert!(props.contains(&("bootstrap.servers".into(), "kafka:9092".into())));
        assert_eq!(cfg.delivery.shutdown_timeout, Span::from_secs(25));
    }

    #[test]
    fn variables_kubernetes_sets_for_a_service_named_tocsin_are_not_configuration() {
        let cfg = load_with_env(
            None,
            &[],
            env(&[
                ("TOCSIN_SERVICE_HOST", "10.0.0.1"),
                ("TOCSIN_SERVICE_PORT", "9464"),
                ("TOCSIN_PORT", "tcp://10.0.0.1:9464"),
                ("TOCSIN_PORT_9464_TCP", "tcp://10.0.0.1:9464"),
                ("TOCSIN_PORT_9464_TCP_PROTO", "tcp"),
                ("TOCSIN_PORT_9464_TCP_PORT", "9464"),
                ("TOCSIN_PORT_9464_TCP_ADDR", "10.0.0.1"),
                ("TOCSIN_METRICS__LISTEN", "0.0.0.0:9464"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.metrics.listen, "0.0.0.0:9464");
        let err = load_with_env(None, &[], env(&[("TOCSIN_METRICZ__LISTEN", "x")])).unwrap_err();
        assert!(err.to_string().contains("metricz"), "{err}");
    }

    #[test]
    fn kafka_properties_come_from_the_environment_with_underscores_for_dots() {
        let cfg = load_with_env(
            None,
            &[],
            env(&[
                ("TOCSIN_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9092"),
                ("TOCSIN_KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
            ]),
        )
        .unwrap();
        let props = cfg.kafka_properties();
        assert!(props.contains(&("bootstrap.servers".into(), "b1:9092,b2:9092".into())));
        assert!(props.contains(&("security.protocol".into(), "SASL_SSL".into())));
    }

    #[test]
    fn kafka_sources_without_brokers_or_exactly_once_without_kafka_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[[sources]]\ntype = \"kafka\"\ntopic = \"logs\"\n").unwrap();
        let err = load_with_env(Some(&path), &[], env(&[])).unwrap_err();
        assert!(err.to_string().contains("bootstrap.servers"), "{err}");
        std::fs::write(&path, "[delivery]\nmode = \"exactly-once\"\n").unwrap();
        let err = load_with_env(Some(&path), &[], env(&[])).unwrap_err();
        assert!(err.to_string().contains("exactly-once"), "{err}");
        std::fs::write(&path, "[delivery]\ncommit_interval = \"soon\"\n").unwrap();
        let err = load_with_env(Some(&path), &[], env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("delivery.commit_interval"),
            "{err}"
        );
    }
}
