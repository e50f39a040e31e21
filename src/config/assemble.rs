//! From a configuration to a running pipeline: the rules loaded and
//! compiled, the alert builder with its SLA and suppression, and every
//! stage's settings. `tocsin run`, `scan` and `train` start here.

use super::Config;
use crate::alert::suppress::{SuppressionError, SuppressionPolicy};
use crate::alert::{AlertBuilder, SlaPolicy};
use crate::anomaly::AnomalySet;
use crate::correlate::CorrelationSet;
use crate::detect::{load_engine, CompileOptions, Engine, MappingError, RuleLoadSummary};
use crate::pipeline::incident_stage::IncidentConfigError;
use crate::pipeline::kafka::config::DeliveryMode;
use crate::pipeline::kafka::KafkaSettings;
use crate::pipeline::reload::{LiveRules, RuleLoader};
use crate::pipeline::{ModelFiles, Pipeline, Rules};
use crate::vocab::clock::Clock;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a configuration cannot become a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// A problem in the logsource mapping file (`engine.logsource_map`).
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// An unusable `[sla]` setting, such as an unknown time zone.
    #[error("configuration: {0}")]
    Sla(#[from] crate::alert::sla::SlaError),
    /// A suppression window that does not parse.
    #[error(transparent)]
    Suppression(#[from] SuppressionError),
    /// Invalid `[incident]` escalation levels or silence watches.
    #[error("configuration: {0}")]
    Incident(#[from] IncidentConfigError),
}

/// Detection rules, filters, correlation rules and anomaly jobs, compiled
/// together, with what loading them found.
pub struct RuleSet {
    /// The detection rules and filters, compiled, with the logsource router.
    pub engine: Engine,
    /// The correlation rules, resolved against the engine's rules.
    pub correlations: CorrelationSet,
    /// The anomaly jobs, resolved against the engine's rules.
    pub anomalies: AnomalySet,
    /// Files read, rules loaded and rejected, and every problem at
    /// `file:line:col`.
    pub summary: RuleLoadSummary,
}

impl RuleSet {
    /// Loads and compiles the rules under `paths` with `mapping` (the
    /// built-in logsource mapping when `None`).
    pub fn load(
        paths: &[PathBuf],
        mapping: Option<&Path>,
        options: &CompileOptions,
    ) -> Result<RuleSet, MappingError> {
        let (engine, mut summary) = load_engine(paths, mapping, options)?;
        let (correlations, problems) =
            CorrelationSet::build(std::mem::take(&mut summary.correlations), &engine);
        summary.rejected += problems.len();
        summary.problems.extend(problems);
        let (anomalies, problems) =
            AnomalySet::build(std::mem::take(&mut summary.anomaly_jobs), &engine);
        summary.rejected += problems.len();
        summary.problems.extend(problems);
        Ok(RuleSet {
            engine,
            correlations,
            anomalies,
            summary,
        })
    }

    /// How many rules of each kind the set holds.
    pub fn counts(&self) -> crate::pipeline::RuleCounts {
        crate::pipeline::RuleCounts::of(&self.engine, &self.correlations, &self.anomalies)
    }

    /// The compiled rules, as a pipeline runs them.
    pub fn into_rules(self) -> Rules {
        Rules {
            engine: Arc::new(self.engine),
            correlations: Arc::new(self.correlations),
            anomalies: Arc::new(self.anomalies),
        }
    }

    /// The rules `cfg` names (`engine.rules`, `engine.logsource_map`,
    /// placeholders and rule limits).
    pub fn from_config(cfg: &Config) -> Result<RuleSet, MappingError> {
        let options = CompileOptions {
            placeholders: cfg.placeholders.clone(),
            limits: cfg.rule_limits,
            rule_cache: cfg.engine.rule_cache_folder(),
        };
        RuleSet::load(
            &cfg.engine.rules,
            cfg.engine.logsource_map.as_deref(),
            &options,
        )
    }
}

impl RuleSet {
    /// What a reload runs: the rules `cfg` names, loaded and compiled again.
    /// A set with a problem the running set (`running`) did not have never
    /// goes live: an edit that breaks a rule keeps the old rules. Problems
    /// the running set already had (rules left out since the start, say a
    /// corpus rule this engine cannot use) do not block a reload.
    pub fn loader(cfg: &Config, running: &RuleLoadSummary) -> RuleLoader {
        let cfg = cfg.clone();
        let known = std::sync::Mutex::new(
            running
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<std::collections::HashSet<String>>(),
        );
        Box::new(move || {
            let set = RuleSet::from_config(&cfg).map_err(|e| vec![e.to_string()])?;
            let problems: std::collections::HashSet<String> = set
                .summary
                .problems
                .iter()
                .map(ToString::to_string)
                .collect();
            let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
            let mut new: Vec<String> = problems.difference(&known).cloned().collect();
            new.sort();
            if set.summary.loaded == 0 {
                new.push(format!("no rules loaded from {:?}", cfg.engine.rules));
            }
            if !new.is_empty() {
                return Err(new);
            }
            *known = problems;
            let rejected = set.summary.rejected;
            Ok((set.into_rules(), rejected))
        })
    }
}

impl Pipeline {
    /// The pipeline `cfg` describes, running `rules`.
    pub fn from_config(cfg: &Config, rules: RuleSet) -> Result<Pipeline, AssembleError> {
        let sla = SlaPolicy::from_config(&cfg.sla)?;
        let suppression = Arc::new(SuppressionPolicy::from_config(&cfg.suppression)?);
        let alerts = AlertBuilder::new(cfg.alert.clone(), sla).with_suppression(suppression);
        let mut correlation = cfg.correlation.clone();
        // One snapshot record per instance, under a key stable across its restarts.
        if correlation.state_key.is_none() {
            correlation.state_key = Some(format!("{}/{}", group_id(cfg), host_name()));
        }
        let model_dir = cfg.anomaly.model_dir().map(Path::to_path_buf);
        Ok(Pipeline {
            rules: Arc::new(LiveRules::new(rules.into_rules())),
            alerts,
            sources: cfg.sources.clone(),
            sinks: cfg.sinks.clone(),
            dead_letter: cfg.dead_letter.clone(),
            engine: cfg.engine.clone(),
            correlation,
            models: ModelFiles {
                load_from: model_dir.clone(),
                save_to: model_dir,
                save_interval: cfg.anomaly.save_interval.as_std(),
            },
            kafka: kafka_settings(cfg),
            clock: Clock::from_config(&cfg.clock),
            incident: cfg.incident.settings()?,
            metrics: None,
            health: Default::default(),
            triage_requests: None,
            reorder_limit: None,
        })
    }
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
fn kafka_settings(cfg: &Config) -> KafkaSettings {
    let exactly_once = cfg.delivery.mode == DeliveryMode::ExactlyOnce;
    let transactional_id = cfg
        .delivery
        .transactional_id
        .clone()
        .or_else(|| exactly_once.then(|| format!("tocsin-{}-{}", group_id(cfg), host_name())));
    KafkaSettings {
        properties: cfg.kafka_properties(),
        exactly_once,
        transactional_id,
        commit_interval: cfg.delivery.commit_interval.as_std(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "title: g\nlogsource: {product: test}\ndetection:\n  sel: {a: 1}\n  condition: sel\n";
    const BROKEN: &str = "title: b\nlogsource: {product: test}\ndetection:\n  sel:\n    a|bogus: 1\n  condition: sel\n";

    #[test]
    fn a_reload_refuses_new_problems_but_not_those_the_running_rules_had() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.yml"), GOOD).unwrap();
        std::fs::write(dir.path().join("old-broken.yml"), BROKEN).unwrap();
        let mut cfg = Config::default();
        cfg.engine.rules = vec![dir.path().to_path_buf()];
        let running = RuleSet::from_config(&cfg).unwrap();
        assert_eq!(running.summary.problems.len(), 1);
        let load = RuleSet::loader(&cfg, &running.summary);
        let (rules, rejected) = load().expect("only the known problem");
        assert_eq!((rules.engine.rules().len(), rejected), (1, 1));
        std::fs::write(dir.path().join("new-broken.yml"), BROKEN).unwrap();
        let problems = load().expect_err("a new broken rule");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("new-broken.yml:5:5:"), "{problems:?}");
        std::fs::remove_file(dir.path().join("new-broken.yml")).unwrap();
        std::fs::remove_file(dir.path().join("good.yml")).unwrap();
        let problems = load().expect_err("no rules at all");
        assert!(problems[0].contains("no rules loaded"), "{problems:?}");
    }
}
