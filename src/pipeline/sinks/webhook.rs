//! A Slack-compatible incoming-webhook sink: `{"text": ...}` posted over
//! HTTPS, with a severity filter, batching, retries with backoff and a rate
//! limit.
//!
//! Chat is a convenience, not the record: the writer hands lines over with a
//! non-blocking `try_send`, so a slow or dead webhook never holds detection
//! back, and the Kafka/file sinks get every alert whatever happens here.
//! When the queue is full, lines are dropped and counted.

use super::{Outgoing, Sink, SinkContext, SinkError};
use crate::pipeline::kafka::producer::Pending;
use crate::pipeline::metrics::Metrics;
use crate::vocab::{Severity, Span};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// `[[sinks]] type = "webhook"`: a Slack-compatible incoming webhook,
/// `{"text": <alert lines>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Escalation levels name the webhook by this (`webhook:<name>`).
    pub name: String,
    /// The webhook URL (`url`); must start with `https://` or `http://`. No default.
    pub url: String,
    /// Lowest severity posted.
    pub min_severity: String,
    /// Post alerts (false: only escalations routed here).
    pub alerts: bool,
    /// Most lines per message (`batch_max`, default 20, at least 1).
    pub batch_max: usize,
    /// How long the first line of a batch waits for more (`batch_wait`, default `2s`).
    pub batch_wait: Span,
    /// Most messages per minute (`max_per_minute`, default 60, at least 1); posts are
    /// spaced evenly.
    pub max_per_minute: u32,
    /// Attempts after the first for 5xx, 429 and network errors (`retries`, default 5).
    /// Backoff starts at 0.5 s and doubles up to 30 s; a `Retry-After` is honoured, up to 30 s.
    pub retries: u32,
    /// Lines waiting to be posted before new ones are dropped (`queue`, default 10 000,
    /// at least 1).
    pub queue: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: "chat".into(),
            url: String::new(),
            min_severity: "high".into(),
            alerts: true,
            batch_max: 20,
            batch_wait: Span::from_secs(2),
            // Slack accepts about one message per second per webhook.
            max_per_minute: 60,
            retries: 5,
            queue: 10_000,
        }
    }
}

/// A webhook configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// `min_severity` is not a Sigma level (informational, low, medium, high,
    /// critical).
    #[error("webhook {name}: unknown min_severity `{severity}`")]
    Severity {
        /// The webhook's name.
        name: String,
        /// The value as written.
        severity: String,
    },
    /// `url` is not an HTTP(S) URL.
    #[error("webhook {name}: url `{url}` must start with https:// (or http://)")]
    Url {
        /// The webhook's name.
        name: String,
        /// The URL as written.
        url: String,
    },
}

impl WebhookConfig {
    /// The settings, checked.
    pub fn settings(&self) -> Result<WebhookSettings, WebhookError> {
        let min_severity = Severity::from_sigma_level(&self.min_severity).ok_or_else(|| {
            WebhookError::Severity {
                name: self.name.clone(),
                severity: self.min_severity.clone(),
            }
        })?;
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(WebhookError::Url {
                name: self.name.clone(),
                url: self.url.clone(),
            });
        }
        Ok(WebhookSettings {
            name: self.name.clone(),
            url: self.url.clone(),
            min_severity,
            alerts: self.alerts,
            batch_max: self.batch_max.max(1),
            batch_wait: self.batch_wait.as_std(),
            max_per_minute: self.max_per_minute.max(1),
            retries: self.retries,
            queue: self.queue.max(1),
        })
    }

    /// Starts the delivery task; its handle joins the context's tasks, to
    /// be awaited once the sink is dropped.
    pub(crate) fn open(&self, context: &mut SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        let failed =
            |e: String| SinkError::new(format!("webhook {}", self.name), std::io::Error::other(e));
        let settings = self.settings().map_err(|e| failed(e.to_string()))?;
        let webhooks = &mut context.webhooks;
        let (sink, task) =
            WebhookSink::start(settings, &webhooks.runtime, webhooks.metrics.clone())
                .map_err(failed)?;
        webhooks.tasks.push(task);
        Ok(Box::new(sink))
    }
}

impl Sink for WebhookSink {
    fn write(&mut self, record: &dyn Outgoing, _: &mut Pending) -> Result<(), SinkError> {
        if record.is_alert() {
            self.offer_alert(record.severity(), record.line());
        } else {
            self.offer(record.severity(), record.line());
        }
        Ok(())
    }

