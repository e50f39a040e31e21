//! `POST /reload`: reload the rules now, behind the same bearer token as
//! `/triage`. The answer is the outcome: 200 with the new set's size, or
//! 422 with every problem at `file:line:col` (the running set is kept).

use super::reload::{ReloadOutcome, Reloader};
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use std::sync::Arc;

/// The `/reload` route.
pub fn router(token: String, reloader: Arc<Reloader>) -> Router {
    let routes = Router::new().route(
        "/reload",
        post(move || {
            let reloader = reloader.clone();
            async move {
                // Compiling takes seconds on a large corpus: off the runtime.
                let outcome =
                    tokio::task::spawn_blocking(move || reloader.reload("POST /reload")).await;
                let (status, body) = match outcome {
                    Ok(outcome @ ReloadOutcome::Reloaded { .. }) => {
                        (StatusCode::OK, outcome.to_json())
                    }
                    Ok(outcome @ ReloadOutcome::Rejected { .. }) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, outcome.to_json())
                    }
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"result": "failed", "reason": e.to_string()}),
                    ),
                };
                (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
            }
        }),
    );
    super::bearer::require_token(routes, token)
}
