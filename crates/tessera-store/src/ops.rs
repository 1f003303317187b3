//! The store's statements, written once for both databases against [`Conn`]: applying each
//! [`Change`], and every read. Instants are stored as microseconds since the epoch (UTC),
//! durations as seconds (timeouts as milliseconds).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera_core::audit::ChainHead;
use tessera_core::upstream::{Fault, FaultKind, Injection, RotationHook, SecretConfig, SecretVersion, Upstream};
use tessera_core::TokenHash;
use tessera_core::{
    AuditEntry, AuditEvent, Client, EnvPolicy, Environment, NewToken, Run, ScopeSet, Token, TokenFormat,
};

use crate::error::{Result, StoreError};
use crate::sql::{stmt, Cols, Conn, Stmt};
use crate::store::{
    Change, ChangeKind, ChangeRecord, CommitOutcome, GatewayUse, StoredKey, StoredSecretVersion, TokenFilter,
    UsageUpdate,
};

/// Audit rows per multi-row INSERT (9 parameters each; both databases allow far more).
const AUDIT_ROWS_PER_INSERT: usize = 200;

pub async fn load_head(conn: &mut Conn<'_>, for_update: bool) -> Result<ChainHead> {
    let sql = if for_update {
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    };
    let head = conn
        .optional(stmt(sql), |r| -> Result<ChainHead> {
            Ok(ChainHead { seq: r.int("seq")?.max(0) as u64, hash: hash32(r.bytes("hash")?) })
        })
        .await?;
    Ok(head.unwrap_or_else(ChainHead::genesis))
}

/// Makes sure the head row exists (PostgreSQL locks it to serialise appends).
pub async fn ensure_head(conn: &mut Conn<'_>) -> Result<()> {
    let genesis = ChainHead::genesis();
    conn.exec(
        stmt("INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(genesis.seq as i64)
            .bind(genesis.hash.as_slice()),
    )
    .await?;
    Ok(())
}

pub async fn store_head(conn: &mut Conn<'_>, head: &ChainHead) -> Result<()> {
    conn.exec(
        stmt(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(head.seq as i64)
        .bind(head.hash.as_slice()),
    )
    .await?;
    Ok(())
}

/// Applies a unit's changes and appends its audit events to `head`, returning the entries
/// (not yet inserted: see [`insert_audit`]).
pub async fn apply_unit(
    conn: &mut Conn<'_>,
    head: &mut ChainHead,
    changes: &[Change],
    events: &[AuditEvent],
) -> Result<CommitOutcome> {
    let mut outcome = CommitOutcome::default();
    for change in changes {
        apply_change(conn, change, &mut outcome).await?;
    }
    let now = Utc::now();
    for event in events {
        outcome.audit.push(head.append(now, event.clone()));
    }
    Ok(outcome)
}

/// Inserts audit entries with multi-row INSERTs.
pub async fn insert_audit(conn: &mut Conn<'_>, entries: &[&AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(AUDIT_ROWS_PER_INSERT) {
        let mut s =
            stmt("INSERT INTO audit_log (seq, at, action, actor, env, target, details, prev_hash, hash) VALUES ")
                .values_list(chunk.len(), 9);
        for e in chunk {
            let details = serde_json::to_string(&e.event.details).expect("a map of strings serializes");
            s = s
                .bind(e.seq as i64)
                .bind(micros(e.at))
                .bind(&e.event.action)
                .bind(&e.event.actor)
                .bind(&e.event.env)
                .bind(&e.event.target)
                .bind(details)
                .bind(e.prev_hash.as_slice())
                .bind(e.hash.as_slice());
        }
        conn.exec(s).await?;
    }
    Ok(())
}

/// What a change touched, for other replicas' caches (see `Store::changes_after`).
pub fn touched(change: &Change) -> Vec<(ChangeKind, String)> {
    use ChangeKind as K;
    match change {
        Change::CreateEnvironment(e) | Change::UpdateEnvironment(e) => vec![(K::Environment, e.name.clone())],
        Change::CreateClient(c) | Change::UpdateClient(c) => vec![(K::Client, c.id.clone())],
        Change::SetClientDisabled { id, .. } => vec![(K::Client, id.clone())],
        Change::CreateToken(t) => vec![(K::Token, t.token.id.clone())],
        Change::RotateToken { old_id, new, .. } => vec![(K::Token, old_id.clone()), (K::Token, new.token.id.clone())],
        Change::RenewToken { id, .. } => vec![(K::Token, id.clone())],
        Change::RevokeTokens { ids, .. } => ids.iter().map(|id| (K::Token, id.clone())).collect(),
        Change::AddSigningKey(k) => vec![(K::SigningKeys, k.env.clone())],
        Change::RotateSigningKeys { next, .. } => vec![(K::SigningKeys, next.env.clone())],
        Change::DropSigningKey { .. } => vec![(K::SigningKeys, String::new())],
        Change::PutSecretConfig(c) => vec![(K::Secret, format!("{}/{}", c.env, c.name))],
        Change::PutSecretVersion { version, .. } => {
            vec![(K::Secret, format!("{}/{}", version.meta.env, version.meta.name))]
        }
        Change::Rewrap(_) => vec![(K::MasterKey, String::new())],
        Change::PutUpstream(u) => vec![(K::Upstream, format!("{}/{}", u.env, u.name))],
        Change::AddFault(_) | Change::ClearFaults { .. } => vec![(K::Faults, String::new())],
        Change::SetSystemKey { .. }
        | Change::RecordGatewayUse(_)
        | Change::CreateRun(_)
        | Change::RunHeartbeat { .. }
        | Change::EndRun { .. }
        | Change::AddRunTokens { .. } => vec![],
    }
}

fn unique_violation(e: sqlx::Error, kind: &'static str, id: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists { kind, id: id.to_owned() },
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!("{kind} {id:?} refers to an environment or client that does not exist"))
        }
        _ => e.into(),
    }
}

