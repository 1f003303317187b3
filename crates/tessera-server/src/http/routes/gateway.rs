//! The credential-injecting gateway, `ANY /gw/{upstream}/{*path}`, and its fault rules
//! (`/v1/gateway/faults`).
//!
//! The caller presents a Tessera token with scope `gw:{upstream}`; its environment selects the
//! upstream. The gateway removes the caller's credential, injects the upstream secret, streams
//! both bodies, masks the secret if the upstream echoes it, and records the use in a batch.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use tessera_api::{AddFault, FaultList, FaultView};
use tessera_core::audit::actions;
use tessera_core::id::new_public_id;
use tessera_core::mask::Masker;
use tessera_core::upstream::{is_safe_path, Fault, FaultKind, Injection, Upstream};
use tessera_core::{format_duration, Access, AuditEvent, InactiveReason};
use tessera_store::{Change, GatewayUse, WriteUnit};

use super::duration_field;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{bearer, ApiJson, ApiQuery, Caller};
use crate::index::Entry;
use crate::state::{AppState, ByEnv, SecretValue};
use crate::validate::{check, Checked, Count};
use crate::{secrets, tokens};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/gw/{upstream}", any(proxy_root))
        .route("/gw/{upstream}/{*path}", any(proxy))
        .route("/v1/gateway/faults", get(list_faults).post(add_fault).delete(clear_faults))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and others the gateway never forwards (as
/// `HeaderName`s: removing by `&str` would parse the name again on every request).
const DROPPED: [HeaderName; 11] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::AUTHORIZATION,
];

/// Removes from `headers` those the gateway never forwards: [`DROPPED`] and the headers named
/// in `Connection` (hop-by-hop too). Works in place: the other headers keep their order and
/// are not copied.
fn strip_unforwardable(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&DROPPED) {
        headers.remove(name);
    }
}

/// What the gateway derives from an upstream and the value of its secret: built on the first
/// request after either changes, not per request.
pub struct PreparedUpstream {
    upstream: Arc<Upstream>,
    secret: SecretValue,
    /// `upstream.url` parsed, and the path it ends with (`""` for none): a request's URL is
    /// this with `{base path}{request path}` set as its path.
    base: Option<(url::Url, String)>,
    /// The injected header, or why it cannot be built (answered when a request needs it).
    header: Option<Result<(HeaderName, HeaderValue), &'static str>>,
    /// Masks the secret and its encodings; cloned (cheaply) per response.
    masker: Masker,
}

impl PreparedUpstream {
    fn new(upstream: Arc<Upstream>, secret: SecretValue) -> Self {
        let base = url::Url::parse(&upstream.url).ok().map(|u| {
            // The stored URL has no trailing `/`: a bare host parses to the path `/`, which the
            // request path replaces.
            let path = if u.path() == "/" { String::new() } else { u.path().to_owned() };
            (u, path)
        });
        let header = match &upstream.inject {
            Injection::Header { name, template } => Some(injected_header(name, template, &secret)),
            _ => None,
        };
        let masker = Masker::with_encodings([secret.as_bytes()]);
        Self { upstream, secret, base, header, masker }
    }

    /// The upstream URL of request path `path` (query not set): what parsing
    /// `{upstream.url}{path}` gives, without parsing the scheme and host again.
    fn url(&self, path: &str) -> Result<url::Url, url::ParseError> {
        match &self.base {
            Some((base, base_path)) => {
                let mut url = base.clone();
                if base_path.is_empty() {
                    url.set_path(path);
                } else {
                    url.set_path(&format!("{base_path}{path}"));
                }
                Ok(url)
            }
            None => url::Url::parse(&format!("{}{path}", self.upstream.url)),
        }
    }
}

fn injected_header(name: &str, template: &str, secret: &str) -> Result<(HeaderName, HeaderValue), &'static str> {
    let value = zeroize::Zeroizing::new(template.replace("{secret}", secret));
    let mut value = HeaderValue::from_str(&value).map_err(|_| "the secret does not fit in an HTTP header")?;
    value.set_sensitive(true);
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "bad header name")?;
    Ok((name, value))
}

