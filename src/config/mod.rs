//! The configuration: built-in defaults < TOML file < `TOCSIN_*`
//! environment < command-line flags.
//!
//! Each component's section is defined beside its code (`[engine]` in
//! `pipeline::config`, `[correlation]` in `correlate`, a sink's keys in its
//! sink's file); this module holds the root, the layered loading and the
//! checks that span sections. [`assemble`] turns a configuration into a
//! running pipeline: nothing else in the library reads the root.
//!
//! Environment variables use `__` between levels: `TOCSIN_METRICS__LISTEN=0.0.0.0:9464`,
//! `TOCSIN_ENGINE__RULES=rules/,extra/` (lists are comma-separated).

pub(crate) mod assemble;
mod located;
pub use assemble::{AssembleError, RuleSet};

use crate::alert::suppress::SuppressionConfig;
use crate::alert::{AlertConfig, SlaConfig};
use crate::anomaly::config::AnomalyConfig;
use crate::correlate::config::CorrelationConfig;
use crate::incident::escalation::Destination;
use crate::pipeline::config::EngineConfig;
use crate::pipeline::dead_letter::DeadLetterConfig;
use crate::pipeline::http::ListenerConfig;
use crate::pipeline::incident_stage::{IncidentConfig, IncidentConfigError};
use crate::pipeline::kafka::config::{kafka_key, DeliveryConfig, DeliveryMode};
use crate::pipeline::sinks::webhook::WebhookError;
use crate::pipeline::sinks::SinkConfig;
use crate::pipeline::sources::{Input, SourceConfig};
use crate::sigma::RuleLimits;
use crate::vocab::clock::{ClockConfig, ClockMode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

/// Why a configuration cannot be used. Each names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// TOML syntax, an unknown key, a value of the wrong type or form: the
    /// message names the key by its full path (`sinks[0].type`).
    #[error("configuration: {0}")]
    Load(String),
    /// The same in the configuration file, where its place is known.
    #[error("configuration: {}:{line}:{column}: {key}: {message}", path.display())]
    File {
        /// The file given with `--config`.
        path: PathBuf,
        /// 1-based line of the offending key or table.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key's or table's full path, e.g. `sinks[1].path`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration file cannot be read.
    #[error("configuration: {}: {source}", path.display())]
    Read {
        /// The file given with `--config`.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A span that must be positive is zero: it would mean a busy loop, or a
    /// timeout that is always over.
    #[error("configuration: {key} must be longer than zero")]
    Zero {
        /// The key, e.g. `delivery.commit_interval`.
        key: &'static str,
    },
    /// A size or count that must be at least 1 is 0.
    #[error("configuration: {key} must be at least 1")]
    NoCapacity {
        /// The key, e.g. `engine.channel_capacity`.
        key: &'static str,
    },
    /// `log.level` is neither a level nor a `tracing` filter; holds the value.
    #[error("configuration: log.level `{0}` is not a level (error, warn, info, debug, trace) or a filter such as `tocsin=debug`")]
    LogLevel(String),
    /// A webhook sink's settings are invalid (unknown `min_severity`, bad `url`).
    #[error("configuration: {0}")]
    Webhook(WebhookError),
    /// Invalid `[incident]` escalation levels or silence watches.
    #[error("configuration: {0}")]
    Incident(IncidentConfigError),
    /// An escalation level's destination is `webhook:<name>` and no webhook sink
    /// has that name.
    #[error("configuration: incident.escalation `{level}`: no webhook sink named `{webhook}`")]
    UnknownWebhook {
        /// The escalation level's name.
        level: String,
        /// The webhook sink name it asks for.
        webhook: String,
    },
    /// `clock.mode = "simulated"` without `clock.start`.
    #[error("configuration: clock.mode = \"simulated\" needs clock.start (an RFC 3339 time)")]
    SimulatedClockWithoutStart,
    /// Kafka is used (a source, sink, dead-letter or state topic) but `[kafka]`
    /// has no `bootstrap.servers`.
    #[error("configuration: Kafka sources or sinks are configured but [kafka] has no \"bootstrap.servers\"")]
    NoBrokers,
    /// `delivery.mode = "exactly-once"` without a Kafka source.
    #[error("configuration: delivery.mode = \"exactly-once\" needs Kafka sources")]
    ExactlyOnceWithoutKafka,
    /// Only one of the two scale-out topics.
    #[error(
        "configuration: correlation.repartition_topic and correlation.changelog_topic go together"
    )]
    Repartition,
}

