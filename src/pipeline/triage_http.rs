//! `POST /triage`: triage updates over HTTP, for SOC tooling that cannot
//! produce to Kafka. Protected by a bearer token; served next to
//! `/metrics`. The update is applied by the pipeline's writer (the only
//! owner of alert state) and the verdict is the response:
//! 200 applied, 400 malformed, 401 bad token, 404 unknown alert,
//! 409 not allowed (bad transition or time), 503 pipeline not running.

use super::TriageRequest;
use crate::pipeline::metrics::Metrics;
use axum::extract::rejection::StringRejection;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
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
    let token = Arc::new(token);
    let too_large = metrics.clone();
    Router::new()
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
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = token.clone();
            async move {
                let given = request.headers().get(header::AUTHORIZATION);
                if bearer_token_matches(given.map(|v| v.as_bytes()), &token) {
                    next.run(request).await
                } else {
                    reply(
                        StatusCode::UNAUTHORIZED,
                        "error",
                        "missing or wrong bearer token",
                    )
                    .into_response()
                }
            }
        }))
}

/// Whether an `Authorization` header carries `token` in the Bearer scheme.
/// The scheme name is case-insensitive (RFC 9110 11.1); the token is not.
fn bearer_token_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let Some((scheme, given)) = value.split_at_checked(7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ") && same(given.trim_ascii(), token.as_bytes())
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

/// Compares without stopping at the first difference, so response timing
/// does not reveal how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        for header in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert!(
                bearer_token_matches(Some(header.as_bytes()), "s3cret"),
                "{header}"
            );
        }
        for header in [
            "Bearer S3cret",
            "Basic s3cret",
            "Bearer",
            "s3cret",
            "Bearers3cret",
            "",
        ] {
            assert!(
                !bearer_token_matches(Some(header.as_bytes()), "s3cret"),
                "{header}"
            );
        }
        assert!(!bearer_token_matches(None, "s3cret"));
    }

    #[test]
    fn token_comparison_needs_every_byte() {
        assert!(same(b"Bearer abc", b"Bearer abc"));
        assert!(!same(b"Bearer abd", b"Bearer abc"));
        assert!(!same(b"Bearer ab", b"Bearer abc"));
    }
}
