//! The API's one error type, mapped to status codes and RFC 9457 problem+json at the edge.
//!
//! 401 answers carry `WWW-Authenticate: Bearer …` (RFC 6750 §3), 403 answers for missing
//! scopes carry `error="insufficient_scope"`. 5xx bodies say nothing internal: the detail is
//! logged, the caller gets a generic sentence.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_api::Problem;
use tessera_store::StoreError;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials at all: the challenge carries no `error` attribute (RFC 6750 §3).
    #[error("this endpoint needs a bearer token (Authorization: Bearer tsr_…)")]
    MissingCredentials,
    #[error("{0}")]
    InvalidToken(String),
    #[error("{detail}")]
    InsufficientScope { needed: String, detail: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("service unavailable; retry shortly")]
    Unavailable(String),
    #[error("internal error; see the server log")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingCredentials | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope { .. } | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::MissingCredentials => "missing-credentials",
            ApiError::InvalidToken(_) => "invalid-token",
            ApiError::InsufficientScope { .. } => "insufficient-scope",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Validation(_) => "validation",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::BadGateway(_) => "bad-gateway",
            ApiError::GatewayTimeout(_) => "gateway-timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:tessera:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }

    fn challenge(&self) -> Option<String> {
        // Header values must be visible ASCII; quoted-strings must not break out.
        let quote = |s: &str| {
            s.replace('…', "...")
                .chars()
                .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .collect::<String>()
        };
        match self {
            ApiError::MissingCredentials => Some("Bearer realm=\"tessera\"".to_owned()),
            ApiError::InvalidToken(d) => {
                Some(format!("Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"{}\"", quote(d)))
            }
            ApiError::InsufficientScope { needed, .. } => {
                Some(format!("Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"{}\"", quote(needed)))
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            _ => {}
        }
        let body = serde_json::to_vec(&self.problem()).expect("a problem serializes");
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(challenge) = self.challenge().and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists { .. } | StoreError::Conflict(_) => ApiError::Conflict(e.to_string()),
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Unavailable(d) => ApiError::Unavailable(d),
            StoreError::Unsupported(_) | StoreError::Corrupt(_) | StoreError::Database(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
