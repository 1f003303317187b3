//! The OAuth 2.0 issuer: per-environment token endpoint (client_credentials, RFC 6749 §4.4),
//! introspection (RFC 7662), revocation (RFC 7009), server metadata (RFC 8414) and JWKS.
//!
//! These endpoints answer in the RFCs' own formats (`{"error": …}`), not problem+json.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
use tessera_core::{Access, Client, ClientSecret, InactiveReason, ScopeSet, Token, TokenFormat};

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::tokens::{self, MintRequest};
use crate::validate::{validate, Count, Validation};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/env/{env}/oauth2/token", post(token))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
        .route("/env/{env}/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/oauth-authorization-server/env/{env}", get(metadata))
        .route("/env/{env}/.well-known/jwks.json", get(jwks))
}

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Set for `invalid_client` answers to a client that authenticated with HTTP Basic.
    basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), basic_challenge: false }
    }

    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    fn invalid_client(d: impl Into<String>) -> Self {
        Self { basic_challenge: true, ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d) }
    }

    fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
}

impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", e.to_string())
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error in an OAuth endpoint");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error; see the server log")
            }
            ApiError::NotFound(d) => Self::new(StatusCode::NOT_FOUND, "invalid_request", d),
            other => Self::invalid_request(other.to_string()),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut resp = (self.status, Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic_challenge { "Basic realm=\"tessera\"" } else { "Bearer realm=\"tessera\"" };
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}

type OAuthResult<T> = Result<T, OAuthError>;

/// Parses an `application/x-www-form-urlencoded` body, refusing repeated parameters
/// (RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once").
fn form(headers: &HeaderMap, body: &Result<Bytes, BytesRejection>) -> OAuthResult<HashMap<String, String>> {
    let body = body.as_ref().map_err(|r| {
        OAuthError::new(
            r.status(),
            "invalid_request",
            format!("request body rejected: larger than {} bytes or unreadable", crate::MAX_BODY_BYTES),
        )
    })?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("send parameters as application/x-www-form-urlencoded"));
    }
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {k:?} is given more than once")));
        }
    }
    Ok(params)
}

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Client credentials from HTTP Basic (`client_secret_basic`) or the body
/// (`client_secret_post`); exactly one method.
fn client_credentials(headers: &HeaderMap, p: &HashMap<String, String>) -> OAuthResult<Option<(String, String)>> {
    let basic = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(v) if v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ") => {
            let decoded = B64
                .decode(v[6..].trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            let unescape =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            Some((unescape(id).unwrap_or_default(), unescape(secret).unwrap_or_default()))
        }
        _ => None,
    };
    let post = match (param(p, "client_id"), param(p, "client_secret")) {
        (Some(id), Some(secret)) => Some((id.to_owned(), secret.to_owned())),
        _ => None,
    };
    match (basic, post) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("use one client authentication method, not both")),
        (Some(b), None) => {
            if param(p, "client_id").is_some_and(|id| id != b.0) {
                return Err(OAuthError::invalid_request("client_id does not match the authenticated client"));
            }
            Ok(Some(b))
        }
        (None, post) => Ok(post),
    }
}

