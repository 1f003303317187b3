//! `/v1/keys`: the signing keys of environments (public parts only) and on-demand rotation.

use std::str::FromStr;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_api::{KeyList, KeyView, Rewrap, Rewrapped, RotateKeys, RotatedKey, RotatedKeys};
use tessera_core::audit::actions;
use tessera_core::Access;
use tessera_core::{AuditEvent, MasterKey};
use tessera_store::{Change, Resealed, WriteUnit};

use super::EnvFilter;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::kek::{Kek, HASH_KEY};
use crate::keys::{self, Alg};
use crate::state::AppState;
use crate::tokens;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list))
        .route("/v1/keys/rotate", post(rotate))
        .route("/v1/keys/rewrap", post(rewrap))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EnvFilter>,
) -> ApiResult<Json<KeyList>> {
    q.check(&caller)?;
    let keys: Vec<KeyView> = state
        .keyring
        .list(q.env.as_deref())
        .into_iter()
        .filter(|k| caller.can(&k.env, Access::Read))
        .map(|k| KeyView {
            kid: k.kid.clone(),
            env: k.env.clone(),
            alg: k.alg.as_str().to_owned(),
            state: k.state.clone(),
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
            publish_until: k.publish_until,
        })
        .collect();
    Ok(Json(KeyList { keys }))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RotateKeys>,
) -> ApiResult<Json<RotatedKeys>> {
    caller.require(&req.env, Access::Write)?;
    let env = tokens::environment(&state, &req.env).await?;
    let algs: Vec<Alg> = match &req.alg {
        Some(a) => vec![Alg::from_str(a).map_err(ApiError::Validation)?],
        None => {
            let mut present: Vec<Alg> = state.keyring.list(Some(&env.name)).iter().map(|k| k.alg).collect();
            present.dedup();
            if present.is_empty() {
                present.push(Alg::EdDSA);
            }
            present
        }
    };
    let mut rotated = Vec::new();
    for alg in algs {
        let key = keys::rotate(&state, &caller.token_id, &env.name, alg, env.policy.max_ttl).await?;
        rotated.push(RotatedKey { alg: alg.as_str().to_owned(), current: key.kid.clone() });
    }
    Ok(Json(RotatedKeys { env: env.name, rotated }))
}

/// Re-seals every data key (hash key, signing keys, secret data keys) under a new master key,
/// in one transaction, while the server keeps serving: validation never needs the master
/// key, and writes that seal wait for the swap.
async fn rewrap(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Rewrap>,
) -> ApiResult<Json<Rewrapped>> {
    caller.require_admin("replacing the master key")?;
    let (new_master, key_file) = match (&req.new_master_key, &state.master_key_file) {
        (Some(hex), _) => (MasterKey::from_hex(hex).map_err(|e| ApiError::Validation(e.to_string()))?, None),
        (None, Some(path)) => (MasterKey::generate(), Some(path.clone())),
        (None, None) => {
            return Err(ApiError::Validation(
                "the master key comes from TESSERA_MASTER_KEY: give new_master_key, then update TESSERA_MASTER_KEY"
                    .into(),
            ))
        }
    };
    let _exclusive = state.seal_lock.write().await;
    let old = state.kek();
    let new = Kek::new(&new_master);
    if new.fingerprint == old.fingerprint {
        return Err(ApiError::Validation("the new master key is the current one".into()));
    }
    let internal = |what: String| ApiError::Internal(what);
    let mut resealed = Resealed { master_fingerprint: new.fingerprint.clone(), ..Default::default() };
    if let Some((sealed, _)) = state.store.system_key(HASH_KEY).await? {
        let raw = old.system.open(&sealed, HASH_KEY.as_bytes()).map_err(|e| internal(format!("hash key: {e}")))?;
        resealed.system.push((HASH_KEY.to_owned(), new.system.seal(&raw, HASH_KEY.as_bytes())));
    }
    for key in state.store.signing_keys().await? {
        let raw =
            old.signing.open(&key.sealed_key, key.kid.as_bytes()).map_err(|e| internal(format!("{}: {e}", key.kid)))?;
        resealed.signing.push((key.kid.clone(), new.signing.seal(&raw, key.kid.as_bytes())));
    }
    for v in state.store.secret_versions(None, None).await? {
        let m = &v.meta;
        let aad = format!("{}/{}/{}", m.env, m.name, m.version).into_bytes();
        let raw = old
            .dek
            .open(&v.sealed_dek, &aad)
            .map_err(|e| internal(format!("{}/{} v{}: {e}", m.env, m.name, m.version)))?;
        resealed.deks.push((m.env.clone(), m.name.clone(), m.version, new.dek.seal(&raw, &aad)));
    }
    // The new key is on disk before the commit, so a crash in between loses nothing: the
    // next start finds `master.key.new` and uses it when the old key no longer opens.
    let pending = key_file.as_ref().map(|p| p.with_extension("key.new"));
    if let Some(pending) = &pending {
        let _ = std::fs::remove_file(pending);
        crate::bootstrap::write_private(pending, format!("{}\n", new_master.to_hex().as_str()).as_bytes())
            .map_err(|e| internal(format!("{e:#}")))?;
    }
    let counts = (resealed.signing.len(), resealed.deks.len());
    let event = AuditEvent::new(actions::KEY_REWRAP, &caller.token_id)
        .detail("old_fingerprint", old.fingerprint.clone())
        .detail("new_fingerprint", new.fingerprint.clone())
        .detail("signing_keys", counts.0.to_string())
        .detail("secret_versions", counts.1.to_string());
    state.store.commit(WriteUnit::new(Change::Rewrap(resealed), event)).await?;
    if let (Some(pending), Some(path)) = (&pending, &key_file) {
        std::fs::rename(pending, path).map_err(|e| internal(format!("installing the new key file: {e}")))?;
    }
    let new_fingerprint = new.fingerprint.clone();
    state.set_kek(new);
    Ok(Json(Rewrapped {
        old_fingerprint: old.fingerprint.clone(),
        new_fingerprint,
        signing_keys: counts.0,
        secret_versions: counts.1,
        key_file: key_file.map(|p| p.display().to_string()),
    }))
}
