//! Bearer-token authentication for the listener's write routes (`POST
//! /triage`, `POST /reload`): the token is checked before anything else,
//! the body included, so an unauthenticated client costs nothing.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::Router;
use std::sync::Arc;

/// `routes`, answering 401 to a request without `Authorization: Bearer <token>`.
pub(crate) fn require_token(routes: Router, token: String) -> Router {
    let token = Arc::new(token);
    routes.route_layer(middleware::from_fn(move |request: Request, next: Next| {
        let token = token.clone();
        async move {
            let given = request.headers().get(header::AUTHORIZATION);
            if bearer_token_matches(given.map(|v| v.as_bytes()), &token) {
                next.run(request).await
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({"error": "missing or wrong bearer token"}).to_string(),
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

/// Compares without stopping at the first difference, so response timing
/// does not reveal how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