/// Authenticates a client by id and secret: constant-time comparison of keyed hashes.
async fn authenticate_client(state: &AppState, id: &str, secret: &str) -> OAuthResult<Arc<Client>> {
    let client = match tokens::client(state, id).await {
        Ok(c) => c,
        Err(ApiError::NotFound(_)) => return Err(OAuthError::invalid_client("client authentication failed")),
        Err(e) => return Err(e.into()),
    };
    if ClientSecret::parse(secret).is_err() || !state.hasher.hash(secret).ct_eq(&client.secret_hash) {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    if client.disabled {
        return Err(OAuthError::invalid_client("client is disabled"));
    }
    Ok(client)
}

async fn token(
    State(state): State<AppState>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> OAuthResult<Response> {
    let p = form(&headers, &body)?;
    let (id, secret) = client_credentials(&headers, &p)?.ok_or_else(|| {
        OAuthError::invalid_client("client authentication required (HTTP Basic or client_id/client_secret)")
    })?;
    let grant = param(&p, "grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    if grant != "client_credentials" {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type {grant:?} is not supported; use client_credentials"),
        ));
    }
    let client = authenticate_client(&state, &id, &secret).await?;
    if let Err(ApiError::NotFound(_)) = tokens::environment(&state, &env).await {
        return Err(OAuthError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            format!("no issuer for environment {env:?}"),
        ));
    }
    let allowed = client.scopes_in(&env);
    if allowed.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            format!("client {} has no scopes in environment {env}", client.id),
        ));
    }
    let scopes = match param(&p, "scope") {
        None => allowed.clone(),
        Some(s) => ScopeSet::parse_space_separated(s).map_err(|e| OAuthError::invalid_scope(e.to_string()))?,
    };
    let refused = scopes.difference(&allowed);
    if !refused.is_empty() {
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        return Err(OAuthError::invalid_scope(format!("scope not allowed in {env}: {}", refused.join(" "))));
    }
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope("request at least one scope"));
    }
    let audience = match (param(&p, "audience"), param(&p, "resource")) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::invalid_request("audience and resource name different targets; give one"))
        }
        (a, r) => a.or(r).map(str::to_owned),
    };
    let minted = tokens::mint(
        &state,
        MintRequest {
            env: env.clone(),
            client_id: client.id.clone(),
            scopes: Some(scopes),
            audience,
            ttl: None,
            idle_ttl: None,
            max_uses: None,
            format: None,
            labels: Default::default(),
            run_id: None,
            created_by: format!("client:{}", client.id),
        },
    )
    .await?;
    let expires_in = (minted.token.expires_at - minted.token.created_at).num_seconds();
    let body = json!({
        "access_token": minted.secret.expose(),
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": minted.token.scopes.to_string(),
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Who is asking to introspect or revoke: a client (resource server) or an admin token.
enum Requester {
    Client(Arc<Client>),
    Admin(ScopeSet),
}

impl Requester {
    fn may_see(&self, env: &str) -> bool {
        match self {
            Requester::Client(c) => c.allowed_scopes.contains_key(env),
            Requester::Admin(scopes) => scopes.permits(env, Access::Read),
        }
    }
}

async fn requester(state: &AppState, headers: &HeaderMap, p: &HashMap<String, String>) -> OAuthResult<Requester> {
    // A Bearer header means an admin caller; anything else (Basic, none) a client.
    if let Ok(Some(token)) = crate::http::extract::bearer(headers) {
        return match validate(state, token, Count::Use).await? {
            Validation::Active(t) if t.scopes.has_any_admin_scope() => Ok(Requester::Admin(t.scopes)),
            Validation::Active(_) => Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this bearer token carries no Tessera admin scope; resource servers authenticate as clients",
            )),
            Validation::Inactive(..) => Err(OAuthError {
                basic_challenge: false,
                ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the bearer token is not active")
            }),
        };
    }
    let (id, secret) =
        client_credentials(headers, p)?.ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
    Ok(Requester::Client(authenticate_client(state, &id, &secret).await?))
}

