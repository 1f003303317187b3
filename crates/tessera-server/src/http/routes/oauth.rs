//! The OAuth 2.0 issuer: per-environment token endpoint (client_credentials, RFC 6749 §4.4),
//! introspection (RFC 7662), revocation (RFC 7009), server metadata (RFC 8414) and JWKS.
//!
//! These endpoints answer in the RFCs' own formats (`{"error": …}`), not problem+json.

use std::borrow::Cow;
use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Serialize, Serializer};
use serde_json::json;
use tessera_core::{Access, Client, InactiveReason, ScopeSet, Token, TokenFormat};
use zeroize::Zeroizing;

use crate::http::error::ApiError;
use crate::index::Entry;
use crate::state::{AppState, Issuer};
use crate::tokens::{self, MintRequest};
use crate::validate::{check, Checked, Count};

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

/// The request of a form-posting endpoint: its headers, moved out of the request rather than
/// copied (as the `HeaderMap` extractor would), and its body.
struct FormRequest {
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl FromRequest<AppState> for FormRequest {
    type Rejection = Infallible;

    async fn from_request(mut req: Request, state: &AppState) -> Result<Self, Infallible> {
        let headers = std::mem::take(req.headers_mut());
        // The body extractor reads only the body and the body limit (an extension).
        let body = Bytes::from_request(req, state).await;
        Ok(Self { headers, body })
    }
}

/// The parameters of a form body, borrowed from it where they needed no decoding.
struct Form<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Form<'_> {
    /// The value of parameter `name`; an empty value counts as absent.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref()).filter(|v| !v.is_empty())
    }
}

/// Parses an `application/x-www-form-urlencoded` body, refusing repeated parameters
/// (RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once").
fn form<'a>(headers: &HeaderMap, body: &'a Result<Bytes, BytesRejection>) -> OAuthResult<Form<'a>> {
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
    let params: Vec<_> = url::form_urlencoded::parse(body).collect();
    // The first parameter seen before is refused. Real requests have a handful of parameters
    // (compared pairwise); a set keeps a body full of distinct names linear.
    let repeated = if params.len() <= 16 {
        (1..params.len()).find(|&i| params[..i].iter().any(|(k, _)| *k == params[i].0))
    } else {
        let mut seen = HashSet::with_capacity(params.len());
        params.iter().position(|(k, _)| !seen.insert(k.as_ref()))
    };
    if let Some(i) = repeated {
        let k = &params[i].0;
        return Err(OAuthError::invalid_request(format!("parameter {k:?} is given more than once")));
    }
    Ok(Form(params))
}

/// The `id:secret` text of an HTTP Basic `Authorization` header (`client_secret_basic`),
/// base64-decoded, both parts still form-urlencoded; `None` without Basic credentials.
fn basic_credentials(headers: &HeaderMap) -> OAuthResult<Option<Zeroizing<String>>> {
    match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(v) if v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ") => B64
            .decode(v[6..].trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|decoded| decoded.contains(':'))
            .map(|decoded| Some(Zeroizing::new(decoded)))
            .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials")),
        _ => Ok(None),
    }
}

/// One form-urlencoded part of Basic credentials, decoded (RFC 6749 §2.3.1). The value ends
/// at the first `&`, as a form parameter's would.
fn form_unescape(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+', '&']) {
        return Cow::Borrowed(s);
    }
    let decoded = url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Cow::Owned(decoded.unwrap_or_default())
}

