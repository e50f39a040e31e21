//! Prometheus metrics: every metric tocsin exports, in one registry.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric tocsin exports. Cheap to clone (handles into one registry).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `tocsin_events_read_total`: records read, per source.
    pub events_read: IntCounterVec,
    /// `tocsin_bytes_read_total`: bytes of the records read, per source.
    pub bytes_read: IntCounterVec,
    /// `tocsin_events_parsed_total`: records parsed into events, per source.
    pub events_parsed: IntCounterVec,
    /// `tocsin_events_failed_total`: records that failed to parse and were dead-lettered,
    /// per source.
    pub events_failed: IntCounterVec,
    /// `tocsin_rule_matches_total`: rule matches, per rule id, rule title and level.
    pub rule_matches: IntCounterVec,
    /// `tocsin_alerts_total`: alerts emitted, per alert type and severity.
    pub alerts: IntCounterVec,
    /// `tocsin_detection_latency_seconds`: time from reading a record to handing its alerts
    /// to the sinks, per source.
    pub detection_latency: HistogramVec,
    /// `tocsin_rules_loaded`: rules compiled and running.
    pub rules_loaded: IntGauge,
    /// `tocsin_rules_rejected`: rule documents rejected at load or compile time.
    pub rules_rejected: IntGauge,
    /// `tocsin_rules_reload_total`: rule reloads, by result (`reloaded`,
    /// `rejected`: the new set had problems and the running one was kept).
    pub rules_reload: IntCounterVec,
    /// `tocsin_rules_last_reload_timestamp_seconds`: when the running rules
    /// were last reloaded (Unix time; 0 before the first reload).
    pub rules_last_reload: Gauge,
    /// `tocsin_correlation_groups`: correlation groups (rule and group key) with open windows.
    pub correlation_groups: IntGauge,
    /// `tocsin_correlation_evictions_total`: correlation groups dropped because
    /// `correlation.max_groups` was reached.
    pub correlation_evictions: prometheus::IntCounter,
    /// `tocsin_correlation_late_events_total`: rule matches correlation dropped because they
    /// arrived later than `correlation.allowed_lateness`.
    pub correlation_late_events: prometheus::IntCounter,
    /// `tocsin_correlation_firings_total`: correlation rules whose condition held, per rule id.
    pub correlation_firings: IntCounterVec,
    /// `tocsin_dead_letters_total`: records written to the dead-letter destination,
    /// per destination.
    pub dead_letters: IntCounterVec,
    /// `tocsin_in_flight_events`: records consumed from Kafka whose alerts are not yet handed
    /// to the sinks.
    pub in_flight_events: IntGauge,
    /// `tocsin_kafka_consumer_lag`: records behind the partition's high watermark, per topic and
    /// partition, from librdkafka statistics.
    pub kafka_consumer_lag: IntGaugeVec,
    /// `tocsin_kafka_commit_latency_seconds`: time to commit offsets, or the transaction in
    /// exactly-once mode.
    pub kafka_commit_latency: Histogram,
    /// `tocsin_correlation_restore_seconds`: time to restore a repartition
    /// partition's correlation state from its changelog (scale-out).
    pub correlation_restore_seconds: Histogram,
    /// `tocsin_kafka_commits_total`: offset or transaction commits, per result (`ok`, `error`).
    pub kafka_commits: IntCounterVec,
    /// `tocsin_kafka_produce_errors_total`: records the broker did not acknowledge, per topic.
    pub kafka_produce_errors: IntCounterVec,
    /// `tocsin_anomaly_score`: scores (0-100) of closed anomaly buckets, per job (label `anomaly_job`); its count is
    /// the number of buckets scored.
    pub anomaly_scores: HistogramVec,
    /// `tocsin_anomaly_training_seconds`: time to score a closed bucket and retrain the job's
    /// baselines, per job.
    pub anomaly_training_seconds: HistogramVec,
    /// `tocsin_anomaly_late_samples_total`: job matches dropped because their bucket had already
    /// closed. A rising count means the job's latency is too low.
    pub anomaly_late_samples: prometheus::IntCounter,
    /// `tocsin_anomaly_entities`: entities with a baseline, over all anomaly jobs.
    pub anomaly_entities: IntGauge,
    /// `tocsin_incident_open_alerts`: alerts not yet closed, per severity and SLA state
    /// (`pending`, `overdue`, `met`, `breached`).
    pub incident_open_alerts: IntGaugeVec,
    /// `tocsin_incident_time_to_first_response_seconds`: detection to the first triage update of
    /// any kind, per severity.
    pub incident_time_to_first_response: HistogramVec,
    /// `tocsin_incident_time_to_triage_seconds`: detection to the first triage decision
    /// (`triaged`, `false_positive`, `incident`, `resolved`), per severity.
    pub incident_time_to_triage: HistogramVec,
    /// `tocsin_incident_time_to_resolution_seconds`: detection to `resolved` or `false_positive`,
    /// per severity.
    pub incident_time_to_resolution: HistogramVec,
    /// `tocsin_incident_sla_breaches_total`: alerts whose triage deadline passed without a triage
    /// decision, per severity.
    pub incident_sla_breaches: IntCounterVec,
    /// `tocsin_incident_escalations_total`: escalation records emitted, per level.
    pub incident_escalations: IntCounterVec,
    /// `tocsin_incident_false_positives_total`: alerts triaged as `false_positive`, per rule id.
    pub incident_false_positives: IntCounterVec,
    /// `tocsin_incident_triage_updates_total`: triage updates applied, per status.
    pub incident_triage_updates: IntCounterVec,
    /// `tocsin_incident_triage_rejected_total`: triage updates dead-lettered, per reason
    /// (`malformed`, `unknown_alert`, `bad_transition`, `bad_time`).
    pub incident_triage_rejected: IntCounterVec,
    /// `tocsin_source_silent`: 1 while a watched log source has been silent longer than its
    /// `max_silence`, else 0; per source.
    pub source_silent: IntGaugeVec,
    /// `tocsin_webhook_messages_total`: lines handed to a webhook, per webhook and outcome
    /// (`delivered`, `failed`, `dropped`).
    pub webhook_messages: IntCounterVec,
    /// `tocsin_internal_errors_total`: panics contained for one record (in `detect` the record is
    /// dead-lettered) or that stopped a stage, per stage.
    pub internal_errors: IntCounterVec,
    /// `tocsin_limit_exceeded_total`: inputs refused for breaking a configured limit, per limit
    /// (`max_record_bytes`, `http_body_bytes`, `http_connections`, ...).
    pub limit_exceeded: IntCounterVec,
    /// `tocsin_input_errors_total`: inputs (files, stdin) that could not be opened or read to
    /// their end, per source.
    pub input_errors: IntCounterVec,
    /// `tocsin_records_cut_total`: records cut to fit their Kafka topic's size limit, per topic.
    /// The headers carry the size and SHA-256 of the whole record.
    pub records_cut: IntCounterVec,
}

