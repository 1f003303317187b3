//! `/v1/environments`: create (tessera:admin), list (what the caller may read), show.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tessera_api::{CreateEnvironment, EnvironmentList, EnvironmentView, Upserted};
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
    Router::new()
        .route("/v1/environments", get(list).post(create))
        .route("/v1/environments/{name}", get(show).put(upsert))
}

fn build(req: CreateEnvironment) -> ApiResult<Environment> {
    validate_new_env_name(&req.name).map_err(|e| ApiError::Validation(e.to_string()))?;
    let policy = EnvPolicy::from_parts(
        duration_field("default_ttl", req.default_ttl.as_deref())?,
        duration_field("max_ttl", req.max_ttl.as_deref())?,
        duration_field("idle_ttl", req.idle_ttl.as_deref())?,
        duration_field("rotation_period", req.rotation_period.as_deref())?,
        req.max_uses,
    )
    .map_err(|e| ApiError::Validation(e.to_string()))?;
    Ok(Environment { name: req.name, policy, protected: req.protected, created_at: crate::now() })
}

fn event(action: &str, actor: &str, env: &Environment) -> AuditEvent {
    let p = &env.policy;
    let mut event = AuditEvent::new(action, actor)
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
    event
}

async fn insert(state: &AppState, caller: &Caller, env: Environment) -> ApiResult<Environment> {
    let e = event(actions::ENVIRONMENT_CREATE, &caller.token_id, &env);
    state.store.commit(WriteUnit::new(Change::CreateEnvironment(env.clone()), e)).await?;
    state.environments.insert(env.clone());
    // The issuer's default keys (current and pre-published next), so its JWKS is ready before
    // the first JWT is minted.
    keys::ensure(state, &caller.token_id, &env.name, Alg::EdDSA).await?;
    Ok(env)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateEnvironment>,
) -> ApiResult<(StatusCode, Json<EnvironmentView>)> {
    caller.require_admin("creating an environment")?;
    let env = insert(&state, &caller, build(req)?).await?;
    Ok((StatusCode::CREATED, Json(views::environment(&env))))
}

/// Creates the environment or replaces its policy (idempotent: no write when unchanged).
async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CreateEnvironment>,
) -> ApiResult<Json<Upserted<EnvironmentView>>> {
    if req.name != name {
        return Err(ApiError::Validation(format!("the body names {:?} but the URL {name:?}", req.name)));
    }
    let wanted = build(req)?;
    let Some(existing) = state.store.environment(&name).await? else {
        caller.require_admin("creating an environment")?;
        let env = insert(&state, &caller, wanted).await?;
        return Ok(Json(Upserted {
            item: views::environment(&env),
            created: true,
            changed: true,
            client_secret: None,
        }));
    };
    if existing.protected != wanted.protected {
        caller.require_admin("changing whether an environment is protected")?;
    } else {
        caller.require(&name, Access::Write)?;
    }
    if existing.policy == wanted.policy && existing.protected == wanted.protected {
        return Ok(Json(Upserted {
            item: views::environment(&existing),
            created: false,
            changed: false,
            client_secret: None,
        }));
    }
    let env = Environment { created_at: existing.created_at, ..wanted };
    let e = event(actions::ENVIRONMENT_UPDATE, &caller.token_id, &env);
    state.store.commit(WriteUnit::new(Change::UpdateEnvironment(env.clone()), e)).await?;
    state.environments.insert(env.clone());
    Ok(Json(Upserted { item: views::environment(&env), created: false, changed: true, client_secret: None }))
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
