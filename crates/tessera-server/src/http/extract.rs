//! Request extractors whose rejections use the API's problem+json format: the authenticated
//! admin caller, JSON bodies and query strings.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use tessera_core::{Access, InactiveReason, Scope, ScopeSet, TokenSecret};

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::{check, Checked, Count};

/// The token that authenticated an admin request, already checked and counted as one use.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub scopes: ScopeSet,
}

impl Caller {
    /// Refuses unless the caller may do `access` in `env`.
    pub fn require(&self, env: &str, access: Access) -> Result<(), ApiError> {
        if self.scopes.permits(env, access) {
            return Ok(());
        }
        let needed = Scope::env_access(env, access);
        Err(ApiError::InsufficientScope {
            detail: format!("this needs scope {needed} (or tessera:admin)"),
            needed: needed.to_string(),
        })
    }

    /// Refuses unless the caller holds `tessera:admin`.
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.scopes.is_admin() {
            return Ok(());
        }
        Err(ApiError::InsufficientScope {
            detail: format!("{what} needs scope tessera:admin"),
            needed: "tessera:admin".to_owned(),
        })
    }

    pub fn can(&self, env: &str, access: Access) -> bool {
        self.scopes.permits(env, access)
    }
}

/// Extracts the bearer token of `Authorization` (scheme matched case-insensitively).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value =
        value.to_str().map_err(|_| ApiError::InvalidToken("the Authorization header is not valid text".into()))?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidToken("use the Bearer scheme: Authorization: Bearer tsr_…".into()));
    }
    let credentials = credentials.trim();
    if credentials.is_empty() {
        return Err(ApiError::InvalidToken("the Bearer credentials are empty".into()));
    }
    Ok(Some(credentials))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let raw = bearer(&parts.headers)?.ok_or(ApiError::MissingCredentials)?;
        if raw.starts_with(tessera_core::token::TOKEN_PREFIX) {
            // Say precisely what is wrong with a mistyped token.
            TokenSecret::parse(raw).map_err(|e| ApiError::InvalidToken(e.to_string()))?;
        } else if !crate::jwt::looks_like_jwt(raw) {
            return Err(ApiError::InvalidToken("malformed token: neither a Tessera token (tsr_...) nor a JWT".into()));
        }
        let entry = match check(state, raw, Count::Use).await? {
            Checked::Active(entry) => entry,
            Checked::Inactive(InactiveReason::Unknown, _) => {
                return Err(ApiError::InvalidToken("unknown token".into()))
            }
            Checked::Inactive(reason, _) => {
                return Err(ApiError::InvalidToken(format!("token is inactive ({reason})")));
            }
        };
        let token = entry.token();
        if !token.scopes.has_any_admin_scope() {
            return Err(ApiError::InsufficientScope {
                detail: "this token carries no Tessera admin scope (tessera:admin or tessera:env:NAME:read|write)"
                    .into(),
                needed: "tessera:admin".into(),
            });
        }
        Ok(Caller { token_id: token.id.clone(), scopes: token.scopes.clone() })
    }
}

/// `Json<T>` whose rejections are problem+json with a specific message.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("send the body as JSON with Content-Type: application/json".into())
        }
        JsonRejection::JsonDataError(e) => ApiError::Validation(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(format!("request body is larger than {} bytes", crate::MAX_BODY_BYTES))
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// `Query<T>` whose rejections are problem+json.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::BadRequest(e.body_text())),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// Like [`ApiJson`], but an empty body (no `Content-Type`, no bytes) means `T::default()`:
/// for actions whose every option is optional (`rotate`, `renew`, `revoke`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let empty = !headers.contains_key(header::CONTENT_TYPE)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) == Some(0));
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        ApiJson::from_request(req, state).await.map(|ApiJson(v)| OptionalJson(v))
    }
}
