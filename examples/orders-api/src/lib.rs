//! An example API under test that trusts Tessera as its issuer: JWTs are verified against the
//! environment's JWKS and then introspected (so revocation, idle expiry and use limits count),
//! opaque tokens are introspected. Each `--bug` switch injects one realistic auth bug, so
//! `tessera authtest` has something to find.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// The bugs a switch can inject.
pub const BUGS: [&str; 7] = [
    "accept-expired",
    "missing-403",
    "no-www-authenticate",
    "ignore-scopes",
    "accept-alg-none",
    "echo-token",
    "ignore-revocation",
];

/// How the API runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The Tessera issuer it trusts, e.g. `http://127.0.0.1:7340/env/staging`.
    pub issuer: String,
    /// Tessera's introspection endpoint.
    pub introspect_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub audience: String,
    pub bugs: BTreeSet<String>,
}

impl Config {
    pub fn from_args(args: impl Iterator<Item = String>) -> anyhow::Result<Config> {
        let mut c = Config {
            listen: "127.0.0.1:0".parse()?,
            issuer: String::new(),
            introspect_url: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            audience: "orders-api".into(),
            bugs: BTreeSet::new(),
        };
        let mut args = args.peekable();
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--listen" => c.listen = value()?.parse()?,
                "--issuer" => c.issuer = value()?,
                "--introspect" => c.introspect_url = value()?,
                "--client-id" => c.client_id = value()?,
                "--client-secret" => c.client_secret = value()?,
                "--audience" => c.audience = value()?,
                "--bug" => {
                    let bug = value()?;
                    if !BUGS.contains(&bug.as_str()) {
                        bail!("unknown bug {bug:?} (one of {})", BUGS.join(", "));
                    }
                    c.bugs.insert(bug);
                }
                other => bail!("unknown argument {other:?}"),
            }
        }
        if c.issuer.is_empty() || c.introspect_url.is_empty() {
            bail!("--issuer and --introspect are required");
        }
        Ok(c)
    }

    fn bug(&self, name: &str) -> bool {
        self.bugs.contains(name)
    }
}

struct AppState {
    config: Config,
    http: reqwest::Client,
    jwks: RwLock<Option<JwkSet>>,
}

/// A running API.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds and serves until the task is dropped or aborted.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState { config, http: reqwest::Client::new(), jwks: RwLock::new(None) });
    let app = Router::new()
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(show))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Running { addr, task })
}

/// The OpenAPI document of this API.
pub fn openapi() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Orders", "version": "1.0"},
        "security": [{"tessera": ["orders:read"]}],
        "components": {
            "securitySchemes": {
                "tessera": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "/oauth2/token", "scopes": {"orders:read": "read", "orders:write": "write"}}}}
            },
            "schemas": {
                "NewOrder": {"type": "object", "required": ["item", "quantity"], "properties": {"item": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}}}
            }
        },
        "paths": {
            "/orders": {
                "get": {"operationId": "listOrders", "tags": ["orders"], "security": [{"tessera": ["orders:read"]}],
                        "parameters": [{"name": "limit", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1}}]},
                "post": {"operationId": "createOrder", "tags": ["orders"], "security": [{"tessera": ["orders:write"]}],
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewOrder"}}}}}
            },
            "/orders/{id}": {
                "get": {"operationId": "getOrder", "tags": ["orders"],
                        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "example": "ord_1"}}]}
            },
            "/health": {"get": {"operationId": "health", "security": []}}
        }
    })
}

/// A rejection in RFC 6750 form, as a correct API gives it (bugs alter it).
fn reject(
    s: &AppState,
    status: StatusCode,
    error: Option<&str>,
    description: &str,
    token: Option<&str>,
    scope: Option<&str>,
) -> Response {
    let status = if status == StatusCode::UNAUTHORIZED && error.is_none() && s.config.bug("missing-403") {
        StatusCode::FORBIDDEN
    } else {
        status
    };
    let mut body = json!({"error": error.unwrap_or("unauthorized"), "error_description": description});
    if let (true, Some(t)) = (s.config.bug("echo-token"), token) {
        body["token"] = json!(t);
    }
    let mut resp = (status, Json(body)).into_response();
    if !s.config.bug("no-www-authenticate") {
        let mut challenge = "Bearer realm=\"orders\"".to_owned();
        if let Some(e) = error {
            challenge.push_str(&format!(", error=\"{e}\", error_description=\"{description}\""));
        }
        if let Some(sc) = scope {
            challenge.push_str(&format!(", scope=\"{sc}\""));
        }
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).expect("ASCII challenge"));
    }
    resp
}

async fn jwks(s: &AppState, refresh: bool) -> Option<JwkSet> {
    if !refresh {
        if let Some(set) = s.jwks.read().expect("jwks lock").clone() {
            return Some(set);
        }
    }
    let set: JwkSet =
        s.http.get(format!("{}/.well-known/jwks.json", s.config.issuer)).send().await.ok()?.json().await.ok()?;
    *s.jwks.write().expect("jwks lock") = Some(set.clone());
    Some(set)
}

