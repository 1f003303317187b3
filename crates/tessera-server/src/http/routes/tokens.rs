//! `/v1/tokens`: create, list with filters, show, rotate with grace, renew, revoke (one or by
//! selector). The token secret appears only in the creation and rotation answers.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_api::{
    BulkRevoke, BulkRevoked, CreateTestToken, CreateToken, CreatedToken, RenewToken, RevokeToken, RotateToken,
    RotatedToken, TokenChange, TokenList, TokenView,
};
use tessera_core::names::validate_label;
use tessera_core::{Access, ScopeSet, Token, TokenFormat};
use tessera_store::TokenFilter;

use super::duration_field;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, Caller, OptionalJson};
use crate::state::AppState;
use crate::tokens::{self, MintRequest};
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tokens", get(list).post(create))
        .route("/v1/tokens/revoke", post(revoke_matching))
        .route("/v1/test-tokens", post(create_test))
        .route("/v1/tokens/{id}", get(show))
        .route("/v1/tokens/{id}/rotate", post(rotate))
        .route("/v1/tokens/{id}/renew", post(renew))
        .route("/v1/tokens/{id}/revoke", post(revoke))
}

const MAX_REASON: usize = 500;

fn check_labels(labels: &BTreeMap<String, String>) -> ApiResult<()> {
    if labels.len() > 32 {
        return Err(ApiError::Validation("at most 32 labels".into()));
    }
    for (k, v) in labels {
        validate_label(k, v).map_err(|reason| ApiError::Validation(format!("label {k:?}: {reason}")))?;
    }
    Ok(())
}

fn check_reason(reason: &Option<String>) -> ApiResult<()> {
    if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON || r.chars().any(char::is_control)) {
        return Err(ApiError::Validation(format!("reason must have at most {MAX_REASON} printable characters")));
    }
    Ok(())
}

/// Checks the parts of a mint request common to ordinary and test tokens.
fn mint_request(caller: &Caller, req: CreateToken) -> ApiResult<MintRequest> {
    caller.require(&req.env, Access::Write)?;
    check_labels(&req.labels)?;
    let scopes = req
        .scopes
        .as_ref()
        .map(|s| ScopeSet::from_list(s).map_err(|e| ApiError::Validation(e.to_string())))
        .transpose()?;
    let format = req.format.as_deref().map(TokenFormat::from_str).transpose().map_err(ApiError::Validation)?;
    Ok(MintRequest {
        env: req.env,
        client_id: req.client,
        scopes,
        audience: req.audience,
        ttl: duration_field("ttl", req.ttl.as_deref())?,
        idle_ttl: duration_field("idle_ttl", req.idle_ttl.as_deref())?,
        max_uses: req.max_uses,
        format,
        labels: req.labels,
        run_id: None,
        created_by: caller.token_id.clone(),
    })
}

fn created(minted: tokens::Minted) -> (StatusCode, Json<CreatedToken>) {
    let info = views::token(&minted.token, crate::now());
    (
        StatusCode::CREATED,
        Json(CreatedToken { token: minted.secret.expose().to_owned(), info, warnings: minted.warnings }),
    )
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let req = mint_request(&caller, req)?;
    Ok(created(tokens::mint(&state, req).await?))
}