async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> OAuthResult<Json<Value>> {
    let p = form(&headers, &body)?;
    let who = requester(&state, &headers, &p).await?;
    let raw = param(&p, "token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // Resource servers' checks count as uses; an admin's inspection does not.
    let count = if matches!(who, Requester::Client(_)) { Count::Use } else { Count::Peek };
    let result = validate(&state, raw, count).await?;
    let (token, reason) = match result {
        Validation::Active(t) => (Some(t), None),
        Validation::Inactive(r, t) => (t, Some(r)),
    };
    let visible = token.as_ref().is_some_and(|t| who.may_see(&t.env));
    let answer = match (token, reason, visible) {
        (Some(t), None, true) => {
            state.metrics.introspected("active");
            active_answer(&state, &t)
        }
        (token, reason, visible) => {
            let reason = if visible { reason.unwrap_or(InactiveReason::Unknown) } else { InactiveReason::Unknown };
            state.metrics.introspected(reason.as_str());
            let mut m = Map::new();
            m.insert("active".into(), Value::Bool(false));
            if let (Requester::Admin(_), true) = (&who, visible) {
                m.insert("inactive_reason".into(), reason.as_str().into());
                if let Some(t) = token {
                    m.insert("jti".into(), t.id.into());
                    m.insert("env".into(), t.env.into());
                }
            }
            Value::Object(m)
        }
    };
    Ok(Json(answer))
}

fn active_answer(state: &AppState, t: &Token) -> Value {
    let issuer = state.issuer(&t.env);
    let mut m = Map::new();
    m.insert("active".into(), true.into());
    m.insert("scope".into(), t.scopes.to_string().into());
    m.insert("client_id".into(), t.client_id.clone().into());
    m.insert("sub".into(), t.client_id.clone().into());
    m.insert("token_type".into(), "Bearer".into());
    m.insert("exp".into(), t.expires_at.timestamp().into());
    m.insert("iat".into(), t.created_at.timestamp().into());
    m.insert("nbf".into(), t.not_before.unwrap_or(t.created_at).timestamp().into());
    let aud = match (&t.audience, t.format) {
        (Some(a), _) => Some(a.clone()),
        (None, TokenFormat::Jwt) => Some(issuer.clone()),
        (None, TokenFormat::Opaque) => None,
    };
    if let Some(aud) = aud {
        m.insert("aud".into(), aud.into());
    }
    m.insert("iss".into(), issuer.into());
    m.insert("jti".into(), t.id.clone().into());
    m.insert("env".into(), t.env.clone().into());
    Value::Object(m)
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> OAuthResult<Response> {
    let p = form(&headers, &body)?;
    let who = requester(&state, &headers, &p).await?;
    let raw = param(&p, "token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    if let Some(hint) = param(&p, "token_type_hint") {
        if !matches!(hint, "access_token" | "refresh_token") {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_token_type",
                format!("token_type_hint {hint:?} is not supported"),
            ));
        }
    }
    // RFC 7009 §2.2: invalid, unknown and already inactive tokens get 200 too.
    let token = match validate(&state, raw, Count::Peek).await? {
        Validation::Active(t) => Some(t),
        Validation::Inactive(InactiveReason::Unknown, _) => None,
        Validation::Inactive(_, t) => t,
    };
    if let Some(t) = token {
        let (allowed, actor) = match &who {
            Requester::Client(c) => (c.id == t.client_id, format!("client:{}", c.id)),
            Requester::Admin(scopes) => (scopes.permits(&t.env, Access::Write), "admin".to_owned()),
        };
        if !allowed {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "this token was not issued to the authenticated client",
            ));
        }
        tokens::revoke(&state, &actor, "oauth2", vec![t], Some("revoked via /oauth2/revoke".into())).await?;
    }
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn known_env(state: &AppState, env: &str) -> Result<(), ApiError> {
    tokens::environment(state, env).await.map(drop)
}

async fn metadata(State(state): State<AppState>, Path(env): Path<String>) -> Result<Response, ApiError> {
    known_env(&state, &env).await?;
    let issuer = state.issuer(&env);
    let base = &state.public_url;
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "bearer"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
        "access_token_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
    });
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response())
}

async fn jwks(State(state): State<AppState>, Path(env): Path<String>) -> Result<Response, ApiError> {
    known_env(&state, &env).await?;
    let keys = state.keyring.jwks(&env, crate::now());
    // Short cache: a rotated-in key is pre-published, so clients that cache for a minute
    // still know every key that signs.
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(json!({ "keys": keys }))).into_response())
}