async fn introspect(s: &AppState, token: &str) -> Option<Value> {
    let resp = s
        .http
        .post(&s.config.introspect_url)
        .basic_auth(&s.config.client_id, Some(&s.config.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// The token's scopes, or the rejection to send.
async fn authenticate(s: &AppState, headers: &HeaderMap) -> Result<BTreeSet<String>, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(reject(s, StatusCode::UNAUTHORIZED, None, "a bearer token is required", None, None));
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(reject(
            s,
            StatusCode::UNAUTHORIZED,
            Some("invalid_request"),
            "malformed Authorization header",
            None,
            None,
        ));
    };
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(reject(s, StatusCode::UNAUTHORIZED, Some("invalid_request"), "use the Bearer scheme", None, None));
    }
    let token = token.trim();
    let invalid = |d: &str| reject(s, StatusCode::UNAUTHORIZED, Some("invalid_token"), d, Some(token), None);
    let claims: Option<Value>;
    if token.split('.').count() == 3 {
        let header = decode_header(token);
        let alg_none = token
            .split('.')
            .next()
            .and_then(|h| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok()
            })
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .is_some_and(|h| h["alg"] == "none");
        if alg_none && s.config.bug("accept-alg-none") {
            use base64::Engine;
            let payload = token.split('.').nth(1).unwrap_or_default();
            claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
                .and_then(|p| serde_json::from_slice(&p).ok());
        } else {
            let header = header.map_err(|_| invalid("malformed token"))?;
            let kid = header.kid.clone().ok_or_else(|| invalid("no key id"))?;
            let mut set = jwks(s, false).await;
            if set.as_ref().is_none_or(|k| k.find(&kid).is_none()) {
                set = jwks(s, true).await;
            }
            let jwk = set.as_ref().and_then(|k| k.find(&kid).cloned()).ok_or_else(|| invalid("unknown signing key"))?;
            if ![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256].contains(&header.alg) {
                return Err(invalid("algorithm not allowed"));
            }
            let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable signing key"))?;
            let mut v = Validation::new(header.alg);
            v.set_issuer(&[&s.config.issuer]);
            v.set_audience(&[&s.config.audience]);
            v.validate_nbf = true;
            if s.config.bug("accept-expired") {
                v.validate_exp = false;
                v.required_spec_claims.remove("exp");
            }
            let data =
                decode::<Value>(token, &key, &v).map_err(|e| invalid(&format!("token rejected: {:?}", e.kind())))?;
            claims = Some(data.claims);
        }
        // The accept-expired bug checks expiry nowhere: not locally, and not by asking.
        let expired = claims.as_ref().and_then(|c| c["exp"].as_i64()).is_some_and(|exp| exp < now_secs());
        let skip_issuer = (expired && s.config.bug("accept-expired")) || (alg_none && s.config.bug("accept-alg-none"));
        // Local validation cannot see revocation, idle expiry or use limits: ask the issuer.
        if !s.config.bug("ignore-revocation") && !skip_issuer {
            let answer = introspect(s, token).await.ok_or_else(|| invalid("the issuer cannot be reached"))?;
            if answer["active"] != true {
                return Err(invalid("token is not active"));
            }
        }
    } else {
        let answer = introspect(s, token).await.ok_or_else(|| invalid("the issuer cannot be reached"))?;
        if answer["active"] != true {
            return Err(invalid("token is not active"));
        }
        if answer["active"] == true && answer["aud"].as_str().is_some_and(|a| a != s.config.audience) {
            return Err(invalid("token is for another audience"));
        }
        claims = Some(answer);
    }
    let claims = claims.ok_or_else(|| invalid("token rejected"))?;
    Ok(claims["scope"].as_str().unwrap_or_default().split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect())
}

async fn guarded(s: &AppState, headers: &HeaderMap, scope: &str) -> Result<(), Response> {
    let scopes = authenticate(s, headers).await?;
    if !scopes.contains(scope) && !s.config.bug("ignore-scopes") {
        return Err(reject(
            s,
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the token lacks a scope",
            None,
            Some(scope),
        ));
    }
    Ok(())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

type Shared = State<Arc<AppState>>;

async fn list(State(s): Shared, req: Request) -> Response {
    if let Err(r) = guarded(&s, req.headers(), "orders:read").await {
        return r;
    }
    Json(json!({"orders": [{"id": "ord_1", "item": "coffee", "quantity": 2}]})).into_response()
}

async fn create(State(s): Shared, req: Request) -> Response {
    if let Err(r) = guarded(&s, req.headers(), "orders:write").await {
        return r;
    }
    (StatusCode::CREATED, Json(json!({"id": "ord_2"}))).into_response()
}

async fn show(State(s): Shared, req: Request) -> Response {
    if let Err(r) = guarded(&s, req.headers(), "orders:read").await {
        return r;
    }
    Json(json!({"id": "ord_1", "item": "coffee", "quantity": 2})).into_response()
}
