//! `POST /triage`: triage updates over HTTP, for SOC tooling that cannot
//! produce to Kafka. Protected by a bearer token; served next to
//! `/metrics`. The update is applied by the pipeline's writer (the only
//! owner of alert state) and the verdict is the response:
//! 200 applied, 400 malformed, 401 bad token, 404 unknown alert,
//! 409 not allowed (bad transition or time), 503 pipeline not running.

use super::TriageRequest;
use crate::pipeline::metrics::Metrics;
use axum::extract::rejection::StringRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a request waits for the writer's verdict (within the
/// listener's request timeout).
const VERDICT_TIMEOUT: Duration = Duration::from_secs(20);

/// The `/triage` route, sending accepted requests to `tx`.
///
/// The bearer token is checked before the body is read, and only then is
/// the body read, up to `max_body_bytes`: an unauthenticated client cannot
/// make the server buffer anything.
pub fn router(
    token: String,
    tx: mpsc::Sender<TriageRequest>,
    max_body_bytes: usize,
    metrics: Option<Arc<Metrics>>,
) -> Router {
    let too_large = metrics.clone();
    let routes = Router::new()
        .route(
            "/triage",
            post(move |body: Result<String, StringRejection>| {
                let (tx, metrics) = (tx.clone(), too_large.clone());
                async move {
                    match body {
                        Ok(body) => handle(&tx, &body).await,
                        Err(rejection) => {
                            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                                if let Some(m) = &metrics {
                                    m.limit_exceeded
                                        .with_label_values(&["http_body_bytes"])
                                        .inc();
                                }
                            }
                            reply(rejection.status(), "error", &rejection.body_text())
                        }
                    }
                }
            }),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes));
    super::bearer::require_token(routes, token)
}

fn reply(
    status: StatusCode,
    field: &str,
    text: &str,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ field: text }).to_string(),
    )
}

async fn handle(
    tx: &mpsc::Sender<TriageRequest>,
    body: &str,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let update = match crate::incident::TriageUpdate::parse(body) {
        Ok(u) => u,
        Err(reason) => return reply(StatusCode::BAD_REQUEST, "error", &reason),
    };
    let (verdict_tx, verdict_rx) = tokio::sync::oneshot::channel();
    if tx.send((update, verdict_tx)).await.is_err() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "the pipeline is not running",
        );
    }
    match tokio::time::timeout(VERDICT_TIMEOUT, verdict_rx).await {
        Ok(Ok(Ok(()))) => reply(StatusCode::OK, "status", "applied"),
        Ok(Ok(Err(reason))) if reason.contains("unknown alert id") => {
            reply(StatusCode::NOT_FOUND, "error", &reason)
        }
        Ok(Ok(Err(reason))) => reply(StatusCode::CONFLICT, "error", &reason),
        _ => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "the pipeline did not answer in time",
        ),
    }
}