// The inner errors' messages are the variants' own: not also their
// `source`, or an error chain would print them twice.
impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        ConfigError::Load(full_key_paths(&e.to_string()))
    }
}

impl From<WebhookError> for ConfigError {
    fn from(e: WebhookError) -> Self {
        ConfigError::Webhook(e)
    }
}

impl From<IncidentConfigError> for ConfigError {
    fn from(e: IncidentConfigError) -> Self {
        ConfigError::Incident(e)
    }
}

/// The config crate writes a key under an array element as `sinks[0]type`;
/// people write `sinks[0].type`.
fn full_key_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut after_index = false;
    for c in message.chars() {
        if after_index && (c.is_alphanumeric() || c == '_') {
            out.push('.');
        }
        after_index = c == ']';
        out.push(c);
    }
    out
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[engine]`: rules, logsource mapping, channel capacity, workers, record size.
    pub engine: EngineConfig,
    /// `[[sources]]`: where events are read. Empty: `tocsin run` without
    /// `--config` reads the demo samples.
    pub sources: Vec<SourceConfig>,
    /// `[[sinks]]`: where alerts go. Empty: text lines on stdout.
    pub sinks: Vec<SinkConfig>,
    /// `[dead_letter]`: where records that cannot be used go (stderr by default).
    pub dead_letter: DeadLetterConfig,
    /// `[alert]`: the link template and whether informational rules alert.
    pub alert: AlertConfig,
    /// `[sla]`: triage windows per severity, time zone and holidays.
    pub sla: SlaConfig,
    /// The HTTP listener (`/metrics`, `/healthz`, `/readyz`, `/triage`).
    pub metrics: ListenerConfig,
    /// `[log]`: log format and level (human, info by default).
    pub log: LogConfig,
    /// Values for `expand` placeholders: `Administrators = ["admin*", "root"]`.
    pub placeholders: HashMap<String, Vec<String>>,
    /// `[correlation]`: group limit, lateness, idle sources and window snapshots.
    pub correlation: CorrelationConfig,
    /// `[anomaly]`: where anomaly baselines are loaded and saved, and how often.
    pub anomaly: AnomalyConfig,
    /// `[suppression]`: one alert per rule and group within a window (off by default).
    pub suppression: SuppressionConfig,
    /// librdkafka properties, passed through verbatim to the consumer and the
    /// producer (`"bootstrap.servers"`, TLS, SASL, timeouts). From the
    /// environment, `_` stands for `.`: `TOCSIN_KAFKA__BOOTSTRAP_SERVERS`.
    pub kafka: std::collections::BTreeMap<String, String>,
    /// How Kafka offsets and alerts are committed.
    pub delivery: DeliveryConfig,
    /// The engine's notion of now (system, event time, or simulated).
    pub clock: ClockConfig,
    /// Alert lifecycle: triage, escalation, silent sources.
    pub incident: IncidentConfig,
    /// How large, deep and wide a rule file may be.
    pub rule_limits: RuleLimits,
}

/// Log lines on stderr: for people, or JSON for log shippers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text for people (the default).
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (the default) or `json`.
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
        if let Err(source) = std::fs::read_to_string(path) {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
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
    let cfg: Config = match builder.build().and_then(|c| c.try_deserialize()) {
        Ok(cfg) => cfg,
        Err(e) => {
            return Err(file
                .and_then(located::file_problem)
                .unwrap_or_else(|| e.into()))
        }
    };
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
            if span.is_zero() {
                return Err(ConfigError::Zero { key });
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::LogLevel(self.log.level.clone()));
        }
        for (key, n) in [
            ("engine.max_record_bytes", self.engine.max_record_bytes),
            ("engine.channel_capacity", self.engine.channel_capacity),
            ("metrics.max_connections", self.metrics.max_connections),
            ("metrics.max_body_bytes", self.metrics.max_body_bytes),
        ] {
            if n == 0 {
                return Err(ConfigError::NoCapacity { key });
            }
        }
        let sinks = || self.sinks.iter().chain(&self.incident.escalation_sink);
        for sink in sinks() {
            if let SinkConfig::Webhook(w) = sink {
                w.settings()?;
            }
        }
        if self.incident.enabled {
            let policy = self.incident.policy()?;
            self.incident.watches()?;
            for level in &policy.levels {
                if let Destination::Webhook(name) = &level.destination {
                    if !sinks().any(|s| s.webhook_name() == Some(name.as_str())) {
                        return Err(ConfigError::UnknownWebhook {
                            level: level.name.clone(),
                            webhook: name.clone(),
                        });
                    }
                }
            }
        }
        if self.clock.mode == ClockMode::Simulated && self.clock.start.is_none() {
            return Err(ConfigError::SimulatedClockWithoutStart);
        }
        if self.uses_kafka()
            && !self
                .kafka
                .keys()
                .any(|k| kafka_key(k) == "bootstrap.servers")
        {
            return Err(ConfigError::NoBrokers);
        }
        if self.delivery.mode == DeliveryMode::ExactlyOnce && !self.reads_kafka() {
            return Err(ConfigError::ExactlyOnceWithoutKafka);
        }
        let c = &self.correlation;
        if c.repartition_topic.is_some() != c.changelog_topic.is_some() {
            return Err(ConfigError::Repartition);
        }
        Ok(())
    }

    fn reads_kafka(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s.input, Input::Kafka { .. }))
    }

    /// Whether any source, sink or the dead-letter destination is Kafka.
    pub fn uses_kafka(&self) -> bool {
        self.reads_kafka()
            || self.sinks.iter().any(|s| s.kafka_topic().is_some())
            || matches!(self.dead_letter, DeadLetterConfig::Kafka { .. })
            || (self.incident.enabled
                && (self.incident.state_topic.is_some()
                    || self
                        .incident
                        .escalation_sink
                        .as_ref()
                        .is_some_and(|s| s.kafka_topic().is_some())))
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

    use crate::vocab::text::owned_pairs as env;

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
        assert_eq!(cfg.sources[0].format, crate::event::InputFormat::Syslog);
        assert_eq!(
            cfg.sinks[0],
            SinkConfig::File(crate::pipeline::sinks::FileConfig {
                path: "out.jsonl".into(),
                format: crate::pipeline::sinks::OutputFormat::Json
            })
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
        let missing = dir.path().join("nope.toml");
        let err = load_with_env(Some(&missing), &[], env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn the_two_scale_out_topics_go_together() {
        let one = from_toml("[correlation]\nrepartition_topic = \"r\"\n").unwrap_err();
        assert!(matches!(one, ConfigError::Repartition), "{one}");
        let both = "[correlation]\nrepartition_topic = \"r\"\nchangelog_topic = \"c\"\n";
        // Without Kafka sources they are not an error: files are correlated locally.
        let cfg = from_toml(both).unwrap();
        assert_eq!(cfg.correlation.changelog_topic.as_deref(), Some("c"));
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tocsin.example.toml");
        let cfg = load_with_env(Some(&path), &[], env(&[])).unwrap();
        assert!(!cfg.sources.is_empty());
        assert!(!cfg.sinks.is_empty());
        assert_eq!(
            cfg.suppression.window, "10m",
            "repeats are folded as shipped"
        );
    }

    #[test]
    fn the_kafka_config_in_deploy_is_valid_and_reaches_librdkafka_verbatim() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tocsin.kafka.toml");
        let cfg = load_with_env(Some(&path), &[], env(&[])).unwrap();
        assert!(cfg.uses_kafka());
        let props = cfg.kafka_properties();
        assert!(props.contains(&("bootstrap.servers".into(), "kafka:9092".into())));
        assert_eq!(
            cfg.delivery.shutdown_timeout,
            crate::vocab::Span::from_secs(25)
        );
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
