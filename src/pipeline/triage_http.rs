//! `POST /triage`: triage updates over HTTP, for SOC tooling that cannot
//! produce to Kafka. Protected by a bearer token; served next to
//! `/metrics`. The update is applied by the pipeline's writer (the only
//! owner of alert state) and the verdict is the response:
//! 200 applied, 400 malformed, 401 bad token, 404 unknown alert,
//! 409 not allowed (bad transition or time), 503 pipeline not running.

use super::TriageRequest;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a request waits for the writer's verdict.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `/triage` route, sending accepted requests to `tx`.
pub fn router(token: String, tx: mpsc::Sender<TriageRequest>) -> Router {
    let expected = format!("Bearer {token}");
    Router::new().route(
        "/triage",
        post(move |headers: HeaderMap, body: String| {
            let (expected, tx) = (expected.clone(), tx.clone());
            async move { handle(&expected, &tx, &headers, &body).await }
        }),
    )
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
    expected: &str,
    tx: &mpsc::Sender<TriageRequest>,
    headers: &HeaderMap,
    body: &str,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same(given, expected.as_bytes()) {
        return reply(
            StatusCode::UNAUTHORIZED,
            "error",
            "missing or wrong bearer token",
        );
    }
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
    fn token_comparison_needs_every_byte() {
        assert!(same(b"Bearer abc", b"Bearer abc"));
        assert!(!same(b"Bearer abd", b"Bearer abc"));
        assert!(!same(b"Bearer ab", b"Bearer abc"));
    }
}
