//! Prometheus metrics and the HTTP endpoint that serves them (`/metrics`,
//! `/healthz`, `/readyz`).

use crate::health::Health;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Every metric tocsin exports. Cheap to clone (handles into one registry).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub events_read: IntCounterVec,
    pub events_parsed: IntCounterVec,
    pub events_failed: IntCounterVec,
    pub rule_matches: IntCounterVec,
    pub alerts: IntCounterVec,
    pub detection_latency: HistogramVec,
    pub rules_loaded: IntGauge,
    pub rules_rejected: IntGauge,
    pub correlation_groups: IntGauge,
    pub correlation_evictions: prometheus::IntCounter,
    pub correlation_late_events: prometheus::IntCounter,
    pub correlation_firings: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub in_flight_events: IntGauge,
    pub kafka_consumer_lag: IntGaugeVec,
    pub kafka_commit_latency: Histogram,
    pub kafka_commits: IntCounterVec,
    pub kafka_produce_errors: IntCounterVec,
    pub anomaly_scores: HistogramVec,
    pub anomaly_training_seconds: HistogramVec,
    pub anomaly_late_samples: prometheus::IntCounter,
    pub anomaly_entities: IntGauge,
    pub incident_open_alerts: IntGaugeVec,
    pub incident_time_to_first_response: HistogramVec,
    pub incident_time_to_triage: HistogramVec,
    pub incident_time_to_resolution: HistogramVec,
    pub incident_sla_breaches: IntCounterVec,
    pub incident_escalations: IntCounterVec,
    pub incident_false_positives: IntCounterVec,
    pub incident_triage_updates: IntCounterVec,
    pub incident_triage_rejected: IntCounterVec,
    pub source_silent: IntGaugeVec,
    pub webhook_messages: IntCounterVec,
    pub internal_errors: IntCounterVec,
    pub limit_exceeded: IntCounterVec,
    pub input_errors: IntCounterVec,
    pub records_cut: IntCounterVec,
}

impl Metrics {
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
            &["job"],
        )?;
        registry.register(Box::new(anomaly_scores.clone()))?;
        let anomaly_training_seconds = HistogramVec::new(
            HistogramOpts::new(
                "anomaly_training_seconds",
                "Time to score a closed bucket and retrain the job's baselines, per job.",
            )
            .buckets(vec![0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 60.0]),
            &["job"],
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
            events_parsed,
            events_failed,
            rule_matches,
            alerts,
            detection_latency,
            rules_loaded,
            rules_rejected,
            correlation_groups,
            correlation_evictions,
            correlation_late_events,
            correlation_firings,
            dead_letters,
            in_flight_events,
            kafka_consumer_lag,
            kafka_commit_latency,
            kafka_commits,
            kafka_produce_errors,
        })
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

/// Binds the metrics endpoint. Binding is separate from serving so that a
/// taken address is reported before the pipeline starts.
pub async fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("metrics.listen `{listen}`: {e}"),
        )
    })?;
    tokio::net::TcpListener::bind(addr).await
}

/// Limits of the HTTP listener. Each one stops a way to exhaust the server:
/// idle or slow connections, many connections, large bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once. At the cap a new connection closes
    /// the one idle the longest; when none is idle it is refused (counted).
    pub max_connections: usize,
    /// Most time to receive a request's headers, including the wait for the
    /// next request on a kept-alive connection: idle connections close.
    pub header_timeout: Duration,
    /// Most time for a whole request, body and answer included.
    pub request_timeout: Duration,
    /// Largest request body, read only after the bearer token is checked.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 << 10,
        }
    }
}

