//! The admin port (plain HTTP, separate from the webhook port): `/livez`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Shared, metrics};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: /livez, /readyz, /metrics\n") })
        .with_state(shared)
}

async fn livez() -> &'static str {
    "ok\n"
}

/// 200 once the serving certificate and the policy are loaded and until shutdown starts;
/// 503 otherwise, naming what is missing.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let missing = shared.not_ready_reasons();
    if missing.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join("; ")),
        )
            .into_response()
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(watch) = shared.cluster.get() {
        shared.metrics.observe_cluster(watch, shared.started_unix_ms);
    }
    let body = shared.metrics.encode();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE))],
        body,
    )
        .into_response()
}
