//! `/v1/upstreams`: the third-party APIs the gateway forwards to, per environment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_api::{PutUpstream, UpstreamList, UpstreamView};
use tessera_core::audit::actions;
use tessera_core::upstream::{Injection, Upstream};
use tessera_core::{format_duration, Access, AuditEvent};
use tessera_store::{Change, WriteUnit};

use super::{duration_field, EnvFilter};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::state::AppState;
use crate::tokens;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/upstreams", post(put).get(list)).route("/v1/upstreams/{env}/{name}", get(show))
}

const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn view(state: &AppState, u: &Upstream) -> UpstreamView {
    UpstreamView {
        name: u.name.clone(),
        env: u.env.clone(),
        url: u.url.clone(),
        secret: u.secret.clone(),
        inject: u.inject.to_string(),
        allow_paths: u.allow_paths.clone(),
        allow_methods: u.allow_methods.clone(),
        timeout: format_duration(u.timeout),
        gateway_url: format!("{}/gw/{}", state.public_url, u.name),
    }
}

async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PutUpstream>,
) -> ApiResult<(StatusCode, Json<UpstreamView>)> {
    caller.require(&req.env, Access::Write)?;
    tessera_core::names::validate_client_id(&req.name).map_err(|_| {
        ApiError::Validation(format!("invalid upstream name {:?}: use a-z, 0-9, '-', '.', '_'", req.name))
    })?;
    crate::secrets::check_name(&req.secret)?;
    tokens::environment(&state, &req.env).await?;
    let url = url::Url::parse(&req.url).map_err(|e| ApiError::Validation(format!("url {:?}: {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ApiError::Validation("url must be an http:// or https:// URL with a host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::Validation("url must not carry a query, fragment or credentials".into()));
    }
    let inject: Injection = req
        .inject
        .as_deref()
        .unwrap_or("header:Authorization=Bearer {secret}")
        .parse()
        .map_err(|e: tessera_core::upstream::InjectionError| ApiError::Validation(e.to_string()))?;
    for p in &req.allow_paths {
        if !p.starts_with('/') || !tessera_core::upstream::is_safe_path(p) {
            return Err(ApiError::Validation(format!("allow_paths: {p:?} must be an absolute path without '..'")));
        }
    }
    for m in &req.allow_methods {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ApiError::Validation(format!("allow_methods: {m:?} is not an HTTP method")));
        }
    }
    let timeout = duration_field("timeout", req.timeout.as_deref())?.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.as_secs() == 0 || timeout.as_secs() > 600 {
        return Err(ApiError::Validation("timeout must be between 1s and 10m".into()));
    }
    let upstream = Upstream {
        env: req.env.clone(),
        name: req.name.clone(),
        url: url.as_str().trim_end_matches('/').to_owned(),
        secret: req.secret.clone(),
        inject,
        allow_paths: req.allow_paths.clone(),
        allow_methods: req.allow_methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        timeout,
        created_at: crate::now(),
    };
    let event = AuditEvent::new(actions::UPSTREAM_PUT, &caller.token_id)
        .env(&upstream.env)
        .target(&upstream.name)
        .detail("url", upstream.url.clone())
        .detail("secret", upstream.secret.clone())
        .detail("inject", upstream.inject.to_string());
    state.store.commit(WriteUnit::new(Change::PutUpstream(upstream.clone()), event)).await?;
    let shown = view(&state, &upstream);
    state.upstreams.put(upstream);
    Ok((StatusCode::CREATED, Json(shown)))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EnvFilter>,
) -> ApiResult<Json<UpstreamList>> {
    q.check(&caller)?;
    let upstreams = state
        .upstreams
        .all()
        .iter()
        .filter(|u| q.env.as_ref().is_none_or(|e| &u.env == e) && caller.can(&u.env, Access::Read))
        .map(|u| view(&state, u))
        .collect();
    Ok(Json(UpstreamList { upstreams }))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<UpstreamView>> {
    caller.require(&env, Access::Read)?;
    let u = state
        .upstreams
        .get(&env, &name)
        .ok_or_else(|| ApiError::NotFound(format!("upstream {name:?} not found in environment {env:?}")))?;
    Ok(Json(view(&state, &u)))
}
