//! The webhook routes: `POST /mutate`, `POST /validate`.
//!
//! Errors are JSON `{"error": "...", "code": "..."}`: 400 for a body that is not a usable
//! AdmissionReview v1, 408 when the body does not arrive within the body timeout, 413 over the
//! body limit (at once for `Expect: 100-continue` or a `Content-Length` over four times the
//! limit, before the decode budget), 415 for a Content-Type that is not JSON, 404/405 for other paths and methods, 503 before a policy has loaded, and 500 when a
//! handler panics (caught, logged and counted; the server goes on).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;

use super::Shared;
use super::error::ApiError;
use crate::admission::{self, Endpoint};

/// The webhook router (served over TLS).
pub fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route(
            "/mutate",
            post(|s: State<Arc<Shared>>, req: Request| handle(s, Endpoint::Mutate, req)),
        )
        .route(
            "/validate",
            post(|s: State<Arc<Shared>>, req: Request| handle(s, Endpoint::Validate, req)),
        );
    if shared.config.debug_panic_route {
        r = r.route("/debug/panic", post(panic_now));
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), catch_panic))
        .with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, endpoint: Endpoint, req: Request) -> Response {
    let start = Instant::now();
    let metrics = &shared.metrics;
    let Some(policy) = shared.policy.load_full() else {
        metrics.error(ApiError::NotReady.code());
        return ApiError::NotReady.into_response();
    };
    // Half the body timeout at most in the queue: a request never waits longer than the one
    // ahead of it may take to send its body.
    let wait = shared.config.body_timeout / 2;
    let busy = || ApiError::Overloaded {
        waited_ms: wait.as_millis(),
    };
    let answer = async {
        content_type_is_json(&req)?;
        // Permits for the body's size before a byte of it is read (the body limit when unknown).
        let size = declared_size(&shared, &req)?;
        let _bytes = shared.budget.body(size, wait).await.map_err(|_| busy())?;
        let body = read_body(&shared, req.into_body()).await?;
        let _decoder = shared.budget.decoder(body.len(), wait).await.map_err(|_| busy())?;
        // Decode, evaluate and encode on a blocking thread: never on the async I/O threads.
        let decoded = tokio::task::spawn_blocking(move || {
            admission::review(&policy, endpoint, &body).map(|(review, summary)| (admission::encode(&review), summary))
        })
        .await;
        match decoded {
            Ok(result) => result.map_err(ApiError::Review),
            Err(join) => {
                metrics.error("panic");
                tracing::error!(%endpoint, error = %join, "review panicked; answered 500");
                Err(ApiError::Internal)
            }
        }
    };
    match answer.await {
        Ok((bytes, summary)) => {
            let elapsed = start.elapsed();
            metrics.observe_review(&summary, elapsed.as_secs_f64());
            tracing::info!(
                target: "gpu_admission::review",
                endpoint = %endpoint,
                uid = %summary.uid,
                kind = %summary.kind,
                namespace = %summary.namespace,
                name = %summary.name,
                operation = summary.operation,
                decision = summary.decision.as_str(),
                skip_reason = summary.skip_reason.map(|r| r.as_str()).unwrap_or(""),
                violations = summary.violations.len(),
                warnings = summary.warnings,
                patch_bytes = summary.patch_bytes,
                duration_us = elapsed.as_micros() as u64,
                dry_run = summary.dry_run,
                "review"
            );
            let mut resp = Response::new(Body::from(bytes));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(ApiError::Internal) => ApiError::Internal.into_response(),
        Err(error) => {
            let code = error.code();
            metrics.error(code);
            tracing::warn!(target: "gpu_admission::review", %endpoint, code, message = %error, "request rejected");
            error.into_response()
        }
    }
}

/// `application/json` (any parameters, any letter case) or no `Content-Type` at all; anything
/// else is 415. kube-apiserver sends `application/json`.
fn content_type_is_json(req: &Request) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            content_type: text.chars().take(100).collect(),
        })
    }
}

/// The body's declared size (`Content-Length`; the body limit when there is none, at most the
/// limit), or 413 at once, before the budget is taken and before a byte is read: a
/// `Content-Length` over [`DRAIN_FACTOR`] times the limit, or over the limit with
/// `Expect: 100-continue` (hyper sends `100 Continue` only when the body is first read).
fn declared_size(shared: &Shared, req: &Request) -> Result<usize, ApiError> {
    let max = shared.config.max_body_bytes;
    let drain_limit = max.saturating_mul(DRAIN_FACTOR);
    let hint = HttpBody::size_hint(req.body());
    let lower = hint.lower();
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if lower > drain_limit as u64 || (expects_continue && lower > max as u64) {
        return Err(ApiError::BodyTooLarge { max_bytes: max });
    }
    Ok(hint.exact().map_or(max, |n| usize::try_from(n).unwrap_or(max)).min(max))
}

/// The whole body, within the size limit and the body timeout.
///
/// A body over the limit is still read (and dropped, never buffered) up to [`DRAIN_FACTOR`] times
/// the limit before the 413 goes out: closing a socket with unread data makes the kernel send a
/// reset, and the client would lose the 413 for a connection error. Beyond that the 413 goes out
/// at once and the connection closes (a `Content-Length` beyond it never gets here:
/// [`declared_size`]).
async fn read_body(shared: &Shared, body: Body) -> Result<Bytes, ApiError> {
    let max = shared.config.max_body_bytes;
    let drain_limit = max.saturating_mul(DRAIN_FACTOR);
    let too_large = || ApiError::BodyTooLarge { max_bytes: max };
    let read = async {
        let mut body = body;
        let mut kept: Vec<u8> = Vec::new();
        let mut seen: usize = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::BodyRead(e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            seen = seen.saturating_add(data.len());
            if seen <= max {
                kept.extend_from_slice(&data);
            } else if seen > drain_limit {
                break;
            }
        }
        if seen > max {
            Err(too_large())
        } else {
            Ok(Bytes::from(kept))
        }
    };
    let timeout = shared.config.body_timeout;
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ApiError::BodyTimeout {
            timeout_ms: timeout.as_millis(),
        }),
        Ok(result) => result,
    }
}

/// How far past the limit a body is drained before answering 413 (see [`read_body`]).
const DRAIN_FACTOR: usize = 4;

async fn not_found(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let error = ApiError::NotFound {
        path: req.uri().path().to_string(),
    };
    shared.metrics.error(error.code());
    error.into_response()
}

async fn method_not_allowed(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let error = ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    };
    shared.metrics.error(error.code());
    error.into_response()
}

/// For the tests of [`catch_panic`] (only routed with `debug_panic_route`).
async fn panic_now() -> Response {
    panic!("deliberate panic from /debug/panic");
}

/// A panic in a handler becomes a 500; it is logged and counted, and the server goes on.
async fn catch_panic(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            shared.metrics.error("panic");
            tracing::error!(%path, panic = %message, "handler panicked; answered 500");
            ApiError::Internal.into_response()
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