async fn create_test(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTestToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let times =
        tokens::ForgedTimes { issued_at: req.issued_at, not_before: req.not_before, expires_at: req.expires_at };
    let common = CreateToken {
        env: req.env,
        client: req.client,
        scopes: req.scopes,
        audience: req.audience,
        ttl: None,
        idle_ttl: req.idle_ttl,
        max_uses: req.max_uses,
        format: req.format,
        labels: req.labels,
    };
    let req = mint_request(&caller, common)?;
    Ok(created(tokens::mint_test(&state, req, times).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    env: Option<String>,
    client: Option<String>,
    /// `active`, `inactive` or `all` (default).
    state: Option<String>,
    /// `KEY=VALUE`.
    label: Option<String>,
    run: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<TokenList>> {
    if let Some(env) = &q.env {
        caller.require(env, Access::Read)?;
    }
    let wanted_state = q.state.as_deref().unwrap_or("all");
    if !["active", "inactive", "all"].contains(&wanted_state) {
        return Err(ApiError::BadRequest(format!("state must be active, inactive or all, not {wanted_state:?}")));
    }
    let label = q
        .label
        .as_deref()
        .map(|l| tessera_core::names::parse_label(l).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()?;
    let limit = q.limit.unwrap_or(1_000).min(10_000);
    let now = crate::now();
    let filter = TokenFilter {
        env: q.env.clone(),
        client_id: q.client.clone(),
        run_id: q.run.clone(),
        unexpired_at: (wanted_state == "active").then_some(now),
        limit: None,
    };
    let tokens = state
        .store
        .tokens(&filter)
        .await?
        .into_iter()
        .filter(|t| caller.can(&t.env, Access::Read))
        .map(|t| tokens::live(&state, t))
        .filter(|t| label.as_ref().is_none_or(|(k, v)| t.labels.get(k) == Some(v)))
        .filter(|t| match wanted_state {
            "active" => t.check(now).is_ok(),
            "inactive" => t.check(now).is_err(),
            _ => true,
        })
        .take(limit as usize)
        .map(|t| views::token(&t, now))
        .collect();
    Ok(Json(TokenList { tokens }))
}

async fn token_for(state: &AppState, caller: &Caller, id: &str, access: Access) -> ApiResult<Token> {
    let token = tokens::load(state, id).await?;
    caller.require(&token.env, access)?;
    Ok(token)
}

async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<TokenView>> {
    let token = token_for(&state, &caller, &id, Access::Read).await?;
    Ok(Json(views::token(&token, crate::now())))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<RotateToken>,
) -> ApiResult<(StatusCode, Json<RotatedToken>)> {
    let grace = duration_field("grace", req.grace.as_deref())?;
    let old = token_for(&state, &caller, &id, Access::Write).await?;
    let (minted, previous) = tokens::rotate(&state, &caller.token_id, old, grace).await?;
    let now = crate::now();
    Ok((
        StatusCode::CREATED,
        Json(RotatedToken {
            token: minted.secret.expose().to_owned(),
            info: views::token(&minted.token, now),
            previous: views::token(&previous, now),
            warnings: minted.warnings,
        }),
    ))
}

async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<RenewToken>,
) -> ApiResult<Json<TokenChange>> {
    let ttl = duration_field("ttl", req.ttl.as_deref())?;
    let token = token_for(&state, &caller, &id, Access::Write).await?;
    let (token, changed, warnings) = tokens::renew(&state, &caller.token_id, token, ttl).await?;
    Ok(Json(TokenChange { info: views::token(&token, crate::now()), changed, warnings }))
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<RevokeToken>,
) -> ApiResult<Json<TokenChange>> {
    check_reason(&req.reason)?;
    let token = token_for(&state, &caller, &id, Access::Write).await?;
    let revoked = tokens::revoke(&state, &caller.token_id, "api", vec![token], req.reason).await?;
    let token = tokens::load(&state, &id).await?;
    let mut warnings = Vec::new();
    if revoked.is_empty() {
        warnings.push(format!("token {id} was already revoked"));
    }
    Ok(Json(TokenChange { info: views::token(&token, crate::now()), changed: !revoked.is_empty(), warnings }))
}

async fn revoke_matching(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BulkRevoke>,
) -> ApiResult<Json<BulkRevoked>> {
    check_reason(&req.reason)?;
    check_labels(&req.labels)?;
    if req.env.is_none() && req.client.is_none() && req.labels.is_empty() && req.run.is_none() {
        return Err(ApiError::Validation("name at least one selector: env, client, labels or run".into()));
    }
    match &req.env {
        Some(env) => caller.require(env, Access::Write)?,
        None => caller.require_admin("revoking across environments (no env given)")?,
    }
    let now = crate::now();
    let filter = TokenFilter {
        env: req.env.clone(),
        client_id: req.client.clone(),
        run_id: req.run.clone(),
        unexpired_at: Some(now),
        limit: None,
    };
    let matching: Vec<Token> = state
        .store
        .tokens(&filter)
        .await?
        .into_iter()
        .filter(|t| req.labels.iter().all(|(k, v)| t.labels.get(k) == Some(v)))
        .filter(|t| t.check(now).is_ok())
        .collect();
    let ids: Vec<String> = matching.iter().map(|t| t.id.clone()).collect();
    if req.dry_run {
        return Ok(Json(BulkRevoked { count: ids.len(), tokens: ids, dry_run: true }));
    }
    let revoked = tokens::revoke(&state, &caller.token_id, "api", matching, req.reason).await?;
    Ok(Json(BulkRevoked { count: revoked.len(), tokens: revoked, dry_run: false }))
}
