//! Token operations shared by every route that mints or changes tokens: the admin API now,
//! the OAuth token endpoint and runs later. Each operation checks the rules, commits the
//! change with its audit entry, and writes it through to the validation index.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use std::str::FromStr;
use tessera_core::audit::actions;
use tessera_core::id::new_public_id;

use tessera_core::{
    format_duration, AuditEvent, Environment, IssuedToken, NewToken, ScopeSet, Token, TokenFormat, TokenHash,
    TokenSecret,
};
use tessera_store::{Change, WriteUnit};

use crate::http::error::{ApiError, ApiResult};
use crate::jwt;
use crate::keys::{self, Alg};
use crate::state::AppState;

/// How long a rotated token stays valid when the caller names no grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(600);

/// What to mint.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub env: String,
    pub client_id: String,
    /// `None`: every scope the client may hold in `env`.
    pub scopes: Option<ScopeSet>,
    pub audience: Option<String>,
    pub ttl: Option<Duration>,
    pub idle_ttl: Option<Duration>,
    pub max_uses: Option<u64>,
    pub format: Option<TokenFormat>,
    pub labels: BTreeMap<String, String>,
    pub run_id: Option<String>,
    /// Public id of the token (or `system`) that asked.
    pub created_by: String,
}

/// A freshly minted token: the secret exists only until the response shows it.
#[derive(Debug)]
pub struct Minted {
    pub secret: IssuedToken,
    pub token: Token,
    pub warnings: Vec<String>,
}

/// A checked token record, before its secret exists.
#[derive(Debug)]
pub struct Draft {
    pub token: Token,
    pub warnings: Vec<String>,
    /// The client's JWT signing algorithm.
    pub alg: Alg,
}

/// An environment, from the cache or the store (then cached).
pub async fn environment(state: &AppState, name: &str) -> ApiResult<Environment> {
    if let Some(env) = state.environments.get(name) {
        return Ok((*env).clone());
    }
    let env = state
        .store
        .environment(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("environment {name:?} not found")))?;
    state.environments.insert(env.clone());
    Ok(env)
}

