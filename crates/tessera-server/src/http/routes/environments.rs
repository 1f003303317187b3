//! `/v1/environments`: create (tessera:admin), list (what the caller may read), show.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tessera_api::{CreateEnvironment, EnvironmentList, EnvironmentView};
use tessera_core::audit::actions;
use tessera_core::names::validate_new_env_name;
use tessera_core::{format_duration, Access, AuditEvent, EnvPolicy, Environment};
use tessera_store::{Change, WriteUnit};

use super::duration_field;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Caller};
use crate::keys::{self, Alg};
use crate::state::AppState;
use crate::{tokens, views};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/environments", get(list).post(create)).route("/v1/environments/{name}", get(show))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEnvironment>,
) -> ApiResult<(StatusCode, Json<EnvironmentView>)> {
    caller.require_admin("creating an environment")?;
    validate_new_env_name(&req.name).map_err(|e| ApiError::Validation(e.to_string()))?;
    let policy = EnvPolicy::from_parts(
        duration_field("default_ttl", req.default_ttl.as_deref())?,
        duration_field("max_ttl", req.max_ttl.as_deref())?,
        duration_field("idle_ttl", req.idle_ttl.as_deref())?,
        duration_field("rotation_period", req.rotation_period.as_deref())?,
        req.max_uses,
    )
    .map_err(|e| ApiError::Validation(e.to_string()))?;
    let env = Environment { name: req.name, policy, protected: req.protected, created_at: crate::now() };
    let p = &env.policy;
    let mut event = AuditEvent::new(actions::ENVIRONMENT_CREATE, &caller.token_id)
        .env(&env.name)
        .target(&env.name)
        .detail("default_ttl", format_duration(p.default_ttl))
        .detail("max_ttl", format_duration(p.max_ttl))
        .detail("protected", env.protected.to_string());
    if let Some(d) = p.idle_ttl {
        event = event.detail("idle_ttl", format_duration(d));
    }
    if let Some(d) = p.rotation_period {
        event = event.detail("rotation_period", format_duration(d));
    }
    if let Some(n) = p.max_uses {
        event = event.detail("max_uses", n.to_string());
    }
    state.store.commit(WriteUnit::new(Change::CreateEnvironment(env.clone()), event)).await?;
    state.environments.insert(env.clone());
    // The issuer's default keys (current and pre-published next), so its JWKS is ready before
    // the first JWT is minted.
    keys::ensure(&state, &caller.token_id, &env.name, Alg::EdDSA).await?;
    Ok((StatusCode::CREATED, Json(views::environment(&env))))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<EnvironmentList>> {
    let environments = state
        .store
        .environments()
        .await?
        .iter()
        .filter(|e| caller.can(&e.name, Access::Read))
        .map(views::environment)
        .collect();
    Ok(Json(EnvironmentList { environments }))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<EnvironmentView>> {
    caller.require(&name, Access::Read)?;
    let env = tokens::environment(&state, &name).await?;
    Ok(Json(views::environment(&env)))
}