/// A conditional UPDATE must have matched a row; otherwise the state changed meanwhile.
fn changed_one(rows: u64, conflict: impl FnOnce() -> StoreError) -> Result<()> {
    if rows == 0 {
        return Err(conflict());
    }
    Ok(())
}

fn scopes_json(c: &Client) -> String {
    let scopes: BTreeMap<&String, Vec<String>> = c.allowed_scopes.iter().map(|(k, v)| (k, v.to_vec())).collect();
    serde_json::to_string(&scopes).expect("strings serialize")
}

fn policy_secs(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.as_secs() as i64)
}

async fn apply_change(conn: &mut Conn<'_>, change: &Change, outcome: &mut CommitOutcome) -> Result<()> {
    match change {
        Change::CreateEnvironment(env) => {
            let p = &env.policy;
            conn.exec(
                stmt(
                    "INSERT INTO environments (name, default_ttl_s, max_ttl_s, idle_ttl_s, rotation_period_s, \
                     max_uses, protected, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&env.name)
                .bind(p.default_ttl.as_secs() as i64)
                .bind(p.max_ttl.as_secs() as i64)
                .bind(policy_secs(p.idle_ttl))
                .bind(policy_secs(p.rotation_period))
                .bind(p.max_uses.map(|n| n as i64))
                .bind(env.protected)
                .bind(micros(env.created_at)),
            )
            .await
            .map_err(|e| unique_violation(e, "environment", &env.name))?;
        }
        Change::CreateClient(c) => {
            conn.exec(
                stmt(
                    "INSERT INTO clients (id, description, allowed_scopes, token_format, alg, secret_hash, disabled, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&c.id)
                .bind(&c.description)
                .bind(scopes_json(c))
                .bind(c.token_format.as_str())
                .bind(&c.alg)
                .bind(c.secret_hash.0.as_slice())
                .bind(c.disabled)
                .bind(micros(c.created_at)),
            )
            .await
            .map_err(|e| unique_violation(e, "client", &c.id))?;
        }
        Change::CreateToken(new) => insert_token(conn, new).await?,
        Change::RotateToken { old_id, grace_until, new } => {
            let rows = conn
                .exec(
                    stmt(
                        "UPDATE tokens SET superseded_by = $1, grace_until = $2 \
                         WHERE id = $3 AND revoked_at IS NULL AND superseded_by IS NULL",
                    )
                    .bind(&new.token.id)
                    .bind(micros(*grace_until))
                    .bind(old_id),
                )
                .await?;
            changed_one(rows, || StoreError::Conflict(format!("token {old_id} was revoked or rotated meanwhile")))?;
            insert_token(conn, new).await?;
        }
        Change::RenewToken { id, expires_at } => {
            let rows = conn
                .exec(
                    stmt(
                        "UPDATE tokens SET expires_at = $1 \
                         WHERE id = $2 AND revoked_at IS NULL AND superseded_by IS NULL",
                    )
                    .bind(micros(*expires_at))
                    .bind(id),
                )
                .await?;
            changed_one(rows, || StoreError::Conflict(format!("token {id} was revoked or rotated meanwhile")))?;
        }
        Change::RevokeTokens { ids, at, reason } => {
            for id in ids {
                let rows = conn
                    .exec(
                        stmt(
                            "UPDATE tokens SET revoked_at = $1, revoke_reason = $2 \
                             WHERE id = $3 AND revoked_at IS NULL",
                        )
                        .bind(micros(*at))
                        .bind(reason)
                        .bind(id),
                    )
                    .await?;
                if rows == 1 {
                    outcome.revoked.push(id.clone());
                }
            }
        }
        Change::SetClientDisabled { id, disabled } => {
            let rows =
                conn.exec(stmt("UPDATE clients SET disabled = $1 WHERE id = $2").bind(*disabled).bind(id)).await?;
            if rows == 0 {
                return Err(StoreError::NotFound { kind: "client", id: id.clone() });
            }
        }
        Change::AddSigningKey(key) => insert_key(conn, key).await?,
        Change::RotateSigningKeys { promote, retire, publish_until, next, at } => {
            if let Some(old) = retire {
                let rows = conn
                    .exec(
                        stmt(
                            "UPDATE signing_keys SET state = 'retired', retired_at = $1, publish_until = $2 \
                             WHERE kid = $3 AND state = 'current'",
                        )
                        .bind(micros(*at))
                        .bind(micros(*publish_until))
                        .bind(old),
                    )
                    .await?;
                changed_one(rows, || StoreError::Conflict(format!("signing key {old} is no longer current")))?;
            }
            let rows = conn
                .exec(
                    stmt("UPDATE signing_keys SET state = 'current', activated_at = $1 WHERE kid = $2 AND state = 'next'")
                        .bind(micros(*at))
                        .bind(promote),
                )
                .await?;
            changed_one(rows, || StoreError::Conflict(format!("signing key {promote} is no longer the next key")))?;
            insert_key(conn, next).await?;
        }
        Change::DropSigningKey { kid } => {
            conn.exec(stmt("DELETE FROM signing_keys WHERE kid = $1 AND state = 'retired'").bind(kid)).await?;
        }
        Change::SetSystemKey { purpose, sealed, master_fingerprint } => {
            conn.exec(
                stmt("INSERT INTO system_keys (purpose, sealed, master_fingerprint) VALUES ($1, $2, $3)")
                    .bind(purpose)
                    .bind(sealed)
                    .bind(master_fingerprint),
            )
            .await
            .map_err(|e| unique_violation(e, "system key", purpose))?;
        }
        Change::PutSecretConfig(c) => {
            let hook = c.hook.as_ref().map(|h| serde_json::to_string(&h.argv).expect("strings serialize"));
            conn.exec(
                stmt(
                    "INSERT INTO secrets (env, name, hook, hook_timeout_s, rotation_period_s, overlap_s, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (env, name) DO UPDATE SET hook = excluded.hook, \
                     hook_timeout_s = excluded.hook_timeout_s, rotation_period_s = excluded.rotation_period_s, \
                     overlap_s = excluded.overlap_s",
                )
                .bind(&c.env)
                .bind(&c.name)
                .bind(hook)
                .bind(c.hook.as_ref().map(|h| h.timeout.as_secs() as i64))
                .bind(policy_secs(c.rotation_period))
                .bind(c.overlap.as_secs() as i64)
                .bind(micros(c.created_at)),
            )
            .await
            .map_err(|e| unique_violation(e, "secret", &c.name))?;
        }
        Change::PutSecretVersion { version, previous_valid_until } => {
            let m = &version.meta;
            conn.exec(
                stmt(
                    "UPDATE secret_versions SET state = 'retired' WHERE env = $1 AND name = $2 AND state = 'previous'",
                )
                .bind(&m.env)
                .bind(&m.name),
            )
            .await?;
            conn.exec(
                stmt(
                    "UPDATE secret_versions SET state = 'previous', valid_until = $1 \
                     WHERE env = $2 AND name = $3 AND state = 'current'",
                )
                .bind(micros(*previous_valid_until))
                .bind(&m.env)
                .bind(&m.name),
            )
            .await?;
            conn.exec(
                stmt(
                    "INSERT INTO secret_versions (env, name, version, sealed_dek, ciphertext, fingerprint, \
                     created_at, created_by, expires_at, state, valid_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'current', NULL)",
                )
                .bind(&m.env)
                .bind(&m.name)
                .bind(i64::from(m.version))
                .bind(&version.sealed_dek)
                .bind(&version.ciphertext)
                .bind(&m.fingerprint)
                .bind(micros(m.created_at))
                .bind(&m.created_by)
                .bind(m.expires_at.map(micros)),
            )
            .await
            .map_err(|e| unique_violation(e, "secret version", &format!("{}/{} v{}", m.env, m.name, m.version)))?;
        }
        Change::Rewrap(r) => {
            for (purpose, sealed) in &r.system {
                conn.exec(
                    stmt("UPDATE system_keys SET sealed = $1, master_fingerprint = $2 WHERE purpose = $3")
                        .bind(sealed)
                        .bind(&r.master_fingerprint)
                        .bind(purpose),
                )
                .await?;
            }
            for (kid, sealed) in &r.signing {
                conn.exec(stmt("UPDATE signing_keys SET sealed_key = $1 WHERE kid = $2").bind(sealed).bind(kid))
                    .await?;
            }
            for (env, name, version, sealed) in &r.deks {
                conn.exec(
                    stmt("UPDATE secret_versions SET sealed_dek = $1 WHERE env = $2 AND name = $3 AND version = $4")
                        .bind(sealed)
                        .bind(env)
                        .bind(name)
                        .bind(i64::from(*version)),
                )
                .await?;
            }
        }
        Change::PutUpstream(u) => {
            conn.exec(
                stmt(
                    "INSERT INTO upstreams (env, name, url, secret, inject, allow_paths, allow_methods, timeout_ms, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (env, name) DO UPDATE SET \
                     url = excluded.url, secret = excluded.secret, inject = excluded.inject, \
                     allow_paths = excluded.allow_paths, allow_methods = excluded.allow_methods, \
                     timeout_ms = excluded.timeout_ms",
                )
                .bind(&u.env)
                .bind(&u.name)
                .bind(&u.url)
                .bind(&u.secret)
                .bind(u.inject.to_string())
                .bind(serde_json::to_string(&u.allow_paths).expect("strings serialize"))
                .bind(serde_json::to_string(&u.allow_methods).expect("strings serialize"))
                .bind(u.timeout.as_millis() as i64)
                .bind(micros(u.created_at)),
            )
            .await
            .map_err(|e| unique_violation(e, "upstream", &u.name))?;
        }
        Change::AddFault(f) => {
            let (kind, n, status, duration) = match &f.kind {
                FaultKind::FailAfter { n, status } => ("fail_after", Some(*n as i64), Some(i64::from(*status)), None),
                FaultKind::RevokeAfter { n } => ("revoke_after", Some(*n as i64), None, None),
                FaultKind::RotateAfter { after } => ("rotate_after", None, None, Some(after.as_millis() as i64)),
                FaultKind::Latency { delay } => ("latency", None, None, Some(delay.as_millis() as i64)),
            };
            conn.exec(
                stmt(
                    "INSERT INTO gateway_faults (id, env, upstream, token_id, kind, n, status, duration_ms, \
                     created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&f.id)
                .bind(&f.env)
                .bind(&f.upstream)
                .bind(&f.token_id)
                .bind(kind)
                .bind(n)
                .bind(status)
                .bind(duration)
                .bind(micros(f.created_at))
                .bind(&f.created_by),
            )
            .await?;
        }
        Change::ClearFaults { env, upstream } => {
            conn.exec(
                stmt("DELETE FROM gateway_faults WHERE ($1 IS NULL OR env = $1) AND ($2 IS NULL OR upstream = $2)")
                    .bind(env)
                    .bind(upstream),
            )
            .await?;
        }
        Change::UpdateEnvironment(env) => {
            let p = &env.policy;
            let rows = conn
                .exec(
                    stmt(
                        "UPDATE environments SET default_ttl_s = $1, max_ttl_s = $2, idle_ttl_s = $3, \
                         rotation_period_s = $4, max_uses = $5, protected = $6 WHERE name = $7",
                    )
                    .bind(p.default_ttl.as_secs() as i64)
                    .bind(p.max_ttl.as_secs() as i64)
                    .bind(policy_secs(p.idle_ttl))
                    .bind(policy_secs(p.rotation_period))
                    .bind(p.max_uses.map(|n| n as i64))
                    .bind(env.protected)
                    .bind(&env.name),
                )
                .await?;
            if rows == 0 {
                return Err(StoreError::NotFound { kind: "environment", id: env.name.clone() });
            }
        }
        Change::UpdateClient(c) => {
            let rows = conn
                .exec(
                    stmt(
                        "UPDATE clients SET description = $1, allowed_scopes = $2, token_format = $3, alg = $4 \
                         WHERE id = $5",
                    )
                    .bind(&c.description)
                    .bind(scopes_json(c))
                    .bind(c.token_format.as_str())
                    .bind(&c.alg)
                    .bind(&c.id),
                )
                .await?;
            if rows == 0 {
                return Err(StoreError::NotFound { kind: "client", id: c.id.clone() });
            }
        }
        Change::CreateRun(r) => {
            conn.exec(
                stmt(
                    "INSERT INTO runs (id, env, label, started_at, heartbeat_at, heartbeat_timeout_s, finished_at, \
                     exit_code, status, tokens_minted, tokens_revoked, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&r.id)
                .bind(&r.env)
                .bind(&r.label)
                .bind(micros(r.started_at))
                .bind(micros(r.heartbeat_at))
                .bind(r.heartbeat_timeout.as_secs() as i64)
                .bind(r.finished_at.map(micros))
                .bind(r.exit_code.map(i64::from))
                .bind(&r.status)
                .bind(i64::from(r.tokens_minted))
                .bind(i64::from(r.tokens_revoked))
                .bind(&r.created_by),
            )
            .await
            .map_err(|e| unique_violation(e, "run", &r.id))?;
        }
        Change::RunHeartbeat { id, at } => {
            let sql = format!(
                "UPDATE runs SET heartbeat_at = {}(heartbeat_at, $1) WHERE id = $2 AND status = 'running'",
                conn.dialect().greatest()
            );
            let rows = conn.exec(stmt(sql).bind(micros(*at)).bind(id)).await?;
            changed_one(rows, || StoreError::Conflict(format!("run {id} is not running")))?;
        }
        Change::EndRun { id, at, exit_code, status, tokens_revoked } => {
            let rows = conn
                .exec(
                    stmt(
                        "UPDATE runs SET finished_at = $1, exit_code = $2, status = $3, tokens_revoked = $4 \
                         WHERE id = $5 AND status = 'running'",
                    )
                    .bind(micros(*at))
                    .bind(exit_code.map(i64::from))
                    .bind(status)
                    .bind(i64::from(*tokens_revoked))
                    .bind(id),
                )
                .await?;
            changed_one(rows, || StoreError::Conflict(format!("run {id} already ended")))?;
        }
        Change::AddRunTokens { id, count } => {
            conn.exec(
                stmt("UPDATE runs SET tokens_minted = tokens_minted + $1 WHERE id = $2")
                    .bind(i64::from(*count))
                    .bind(id),
            )
            .await?;
        }
        Change::RecordGatewayUse(rows) => {
            // One multi-row INSERT per chunk: a flush is one round trip, not one per request.
            for chunk in rows.chunks(500) {
                let mut s = stmt(
                    "INSERT INTO gateway_usage (at, env, upstream, token_id, run_id, method, path, status, \
                     latency_us) VALUES ",
                )
                .values_list(chunk.len(), 9);
                for u in chunk {
                    s = s
                        .bind(micros(u.at))
                        .bind(&u.env)
                        .bind(&u.upstream)
                        .bind(&u.token_id)
                        .bind(&u.run_id)
                        .bind(&u.method)
                        .bind(&u.path)
                        .bind(i64::from(u.status))
                        .bind(u.latency_us as i64);
                }
                conn.exec(s).await?;
            }
        }
    }
    Ok(())
}

async fn insert_key(conn: &mut Conn<'_>, k: &StoredKey) -> Result<()> {
    conn.exec(
        stmt(
            "INSERT INTO signing_keys (kid, env, alg, state, sealed_key, public_jwk, created_at, activated_at, \
             retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&k.kid)
        .bind(&k.env)
        .bind(&k.alg)
        .bind(&k.state)
        .bind(&k.sealed_key)
        .bind(&k.public_jwk)
        .bind(micros(k.created_at))
        .bind(k.activated_at.map(micros))
        .bind(k.retired_at.map(micros))
        .bind(k.publish_until.map(micros)),
    )
    .await
    .map_err(|e| unique_violation(e, "signing key", &k.kid))?;
    Ok(())
}

async fn insert_token(conn: &mut Conn<'_>, new: &NewToken) -> Result<()> {
    insert_tokens(conn, &[new]).await
}

/// Inserts tokens with multi-row INSERTs (the group commit of many token creations).
pub async fn insert_tokens(conn: &mut Conn<'_>, tokens: &[&NewToken]) -> Result<()> {
    const COLUMNS: usize = 22;
    for chunk in tokens.chunks(500) {
        let mut s = stmt(
            "INSERT INTO tokens (id, hash, env, client_id, scopes, audience, format, labels, run_id, created_by, \
             created_at, not_before, expires_at, idle_ttl_s, last_used_at, max_uses, uses, revoked_at, \
             revoke_reason, rotated_from, superseded_by, grace_until) VALUES ",
        )
        .values_list(chunk.len(), COLUMNS);
        for new in chunk {
            let t = &new.token;
            let hash = match t.format {
                TokenFormat::Opaque => Some(new.hash.0.as_slice()),
                TokenFormat::Jwt => None,
            };
            s = s
                .bind(&t.id)
                .bind(hash)
                .bind(&t.env)
                .bind(&t.client_id)
                .bind(t.scopes.to_string())
                .bind(&t.audience)
                .bind(t.format.as_str())
                .bind(serde_json::to_string(&t.labels).expect("strings serialize"))
                .bind(&t.run_id)
                .bind(&t.created_by)
                .bind(micros(t.created_at))
                .bind(t.not_before.map(micros))
                .bind(micros(t.expires_at))
                .bind(policy_secs(t.idle_ttl))
                .bind(t.last_used_at.map(micros))
                .bind(t.max_uses.map(|n| n as i64))
                .bind(t.uses as i64)
                .bind(t.revoked_at.map(micros))
                .bind(&t.revoke_reason)
                .bind(&t.rotated_from)
                .bind(&t.superseded_by)
                .bind(t.grace_until.map(micros));
        }
        let id = if chunk.len() == 1 { chunk[0].token.id.as_str() } else { "(one of a batch)" };
        conn.exec(s).await.map_err(|e| unique_violation(e, "token", id))?;
    }
    Ok(())
}

/// Adds new uses and moves `last_used_at` forward (never back).
pub async fn apply_usage(conn: &mut Conn<'_>, updates: &[UsageUpdate]) -> Result<()> {
    let greatest = conn.dialect().greatest();
    let sql = format!(
        "UPDATE tokens SET uses = uses + $1, last_used_at = {greatest}(COALESCE(last_used_at, 0), $2) WHERE id = $3"
    );
    for u in updates {
        conn.exec(stmt(sql.clone()).bind(u.new_uses as i64).bind(micros(u.last_used_at)).bind(&u.token_id)).await?;
    }
    Ok(())
}

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| StoreError::Corrupt(format!("instant {v} out of range")))
}

fn opt_micros(v: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    v.map(from_micros).transpose()
}

fn secs(v: Option<i64>) -> Option<Duration> {
    v.map(|s| Duration::from_secs(s.max(0) as u64))
}

fn hash32(v: Vec<u8>) -> [u8; 32] {
    // A hash of the wrong length cannot be genuine; zeros make verification fail at this entry.
    v.try_into().unwrap_or([0; 32])
}

fn env_from_row(row: &dyn Cols) -> Result<Environment> {
    Ok(Environment {
        name: row.text("name")?,
        policy: EnvPolicy {
            default_ttl: Duration::from_secs(row.int("default_ttl_s")?.max(0) as u64),
            max_ttl: Duration::from_secs(row.int("max_ttl_s")?.max(0) as u64),
            idle_ttl: secs(row.opt_int("idle_ttl_s")?),
            rotation_period: secs(row.opt_int("rotation_period_s")?),
            max_uses: row.opt_int("max_uses")?.map(|n| n.max(0) as u64),
        },
        protected: row.boolean("protected")?,
        created_at: from_micros(row.int("created_at")?)?,
    })
}

fn client_from_row(row: &dyn Cols) -> Result<Client> {
    let id = row.text("id")?;
    let raw = row.text("allowed_scopes")?;
    let scopes: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(format!("scopes of client {id}: {e}")))?;
    let allowed_scopes = scopes
        .into_iter()
        .map(|(env, list)| {
            ScopeSet::from_list(list)
                .map(|s| (env, s))
                .map_err(|e| StoreError::Corrupt(format!("scopes of client {id}: {e}")))
        })
        .collect::<Result<_>>()?;
    Ok(Client {
        description: row.opt_text("description")?,
        allowed_scopes,
        token_format: TokenFormat::from_str(&row.text("token_format")?).map_err(StoreError::Corrupt)?,
        alg: row.text("alg")?,
        secret_hash: TokenHash(hash32(row.bytes("secret_hash")?)),
        disabled: row.boolean("disabled")?,
        created_at: from_micros(row.int("created_at")?)?,
        id,
    })
}

const TOKEN_COLUMNS: &str = "id, hash, env, client_id, scopes, audience, format, labels, run_id, created_by, \
    created_at, not_before, expires_at, idle_ttl_s, last_used_at, max_uses, uses, revoked_at, revoke_reason, \
    rotated_from, superseded_by, grace_until";

fn token_from_row(row: &dyn Cols) -> Result<Token> {
    let id = row.text("id")?;
    let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("{what} of token {id}: {e}"));
    let scopes = ScopeSet::parse_space_separated(&row.text("scopes")?).map_err(|e| corrupt("scopes", e.to_string()))?;
    let labels: BTreeMap<String, String> =
        serde_json::from_str(&row.text("labels")?).map_err(|e| corrupt("labels", e.to_string()))?;
    let format = TokenFormat::from_str(&row.text("format")?).map_err(|e| corrupt("format", e))?;
    Ok(Token {
        env: row.text("env")?,
        client_id: row.text("client_id")?,
        scopes,
        audience: row.opt_text("audience")?,
        format,
        labels,
        run_id: row.opt_text("run_id")?,
        created_by: row.text("created_by")?,
        created_at: from_micros(row.int("created_at")?)?,
        not_before: opt_micros(row.opt_int("not_before")?)?,
        expires_at: from_micros(row.int("expires_at")?)?,
        idle_ttl: secs(row.opt_int("idle_ttl_s")?),
        last_used_at: opt_micros(row.opt_int("last_used_at")?)?,
        max_uses: row.opt_int("max_uses")?.map(|n| n.max(0) as u64),
        uses: row.int("uses")?.max(0) as u64,
        revoked_at: opt_micros(row.opt_int("revoked_at")?)?,
        revoke_reason: row.opt_text("revoke_reason")?,
        rotated_from: row.opt_text("rotated_from")?,
        superseded_by: row.opt_text("superseded_by")?,
        grace_until: opt_micros(row.opt_int("grace_until")?)?,
        id,
    })
}

fn audit_from_row(row: &dyn Cols) -> Result<AuditEntry> {
    let raw = row.text("details")?;
    // Details that no longer parse were edited outside Tessera: keep them visible (and let the
    // hash check name the entry) rather than failing the whole listing.
    let details = serde_json::from_str::<BTreeMap<String, String>>(&raw)
        .unwrap_or_else(|_| BTreeMap::from([("<unparseable>".to_owned(), raw)]));
    Ok(AuditEntry {
        seq: row.int("seq")?.max(0) as u64,
        at: from_micros(row.int("at")?)?,
        event: AuditEvent {
            action: row.text("action")?,
            actor: row.text("actor")?,
            env: row.opt_text("env")?,
            target: row.opt_text("target")?,
            details,
        },
        prev_hash: hash32(row.bytes("prev_hash")?),
        hash: hash32(row.bytes("hash")?),
    })
}

fn secret_config_from_row(row: &dyn Cols) -> Result<SecretConfig> {
    let hook = row
        .opt_text("hook")?
        .map(|h| serde_json::from_str::<Vec<String>>(&h).map_err(|e| StoreError::Corrupt(format!("secret hook: {e}"))))
        .transpose()?;
    let timeout = Duration::from_secs(row.opt_int("hook_timeout_s")?.unwrap_or(30).max(1) as u64);
    Ok(SecretConfig {
        env: row.text("env")?,
        name: row.text("name")?,
        hook: hook.map(|argv| RotationHook { argv, timeout }),
        rotation_period: secs(row.opt_int("rotation_period_s")?),
        overlap: Duration::from_secs(row.int("overlap_s")?.max(0) as u64),
        created_at: from_micros(row.int("created_at")?)?,
    })
}

fn secret_version_from_row(row: &dyn Cols) -> Result<StoredSecretVersion> {
    Ok(StoredSecretVersion {
        meta: SecretVersion {
            env: row.text("env")?,
            name: row.text("name")?,
            version: row.int("version")?.clamp(0, i64::from(u32::MAX)) as u32,
            fingerprint: row.text("fingerprint")?,
            created_at: from_micros(row.int("created_at")?)?,
            created_by: row.text("created_by")?,
            expires_at: opt_micros(row.opt_int("expires_at")?)?,
            state: row.text("state")?,
            valid_until: opt_micros(row.opt_int("valid_until")?)?,
        },
        sealed_dek: row.bytes("sealed_dek")?,
        ciphertext: row.bytes("ciphertext")?,
    })
}

fn upstream_from_row(row: &dyn Cols) -> Result<Upstream> {
    let name = row.text("name")?;
    let corrupt = |e: String| StoreError::Corrupt(format!("upstream {name}: {e}"));
    let list = |col: &str| -> Result<Vec<String>> {
        serde_json::from_str(&row.text(col)?).map_err(|e| corrupt(e.to_string()))
    };
    Ok(Upstream {
        env: row.text("env")?,
        url: row.text("url")?,
        secret: row.text("secret")?,
        inject: row.text("inject")?.parse::<Injection>().map_err(|e| corrupt(e.to_string()))?,
        allow_paths: list("allow_paths")?,
        allow_methods: list("allow_methods")?,
        timeout: Duration::from_millis(row.int("timeout_ms")?.max(1) as u64),
        created_at: from_micros(row.int("created_at")?)?,
        name,
    })
}

fn fault_from_row(row: &dyn Cols) -> Result<Fault> {
    let kind = row.text("kind")?;
    let n = row.opt_int("n")?.unwrap_or(0).max(0) as u64;
    let duration = Duration::from_millis(row.opt_int("duration_ms")?.unwrap_or(0).max(0) as u64);
    let kind = match kind.as_str() {
        "fail_after" => {
            FaultKind::FailAfter { n, status: row.opt_int("status")?.unwrap_or(401).clamp(100, 599) as u16 }
        }
        "revoke_after" => FaultKind::RevokeAfter { n },
        "rotate_after" => FaultKind::RotateAfter { after: duration },
        "latency" => FaultKind::Latency { delay: duration },
        other => return Err(StoreError::Corrupt(format!("unknown fault kind {other:?}"))),
    };
    Ok(Fault {
        id: row.text("id")?,
        env: row.text("env")?,
        upstream: row.text("upstream")?,
        token_id: row.opt_text("token_id")?,
        kind,
        created_at: from_micros(row.int("created_at")?)?,
        created_by: row.text("created_by")?,
    })
}

fn run_from_row(row: &dyn Cols) -> Result<Run> {
    Ok(Run {
        id: row.text("id")?,
        env: row.text("env")?,
        label: row.opt_text("label")?,
        started_at: from_micros(row.int("started_at")?)?,
        heartbeat_at: from_micros(row.int("heartbeat_at")?)?,
        heartbeat_timeout: Duration::from_secs(row.int("heartbeat_timeout_s")?.max(1) as u64),
        finished_at: opt_micros(row.opt_int("finished_at")?)?,
        exit_code: row.opt_int("exit_code")?.map(|c| c.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
        status: row.text("status")?,
        tokens_minted: row.int("tokens_minted")?.clamp(0, i64::from(u32::MAX)) as u32,
        tokens_revoked: row.int("tokens_revoked")?.clamp(0, i64::from(u32::MAX)) as u32,
        created_by: row.text("created_by")?,
    })
}

fn key_from_row(row: &dyn Cols) -> Result<StoredKey> {
    Ok(StoredKey {
        kid: row.text("kid")?,
        env: row.text("env")?,
        alg: row.text("alg")?,
        state: row.text("state")?,
        sealed_key: row.bytes("sealed_key")?,
        public_jwk: row.text("public_jwk")?,
        created_at: from_micros(row.int("created_at")?)?,
        activated_at: opt_micros(row.opt_int("activated_at")?)?,
        retired_at: opt_micros(row.opt_int("retired_at")?)?,
        publish_until: opt_micros(row.opt_int("publish_until")?)?,
    })
}

fn gateway_use_from_row(r: &dyn Cols) -> Result<GatewayUse> {
    Ok(GatewayUse {
        at: from_micros(r.int("at")?)?,
        env: r.text("env")?,
        upstream: r.text("upstream")?,
        token_id: r.text("token_id")?,
        run_id: r.opt_text("run_id")?,
        method: r.text("method")?,
        path: r.text("path")?,
        status: r.int("status")?.clamp(0, 999) as u16,
        latency_us: r.int("latency_us")?.max(0) as u64,
    })
}

// Reads.

pub async fn environment(c: &mut Conn<'_>, name: &str) -> Result<Option<Environment>> {
    c.optional(stmt("SELECT * FROM environments WHERE name = $1").bind(name), env_from_row).await
}

pub async fn environments(c: &mut Conn<'_>) -> Result<Vec<Environment>> {
    c.all(stmt("SELECT * FROM environments ORDER BY name"), env_from_row).await
}

pub async fn client(c: &mut Conn<'_>, id: &str) -> Result<Option<Client>> {
    c.optional(stmt("SELECT * FROM clients WHERE id = $1").bind(id), client_from_row).await
}

pub async fn clients(c: &mut Conn<'_>) -> Result<Vec<Client>> {
    c.all(stmt("SELECT * FROM clients ORDER BY id"), client_from_row).await
}

pub async fn token(c: &mut Conn<'_>, id: &str) -> Result<Option<Token>> {
    c.optional(stmt(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1")).bind(id), token_from_row).await
}

pub async fn token_by_hash(c: &mut Conn<'_>, hash: &TokenHash) -> Result<Option<Token>> {
    c.optional(
        stmt(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1")).bind(hash.0.as_slice()),
        token_from_row,
    )
    .await
}

pub async fn tokens(c: &mut Conn<'_>, filter: &TokenFilter) -> Result<Vec<Token>> {
    let mut sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE 1 = 1");
    let mut args: Vec<crate::sql::Value> = Vec::new();
    let mut param = |sql: &mut String, clause: &str, v: crate::sql::Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(env) = &filter.env {
        param(&mut sql, " AND env = ?", env.into());
    }
    if let Some(client) = &filter.client_id {
        param(&mut sql, " AND client_id = ?", client.into());
    }
    if let Some(run) = &filter.run_id {
        param(&mut sql, " AND run_id = ?", run.into());
    }
    if let Some(at) = filter.unexpired_at {
        param(&mut sql, " AND revoked_at IS NULL AND expires_at > ?", micros(at).into());
        param(&mut sql, " AND (grace_until IS NULL OR grace_until > ?)", micros(at).into());
    }
    sql.push_str(" ORDER BY created_at DESC, id");
    if let Some(limit) = filter.limit {
        param(&mut sql, " LIMIT ?", i64::from(limit).into());
    }
    let s = args.into_iter().fold(stmt(sql), Stmt::bind);
    c.all(s, token_from_row).await
}

pub async fn live_tokens(c: &mut Conn<'_>, now: DateTime<Utc>) -> Result<Vec<(Option<TokenHash>, Token)>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND expires_at > $1 \
         AND (grace_until IS NULL OR grace_until > $1)"
    );
    c.all(stmt(sql).bind(micros(now)), |row| {
        Ok((row.opt_bytes("hash")?.map(|h| TokenHash(hash32(h))), token_from_row(row)?))
    })
    .await
}

pub async fn is_empty(c: &mut Conn<'_>) -> Result<bool> {
    let any = c.optional(stmt("SELECT EXISTS (SELECT 1 FROM tokens) AS present"), |r| r.boolean("present")).await?;
    Ok(!any.unwrap_or(false))
}

pub async fn audit_entries(c: &mut Conn<'_>, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
    c.all(
        stmt("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2").bind(after as i64).bind(i64::from(limit)),
        audit_from_row,
    )
    .await
}

pub async fn signing_keys(c: &mut Conn<'_>) -> Result<Vec<StoredKey>> {
    c.all(stmt("SELECT * FROM signing_keys ORDER BY env, alg, created_at"), key_from_row).await
}

pub async fn system_key(c: &mut Conn<'_>, purpose: &str) -> Result<Option<(Vec<u8>, String)>> {
    c.optional(
        stmt("SELECT sealed, master_fingerprint FROM system_keys WHERE purpose = $1").bind(purpose),
        |r| -> Result<_> { Ok((r.bytes("sealed")?, r.text("master_fingerprint")?)) },
    )
    .await
}

pub async fn secret_config(c: &mut Conn<'_>, env: &str, name: &str) -> Result<Option<SecretConfig>> {
    c.optional(stmt("SELECT * FROM secrets WHERE env = $1 AND name = $2").bind(env).bind(name), secret_config_from_row)
        .await
}

pub async fn secret_configs(c: &mut Conn<'_>, env: Option<&str>) -> Result<Vec<SecretConfig>> {
    c.all(
        stmt("SELECT * FROM secrets WHERE ($1 IS NULL OR env = $1) ORDER BY name, env").bind(env),
        secret_config_from_row,
    )
    .await
}

pub async fn secret_versions(
    c: &mut Conn<'_>,
    env: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<StoredSecretVersion>> {
    c.all(
        stmt(
            "SELECT * FROM secret_versions WHERE ($1 IS NULL OR env = $1) AND ($2 IS NULL OR name = $2) \
             ORDER BY env, name, version DESC",
        )
        .bind(env)
        .bind(name),
        secret_version_from_row,
    )
    .await
}

pub async fn upstreams(c: &mut Conn<'_>) -> Result<Vec<Upstream>> {
    c.all(stmt("SELECT * FROM upstreams ORDER BY env, name"), upstream_from_row).await
}

pub async fn faults(c: &mut Conn<'_>) -> Result<Vec<Fault>> {
    c.all(stmt("SELECT * FROM gateway_faults ORDER BY created_at, id"), fault_from_row).await
}

pub async fn gateway_uses(c: &mut Conn<'_>, run_id: Option<&str>, limit: u32) -> Result<Vec<GatewayUse>> {
    c.all(
        stmt("SELECT * FROM gateway_usage WHERE ($1 IS NULL OR run_id = $1) ORDER BY id DESC LIMIT $2")
            .bind(run_id)
            .bind(i64::from(limit)),
        gateway_use_from_row,
    )
    .await
}

pub async fn run(c: &mut Conn<'_>, id: &str) -> Result<Option<Run>> {
    c.optional(stmt("SELECT * FROM runs WHERE id = $1").bind(id), run_from_row).await
}

pub async fn runs(c: &mut Conn<'_>, env: Option<&str>, label: Option<&str>, limit: u32) -> Result<Vec<Run>> {
    c.all(
        stmt(
            "SELECT * FROM runs WHERE ($1 IS NULL OR env = $1) AND ($2 IS NULL OR label = $2) \
             ORDER BY started_at DESC LIMIT $3",
        )
        .bind(env)
        .bind(label)
        .bind(i64::from(limit)),
        run_from_row,
    )
    .await
}

pub async fn stale_runs(c: &mut Conn<'_>, now: DateTime<Utc>) -> Result<Vec<Run>> {
    c.all(
        stmt("SELECT * FROM runs WHERE status = 'running' AND heartbeat_at + heartbeat_timeout_s * 1000000 < $1")
            .bind(micros(now)),
        run_from_row,
    )
    .await
}

pub async fn ping(c: &mut Conn<'_>) -> Result<()> {
    c.exec(stmt("SELECT 1")).await?;
    Ok(())
}

/// Appends what a batch touched to the change feed and announces its newest sequence number
/// (delivered to listeners when the transaction commits). The caller holds the chain head
/// lock, so sequence numbers are gap-free and in commit order.
pub async fn append_changes(conn: &mut Conn<'_>, origin: &str, touched: &[(ChangeKind, String)]) -> Result<()> {
    if touched.is_empty() {
        return Ok(());
    }
    let mut seq = change_seq(conn).await?;
    for chunk in touched.chunks(500) {
        let mut s = stmt("INSERT INTO change_log (seq, kind, key, origin) VALUES ").values_list(chunk.len(), 4);
        for (kind, key) in chunk {
            seq += 1;
            s = s.bind(seq as i64).bind(kind.as_str()).bind(key).bind(origin);
        }
        conn.exec(s).await?;
    }
    conn.exec(stmt("SELECT pg_notify($1, $2)").bind(crate::writer::CHANGE_CHANNEL).bind(seq.to_string())).await?;
    Ok(())
}

pub async fn change_seq(c: &mut Conn<'_>) -> Result<u64> {
    let seq = c.optional(stmt("SELECT COALESCE(MAX(seq), 0) AS seq FROM change_log"), |r| r.int("seq")).await?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

pub async fn prune_changes(c: &mut Conn<'_>, keep: u64) -> Result<u64> {
    let newest = change_seq(c).await?;
    let below = newest.saturating_sub(keep) as i64;
    Ok(c.exec(stmt("DELETE FROM change_log WHERE seq <= $1").bind(below)).await?)
}

pub async fn changes_after(c: &mut Conn<'_>, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
    let rows = c
        .all(
            stmt("SELECT seq, kind, key, origin FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after as i64)
                .bind(i64::from(limit)),
            |r| -> Result<_> { Ok((r.int("seq")?, r.text("kind")?, r.text("key")?, r.text("origin")?)) },
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(seq, kind, key, origin)| {
            Some(ChangeRecord { seq: seq.max(0) as u64, kind: ChangeKind::parse(&kind)?, key, origin })
        })
        .collect())
}
