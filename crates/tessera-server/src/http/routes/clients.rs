//! `/v1/clients`: service accounts and the scopes they may hold per environment. The client
//! secret is generated here, shown once in the creation answer, and stored as a keyed hash.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_api::{ClientList, ClientView, CreateClient, CreatedClient, Upserted};
use tessera_core::audit::actions;
use tessera_core::names::{validate_client_id, validate_env_name};
use tessera_core::token::ClientSecret;
use tessera_core::{Access, AuditEvent, Client, ScopeSet, TokenFormat};
use tessera_store::{Change, WriteUnit};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Caller};
use crate::keys::{self, Alg};
use crate::state::AppState;
use crate::{tokens, views};

/// Signing algorithms a client may choose for its JWT access tokens.
pub const ALGORITHMS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/clients", get(list).post(create))
        .route("/v1/clients/{id}", get(show).put(upsert))
        .route("/v1/clients/{id}/disable", post(disable))
        .route("/v1/clients/{id}/enable", post(enable))
}

/// A client is visible to callers who may read at least one of its environments.
fn visible(caller: &Caller, client: &Client) -> bool {
    caller.scopes.is_admin() || client.allowed_scopes.keys().any(|env| caller.can(env, Access::Read))
}

/// Validates a client request against the caller's rights; builds the client (secret hash
/// left for the caller to set).
async fn build(state: &AppState, caller: &Caller, req: &CreateClient) -> ApiResult<Client> {
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
        tokens::environment(state, env).await?;
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
    Ok(Client {
        id: req.id.clone(),
        description: req.description.clone(),
        allowed_scopes: allowed,
        token_format,
        alg,
        secret_hash: tessera_core::TokenHash([0; 32]),
        disabled: false,
        created_at: crate::now(),
    })
}

fn event(action: &str, actor: &str, client: &Client) -> AuditEvent {
    let scopes_text: Vec<String> = client.allowed_scopes.iter().map(|(e, s)| format!("{e}={s}")).collect();
    AuditEvent::new(action, actor)
        .target(&client.id)
        .detail("scopes", scopes_text.join("; "))
        .detail("token_format", client.token_format.as_str())
        .detail("alg", client.alg.clone())
}

/// Pre-creates (and so pre-publishes) the keys a JWT client's tokens will be signed with.
async fn ensure_keys(state: &AppState, caller: &Caller, client: &Client) -> ApiResult<()> {
    if client.token_format == TokenFormat::Jwt {
        let alg = Alg::from_str(&client.alg).map_err(ApiError::Validation)?;
        for env in client.allowed_scopes.keys() {
            keys::ensure(state, &caller.token_id, env, alg).await?;
        }
    }
    Ok(())
}

async fn insert(state: &AppState, caller: &Caller, mut client: Client) -> ApiResult<(Client, ClientSecret)> {
    let secret = ClientSecret::generate();
    client.secret_hash = state.hasher.hash(secret.expose());
    let e = event(actions::CLIENT_CREATE, &caller.token_id, &client);
    state.store.commit(WriteUnit::new(Change::CreateClient(client.clone()), e)).await?;
    state.clients.insert(client.clone());
    ensure_keys(state, caller, &client).await?;
    Ok((client, secret))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateClient>,
) -> ApiResult<(StatusCode, Json<CreatedClient>)> {
    let client = build(&state, &caller, &req).await?;
    let (client, secret) = insert(&state, &caller, client).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient { client: views::client(&client), client_secret: secret.expose().to_owned() }),
    ))
}

/// Creates the client or replaces its scopes, format and algorithm (its secret stays).
async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateClient>,
) -> ApiResult<Json<Upserted<ClientView>>> {
    if req.id != id {
        return Err(ApiError::Validation(format!("the body names {:?} but the URL {id:?}", req.id)));
    }
    let wanted = build(&state, &caller, &req).await?;
    let Some(existing) = state.store.client(&id).await? else {
        let (client, secret) = insert(&state, &caller, wanted).await?;
        return Ok(Json(Upserted {
            item: views::client(&client),
            created: true,
            changed: true,
            client_secret: Some(secret.expose().to_owned()),
        }));
    };
    // Removing an environment from a client needs write there too.
    for env in existing.allowed_scopes.keys() {
        if !wanted.allowed_scopes.contains_key(env) {
            caller.require(env, Access::Write)?;
        }
    }
    let client = Client {
        secret_hash: existing.secret_hash,
        disabled: existing.disabled,
        created_at: existing.created_at,
        ..wanted
    };
    if client == existing {
        return Ok(Json(Upserted {
            item: views::client(&existing),
            created: false,
            changed: false,
            client_secret: None,
        }));
    }
    let e = event(actions::CLIENT_UPDATE, &caller.token_id, &client);
    state.store.commit(WriteUnit::new(Change::UpdateClient(client.clone()), e)).await?;
    state.clients.insert(client.clone());
    ensure_keys(&state, &caller, &client).await?;
    Ok(Json(Upserted { item: views::client(&client), created: false, changed: true, client_secret: None }))
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
