//! The HTTP listener: `/metrics`, `/healthz`, `/readyz` and the routes of
//! other stages (`/triage`), with limits on connections, time and size.

use super::health::Health;
use super::metrics::Metrics;
use crate::vocab::Span;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The `[metrics]` section: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Serve the listener (`enabled`, default true). Off: no `/metrics`, `/healthz`,
    /// `/readyz` or `/triage`.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
    /// Most connections open at once (see [`HttpLimits`]).
    pub max_connections: usize,
    /// Most time to receive a request's headers, idle kept-alive time included.
    pub header_timeout: Span,
    /// Most time for a whole request.
    pub request_timeout: Span,
    /// Largest request body (read only after the bearer token is checked).
    pub max_body_bytes: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        let limits = HttpLimits::default();
        ListenerConfig {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            max_connections: limits.max_connections,
            header_timeout: Span::from_std(limits.header_timeout),
            request_timeout: Span::from_std(limits.request_timeout),
            max_body_bytes: limits.max_body_bytes,
        }
    }
}

impl ListenerConfig {
    /// The limits in the form the listener takes.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections,
            header_timeout: self.header_timeout.as_std(),
            request_timeout: self.request_timeout.as_std(),
            max_body_bytes: self.max_body_bytes,
        }
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
