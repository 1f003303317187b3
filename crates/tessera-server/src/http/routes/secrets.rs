//! `/v1/secrets`: upstream secrets (set, list, versions, reveal, rotate) and `/v1/drift`.
//!
//! A secret's value arrives only in the body of `PUT` and leaves only in the answer of an
//! explicit reveal (scope `tessera:env:ENV:reveal`, audited). Errors about a `PUT` body never
//! quote it.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_api::{
    DriftEntry, DriftHolding, DriftReport, PutSecret, RevealedSecret, SecretList, SecretVersionList, SecretVersionView,
    SecretView,
};
use tessera_core::audit::actions;
use tessera_core::upstream::{RotationHook, SecretVersion};
use tessera_core::{format_duration, Access, AuditEvent};
use tessera_store::WriteUnit;
use zeroize::Zeroizing;

use super::{duration_field, EnvFilter};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiQuery, Caller};
use crate::secrets::{self, PutOptions};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/secrets", get(list))
        .route("/v1/secrets/{env}/{name}", get(reveal).put(put))
        .route("/v1/secrets/{env}/{name}/versions", get(versions))
        .route("/v1/secrets/{env}/{name}/rotate", post(rotate))
        .route("/v1/drift", get(drift))
}

pub fn version_view(v: &SecretVersion, now: chrono::DateTime<chrono::Utc>) -> SecretVersionView {
    SecretVersionView {
        env: v.env.clone(),
        name: v.name.clone(),
        version: v.version,
        fingerprint: v.fingerprint.clone(),
        created_at: v.created_at,
        created_by: v.created_by.clone(),
        expires_at: v.expires_at,
        state: v.state_at(now).to_owned(),
        valid_until: v.valid_until,
    }
}

/// Parses the body without ever quoting it: serde's messages can contain the value.
fn parse_put(body: Result<Bytes, BytesRejection>) -> ApiResult<PutSecret> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("request body is larger than {} bytes", crate::MAX_BODY_BYTES))
        } else {
            ApiError::BadRequest("the request body could not be read".into())
        }
    })?;
    serde_json::from_slice::<PutSecret>(&body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "is not valid JSON",
            _ => "does not match {\"value\": \"…\", \"hook\": [\"cmd\", …], \"rotation_period\": \"30d\", \"overlap\": \"1h\", \"expires_in\": \"90d\", \"hook_timeout\": \"30s\"}",
        };
        ApiError::Validation(format!("the body {what} (line {}, column {})", e.line(), e.column()))
    })
}

async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<SecretVersionView>)> {
    caller.require(&env, Access::Write)?;
    let req = parse_put(body)?;
    let value = Zeroizing::new(req.value.clone());
    let hook = match &req.hook {
        Some(argv) if argv.is_empty() || argv[0].is_empty() => {
            return Err(ApiError::Validation(
                "hook: give the command and its arguments, e.g. [\"./rotate.sh\", \"--env\", \"qa\"]".into(),
            ))
        }
        Some(argv) => Some(RotationHook {
            argv: argv.clone(),
            timeout: duration_field("hook_timeout", req.hook_timeout.as_deref())?
                .unwrap_or(secrets::DEFAULT_HOOK_TIMEOUT),
        }),
        None => None,
    };
    let update = PutOptions {
        hook,
        rotation_period: duration_field("rotation_period", req.rotation_period.as_deref())?,
        overlap: duration_field("overlap", req.overlap.as_deref())?,
        expires_in: duration_field("expires_in", req.expires_in.as_deref())?,
    };
    let meta = secrets::put(&state, &caller.token_id, actions::SECRET_SET, &env, &name, value, update).await?;
    Ok((StatusCode::CREATED, Json(version_view(&meta, crate::now()))))
}

async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<RevealedSecret>> {
    caller.require(&env, Access::Reveal)?;
    let (meta, value) = secrets::current(&state, &env, &name).await?;
    let event = AuditEvent::new(actions::SECRET_REVEAL, &caller.token_id)
        .env(&env)
        .target(&name)
        .detail("version", meta.version.to_string());
    state.store.commit(WriteUnit { changes: vec![], audit: vec![event] }).await?;
    Ok(Json(RevealedSecret { env, name, version: meta.version, value: value.to_string() }))
}