/// [`PreparedUpstream`]s by environment and upstream name. An entry is used only while it was
/// built from the upstream record and secret value currently cached (same `Arc`s), so any
/// change of either rebuilds it; a new secret version also drops it at once
/// ([`forget_secret`](Self::forget_secret)).
#[derive(Default)]
pub struct PreparedUpstreams {
    entries: RwLock<ByEnv<Arc<PreparedUpstream>>>,
}

impl fmt::Debug for PreparedUpstreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedUpstreams").finish_non_exhaustive()
    }
}

impl PreparedUpstreams {
    fn get(&self, upstream: &Arc<Upstream>, secret: &SecretValue) -> Arc<PreparedUpstream> {
        let current = |p: &&Arc<PreparedUpstream>| Arc::ptr_eq(&p.upstream, upstream) && Arc::ptr_eq(&p.secret, secret);
        {
            let entries = self.entries.read().expect("prepared upstreams lock");
            if let Some(p) = entries.get(&upstream.env).and_then(|m| m.get(&upstream.name)).filter(current) {
                return p.clone();
            }
        }
        let prepared = Arc::new(PreparedUpstream::new(upstream.clone(), secret.clone()));
        let mut entries = self.entries.write().expect("prepared upstreams lock");
        entries.entry(upstream.env.clone()).or_default().insert(upstream.name.clone(), prepared.clone());
        prepared
    }

    /// Drops what was prepared with secret `name` of `env` (its value changed).
    pub fn forget_secret(&self, env: &str, name: &str) {
        if let Some(m) = self.entries.write().expect("prepared upstreams lock").get_mut(env) {
            m.retain(|_, p| p.upstream.secret != name);
        }
    }
}

