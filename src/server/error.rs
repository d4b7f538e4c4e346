//! The one error type of the HTTP edge: each variant has its status, its stable code and its
//! message, and answers as JSON `{"error": message, "code": code}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::admission::ReviewError;

/// Why a request was not answered with a review.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 503: no policy loaded yet.
    #[error("no policy loaded yet")]
    NotReady,
    /// 413.
    #[error("the body is larger than the limit of {max_bytes} bytes")]
    BodyTooLarge { max_bytes: usize },
    /// 408.
    #[error("the body did not arrive within {timeout_ms} ms")]
    BodyTimeout { timeout_ms: u128 },
    /// 400: the connection failed while the body was read.
    #[error("cannot read the body: {0}")]
    BodyRead(String),
    /// 400: a body that is not a usable AdmissionReview v1 (never answered "allowed").
    #[error("{}", .0.message)]
    Review(ReviewError),
    /// 415: a `Content-Type` that is not JSON.
    #[error("Content-Type `{content_type}` is not supported: send application/json")]
    UnsupportedMediaType { content_type: String },
    /// 404.
    #[error("no route for {path}: use POST /mutate or POST /validate")]
    NotFound { path: String },
    /// 405.
    #[error("{method} is not allowed on {path}: use POST")]
    MethodNotAllowed { method: String, path: String },
    /// 503: waited the body timeout for the decode budget (other reviews hold it).
    #[error("busy: other reviews hold the decode budget; waited {waited_ms} ms")]
    Overloaded { waited_ms: u128 },
    /// 500: a handler panicked (logged and counted; the server goes on).
    #[error("internal error (logged)")]
    Internal,
}

// === impl ApiError ===

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotReady | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::BodyRead(_) | ApiError::Review(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable and machine-readable; also the `code` label of the errors metric.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotReady => "not_ready",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::BodyRead(_) => "body_read_error",
            ApiError::Review(e) => e.code,
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Internal => "internal_error",
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        ApiError::Review(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string(), "code": self.code() });
        let mut resp = (
            self.status(),
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body.to_string(),
        )
            .into_response();
        if matches!(self, ApiError::MethodNotAllowed { .. }) {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status_and_code() {
        let cases = [
            (ApiError::NotReady, 503, "not_ready"),
            (ApiError::BodyTooLarge { max_bytes: 1 }, 413, "body_too_large"),
            (ApiError::BodyTimeout { timeout_ms: 1 }, 408, "body_timeout"),
            (ApiError::BodyRead("x".into()), 400, "body_read_error"),
            (ApiError::Review(ReviewError::new("not_json", "x")), 400, "not_json"),
            (
                ApiError::UnsupportedMediaType {
                    content_type: "text/plain".into(),
                },
                415,
                "unsupported_media_type",
            ),
            (ApiError::NotFound { path: "/".into() }, 404, "not_found"),
            (
                ApiError::MethodNotAllowed {
                    method: "GET".into(),
                    path: "/".into(),
                },
                405,
                "method_not_allowed",
            ),
            (ApiError::Overloaded { waited_ms: 1 }, 503, "overloaded"),
            (ApiError::Internal, 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code);
            let resp = error.clone().into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        }
    }
}