async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<SecretVersionList>> {
    caller.require(&env, Access::Read)?;
    let now = crate::now();
    let versions: Vec<SecretVersionView> = state
        .store
        .secret_versions(Some(&env), Some(&name))
        .await?
        .iter()
        .map(|v| version_view(&v.meta, now))
        .collect();
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("secret {name:?} not found in environment {env:?}")));
    }
    Ok(Json(SecretVersionList { versions }))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path((env, name)): Path<(String, String)>,
) -> ApiResult<Json<SecretVersionView>> {
    caller.require(&env, Access::Write)?;
    let meta = secrets::rotate(&state, &caller.token_id, &env, &name).await?;
    Ok(Json(version_view(&meta, crate::now())))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EnvFilter>,
) -> ApiResult<Json<SecretList>> {
    q.check(&caller)?;
    let now = crate::now();
    let configs = state.store.secret_configs(q.env.as_deref()).await?;
    let versions = state.store.secret_versions(q.env.as_deref(), None).await?;
    let secrets = configs
        .iter()
        .filter(|c| caller.can(&c.env, Access::Read))
        .map(|c| {
            let current =
                versions.iter().find(|v| v.meta.env == c.env && v.meta.name == c.name && v.meta.state == "current");
            let due = current.is_some_and(|v| {
                let (rotation, expired) = secrets::is_due(&v.meta, c.rotation_period, now);
                rotation || expired
            });
            SecretView {
                env: c.env.clone(),
                name: c.name.clone(),
                current: current.map(|v| version_view(&v.meta, now)),
                has_hook: c.hook.is_some(),
                rotation_period: c.rotation_period.map(format_duration),
                overlap: format_duration(c.overlap),
                due,
            }
        })
        .collect();
    Ok(Json(SecretList { secrets }))
}

/// Per credential name: which environments hold which version and fingerprint, which lack it,
/// where one value is shared across protected and unprotected environments, what is due.
async fn drift(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<DriftReport>> {
    let now = crate::now();
    let envs: BTreeMap<String, bool> = state
        .store
        .environments()
        .await?
        .into_iter()
        .filter(|e| e.name != tessera_core::names::SYSTEM_ENV && caller.can(&e.name, Access::Read))
        .map(|e| (e.name, e.protected))
        .collect();
    let configs = state.store.secret_configs(None).await?;
    let versions = state.store.secret_versions(None, None).await?;
    let names: BTreeSet<&str> = configs.iter().filter(|c| envs.contains_key(&c.env)).map(|c| c.name.as_str()).collect();
    let mut problems = 0;
    let mut credentials = Vec::new();
    for name in names {
        let mut holdings = Vec::new();
        for c in configs.iter().filter(|c| c.name == name && envs.contains_key(&c.env)) {
            let Some(v) =
                versions.iter().find(|v| v.meta.env == c.env && v.meta.name == name && v.meta.state == "current")
            else {
                continue;
            };
            let (rotation_due, expired) = secrets::is_due(&v.meta, c.rotation_period, now);
            problems += usize::from(rotation_due) + usize::from(expired);
            holdings.push(DriftHolding {
                env: c.env.clone(),
                version: v.meta.version,
                fingerprint: v.meta.fingerprint.clone(),
                created_at: v.meta.created_at,
                expires_at: v.meta.expires_at,
                protected: envs[&c.env],
                rotation_due,
                expired,
            });
        }
        let missing: Vec<String> = envs.keys().filter(|e| !holdings.iter().any(|h| &h.env == *e)).cloned().collect();
        let mut by_value: BTreeMap<&str, Vec<&DriftHolding>> = BTreeMap::new();
        for h in &holdings {
            by_value.entry(h.fingerprint.as_str()).or_default().push(h);
        }
        let shared_across_protection: Vec<Vec<String>> = by_value
            .values()
            .filter(|group| group.iter().any(|h| h.protected) && group.iter().any(|h| !h.protected))
            .map(|group| group.iter().map(|h| h.env.clone()).collect())
            .collect();
        problems += missing.len() + shared_across_protection.len();
        credentials.push(DriftEntry {
            name: name.to_owned(),
            distinct_values: by_value.len(),
            holdings,
            missing,
            shared_across_protection,
        });
    }
    Ok(Json(DriftReport { credentials, problems }))
}