/// Serves `/metrics`, `/healthz`, `/readyz` (and the routes of `extra`,
/// such as `/triage`) until the future is dropped.
///
/// Written on hyper directly instead of `axum::serve`, which has no header
/// timeout and no connection cap.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: Health,
    extra: Option<axum::Router>,
    limits: HttpLimits,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::{http::header, routing::get, Router};
    let m = metrics.clone();
    let probe = |answer: (bool, serde_json::Value)| {
        let status = if answer.0 {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            answer.1.to_string(),
        )
    };
    let (live, ready) = (health.clone(), health);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || std::future::ready(probe(live.liveness()))),
        )
        .route(
            "/readyz",
            get(move || std::future::ready(probe(ready.readiness()))),
        );
    let app = match extra {
        Some(routes) => app.merge(routes),
        None => app,
    };
    let request_timeout = limits.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => axum::response::IntoResponse::into_response((
                    StatusCode::REQUEST_TIMEOUT,
                    "request took longer than the server's request timeout\n",
                )),
            }
        },
    ));
    let connections = Connections::default();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait, do not spin.
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // At the cap, the connection idle the longest makes room: idle
        // connections cannot crowd out a scrape. With every one busy, the
        // new connection is refused.
        let cap = limits.max_connections.max(1);
        if connections.len() >= cap {
            metrics
                .limit_exceeded
                .with_label_values(&["http_connections"])
                .inc();
        }
        let Some((id, evicted)) = connections.admit(cap) else {
            drop(stream);
            continue;
        };
        let service = app.clone();
        let header_timeout = limits.header_timeout;
        let registry = connections.clone();
        tokio::spawn(async move {
            let activity = registry.clone();
            let service = hyper::service::service_fn(move |request| {
                let (service, activity) = (service.clone(), activity.clone());
                async move {
                    activity.busy(id, 1);
                    let response = tower::ServiceExt::oneshot(service, request).await;
                    activity.busy(id, -1);
                    response
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Errors are the client's (reset, timeout, bad request).
            tokio::select! {
                _ = connection => {}
                _ = evicted.notified() => {}
            }
            registry.remove(id);
        });
    }
}

/// The open connections: whether each is serving a request, and since
/// when it has been idle.
#[derive(Clone, Default)]
struct Connections(Arc<std::sync::Mutex<ConnectionTable>>);

#[derive(Default)]
struct ConnectionTable {
    next_id: u64,
    open: std::collections::HashMap<u64, OpenConnection>,
}

struct OpenConnection {
    requests: i32,
    idle_since: std::time::Instant,
    evict: Arc<tokio::sync::Notify>,
}

impl Connections {
    fn table(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, evicting the longest-idle one at the
    /// cap; `None` when every open connection is busy.
    fn admit(&self, cap: usize) -> Option<(u64, Arc<tokio::sync::Notify>)> {
        let mut table = self.table();
        if table.open.len() >= cap {
            let (&oldest, _) = table
                .open
                .iter()
                .filter(|(_, c)| c.requests == 0)
                .min_by_key(|(_, c)| c.idle_since)?;
            if let Some(c) = table.open.remove(&oldest) {
                c.evict.notify_one();
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let evict = Arc::new(tokio::sync::Notify::new());
        table.open.insert(
            id,
            OpenConnection {
                requests: 0,
                idle_since: std::time::Instant::now(),
                evict: evict.clone(),
            },
        );
        Some((id, evict))
    }

    fn len(&self) -> usize {
        self.table().open.len()
    }

    /// A request started (+1) or ended (-1) on connection `id`.
    fn busy(&self, id: u64, change: i32) {
        if let Some(c) = self.table().open.get_mut(&id) {
            c.requests += change;
            c.idle_since = std::time::Instant::now();
        }
    }

    fn remove(&self, id: u64) {
        self.table().open.remove(&id);
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

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_health_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let m = Arc::new(Metrics::new().unwrap());
        m.rules_loaded.set(7);
        let health = Health::new();
        health.set_rules_loaded(7);
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, m, health, None, HttpLimits::default()));
        for (path, expect) in [
            ("/healthz", "\"rules_loaded\":7"),
            ("/metrics", "tocsin_rules_loaded 7"),
        ] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).await.unwrap();
            assert!(body.starts_with("HTTP/1.1 200"), "{body}");
            assert!(body.contains(expect), "{path}: {body}");
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_bad_listen_address_is_a_clear_error() {
        let err = bind("not-an-address").await.unwrap_err();
        assert!(err.to_string().contains("metrics.listen"));
    }
}