impl Metrics {
    /// Creates every metric and registers it under the `tocsin_` prefix.
    /// Fails only if a metric's name or labels are invalid or registered twice.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("tocsin".into()), None)?;
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let events_read = counter(
            "events_read_total",
            "Records read, per source.",
            &["source"],
        )?;
        let bytes_read = counter(
            "bytes_read_total",
            "Bytes of the records read (line ends included), per source.",
            &["source"],
        )?;
        let events_parsed = counter(
            "events_parsed_total",
            "Records parsed into events, per source.",
            &["source"],
        )?;
        let events_failed = counter(
            "events_failed_total",
            "Records that could not be parsed and went to the dead-letter destination, per source.",
            &["source"],
        )?;
        let rule_matches = counter(
            "rule_matches_total",
            "Rule matches, per rule and level.",
            &["rule_id", "rule_title", "level"],
        )?;
        let alerts = counter(
            "alerts_total",
            "Alerts emitted, per type and severity.",
            &["type", "severity"],
        )?;
        let detection_latency = HistogramVec::new(
            HistogramOpts::new(
                "detection_latency_seconds",
                "Time from reading a record to handing its alerts to the sinks.",
            )
            .buckets(vec![
                0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            &["source"],
        )?;
        registry.register(Box::new(detection_latency.clone()))?;
        let rules_loaded = gauge("rules_loaded", "Rules compiled and running.")?;
        let rules_rejected = gauge(
            "rules_rejected",
            "Rule documents rejected at load or compile time.",
        )?;
        let rules_reload = counter(
            "rules_reload_total",
            "Rule reloads, by result (reloaded, rejected: the running rules were kept).",
            &["result"],
        )?;
        let rules_last_reload = Gauge::new(
            "rules_last_reload_timestamp_seconds",
            "When the running rules were last reloaded (Unix time; 0 before the first reload).",
        )?;
        registry.register(Box::new(rules_last_reload.clone()))?;
        let correlation_groups = gauge(
            "correlation_groups",
            "Correlation groups (rule and group key) with open windows.",
        )?;
        let correlation_evictions = prometheus::IntCounter::new(
            "correlation_evictions_total",
            "Correlation groups dropped because correlation.max_groups was reached.",
        )?;
        registry.register(Box::new(correlation_evictions.clone()))?;
        let correlation_late_events = prometheus::IntCounter::new(
            "correlation_late_events_total",
            "Rule matches dropped by correlation because they arrived later than correlation.allowed_lateness.",
        )?;
        registry.register(Box::new(correlation_late_events.clone()))?;
        let correlation_firings = counter(
            "correlation_firings_total",
            "Correlation rules whose condition held, per rule.",
            &["rule_id"],
        )?;
        let dead_letters = counter(
            "dead_letters_total",
            "Records written to the dead-letter destination, per destination.",
            &["destination"],
        )?;
        let in_flight_events = gauge(
            "in_flight_events",
            "Records consumed from Kafka whose alerts are not yet handed to the sinks.",
        )?;
        let kafka_consumer_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_consumer_lag",
                "Records behind the partition's high watermark, per topic and partition (from librdkafka statistics).",
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(kafka_consumer_lag.clone()))?;
        let kafka_commit_latency = Histogram::with_opts(
            HistogramOpts::new(
                "kafka_commit_latency_seconds",
                "Time to commit offsets (or the transaction, in exactly-once mode).",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        registry.register(Box::new(kafka_commit_latency.clone()))?;
        let correlation_restore_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "correlation_restore_seconds",
                "Time to restore a repartition partition's correlation state from its changelog.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        registry.register(Box::new(correlation_restore_seconds.clone()))?;
        let kafka_commits = counter(
            "kafka_commits_total",
            "Offset (or transaction) commits, by result (ok, error).",
            &["result"],
        )?;
        let kafka_produce_errors = counter(
            "kafka_produce_errors_total",
            "Records the broker did not acknowledge, per topic.",
            &["topic"],
        )?;
        let anomaly_scores = HistogramVec::new(
            HistogramOpts::new(
                "anomaly_score",
                "Scores (0-100) of closed anomaly buckets, per job; the count is the buckets scored.",
            )
            .buckets(vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]),
            // Not `job`: Prometheus owns that label (the scrape job) and
            // would rename this one to `exported_job`.
            &["anomaly_job"],
        )?;
        registry.register(Box::new(anomaly_scores.clone()))?;
        let anomaly_training_seconds = HistogramVec::new(
            HistogramOpts::new(
                "anomaly_training_seconds",
                "Time to score a closed bucket and retrain the job's baselines, per job.",
            )
            .buckets(vec![0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 60.0]),
            &["anomaly_job"],
        )?;
        registry.register(Box::new(anomaly_training_seconds.clone()))?;
        let anomaly_late_samples = prometheus::IntCounter::new(
            "anomaly_late_samples_total",
            "Job matches dropped because their bucket had closed (raise the job's latency).",
        )?;
        registry.register(Box::new(anomaly_late_samples.clone()))?;
        let anomaly_entities = gauge(
            "anomaly_entities",
            "Entities with a baseline, over all anomaly jobs.",
        )?;
        let incident_open_alerts = IntGaugeVec::new(
            Opts::new(
                "incident_open_alerts",
                "Alerts not yet closed, per severity and SLA state (pending, overdue, met, breached).",
            ),
            &["severity", "sla_state"],
        )?;
        registry.register(Box::new(incident_open_alerts.clone()))?;
        // Triage times run from minutes to weeks.
        let triage_buckets = vec![
            60.0,
            300.0,
            900.0,
            1800.0,
            3600.0,
            7200.0,
            14_400.0,
            28_800.0,
            86_400.0,
            172_800.0,
            432_000.0,
            864_000.0,
            1_728_000.0,
        ];
        let histogram = |name: &str, help: &str| -> Result<HistogramVec, prometheus::Error> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(triage_buckets.clone()),
                &["severity"],
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let incident_time_to_first_response = histogram(
            "incident_time_to_first_response_seconds",
            "Detection to the first triage update of any kind, per severity.",
        )?;
        let incident_time_to_triage = histogram(
            "incident_time_to_triage_seconds",
            "Detection to the first triage decision (triaged, false_positive, incident, resolved), per severity.",
        )?;
        let incident_time_to_resolution = histogram(
            "incident_time_to_resolution_seconds",
            "Detection to resolved or false_positive, per severity.",
        )?;
        let incident_sla_breaches = counter(
            "incident_sla_breaches_total",
            "Alerts whose triage deadline passed without a triage decision, per severity.",
            &["severity"],
        )?;
        let incident_escalations = counter(
            "incident_escalations_total",
            "Escalation records emitted, per level.",
            &["level"],
        )?;
        let incident_false_positives = counter(
            "incident_false_positives_total",
            "Alerts triaged as false_positive, per rule.",
            &["rule_id"],
        )?;
        let incident_triage_updates = counter(
            "incident_triage_updates_total",
            "Triage updates applied, per status.",
            &["status"],
        )?;
        let incident_triage_rejected = counter(
            "incident_triage_rejected_total",
            "Triage updates rejected to the dead-letter destination, per reason (malformed, unknown_alert, bad_transition, bad_time).",
            &["reason"],
        )?;
        let source_silent = IntGaugeVec::new(
            Opts::new(
                "source_silent",
                "1 while a watched log source is silent longer than its max_silence, per source.",
            ),
            &["source"],
        )?;
        registry.register(Box::new(source_silent.clone()))?;
        let webhook_messages = counter(
            "webhook_messages_total",
            "Lines handed to a webhook, per webhook and outcome (delivered, failed, dropped).",
            &["webhook", "outcome"],
        )?;
        let internal_errors = counter(
            "internal_errors_total",
            "Panics contained per record (detect: the record was dead-lettered) or that stopped a stage, per stage.",
            &["stage"],
        )?;
        let limit_exceeded = counter(
            "limit_exceeded_total",
            "Inputs refused because they broke a configured limit, per limit (max_record_bytes, max_condition_depth, http_body_bytes, http_connections, ...).",
            &["limit"],
        )?;
        let input_errors = counter(
            "input_errors_total",
            "Inputs (files, stdin) that could not be opened or read to their end, per source.",
            &["source"],
        )?;
        let records_cut = counter(
            "records_cut_total",
            "Records cut to fit their Kafka topic's size limit (size and SHA-256 of the whole in headers), per topic.",
            &["topic"],
        )?;
        Ok(Metrics {
            internal_errors,
            limit_exceeded,
            input_errors,
            records_cut,
            incident_open_alerts,
            incident_time_to_first_response,
            incident_time_to_triage,
            incident_time_to_resolution,
            incident_sla_breaches,
            incident_escalations,
            incident_false_positives,
            incident_triage_updates,
            incident_triage_rejected,
            source_silent,
            webhook_messages,
            anomaly_scores,
            anomaly_training_seconds,
            anomaly_late_samples,
            anomaly_entities,
            registry,
            events_read,
            bytes_read,
            events_parsed,
            events_failed,
            rule_matches,
            alerts,
            detection_latency,
            rules_loaded,
            rules_rejected,
            rules_reload,
            rules_last_reload,
            correlation_groups,
            correlation_evictions,
            correlation_late_events,
            correlation_firings,
            dead_letters,
            in_flight_events,
            kafka_consumer_lag,
            kafka_commit_latency,
            correlation_restore_seconds,
            kafka_commits,
            kafka_produce_errors,
        })
    }

    /// The sum of a counter over all its labels (progress displays).
    pub fn total(counter: &IntCounterVec) -> u64 {
        use prometheus::core::Collector;
        counter
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_prometheus_text_format_with_the_tocsin_prefix() {
        let m = Metrics::new().unwrap();
        m.events_read.with_label_values(&["auth.log"]).inc_by(3);
        m.alerts.with_label_values(&["STATIC RULE", "high"]).inc();
        m.detection_latency
            .with_label_values(&["auth.log"])
            .observe(0.002);
        let text = m.render();
        assert!(
            text.contains("tocsin_events_read_total{source=\"auth.log\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tocsin_alerts_total{severity=\"high\",type=\"STATIC RULE\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tocsin_detection_latency_seconds_bucket"),
            "{text}"
        );
    }
}