    fn webhook_name(&self) -> Option<&str> {
        Some(self.name())
    }
}

/// How a webhook sink behaves (from `[[sinks]] type = "webhook"`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// The webhook's name: its metrics label, and what escalation levels route to.
    pub name: String,
    /// The URL posted to.
    pub url: String,
    /// Alerts below this severity are not posted.
    pub min_severity: Severity,
    /// Whether ordinary alerts are posted (false: escalations only).
    pub alerts: bool,
    /// Most lines per message.
    pub batch_max: usize,
    /// How long the first line of a batch waits for company.
    pub batch_wait: Duration,
    /// Most messages per minute.
    pub max_per_minute: u32,
    /// Attempts after the first, for 5xx, 429 and network errors.
    pub retries: u32,
    /// Lines waiting to be posted before new ones are dropped.
    pub queue: usize,
}

/// The writer's handle: cheap, non-blocking.
#[derive(Clone)]
pub struct WebhookSink {
    settings: Arc<WebhookSettings>,
    tx: mpsc::Sender<String>,
    metrics: Option<Arc<Metrics>>,
}

/// First retry delay; doubled per attempt up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl WebhookSink {
    /// Starts the delivery task on `runtime`; its handle finishes once every
    /// sender is dropped and the queue is delivered (or given up on).
    pub fn start(
        settings: WebhookSettings,
        runtime: &tokio::runtime::Handle,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<(WebhookSink, tokio::task::JoinHandle<()>), String> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook {}: {e}", settings.name))?;
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|e| format!("webhook {}: url `{}`: {e}", settings.name, settings.url))?;
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let settings = Arc::new(settings);
        let task = runtime.spawn(deliver(client, url, settings.clone(), rx, metrics.clone()));
        Ok((
            WebhookSink {
                settings,
                tx,
                metrics,
            },
            task,
        ))
    }

    /// The webhook's name (`name` in its configuration).
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Queues an alert line if the sink takes alerts of this severity.
    pub fn offer_alert(&self, severity: Severity, line: &str) {
        if self.settings.alerts {
            self.offer(severity, line);
        }
    }

    /// Queues a line (an alert or an escalation) if its severity passes the filter.
    pub fn offer(&self, severity: Severity, line: &str) {
        if severity < self.settings.min_severity {
            return;
        }
        if self.tx.try_send(line.to_string()).is_err() {
            tracing::warn!(webhook = %self.settings.name, "webhook queue full: line dropped from chat (still in the other sinks)");
            self.count("dropped");
        }
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.webhook_messages
                .with_label_values(&[self.settings.name.as_str(), outcome])
                .inc();
        }
    }
}