async fn proxy_root(state: State<AppState>, Path(upstream): Path<String>, req: Request) -> Response {
    forward(state.0, upstream, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn proxy(state: State<AppState>, Path((upstream, _)): Path<(String, String)>, req: Request) -> Response {
    forward(state.0, upstream, req).await.unwrap_or_else(IntoResponse::into_response)
}

/// An injected fault's answer: exactly what a resource server says for an expired token.
fn injected(status: u16) -> ApiError {
    match status {
        401 => ApiError::InvalidToken("token expired (injected by a gateway fault)".into()),
        403 => ApiError::InsufficientScope {
            needed: "".into(),
            detail: "insufficient scope (injected by a gateway fault)".into(),
        },
        429 | 500 | 502 | 503 | 504 => ApiError::Unavailable(format!("injected by a gateway fault ({status})")),
        _ => ApiError::BadRequest(format!("injected by a gateway fault ({status})")),
    }
}

/// Applies the fault rules for this request. Returns an error to answer instead of
/// forwarding, and whether to revoke the token after forwarding.
async fn apply_faults(state: &AppState, entry: &Entry, upstream: &str) -> Result<bool, Response> {
    let token = entry.token();
    let mut revoke_after_forward = false;
    for fault in state.faults.matching(&token.env, upstream, &token.id) {
        match &fault.kind {
            FaultKind::Latency { delay } => tokio::time::sleep(*delay).await,
            FaultKind::FailAfter { n, status } => {
                if state.faults.count(&fault, &token.id) >= *n {
                    let mut resp = injected(*status).into_response();
                    *resp.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::UNAUTHORIZED);
                    return Err(resp);
                }
            }
            FaultKind::RevokeAfter { n } => {
                if state.faults.count(&fault, &token.id) >= *n {
                    revoke_after_forward = true;
                }
            }
            FaultKind::RotateAfter { after } => {
                let elapsed = (crate::now() - fault.created_at).to_std().unwrap_or_default();
                if elapsed >= *after && token.superseded_by.is_none() {
                    let result =
                        tokens::rotate(state, &format!("fault:{}", fault.id), entry.snapshot(), Some(Duration::ZERO))
                            .await;
                    if let Err(e) = result {
                        tracing::warn!(fault = %fault.id, error = %e, "rotate_after fault could not rotate");
                    }
                    return Err(ApiError::InvalidToken("token is inactive (rotated)".into()).into_response());
                }
            }
        }
    }
    Ok(revoke_after_forward)
}

async fn forward(state: AppState, upstream_name: String, req: Request) -> Result<Response, Response> {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let err = |e: ApiError| e.into_response();
    let raw = bearer(&parts.headers).and_then(|b| b.ok_or(ApiError::MissingCredentials)).map_err(err)?;
    let entry = match check(&state, raw, Count::Use).await.map_err(err)? {
        Checked::Active(e) => e,
        Checked::Inactive(InactiveReason::Unknown, _) => {
            return Err(err(ApiError::InvalidToken("unknown token".into())))
        }
        Checked::Inactive(reason, _) => {
            return Err(err(ApiError::InvalidToken(format!("token is inactive ({reason})"))))
        }
    };
    let token = entry.token();
    if !token.scopes.iter().any(|s| s.as_str().strip_prefix("gw:") == Some(upstream_name.as_str())) {
        let scope = format!("gw:{upstream_name}");
        return Err(err(ApiError::InsufficientScope {
            detail: format!("the gateway needs scope {scope}"),
            needed: scope,
        }));
    }
    let upstream = state.upstreams.get(&token.env, &upstream_name).ok_or_else(|| {
        err(ApiError::NotFound(format!("no upstream {upstream_name:?} in environment {}", token.env)))
    })?;
    // The raw (still percent-encoded) path is what is checked and forwarded, so an encoded
    // `..` or `/` cannot slip past the allow-list by being decoded later.
    let path = match parts.uri.path().strip_prefix("/gw/").and_then(|p| p.strip_prefix(upstream_name.as_str())) {
        Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        _ => return Err(err(ApiError::BadRequest("malformed gateway path".into()))),
    };
    if !is_safe_path(&path) {
        return Err(err(ApiError::BadRequest("the path contains '.', '..', '//' or encoded separators".into())));
    }
    if !upstream.allows_path(&path) {
        return Err(err(ApiError::Forbidden(format!(
            "path {path} is outside the allowed prefixes of upstream {}",
            upstream.name
        ))));
    }
    if !upstream.allows_method(parts.method.as_str()) {
        return Err(err(ApiError::Forbidden(format!(
            "method {} is not allowed for upstream {}",
            parts.method, upstream.name
        ))));
    }
    if parts.headers.contains_key(header::TRANSFER_ENCODING) && parts.headers.contains_key(header::CONTENT_LENGTH) {
        return Err(err(ApiError::BadRequest("conflicting Content-Length and Transfer-Encoding".into())));
    }
    let revoke_after = apply_faults(&state, &entry, &upstream.name).await?;
    let secret = secrets::value_for_injection(&state, &token.env, &upstream.secret).await.map_err(|e| match e {
        ApiError::NotFound(_) => err(ApiError::Unavailable(format!(
            "upstream {} needs secret {:?}, which is not set in environment {}",
            upstream.name, upstream.secret, token.env
        ))),
        other => err(other),
    })?;
    let prepared = state.prepared_upstreams.get(&upstream, &secret);

    let mut url =
        prepared.url(&path).map_err(|_| err(ApiError::BadRequest("the path does not form a valid URL".into())))?;
    let query = parts.uri.query().unwrap_or("");
    if !query.is_empty() || matches!(upstream.inject, Injection::Query { .. }) {
        // Forward the query without any credential of the caller.
        let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != "access_token" && !matches!(&upstream.inject, Injection::Query { name } if name == k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        if let Injection::Query { name } = &upstream.inject {
            q.append_pair(name, secret.as_str());
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let mut headers = std::mem::take(&mut parts.headers);
    strip_unforwardable(&mut headers);
    if let Some(injected) = &prepared.header {
        let (name, value) = injected.clone().map_err(|e| err(ApiError::Internal(e.into())))?;
        headers.insert(name, value);
    }
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
    let outbound = state
        .http
        .request(method, url)
        .headers(headers)
        .timeout(upstream.timeout)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let result = outbound.send().await;
    let latency_us = started.elapsed().as_micros() as u64;
    let record = |status: u16| GatewayUse {
        at: crate::now(),
        env: token.env.clone(),
        upstream: upstream.name.clone(),
        token_id: token.id.clone(),
        run_id: token.run_id.clone(),
        method: parts.method.to_string(),
        path: path.clone(),
        status,
        latency_us,
    };
    let mut upstream_response = match result {
        Ok(r) => r,
        Err(e) => {
            let answer = if e.is_timeout() {
                ApiError::GatewayTimeout(format!(
                    "upstream {} did not answer within {}",
                    upstream.name,
                    format_duration(upstream.timeout)
                ))
            } else {
                ApiError::BadGateway(format!("upstream {} is unreachable", upstream.name))
            };
            state.gateway_uses.lock().expect("usage lock").push(record(answer.status().as_u16()));
            return Err(err(answer));
        }
    };
    let status = upstream_response.status();
    state.gateway_uses.lock().expect("usage lock").push(record(status.as_u16()));
    if revoke_after {
        if let Err(e) = tokens::revoke(
            &state,
            "gateway-fault",
            "gateway",
            vec![entry.snapshot()],
            Some("revoke_after fault".into()),
        )
        .await
        {
            tracing::warn!(error = %e, "revoke_after fault could not revoke");
        }
    }
    let masker = prepared.masker.clone();
    let mut response_headers = std::mem::take(upstream_response.headers_mut());
    strip_unforwardable(&mut response_headers);
    for value in response_headers.values_mut() {
        if let Cow::Owned(masked) = masker.mask_all_borrowed(value.as_bytes()) {
            // `*` for bytes of a valid value is valid; should it not be, nothing is shown.
            *value = HeaderValue::from_bytes(&masked).unwrap_or_else(|_| HeaderValue::from_static(""));
        }
    }
    let stream = futures_util::stream::unfold(
        (upstream_response.bytes_stream(), masker, false),
        |(mut stream, mut masker, done)| async move {
            if done {
                return None;
            }
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let out = match masker.push_borrowed(&chunk) {
                        Cow::Borrowed(_) => chunk.clone(),
                        Cow::Owned(masked) => Bytes::from(masked),
                    };
                    Some((Ok::<_, std::io::Error>(out), (stream, masker, false)))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), (stream, masker, true))),
                None => Some((Ok(Bytes::from(masker.finish())), (stream, masker, true))),
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Ok(response)
}

fn fault_view(f: &Fault) -> FaultView {
    let (kind, detail) = match &f.kind {
        FaultKind::FailAfter { n, status } => ("fail_after", format!("from request {n} answer {status}")),
        FaultKind::RevokeAfter { n } => ("revoke_after", format!("revoke after {n} requests")),
        FaultKind::RotateAfter { after } => ("rotate_after", format!("rotate after {}", format_duration(*after))),
        FaultKind::Latency { delay } => ("latency", format!("add {}", format_duration(*delay))),
    };
    FaultView {
        id: f.id.clone(),
        env: f.env.clone(),
        upstream: f.upstream.clone(),
        token: f.token_id.clone(),
        kind: kind.to_owned(),
        detail,
        created_at: f.created_at,
    }
}

async fn add_fault(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<AddFault>,
) -> ApiResult<(StatusCode, Json<FaultView>)> {
    caller.require(&req.env, Access::Write)?;
    let env = tokens::environment(&state, &req.env).await?;
    if env.protected {
        return Err(ApiError::Forbidden(format!(
            "environment {} is protected: gateway fault injection is refused there",
            env.name
        )));
    }
    let given =
        [req.fail_after.is_some(), req.revoke_after.is_some(), req.rotate_after.is_some(), req.latency.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::Validation("give exactly one of fail_after, revoke_after, rotate_after, latency".into()));
    }
    if req.status.is_some() && req.fail_after.is_none() {
        return Err(ApiError::Validation("status goes with fail_after".into()));
    }
    let kind = if let Some(n) = req.fail_after {
        let status = req.status.unwrap_or(401);
        if !(400..=599).contains(&status) {
            return Err(ApiError::Validation("status must be a 4xx or 5xx code".into()));
        }
        FaultKind::FailAfter { n: n.max(1), status }
    } else if let Some(n) = req.revoke_after {
        FaultKind::RevokeAfter { n: n.max(1) }
    } else if let Some(after) = duration_field("rotate_after", req.rotate_after.as_deref())? {
        FaultKind::RotateAfter { after }
    } else {
        let delay = duration_field("latency", req.latency.as_deref())?.unwrap_or_default();
        if delay > Duration::from_secs(300) {
            return Err(ApiError::Validation("latency must be at most 5m".into()));
        }
        FaultKind::Latency { delay }
    };
    let fault = Fault {
        id: new_public_id("flt"),
        env: env.name.clone(),
        upstream: req.upstream.clone(),
        token_id: req.token.clone(),
        kind,
        created_at: crate::now(),
        created_by: caller.token_id.clone(),
    };
    let view = fault_view(&fault);
    let mut event = AuditEvent::new(actions::FAULT_ADD, &caller.token_id)
        .env(&fault.env)
        .target(&fault.id)
        .detail("upstream", fault.upstream.clone())
        .detail("kind", view.kind.clone())
        .detail("rule", view.detail.clone());
    if let Some(t) = &fault.token_id {
        event = event.detail("token", t.clone());
    }
    state.store.commit(WriteUnit::new(Change::AddFault(fault.clone()), event)).await?;
    state.faults.add(fault);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_faults(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<FaultList>> {
    let faults =
        state.faults.all().iter().filter(|f| caller.can(&f.env, Access::Read)).map(|f| fault_view(f)).collect();
    Ok(Json(FaultList { faults }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearQuery {
    env: Option<String>,
    upstream: Option<String>,
}

async fn clear_faults(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ClearQuery>,
) -> ApiResult<Json<FaultList>> {
    match &q.env {
        Some(env) => caller.require(env, Access::Write)?,
        None => caller.require_admin("clearing faults of every environment")?,
    }
    let (cleared, kept): (Vec<_>, Vec<_>) = state.faults.all().into_iter().partition(|f| {
        q.env.as_ref().is_none_or(|e| &f.env == e) && q.upstream.as_ref().is_none_or(|u| &f.upstream == u)
    });
    let mut event = AuditEvent::new(actions::FAULT_CLEAR, &caller.token_id).detail("count", cleared.len().to_string());
    if let Some(env) = &q.env {
        event = event.env(env);
    }
    if let Some(u) = &q.upstream {
        event = event.detail("upstream", u.clone());
    }
    state
        .store
        .commit(WriteUnit::new(Change::ClearFaults { env: q.env.clone(), upstream: q.upstream.clone() }, event))
        .await?;
    state.faults.set(kept.iter().map(|f| (**f).clone()).collect());
    Ok(Json(FaultList { faults: cleared.iter().map(|f| fault_view(f)).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Arc<Upstream> {
        Arc::new(Upstream {
            env: "e".into(),
            name: "u".into(),
            url: url.into(),
            secret: "s".into(),
            inject: Injection::Header { name: "authorization".into(), template: "Bearer {secret}".into() },
            allow_paths: vec![],
            allow_methods: vec![],
            timeout: Duration::from_secs(1),
            created_at: crate::now(),
        })
    }

    // A request path never holds `?` or `#`: the URI parser has split them off.
    #[test]
    fn prepared_urls_are_what_parsing_the_whole_url_gives() {
        let secret: SecretValue = Arc::new(zeroize::Zeroizing::new("sk_test_x".to_owned()));
        let bases = ["http://127.0.0.1:8080", "https://api.example", "https://api.example/v2", "http://[::1]:9/a%20b"];
        let paths = ["/", "/v1/ping", "/a%2Fb", "/a b", "/ü/%7B", "/{x}|\"y\"", "/a\\b", "/x;y=1,z", "/%"];
        for base in bases {
            let prepared = PreparedUpstream::new(upstream(base), secret.clone());
            for path in paths {
                let whole = url::Url::parse(&format!("{base}{path}")).map(|u| u.to_string());
                assert_eq!(prepared.url(path).map(|u| u.to_string()), whole, "{base} + {path}");
            }
        }
    }
}
