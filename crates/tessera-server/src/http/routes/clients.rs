//! `/v1/clients`: service accounts and the scopes they may hold per environment. The client
//! secret is generated here, shown once in the creation answer, and stored as a keyed hash.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_api::{ClientList, ClientView, CreateClient, CreatedClient};
use tessera_core::audit::actions;
use tessera_core::names::{validate_client_id, validate_env_name};
use tessera_core::token::ClientSecret;
use tessera_core::{Access, AuditEvent, Client, ScopeSet, TokenFormat};
use tessera_store::{Change, WriteUnit};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Caller};
use crate::keys::{self, Alg};
use crate::state::AppState;
use crate::views;

/// Signing algorithms a client may choose for its JWT access tokens.
pub const ALGORITHMS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/clients", get(list).post(create))
        .route("/v1/clients/{id}", get(show))
        .route("/v1/clients/{id}/disable", post(disable))
        .route("/v1/clients/{id}/enable", post(enable))
}

/// A client is visible to callers who may read at least one of its environments.
fn visible(caller: &Caller, client: &Client) -> bool {
    caller.scopes.is_admin() || client.allowed_scopes.keys().any(|env| caller.can(env, Access::Read))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateClient>,
) -> ApiResult<(StatusCode, Json<CreatedClient>)> {
    validate_client_id(&req.id).map_err(|e| ApiError::Validation(e.to_string()))?;
    if req.description.as_ref().is_some_and(|d| d.len() > 500) {
        return Err(ApiError::Validation("description must have at most 500 characters".into()));
    }
    if req.scopes.is_empty() {
        return Err(ApiError::Validation(
            "a client needs scopes in at least one environment, e.g. {\"staging\": [\"orders:read\"]}".into(),
        ));
    }
    let mut allowed = BTreeMap::new();
    for (env, list) in &req.scopes {
        validate_env_name(env).map_err(|e| ApiError::Validation(e.to_string()))?;
        let set = ScopeSet::from_list(list).map_err(|e| ApiError::Validation(format!("scopes for {env}: {e}")))?;
        if set.is_empty() {
            return Err(ApiError::Validation(format!("scopes for {env}: list at least one scope")));
        }
        if set.has_any_admin_scope() {
            caller.require_admin("granting tessera:… admin scopes to a client")?;
        } else {
            caller.require(env, Access::Write)?;
        }
        if state.store.environment(env).await?.is_none() {
            return Err(ApiError::NotFound(format!("environment {env:?} not found")));
        }
        allowed.insert(env.clone(), set);
    }
    let token_format = match &req.token_format {
        None => TokenFormat::Opaque,
        Some(f) => TokenFormat::from_str(f).map_err(ApiError::Validation)?,
    };
    let alg = req.alg.clone().unwrap_or_else(|| "EdDSA".to_owned());
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(ApiError::Validation(format!("unsupported alg {alg:?} (use EdDSA, ES256 or RS256)")));
    }
    let secret = ClientSecret::generate();
    let client = Client {
        id: req.id.clone(),
        description: req.description.clone(),
        allowed_scopes: allowed,
        token_format,
        alg,
        secret_hash: state.hasher.hash(secret.expose()),
        disabled: false,
        created_at: crate::now(),
    };
    let scopes_text: Vec<String> = client.allowed_scopes.iter().map(|(e, s)| format!("{e}={s}")).collect();
    let event = AuditEvent::new(actions::CLIENT_CREATE, &caller.token_id)
        .target(&client.id)
        .detail("scopes", scopes_text.join("; "))
        .detail("token_format", client.token_format.as_str())
        .detail("alg", client.alg.clone());
    state.store.commit(WriteUnit::new(Change::CreateClient(client.clone()), event)).await?;
    state.clients.insert(client.clone());
    if client.token_format == TokenFormat::Jwt {
        // Pre-create (and so pre-publish) the keys this client's tokens will be signed with.
        let alg = Alg::from_str(&client.alg).map_err(ApiError::Validation)?;
        for env in client.allowed_scopes.keys() {
            keys::ensure(&state, &caller.token_id, env, alg).await?;
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient { client: views::client(&client), client_secret: secret.expose().to_owned() }),
    ))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ClientList>> {
    let clients = state.store.clients().await?.iter().filter(|c| visible(&caller, c)).map(views::client).collect();
    Ok(Json(ClientList { clients }))
}

async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ClientView>> {
    let client =
        state.store.client(&id).await?.ok_or_else(|| ApiError::NotFound(format!("client {id:?} not found")))?;
    if !visible(&caller, &client) {
        return Err(ApiError::InsufficientScope {
            detail: format!("client {id} has no environment this token may read"),
            needed: "tessera:admin".into(),
        });
    }
    Ok(Json(views::client(&client)))
}

async fn set_disabled(state: &AppState, caller: &Caller, id: &str, disabled: bool) -> ApiResult<Json<ClientView>> {
    let mut client =
        state.store.client(id).await?.ok_or_else(|| ApiError::NotFound(format!("client {id:?} not found")))?;
    for env in client.allowed_scopes.keys() {
        caller.require(env, Access::Write)?;
    }
    if client.disabled != disabled {
        let action = if disabled { actions::CLIENT_DISABLE } else { actions::CLIENT_ENABLE };
        let event = AuditEvent::new(action, &caller.token_id).target(id);
        state.store.commit(WriteUnit::new(Change::SetClientDisabled { id: id.to_owned(), disabled }, event)).await?;
        client.disabled = disabled;
        state.clients.insert(client.clone());
    }
    Ok(Json(views::client(&client)))
}

/// A disabled client cannot authenticate or get new tokens; its existing tokens stay valid
/// until they expire or are revoked (revoke them by `--client` to cut them off too).
async fn disable(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ClientView>> {
    set_disabled(&state, &caller, &id, true).await
}

async fn enable(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ClientView>> {
    set_disabled(&state, &caller, &id, false).await
}