/// Client credentials from HTTP Basic (`basic`, from [`basic_credentials`]:
/// `client_secret_basic`) or the body (`client_secret_post`); exactly one method.
fn client_credentials<'a>(
    basic: Option<&'a str>,
    p: &'a Form<'_>,
) -> OAuthResult<Option<(Cow<'a, str>, Cow<'a, str>)>> {
    let basic = basic.and_then(|b| b.split_once(':')).map(|(id, secret)| (form_unescape(id), form_unescape(secret)));
    let post = match (p.get("client_id"), p.get("client_secret")) {
        (Some(id), Some(secret)) => Some((Cow::Borrowed(id), Cow::Borrowed(secret))),
        _ => None,
    };
    match (basic, post) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("use one client authentication method, not both")),
        (Some(b), None) => {
            if p.get("client_id").is_some_and(|id| id != b.0) {
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
    if !tessera_core::token::is_valid_client_secret(secret) || !state.hasher.hash(secret).ct_eq(&client.secret_hash) {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    if client.disabled {
        return Err(OAuthError::invalid_client("client is disabled"));
    }
    Ok(client)
}

async fn token(State(state): State<AppState>, Path(env): Path<String>, req: FormRequest) -> OAuthResult<Response> {
    let p = form(&req.headers, &req.body)?;
    let basic = basic_credentials(&req.headers)?;
    let (id, secret) = client_credentials(basic.as_deref().map(String::as_str), &p)?.ok_or_else(|| {
        OAuthError::invalid_client("client authentication required (HTTP Basic or client_id/client_secret)")
    })?;
    let grant = p.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
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
    let scopes = match p.get("scope") {
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
    let audience = match (p.get("audience"), p.get("resource")) {
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
    let body = TokenAnswer {
        access_token: minted.secret.expose(),
        expires_in: (minted.token.expires_at - minted.token.created_at).num_seconds(),
        scope: AsStr(&minted.token.scopes),
        token_type: "Bearer",
    };
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

async fn requester(state: &AppState, headers: &HeaderMap, p: &Form<'_>) -> OAuthResult<Requester> {
    // A Bearer header means an admin caller; anything else (Basic, none) a client.
    if let Ok(Some(token)) = crate::http::extract::bearer(headers) {
        return match check(state, token, Count::Use).await? {
            Checked::Active(e) if e.token().scopes.has_any_admin_scope() => {
                Ok(Requester::Admin(e.token().scopes.clone()))
            }
            Checked::Active(_) => Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this bearer token carries no Tessera admin scope; resource servers authenticate as clients",
            )),
            Checked::Inactive(..) => Err(OAuthError {
                basic_challenge: false,
                ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the bearer token is not active")
            }),
        };
    }
    let basic = basic_credentials(headers)?;
    let (id, secret) = client_credentials(basic.as_deref().map(String::as_str), p)?
        .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
    Ok(Requester::Client(authenticate_client(state, &id, &secret).await?))
}

async fn introspect(State(state): State<AppState>, req: FormRequest) -> OAuthResult<Response> {
    let p = form(&req.headers, &req.body)?;
    let who = requester(&state, &req.headers, &p).await?;
    let raw = p.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // Resource servers' checks count as uses; an admin's inspection does not.
    let count = if matches!(who, Requester::Client(_)) { Count::Use } else { Count::Peek };
    let (entry, reason) = match check(&state, raw, count).await? {
        Checked::Active(e) => (Some(e), None),
        Checked::Inactive(r, e) => (e, Some(r)),
    };
    let token = entry.as_deref().map(Entry::token);
    let visible = token.is_some_and(|t| who.may_see(&t.env));
    let answer = match (token, reason, visible) {
        (Some(t), None, true) => {
            state.metrics.introspected("active");
            Json(active_answer(&state, t)).into_response()
        }
        (token, reason, visible) => {
            let reason = if visible { reason.unwrap_or(InactiveReason::Unknown) } else { InactiveReason::Unknown };
            state.metrics.introspected(reason.as_str());
            // Only an admin who may see the token learns more than that it is inactive.
            let detail = matches!(who, Requester::Admin(_)) && visible;
            let token = token.filter(|_| detail);
            Json(InactiveAnswer {
                active: false,
                env: token.map(|t| t.env.as_str()),
                inactive_reason: detail.then(|| reason.as_str()),
                jti: token.map(|t| t.id.as_str()),
            })
            .into_response()
        }
    };
    Ok(answer)
}

/// Serializes as the text its `Display` writes, without building a `String` first.
struct AsStr<T>(T);

impl<T: fmt::Display> Serialize for AsStr<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The token endpoint's answer (RFC 6749 §5.1). Fields in alphabetical order, as the JSON
/// object maps these answers were first built with wrote them.
#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    expires_in: i64,
    scope: AsStr<&'a ScopeSet>,
    token_type: &'static str,
}

/// Introspection of an active token (RFC 7662 §2.2), borrowing from the indexed record.
/// Fields in alphabetical order, like [`TokenAnswer`].
#[derive(Serialize)]
struct ActiveAnswer<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<AsStr<Audience<'a>>>,
    client_id: &'a str,
    env: &'a str,
    exp: i64,
    iat: i64,
    iss: AsStr<Issuer<'a>>,
    jti: &'a str,
    nbf: i64,
    scope: AsStr<&'a ScopeSet>,
    sub: &'a str,
    token_type: &'static str,
}

/// Introspection of an inactive or unknown token: `{"active":false}` to everyone but an admin
/// who may see the token, who also gets why and which token.
#[derive(Serialize)]
struct InactiveAnswer<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inactive_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
}

/// A token's `aud`: the audience it was minted for, else (JWTs) its issuer.
enum Audience<'a> {
    Named(&'a str),
    Issuer(Issuer<'a>),
}

impl fmt::Display for Audience<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Audience::Named(a) => f.write_str(a),
            Audience::Issuer(i) => i.fmt(f),
        }
    }
}

fn active_answer<'a>(state: &'a AppState, t: &'a Token) -> ActiveAnswer<'a> {
    let issuer = state.issuer_of(&t.env);
    let aud = match (&t.audience, t.format) {
        (Some(a), _) => Some(Audience::Named(a)),
        (None, TokenFormat::Jwt) => Some(Audience::Issuer(issuer)),
        (None, TokenFormat::Opaque) => None,
    };
    ActiveAnswer {
        active: true,
        aud: aud.map(AsStr),
        client_id: &t.client_id,
        env: &t.env,
        exp: t.expires_at.timestamp(),
        iat: t.created_at.timestamp(),
        iss: AsStr(issuer),
        jti: &t.id,
        nbf: t.not_before.unwrap_or(t.created_at).timestamp(),
        scope: AsStr(&t.scopes),
        sub: &t.client_id,
        token_type: "Bearer",
    }
}

async fn revoke(State(state): State<AppState>, req: FormRequest) -> OAuthResult<Response> {
    let p = form(&req.headers, &req.body)?;
    let who = requester(&state, &req.headers, &p).await?;
    let raw = p.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    if let Some(hint) = p.get("token_type_hint") {
        if !matches!(hint, "access_token" | "refresh_token") {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_token_type",
                format!("token_type_hint {hint:?} is not supported"),
            ));
        }
    }
    // RFC 7009 §2.2: invalid, unknown and already inactive tokens get 200 too.
    let token = match check(&state, raw, Count::Peek).await? {
        Checked::Active(e) => Some(e.snapshot()),
        Checked::Inactive(InactiveReason::Unknown, _) => None,
        Checked::Inactive(_, e) => e.map(|e| e.snapshot()),
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