/// The delivery loop: batch, pace, post, retry.
async fn deliver(
    client: reqwest::Client,
    url: reqwest::Url,
    settings: Arc<WebhookSettings>,
    mut rx: mpsc::Receiver<String>,
    metrics: Option<Arc<Metrics>>,
) {
    let spacing = Duration::from_secs_f64(60.0 / f64::from(settings.max_per_minute.max(1)));
    let mut last_post: Option<tokio::time::Instant> = None;
    let count = |outcome: &str, n: usize| {
        if let Some(m) = &metrics {
            m.webhook_messages
                .with_label_values(&[settings.name.as_str(), outcome])
                .inc_by(n as u64);
        }
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        while batch.len() < settings.batch_max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => batch.push(line),
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(last) = last_post {
            tokio::time::sleep_until(last + spacing).await;
        }
        let body = serde_json::json!({ "text": batch.join("\n") });
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            last_post = Some(tokio::time::Instant::now());
            let result = client.post(url.clone()).json(&body).send().await;
            let retry_after = match &result {
                Ok(r) if r.status().is_success() => {
                    count("delivered", batch.len());
                    break;
                }
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                    tracing::warn!(webhook = %settings.name, status = %r.status(), attempt, "webhook post failed; retrying");
                    r.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                }
                Ok(r) => {
                    // 4xx: the request itself is wrong; retrying cannot help.
                    tracing::error!(webhook = %settings.name, status = %r.status(), "webhook rejected the message; not retried");
                    count("failed", batch.len());
                    break;
                }
                Err(e) => {
                    tracing::warn!(webhook = %settings.name, error = %e, attempt, "webhook post failed; retrying");
                    None
                }
            };
            if attempt >= settings.retries {
                tracing::error!(webhook = %settings.name, lines = batch.len(), "webhook delivery given up after retries");
                count("failed", batch.len());
                break;
            }
            attempt += 1;
            tokio::time::sleep(retry_after.unwrap_or(backoff).min(MAX_BACKOFF)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A local webhook receiver: answers with the given statuses in turn
    /// (then 200) and keeps the bodies of the accepted posts.
    async fn receiver(
        statuses: Vec<u16>,
    ) -> (String, Arc<Mutex<Vec<serde_json::Value>>>, Arc<Mutex<u32>>) {
        use axum::{http::StatusCode, routing::post, Json, Router};
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(0u32));
        let statuses = Arc::new(Mutex::new(std::collections::VecDeque::from(statuses)));
        let (a, c) = (accepted.clone(), calls.clone());
        let app = Router::new().route(
            "/hook",
            post(move |Json(body): Json<serde_json::Value>| {
                let (a, c, s) = (a.clone(), c.clone(), statuses.clone());
                async move {
                    *c.lock().unwrap() += 1;
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    if status == 200 {
                        a.lock().unwrap().push(body);
                    }
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), accepted, calls)
    }

    fn settings(url: String) -> WebhookSettings {
        WebhookSettings {
            name: "chat".into(),
            url,
            min_severity: Severity::High,
            alerts: true,
            batch_max: 3,
            batch_wait: Duration::from_millis(100),
            max_per_minute: 6000,
            retries: 3,
            queue: 100,
        }
    }

    #[tokio::test]
    async fn alerts_are_filtered_batched_and_retried_until_delivered() {
        let (url, accepted, calls) = receiver(vec![500, 503]).await;
        let metrics = Arc::new(Metrics::new().unwrap());
        let (sink, task) = WebhookSink::start(
            settings(url),
            &tokio::runtime::Handle::current(),
            Some(metrics.clone()),
        )
        .unwrap();
        sink.offer_alert(Severity::Critical, "SIEM ALERT -- one");
        sink.offer_alert(Severity::Low, "SIEM ALERT -- filtered out");
        sink.offer_alert(Severity::High, "SIEM ALERT -- two");
        sink.offer(Severity::High, "SIEM ESCALATION -- three");
        sink.offer_alert(Severity::High, "SIEM ALERT -- four");
        drop(sink);
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("delivered in time")
            .unwrap();
        let bodies = accepted.lock().unwrap().clone();
        let texts: Vec<&str> = bodies.iter().map(|b| b["text"].as_str().unwrap()).collect();
        assert_eq!(
            texts,
            vec![
                "SIEM ALERT -- one\nSIEM ALERT -- two\nSIEM ESCALATION -- three",
                "SIEM ALERT -- four"
            ]
        );
        assert_eq!(
            *calls.lock().unwrap(),
            4,
            "two failures, then two deliveries"
        );
        let text = metrics.render();
        assert!(
            text.contains(
                "tocsin_webhook_messages_total{outcome=\"delivered\",webhook=\"chat\"} 4"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_dead_webhook_gives_up_and_a_full_queue_drops_without_blocking() {
        let (url, accepted, _) = receiver(vec![500; 10]).await;
        let mut s = settings(url);
        s.retries = 1;
        s.queue = 2;
        s.batch_max = 1;
        let metrics = Arc::new(Metrics::new().unwrap());
        let (sink, task) =
            WebhookSink::start(s, &tokio::runtime::Handle::current(), Some(metrics.clone()))
                .unwrap();
        let started = std::time::Instant::now();
        for i in 0..50 {
            sink.offer_alert(Severity::Critical, &format!("line {i}"));
        }
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "offering never waits"
        );
        drop(sink);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("gave up in time")
            .unwrap();
        assert!(accepted.lock().unwrap().is_empty());
        let text = metrics.render();
        assert!(text.contains("outcome=\"dropped\""), "{text}");
        assert!(text.contains("outcome=\"failed\""), "{text}");
    }

    #[test]
    fn a_bad_url_is_a_clear_error() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let Err(err) = WebhookSink::start(settings("not a url".into()), rt.handle(), None) else {
            panic!("a bad url must not start a sink");
        };
        assert!(err.contains("webhook chat: url `not a url`"), "{err}");
    }
}