/// A client, from the cache or the store (then cached).
pub async fn client(state: &AppState, id: &str) -> ApiResult<std::sync::Arc<tessera_core::Client>> {
    if let Some(c) = state.clients.get(id) {
        return Ok(c);
    }
    let c = state.store.client(id).await?.ok_or_else(|| ApiError::NotFound(format!("client {id:?} not found")))?;
    state.clients.insert(c);
    state.clients.get(id).ok_or_else(|| ApiError::NotFound(format!("client {id:?} not found")))
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Checks a mint request against the environment policy and the client's allowed scopes, and
/// builds the token record. Commits nothing.
pub async fn prepare(state: &AppState, req: MintRequest, now: DateTime<Utc>) -> ApiResult<Draft> {
    let env = environment(state, &req.env).await?;
    let client = client(state, &req.client_id).await?;
    if client.disabled {
        return Err(ApiError::Validation(format!("client {} is disabled", client.id)));
    }
    let allowed = client.scopes_in(&env.name);
    if allowed.is_empty() {
        return Err(ApiError::Validation(format!(
            "client {} has no scopes in environment {}; allow some with `tessera client create {} --scopes {}=SCOPE`",
            client.id, env.name, client.id, env.name
        )));
    }
    let scopes = req.scopes.unwrap_or_else(|| allowed.clone());
    let refused = scopes.difference(&allowed);
    if !refused.is_empty() {
        let list = |v: Vec<String>| v.join(", ");
        return Err(ApiError::Validation(format!(
            "scopes not allowed for client {} in environment {}: {} (allowed: {})",
            client.id,
            env.name,
            list(refused.iter().map(ToString::to_string).collect()),
            list(allowed.to_vec()),
        )));
    }
    if scopes.is_empty() {
        return Err(ApiError::Validation("a token needs at least one scope".into()));
    }
    let format = req.format.unwrap_or(client.token_format);
    let alg = Alg::from_str(&client.alg).map_err(ApiError::Internal)?;
    if let Some(aud) = &req.audience {
        if aud.is_empty() || aud.len() > 200 || aud.chars().any(char::is_control) {
            return Err(ApiError::Validation("audience must have 1-200 printable characters".into()));
        }
    }
    let policy_err = |e: tessera_core::PolicyError| ApiError::Validation(e.to_string());
    let ttl = env.policy.resolve_ttl(req.ttl).map_err(policy_err)?;
    let idle_ttl = env.policy.resolve_idle_ttl(req.idle_ttl).map_err(policy_err)?;
    let max_uses = env.policy.resolve_max_uses(req.max_uses).map_err(policy_err)?;
    let mut warnings = Vec::new();
    if let Some(asked) = ttl.clamped_from {
        warnings.push(format!(
            "ttl {} is above the max_ttl of environment {}; clamped to {}",
            format_duration(asked),
            env.name,
            format_duration(ttl.ttl)
        ));
    }
    let token = Token {
        id: new_public_id("tok"),
        env: env.name.clone(),
        client_id: client.id.clone(),
        scopes,
        audience: req.audience,
        format,
        labels: req.labels,
        run_id: req.run_id,
        created_by: req.created_by,
        created_at: now,
        not_before: None,
        expires_at: now + to_delta(ttl.ttl),
        idle_ttl,
        last_used_at: None,
        max_uses,
        uses: 0,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        superseded_by: None,
        grace_until: None,
    };
    Ok(Draft { token, warnings, alg })
}

/// Creates the secret of a drafted token: a random opaque token, or a JWT signed with the
/// environment's current key for the client's algorithm (RS256 off the async threads).
pub async fn issue(state: &AppState, draft: &Draft) -> ApiResult<(IssuedToken, NewToken)> {
    let t = &draft.token;
    match t.format {
        TokenFormat::Opaque => {
            let secret = TokenSecret::generate();
            let hash = state.hasher.hash(secret.expose());
            Ok((secret.into(), NewToken { token: t.clone(), hash }))
        }
        TokenFormat::Jwt => {
            let key = keys::ensure(state, &t.created_by, &t.env, draft.alg).await?;
            let issuer = state.issuer(&t.env);
            let claims = jwt::Claims {
                aud: t.audience.clone().unwrap_or_else(|| issuer.clone()),
                iss: issuer,
                sub: t.client_id.clone(),
                exp: t.expires_at.timestamp(),
                iat: t.created_at.timestamp(),
                nbf: t.not_before.unwrap_or(t.created_at).timestamp(),
                jti: t.id.clone(),
                scope: t.scopes.to_string(),
                client_id: t.client_id.clone(),
                env: t.env.clone(),
            };
            let text = if draft.alg == Alg::RS256 {
                tokio::task::spawn_blocking(move || jwt::sign(&key, &claims))
                    .await
                    .map_err(|e| ApiError::Internal(format!("signing failed: {e}")))?
            } else {
                jwt::sign(&key, &claims)
            };
            // JWTs are found by `jti`, not by hash; the store keeps no hash for them.
            Ok((IssuedToken::new(text), NewToken { token: t.clone(), hash: TokenHash([0; 32]) }))
        }
    }
}

fn created_event(actor: &str, t: &Token, action: &str) -> AuditEvent {
    let mut event = AuditEvent::new(action, actor)
        .env(&t.env)
        .target(&t.id)
        .detail("client", t.client_id.clone())
        .detail("scopes", t.scopes.to_string())
        .detail("format", t.format.as_str())
        .detail("expires_at", t.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    if let Some(aud) = &t.audience {
        event = event.detail("audience", aud.clone());
    }
    if let Some(run) = &t.run_id {
        event = event.detail("run", run.clone());
    }
    if !t.labels.is_empty() {
        let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        event = event.detail("labels", labels.join(","));
    }
    event
}

/// Mints a token: checks, commits with its audit entry, indexes.
pub async fn mint(state: &AppState, req: MintRequest) -> ApiResult<Minted> {
    let now = crate::now();
    let actor = req.created_by.clone();
    let draft = prepare(state, req, now).await?;
    let (secret, new) = issue(state, &draft).await?;
    let event = created_event(&actor, &draft.token, actions::TOKEN_CREATE);
    state.store.commit(WriteUnit::new(Change::CreateToken(new.clone()), event)).await?;
    index_new(state, new);
    state.metrics.token_issued(&draft.token.env, draft.token.format.as_str());
    Ok(Minted { secret, token: draft.token, warnings: draft.warnings })
}

/// Explicit times for a test token.
#[derive(Debug, Clone, Copy)]
pub struct ForgedTimes {
    pub issued_at: Option<DateTime<Utc>>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Mints a token with forged times (already expired, not yet valid …) for testing how APIs
/// reject it. Never in a protected environment. Recorded and audited like any token.
pub async fn mint_test(state: &AppState, req: MintRequest, times: ForgedTimes) -> ApiResult<Minted> {
    let env = environment(state, &req.env).await?;
    if env.protected {
        return Err(ApiError::Forbidden(format!(
            "environment {} is protected: tokens with forged times or claims are refused there",
            env.name
        )));
    }
    let actor = req.created_by.clone();
    let issued_at = times.issued_at.unwrap_or_else(crate::now);
    let mut draft = prepare(state, req, issued_at).await?;
    if let Some(exp) = times.expires_at {
        if exp <= issued_at {
            return Err(ApiError::Validation("expires_at must be after issued_at".into()));
        }
        draft.token.expires_at = exp;
    }
    draft.token.not_before = times.not_before;
    let (secret, new) = issue(state, &draft).await?;
    let event = created_event(&actor, &draft.token, actions::TOKEN_CREATE).detail("test_token", "true");
    state.store.commit(WriteUnit::new(Change::CreateToken(new.clone()), event)).await?;
    index_new(state, new);
    state.metrics.token_issued(&draft.token.env, draft.token.format.as_str());
    Ok(Minted { secret, token: draft.token, warnings: draft.warnings })
}

fn index_new(state: &AppState, new: NewToken) {
    let hash = (new.token.format == TokenFormat::Opaque).then_some(new.hash);
    state.index.upsert(hash, new.token);
}

/// The stored record with the live usage counters of the index, when indexed.
pub fn live(state: &AppState, t: Token) -> Token {
    state.index.get(&t.id).map(|e| e.snapshot()).unwrap_or(t)
}

/// The current record of a token: from the index (with live usage) or the store.
pub async fn load(state: &AppState, id: &str) -> ApiResult<Token> {
    if let Some(entry) = state.index.get(id) {
        return Ok(entry.snapshot());
    }
    state.store.token(id).await?.ok_or_else(|| ApiError::NotFound(format!("token {id:?} not found")))
}

fn require_active(token: &Token, now: DateTime<Utc>, what: &str) -> ApiResult<()> {
    if let Err(reason) = token.check(now) {
        return Err(ApiError::Conflict(format!(
            "token {} is inactive ({reason}); only an active token can be {what}",
            token.id
        )));
    }
    if let Some(next) = &token.superseded_by {
        return Err(ApiError::Conflict(format!(
            "token {} was already rotated (superseded by {next}); {what} the new token instead",
            token.id
        )));
    }
    Ok(())
}

/// Rotates `old`: a new token with the same client, scopes, audience and lifetime; the old
/// one stays valid for `grace`.
pub async fn rotate(state: &AppState, actor: &str, old: Token, grace: Option<Duration>) -> ApiResult<(Minted, Token)> {
    let now = crate::now();
    require_active(&old, now, "rotated")?;
    let lifetime = (old.expires_at - old.created_at).to_std().unwrap_or_default();
    let req = MintRequest {
        env: old.env.clone(),
        client_id: old.client_id.clone(),
        scopes: Some(old.scopes.clone()),
        audience: old.audience.clone(),
        ttl: Some(lifetime.max(Duration::from_secs(1))),
        idle_ttl: old.idle_ttl,
        max_uses: old.max_uses,
        format: Some(old.format),
        labels: old.labels.clone(),
        run_id: old.run_id.clone(),
        created_by: actor.to_owned(),
    };
    let mut draft = prepare(state, req, now).await?;
    draft.token.rotated_from = Some(old.id.clone());
    let (secret, new) = issue(state, &draft).await?;
    let grace = grace.unwrap_or(DEFAULT_GRACE);
    let grace_until = now + to_delta(grace);
    let event = created_event(actor, &draft.token, actions::TOKEN_ROTATE)
        .detail("previous", old.id.clone())
        .detail("grace_until", grace_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let change = Change::RotateToken { old_id: old.id.clone(), grace_until, new: new.clone() };
    state.store.commit(WriteUnit::new(change, event)).await?;
    let mut previous = old;
    previous.superseded_by = Some(draft.token.id.clone());
    previous.grace_until = Some(grace_until);
    state.index.refresh(previous.clone());
    index_new(state, new);
    state.metrics.token_issued(&draft.token.env, draft.token.format.as_str());
    Ok((Minted { secret, token: draft.token, warnings: draft.warnings }, previous))
}

/// Extends an active token's expiry to now + `ttl` (default: the environment's default TTL),
/// never past creation + `max_ttl`, never earlier than it already is.
pub async fn renew(
    state: &AppState,
    actor: &str,
    mut token: Token,
    ttl: Option<Duration>,
) -> ApiResult<(Token, bool, Vec<String>)> {
    let now = crate::now();
    require_active(&token, now, "renewed")?;
    if token.format == TokenFormat::Jwt {
        return Err(ApiError::Conflict(format!(
            "token {} is a JWT: its expiry is signed into it and cannot be extended; mint a new token",
            token.id
        )));
    }
    let env = environment(state, &token.env).await?;
    let ttl = ttl.unwrap_or(env.policy.default_ttl);
    if ttl.as_secs() == 0 {
        return Err(ApiError::Validation("ttl must be greater than zero".into()));
    }
    let cap = token.created_at + to_delta(env.policy.max_ttl);
    let wanted = now + to_delta(ttl);
    let mut warnings = Vec::new();
    if wanted > cap {
        warnings.push(format!(
            "renewal capped at {} (creation + max_ttl {} of environment {})",
            cap.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            format_duration(env.policy.max_ttl),
            env.name
        ));
    }
    let new_expiry = wanted.min(cap);
    if new_expiry <= token.expires_at {
        warnings.push(format!(
            "token already expires at {}; nothing to extend",
            token.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        return Ok((token, false, warnings));
    }
    let event = AuditEvent::new(actions::TOKEN_RENEW, actor)
        .env(&token.env)
        .target(&token.id)
        .detail("previous_expires_at", token.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .detail("expires_at", new_expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let change = Change::RenewToken { id: token.id.clone(), expires_at: new_expiry };
    state.store.commit(WriteUnit::new(change, event)).await?;
    token.expires_at = new_expiry;
    state.index.refresh(token.clone());
    Ok((token, true, warnings))
}

/// Revokes tokens (idempotently) with one audit entry each; returns the ids actually revoked.
pub async fn revoke(
    state: &AppState,
    actor: &str,
    via: &str,
    tokens: Vec<Token>,
    reason: Option<String>,
) -> ApiResult<Vec<String>> {
    let now = crate::now();
    let pending: Vec<Token> = tokens.into_iter().filter(|t| t.revoked_at.is_none()).collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let audit = pending
        .iter()
        .map(|t| {
            let mut e = AuditEvent::new(actions::TOKEN_REVOKE, actor).env(&t.env).target(&t.id).detail("via", via);
            if let Some(r) = &reason {
                e = e.detail("reason", r.clone());
            }
            e
        })
        .collect();
    let ids = pending.iter().map(|t| t.id.clone()).collect();
    let unit = WriteUnit { changes: vec![Change::RevokeTokens { ids, at: now, reason: reason.clone() }], audit };
    let outcome = state.store.commit(unit).await?;
    state.metrics.revoked(via, outcome.revoked.len() as u64);
    for mut t in pending {
        t.revoked_at = Some(now);
        t.revoke_reason = reason.clone();
        state.index.refresh(t);
    }
    Ok(outcome.revoked)
}
