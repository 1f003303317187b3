//! The SQLite store: WAL journal, `synchronous = FULL`, one writer task with group commit.
//!
//! Durability: in WAL mode `synchronous = FULL` fsyncs the WAL at every commit, so an
//! acknowledged write survives `kill -9` *and* power loss (`NORMAL` would survive `kill -9`
//! only). The cost of that fsync is shared by every write that arrived meanwhile: one writer
//! task drains its queue into a single transaction (group commit), with one SAVEPOINT per
//! [`WriteUnit`] so a failing unit rolls back alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tessera_core::audit::ChainHead;
use tessera_core::{
    AuditEntry, AuditEvent, Client, EnvPolicy, Environment, NewToken, Run, ScopeSet, Token, TokenFormat, TokenHash,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};
use tessera_core::upstream::{Fault, FaultKind, Injection, RotationHook, SecretConfig, SecretVersion, Upstream};

use crate::store::{
    Change, CommitOutcome, GatewayUse, Store, StoredKey, StoredSecretVersion, TokenFilter, UsageUpdate, WriteUnit,
};

/// Most write units committed in one transaction.
const MAX_BATCH: usize = 512;

/// How to open a SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    pub read_connections: u32,
    pub busy_timeout: Duration,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), read_connections: 4, busy_timeout: Duration::from_secs(5) }
    }
}

/// The SQLite implementation of [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    read: SqlitePool,
    writer: mpsc::Sender<WriteRequest>,
}

enum WriteRequest {
    Unit(WriteUnit, oneshot::Sender<Result<CommitOutcome>>),
    Usage(Vec<UsageUpdate>, oneshot::Sender<Result<()>>),
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `options.path` and migrates it.
    pub async fn open(options: SqliteOptions) -> Result<Self> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(&options.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let mut conn = SqliteConnection::connect_with(&connect).await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
        let head = load_head(&mut conn).await?;
        let read =
            SqlitePoolOptions::new().max_connections(options.read_connections.max(1)).connect_with(connect).await?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer_loop(conn, head, rx));
        Ok(Self { read, writer: tx })
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> WriteRequest) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(make(tx)).await.map_err(|_| StoreError::Unavailable("the writer task has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the writer task has stopped".into()))?
    }
}

async fn writer_loop(mut conn: SqliteConnection, mut head: ChainHead, mut rx: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut head, &mut batch).await;
    }
}

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

async fn commit_batch(conn: &mut SqliteConnection, head: &mut ChainHead, batch: &mut Vec<WriteRequest>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        let msg = e.to_string();
        for req in batch.drain(..) {
            fail(req, StoreError::Unavailable(msg.clone()));
        }
        return;
    }
    let mut replies: Vec<(Reply, bool)> = Vec::with_capacity(batch.len());
    for req in batch.drain(..) {
        let saved = head.clone();
        let result = match savepoint(conn, "SAVEPOINT unit").await {
            Ok(()) => match &req {
                WriteRequest::Unit(unit, _) => apply_unit(conn, head, unit).await.map(Some),
                WriteRequest::Usage(updates, _) => apply_usage(conn, updates).await.map(|()| None),
            },
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(out) => savepoint(conn, "RELEASE unit").await.map(|()| out),
            Err(e) => {
                *head = saved;
                let _ = savepoint(conn, "ROLLBACK TO unit").await;
                let _ = savepoint(conn, "RELEASE unit").await;
                Err(e)
            }
        };
        let ok = result.is_ok();
        let reply: Reply = match req {
            WriteRequest::Unit(_, tx) => {
                let mut result = Some(result);
                Box::new(move |commit: Result<()>| {
                    let r = result.take().expect("reply sent once");
                    let r = commit.and(r).map(|out| out.unwrap_or_default());
                    let _ = tx.send(r);
                })
            }
            WriteRequest::Usage(_, tx) => Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(result.map(|_| ())));
            }),
        };
        replies.push((reply, ok));
    }
    let committed = exec(conn, "COMMIT").await;
    let commit_result = match committed {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = exec(conn, "ROLLBACK").await;
            if let Ok(h) = load_head(conn).await {
                *head = h;
            }
            Err(StoreError::Unavailable(format!("commit failed: {e}")))
        }
    };
    for (reply, _ok) in replies {
        let r = match &commit_result {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        };
        reply(r);
    }
}

fn fail(req: WriteRequest, err: StoreError) {
    match req {
        WriteRequest::Unit(_, tx) => {
            let _ = tx.send(Err(err));
        }
        WriteRequest::Usage(_, tx) => {
            let _ = tx.send(Err(err));
        }
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<()> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

async fn savepoint(conn: &mut SqliteConnection, sql: &str) -> Result<()> {
    exec(conn, sql).await
}

async fn load_head(conn: &mut SqliteConnection) -> Result<ChainHead> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&mut *conn).await?;
    match row {
        None => Ok(ChainHead::genesis()),
        Some(row) => Ok(ChainHead { seq: row.try_get::<i64, _>("seq")? as u64, hash: hash32(row.try_get("hash")?) }),
    }
}

async fn apply_unit(conn: &mut SqliteConnection, head: &mut ChainHead, unit: &WriteUnit) -> Result<CommitOutcome> {
    let mut outcome = CommitOutcome::default();
    for change in &unit.changes {
        apply_change(conn, change, &mut outcome).await?;
    }
    if unit.audit.is_empty() {
        return Ok(outcome);
    }
    let now = Utc::now();
    for event in &unit.audit {
        let entry = head.append(now, event.clone());
        insert_audit(conn, &entry).await?;
        outcome.audit.push(entry);
    }
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(head.seq as i64)
    .bind(head.hash.as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(outcome)
}

async fn insert_audit(conn: &mut SqliteConnection, e: &AuditEntry) -> Result<()> {
    let details = serde_json::to_string(&e.event.details).expect("a map of strings serializes");
    sqlx::query(
        "INSERT INTO audit_log (seq, at, action, actor, env, target, details, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.seq as i64)
    .bind(micros(e.at))
    .bind(&e.event.action)
    .bind(&e.event.actor)
    .bind(&e.event.env)
    .bind(&e.event.target)
    .bind(details)
    .bind(e.prev_hash.as_slice())
    .bind(e.hash.as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(())
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

async fn apply_change(conn: &mut SqliteConnection, change: &Change, outcome: &mut CommitOutcome) -> Result<()> {
    match change {
        Change::CreateEnvironment(env) => {
            let p = &env.policy;
            sqlx::query(
                "INSERT INTO environments (name, default_ttl_s, max_ttl_s, idle_ttl_s, rotation_period_s, max_uses, \
                 protected, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&env.name)
            .bind(p.default_ttl.as_secs() as i64)
            .bind(p.max_ttl.as_secs() as i64)
            .bind(p.idle_ttl.map(|d| d.as_secs() as i64))
            .bind(p.rotation_period.map(|d| d.as_secs() as i64))
            .bind(p.max_uses.map(|n| n as i64))
            .bind(env.protected)
            .bind(micros(env.created_at))
            .execute(&mut *conn)
            .await
            .map_err(|e| unique_violation(e, "environment", &env.name))?;
        }
        Change::CreateClient(c) => {
            let scopes: BTreeMap<&String, Vec<String>> =
                c.allowed_scopes.iter().map(|(k, v)| (k, v.to_vec())).collect();
            sqlx::query(
                "INSERT INTO clients (id, description, allowed_scopes, token_format, alg, secret_hash, disabled, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.id)
            .bind(&c.description)
            .bind(serde_json::to_string(&scopes).expect("strings serialize"))
            .bind(c.token_format.as_str())
            .bind(&c.alg)
            .bind(c.secret_hash.0.as_slice())
            .bind(c.disabled)
            .bind(micros(c.created_at))
            .execute(&mut *conn)
            .await
            .map_err(|e| unique_violation(e, "client", &c.id))?;
        }
        Change::CreateToken(new) => insert_token(conn, new).await?,
        Change::RotateToken { old_id, grace_until, new } => {
            let done = sqlx::query(
                "UPDATE tokens SET superseded_by = ?, grace_until = ? \
                 WHERE id = ? AND revoked_at IS NULL AND superseded_by IS NULL",
            )
            .bind(&new.token.id)
            .bind(micros(*grace_until))
            .bind(old_id)
            .execute(&mut *conn)
            .await?;
            changed_one(&done, || StoreError::Conflict(format!("token {old_id} was revoked or rotated meanwhile")))?;
            insert_token(conn, new).await?;
        }
        Change::RenewToken { id, expires_at } => {
            let done = sqlx::query(
                "UPDATE tokens SET expires_at = ? WHERE id = ? AND revoked_at IS NULL AND superseded_by IS NULL",
            )
            .bind(micros(*expires_at))
            .bind(id)
            .execute(&mut *conn)
            .await?;
            changed_one(&done, || StoreError::Conflict(format!("token {id} was revoked or rotated meanwhile")))?;
        }
        Change::RevokeTokens { ids, at, reason } => {
            for id in ids {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL",
                )
                .bind(micros(*at))
                .bind(reason)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() == 1 {
                    outcome.revoked.push(id.clone());
                }
            }
        }
        Change::SetClientDisabled { id, disabled } => {
            let done = sqlx::query("UPDATE clients SET disabled = ? WHERE id = ?")
                .bind(disabled)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind: "client", id: id.clone() });
            }
        }
        Change::AddSigningKey(key) => insert_key(conn, key).await?,
        Change::RotateSigningKeys { promote, retire, publish_until, next, at } => {
            if let Some(old) = retire {
                let done = sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = ?, publish_until = ? \
                     WHERE kid = ? AND state = 'current'",
                )
                .bind(micros(*at))
                .bind(micros(*publish_until))
                .bind(old)
                .execute(&mut *conn)
                .await?;
                changed_one(&done, || StoreError::Conflict(format!("signing key {old} is no longer current")))?;
            }
            let done = sqlx::query(
                "UPDATE signing_keys SET state = 'current', activated_at = ? WHERE kid = ? AND state = 'next'",
            )
            .bind(micros(*at))
            .bind(promote)
            .execute(&mut *conn)
            .await?;
            changed_one(&done, || StoreError::Conflict(format!("signing key {promote} is no longer the next key")))?;
            insert_key(conn, next).await?;
        }
        Change::DropSigningKey { kid } => {
            sqlx::query("DELETE FROM signing_keys WHERE kid = ? AND state = 'retired'")
                .bind(kid)
                .execute(&mut *conn)
                .await?;
        }
        Change::SetSystemKey { purpose, sealed, master_fingerprint } => {
            sqlx::query("INSERT INTO system_keys (purpose, sealed, master_fingerprint) VALUES (?, ?, ?)")
                .bind(purpose)
                .bind(sealed)
                .bind(master_fingerprint)
                .execute(&mut *conn)
                .await
                .map_err(|e| unique_violation(e, "system key", purpose))?;
        }
        Change::PutSecretConfig(c) => {
            let hook = c.hook.as_ref().map(|h| serde_json::to_string(&h.argv).expect("strings serialize"));
            sqlx::query(
                "INSERT INTO secrets (env, name, hook, hook_timeout_s, rotation_period_s, overlap_s, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env, name) DO UPDATE SET hook = excluded.hook, \
                 hook_timeout_s = excluded.hook_timeout_s, rotation_period_s = excluded.rotation_period_s, \
                 overlap_s = excluded.overlap_s",
            )
            .bind(&c.env)
            .bind(&c.name)
            .bind(hook)
            .bind(c.hook.as_ref().map(|h| h.timeout.as_secs() as i64))
            .bind(c.rotation_period.map(|d| d.as_secs() as i64))
            .bind(c.overlap.as_secs() as i64)
            .bind(micros(c.created_at))
            .execute(&mut *conn)
            .await
            .map_err(|e| unique_violation(e, "secret", &c.name))?;
        }
        Change::PutSecretVersion { version, previous_valid_until } => {
            let m = &version.meta;
            sqlx::query(
                "UPDATE secret_versions SET state = 'retired' WHERE env = ? AND name = ? AND state = 'previous'",
            )
            .bind(&m.env)
            .bind(&m.name)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE secret_versions SET state = 'previous', valid_until = ? \
                 WHERE env = ? AND name = ? AND state = 'current'",
            )
            .bind(micros(*previous_valid_until))
            .bind(&m.env)
            .bind(&m.name)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO secret_versions (env, name, version, sealed_dek, ciphertext, fingerprint, created_at, \
                 created_by, expires_at, state, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'current', NULL)",
            )
            .bind(&m.env)
            .bind(&m.name)
            .bind(i64::from(m.version))
            .bind(&version.sealed_dek)
            .bind(&version.ciphertext)
            .bind(&m.fingerprint)
            .bind(micros(m.created_at))
            .bind(&m.created_by)
            .bind(m.expires_at.map(micros))
            .execute(&mut *conn)
            .await
            .map_err(|e| unique_violation(e, "secret version", &format!("{}/{} v{}", m.env, m.name, m.version)))?;
        }
        Change::Rewrap(r) => {
            for (purpose, sealed) in &r.system {
                sqlx::query("UPDATE system_keys SET sealed = ?, master_fingerprint = ? WHERE purpose = ?")
                    .bind(sealed)
                    .bind(&r.master_fingerprint)
                    .bind(purpose)
                    .execute(&mut *conn)
                    .await?;
            }
            for (kid, sealed) in &r.signing {
                sqlx::query("UPDATE signing_keys SET sealed_key = ? WHERE kid = ?")
                    .bind(sealed)
                    .bind(kid)
                    .execute(&mut *conn)
                    .await?;
            }
            for (env, name, version, sealed) in &r.deks {
                sqlx::query("UPDATE secret_versions SET sealed_dek = ? WHERE env = ? AND name = ? AND version = ?")
                    .bind(sealed)
                    .bind(env)
                    .bind(name)
                    .bind(i64::from(*version))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Change::PutUpstream(u) => {
            sqlx::query(
                "INSERT INTO upstreams (env, name, url, secret, inject, allow_paths, allow_methods, timeout_ms, \
                 created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env, name) DO UPDATE SET \
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
            .bind(micros(u.created_at))
            .execute(&mut *conn)
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
            sqlx::query(
                "INSERT INTO gateway_faults (id, env, upstream, token_id, kind, n, status, duration_ms, created_at, \
                 created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .bind(&f.created_by)
            .execute(&mut *conn)
            .await?;
        }
        Change::ClearFaults { env, upstream } => {
            sqlx::query("DELETE FROM gateway_faults WHERE (?1 IS NULL OR env = ?1) AND (?2 IS NULL OR upstream = ?2)")
                .bind(env)
                .bind(upstream)
                .execute(&mut *conn)
                .await?;
        }
        Change::UpdateEnvironment(env) => {
            let p = &env.policy;
            let done = sqlx::query(
                "UPDATE environments SET default_ttl_s = ?, max_ttl_s = ?, idle_ttl_s = ?, rotation_period_s = ?, \
                 max_uses = ?, protected = ? WHERE name = ?",
            )
            .bind(p.default_ttl.as_secs() as i64)
            .bind(p.max_ttl.as_secs() as i64)
            .bind(p.idle_ttl.map(|d| d.as_secs() as i64))
            .bind(p.rotation_period.map(|d| d.as_secs() as i64))
            .bind(p.max_uses.map(|n| n as i64))
            .bind(env.protected)
            .bind(&env.name)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind: "environment", id: env.name.clone() });
            }
        }
        Change::UpdateClient(c) => {
            let scopes: BTreeMap<&String, Vec<String>> =
                c.allowed_scopes.iter().map(|(k, v)| (k, v.to_vec())).collect();
            let done = sqlx::query(
                "UPDATE clients SET description = ?, allowed_scopes = ?, token_format = ?, alg = ? WHERE id = ?",
            )
            .bind(&c.description)
            .bind(serde_json::to_string(&scopes).expect("strings serialize"))
            .bind(c.token_format.as_str())
            .bind(&c.alg)
            .bind(&c.id)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind: "client", id: c.id.clone() });
            }
        }
        Change::CreateRun(r) => {
            sqlx::query(
                "INSERT INTO runs (id, env, label, started_at, heartbeat_at, heartbeat_timeout_s, finished_at, \
                 exit_code, status, tokens_minted, tokens_revoked, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.id)
            .bind(&r.env)
            .bind(&r.label)
            .bind(micros(r.started_at))
            .bind(micros(r.heartbeat_at))
            .bind(r.heartbeat_timeout.as_secs() as i64)
            .bind(r.finished_at.map(micros))
            .bind(r.exit_code)
            .bind(&r.status)
            .bind(i64::from(r.tokens_minted))
            .bind(i64::from(r.tokens_revoked))
            .bind(&r.created_by)
            .execute(&mut *conn)
            .await
            .map_err(|e| unique_violation(e, "run", &r.id))?;
        }
        Change::RunHeartbeat { id, at } => {
            let done =
                sqlx::query("UPDATE runs SET heartbeat_at = MAX(heartbeat_at, ?) WHERE id = ? AND status = 'running'")
                    .bind(micros(*at))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            changed_one(&done, || StoreError::Conflict(format!("run {id} is not running")))?;
        }
        Change::EndRun { id, at, exit_code, status, tokens_revoked } => {
            let done = sqlx::query(
                "UPDATE runs SET finished_at = ?, exit_code = ?, status = ?, tokens_revoked = ? \
                 WHERE id = ? AND status = 'running'",
            )
            .bind(micros(*at))
            .bind(exit_code)
            .bind(status)
            .bind(i64::from(*tokens_revoked))
            .bind(id)
            .execute(&mut *conn)
            .await?;
            changed_one(&done, || StoreError::Conflict(format!("run {id} already ended")))?;
        }
        Change::AddRunTokens { id, count } => {
            sqlx::query("UPDATE runs SET tokens_minted = tokens_minted + ? WHERE id = ?")
                .bind(i64::from(*count))
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        Change::RecordGatewayUse(rows) => {
            // One multi-row INSERT per chunk: a flush is one round trip, not one per request.
            for chunk in rows.chunks(500) {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT INTO gateway_usage (at, env, upstream, token_id, run_id, method, path, status, latency_us) ",
                );
                q.push_values(chunk, |mut b, u| {
                    b.push_bind(micros(u.at))
                        .push_bind(u.env.clone())
                        .push_bind(u.upstream.clone())
                        .push_bind(u.token_id.clone())
                        .push_bind(u.run_id.clone())
                        .push_bind(u.method.clone())
                        .push_bind(u.path.clone())
                        .push_bind(i64::from(u.status))
                        .push_bind(u.latency_us as i64);
                });
                q.build().execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// A conditional UPDATE must have matched a row; otherwise the state changed meanwhile.
fn changed_one(done: &sqlx::sqlite::SqliteQueryResult, conflict: impl FnOnce() -> StoreError) -> Result<()> {
    if done.rows_affected() == 0 {
        return Err(conflict());
    }
    Ok(())
}

async fn insert_key(conn: &mut SqliteConnection, k: &StoredKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, env, alg, state, sealed_key, public_jwk, created_at, activated_at, \
         retired_at, publish_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(k.publish_until.map(micros))
    .execute(&mut *conn)
    .await
    .map_err(|e| unique_violation(e, "signing key", &k.kid))?;
    Ok(())
}

fn secret_config_from_row(row: &SqliteRow) -> Result<SecretConfig> {
    let hook: Option<String> = row.try_get("hook")?;
    let hook = hook
        .map(|h| serde_json::from_str::<Vec<String>>(&h).map_err(|e| StoreError::Corrupt(format!("secret hook: {e}"))))
        .transpose()?;
    Ok(SecretConfig {
        env: row.try_get("env")?,
        name: row.try_get("name")?,
        hook: hook.map(|argv| RotationHook {
            argv,
            timeout: Duration::from_secs(
                row.try_get::<Option<i64>, _>("hook_timeout_s").ok().flatten().unwrap_or(30).max(1) as u64,
            ),
        }),
        rotation_period: secs(row.try_get("rotation_period_s")?),
        overlap: Duration::from_secs(row.try_get::<i64, _>("overlap_s")?.max(0) as u64),
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

fn secret_version_from_row(row: &SqliteRow) -> Result<StoredSecretVersion> {
    Ok(StoredSecretVersion {
        meta: SecretVersion {
            env: row.try_get("env")?,
            name: row.try_get("name")?,
            version: row.try_get::<i64, _>("version")?.clamp(0, i64::from(u32::MAX)) as u32,
            fingerprint: row.try_get("fingerprint")?,
            created_at: from_micros(row.try_get("created_at")?)?,
            created_by: row.try_get("created_by")?,
            expires_at: opt_micros(row.try_get("expires_at")?)?,
            state: row.try_get("state")?,
            valid_until: opt_micros(row.try_get("valid_until")?)?,
        },
        sealed_dek: row.try_get("sealed_dek")?,
        ciphertext: row.try_get("ciphertext")?,
    })
}

fn upstream_from_row(row: &SqliteRow) -> Result<Upstream> {
    let name: String = row.try_get("name")?;
    let corrupt = |e: String| StoreError::Corrupt(format!("upstream {name}: {e}"));
    let inject: String = row.try_get("inject")?;
    let list = |col: &str| -> Result<Vec<String>> {
        serde_json::from_str(&row.try_get::<String, _>(col)?).map_err(|e| corrupt(e.to_string()))
    };
    Ok(Upstream {
        env: row.try_get("env")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        inject: inject.parse::<Injection>().map_err(|e| corrupt(e.to_string()))?,
        allow_paths: list("allow_paths")?,
        allow_methods: list("allow_methods")?,
        timeout: Duration::from_millis(row.try_get::<i64, _>("timeout_ms")?.max(1) as u64),
        created_at: from_micros(row.try_get("created_at")?)?,
        name,
    })
}

fn fault_from_row(row: &SqliteRow) -> Result<Fault> {
    let kind: String = row.try_get("kind")?;
    let n = row.try_get::<Option<i64>, _>("n")?.unwrap_or(0).max(0) as u64;
    let duration = Duration::from_millis(row.try_get::<Option<i64>, _>("duration_ms")?.unwrap_or(0).max(0) as u64);
    let kind = match kind.as_str() {
        "fail_after" => FaultKind::FailAfter {
            n,
            status: row.try_get::<Option<i64>, _>("status")?.unwrap_or(401).clamp(100, 599) as u16,
        },
        "revoke_after" => FaultKind::RevokeAfter { n },
        "rotate_after" => FaultKind::RotateAfter { after: duration },
        "latency" => FaultKind::Latency { delay: duration },
        other => return Err(StoreError::Corrupt(format!("unknown fault kind {other:?}"))),
    };
    Ok(Fault {
        id: row.try_get("id")?,
        env: row.try_get("env")?,
        upstream: row.try_get("upstream")?,
        token_id: row.try_get("token_id")?,
        kind,
        created_at: from_micros(row.try_get("created_at")?)?,
        created_by: row.try_get("created_by")?,
    })
}

fn run_from_row(row: &SqliteRow) -> Result<Run> {
    Ok(Run {
        id: row.try_get("id")?,
        env: row.try_get("env")?,
        label: row.try_get("label")?,
        started_at: from_micros(row.try_get("started_at")?)?,
        heartbeat_at: from_micros(row.try_get("heartbeat_at")?)?,
        heartbeat_timeout: Duration::from_secs(row.try_get::<i64, _>("heartbeat_timeout_s")?.max(1) as u64),
        finished_at: opt_micros(row.try_get("finished_at")?)?,
        exit_code: row.try_get("exit_code")?,
        status: row.try_get("status")?,
        tokens_minted: row.try_get::<i64, _>("tokens_minted")?.clamp(0, i64::from(u32::MAX)) as u32,
        tokens_revoked: row.try_get::<i64, _>("tokens_revoked")?.clamp(0, i64::from(u32::MAX)) as u32,
        created_by: row.try_get("created_by")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<StoredKey> {
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        env: row.try_get("env")?,
        alg: row.try_get("alg")?,
        state: row.try_get("state")?,
        sealed_key: row.try_get("sealed_key")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        activated_at: opt_micros(row.try_get("activated_at")?)?,
        retired_at: opt_micros(row.try_get("retired_at")?)?,
        publish_until: opt_micros(row.try_get("publish_until")?)?,
    })
}

async fn insert_token(conn: &mut SqliteConnection, new: &NewToken) -> Result<()> {
    let t = &new.token;
    let hash = match t.format {
        TokenFormat::Opaque => Some(new.hash.0.as_slice()),
        TokenFormat::Jwt => None,
    };
    sqlx::query(
        "INSERT INTO tokens (id, hash, env, client_id, scopes, audience, format, labels, run_id, created_by, \
         created_at, not_before, expires_at, idle_ttl_s, last_used_at, max_uses, uses, revoked_at, revoke_reason, \
         rotated_from, superseded_by, grace_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
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
    .bind(t.idle_ttl.map(|d| d.as_secs() as i64))
    .bind(t.last_used_at.map(micros))
    .bind(t.max_uses.map(|n| n as i64))
    .bind(t.uses as i64)
    .bind(t.revoked_at.map(micros))
    .bind(&t.revoke_reason)
    .bind(&t.rotated_from)
    .bind(&t.superseded_by)
    .bind(t.grace_until.map(micros))
    .execute(&mut *conn)
    .await
    .map_err(|e| unique_violation(e, "token", &t.id))?;
    Ok(())
}

async fn apply_usage(conn: &mut SqliteConnection, updates: &[UsageUpdate]) -> Result<()> {
    for u in updates {
        sqlx::query(
            "UPDATE tokens SET uses = MAX(uses, ?), last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
        )
        .bind(u.uses as i64)
        .bind(micros(u.last_used_at))
        .bind(&u.token_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn micros(t: DateTime<Utc>) -> i64 {
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

fn env_from_row(row: &SqliteRow) -> Result<Environment> {
    Ok(Environment {
        name: row.try_get("name")?,
        policy: EnvPolicy {
            default_ttl: Duration::from_secs(row.try_get::<i64, _>("default_ttl_s")?.max(0) as u64),
            max_ttl: Duration::from_secs(row.try_get::<i64, _>("max_ttl_s")?.max(0) as u64),
            idle_ttl: secs(row.try_get("idle_ttl_s")?),
            rotation_period: secs(row.try_get("rotation_period_s")?),
            max_uses: row.try_get::<Option<i64>, _>("max_uses")?.map(|n| n.max(0) as u64),
        },
        protected: row.try_get("protected")?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

fn client_from_row(row: &SqliteRow) -> Result<Client> {
    let id: String = row.try_get("id")?;
    let raw: String = row.try_get("allowed_scopes")?;
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
    let format: String = row.try_get("token_format")?;
    Ok(Client {
        description: row.try_get("description")?,
        allowed_scopes,
        token_format: TokenFormat::from_str(&format).map_err(StoreError::Corrupt)?,
        alg: row.try_get("alg")?,
        secret_hash: TokenHash(hash32(row.try_get("secret_hash")?)),
        disabled: row.try_get("disabled")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        id,
    })
}

const TOKEN_COLUMNS: &str = "id, hash, env, client_id, scopes, audience, format, labels, run_id, created_by, \
    created_at, not_before, expires_at, idle_ttl_s, last_used_at, max_uses, uses, revoked_at, revoke_reason, \
    rotated_from, superseded_by, grace_until";

fn token_from_row(row: &SqliteRow) -> Result<Token> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("{what} of token {id}: {e}"));
    let scopes = ScopeSet::parse_space_separated(&row.try_get::<String, _>("scopes")?)
        .map_err(|e| corrupt("scopes", e.to_string()))?;
    let labels: BTreeMap<String, String> =
        serde_json::from_str(&row.try_get::<String, _>("labels")?).map_err(|e| corrupt("labels", e.to_string()))?;
    let format = TokenFormat::from_str(&row.try_get::<String, _>("format")?).map_err(|e| corrupt("format", e))?;
    Ok(Token {
        env: row.try_get("env")?,
        client_id: row.try_get("client_id")?,
        scopes,
        audience: row.try_get("audience")?,
        format,
        labels,
        run_id: row.try_get("run_id")?,
        created_by: row.try_get("created_by")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        not_before: opt_micros(row.try_get("not_before")?)?,
        expires_at: from_micros(row.try_get("expires_at")?)?,
        idle_ttl: secs(row.try_get("idle_ttl_s")?),
        last_used_at: opt_micros(row.try_get("last_used_at")?)?,
        max_uses: row.try_get::<Option<i64>, _>("max_uses")?.map(|n| n.max(0) as u64),
        uses: row.try_get::<i64, _>("uses")?.max(0) as u64,
        revoked_at: opt_micros(row.try_get("revoked_at")?)?,
        revoke_reason: row.try_get("revoke_reason")?,
        rotated_from: row.try_get("rotated_from")?,
        superseded_by: row.try_get("superseded_by")?,
        grace_until: opt_micros(row.try_get("grace_until")?)?,
        id,
    })
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let raw: String = row.try_get("details")?;
    // Details that no longer parse were edited outside Tessera: keep them visible (and let the
    // hash check name the entry) rather than failing the whole listing.
    let details = serde_json::from_str::<BTreeMap<String, String>>(&raw)
        .unwrap_or_else(|_| BTreeMap::from([("<unparseable>".to_owned(), raw)]));
    Ok(AuditEntry {
        seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
        at: from_micros(row.try_get("at")?)?,
        event: AuditEvent {
            action: row.try_get("action")?,
            actor: row.try_get("actor")?,
            env: row.try_get("env")?,
            target: row.try_get("target")?,
            details,
        },
        prev_hash: hash32(row.try_get("prev_hash")?),
        hash: hash32(row.try_get("hash")?),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, unit: WriteUnit) -> Result<CommitOutcome> {
        self.send(|tx| WriteRequest::Unit(unit, tx)).await
    }

    async fn record_usage(&self, updates: Vec<UsageUpdate>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.send(|tx| WriteRequest::Usage(updates, tx)).await
    }

    async fn environment(&self, name: &str) -> Result<Option<Environment>> {
        let row =
            sqlx::query("SELECT * FROM environments WHERE name = ?").bind(name).fetch_optional(&self.read).await?;
        row.as_ref().map(env_from_row).transpose()
    }

    async fn environments(&self) -> Result<Vec<Environment>> {
        let rows = sqlx::query("SELECT * FROM environments ORDER BY name").fetch_all(&self.read).await?;
        rows.iter().map(env_from_row).collect()
    }

    async fn client(&self, id: &str) -> Result<Option<Client>> {
        let row = sqlx::query("SELECT * FROM clients WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn clients(&self) -> Result<Vec<Client>> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY id").fetch_all(&self.read).await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn token(&self, id: &str) -> Result<Option<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?");
        let row = sqlx::query(&sql).bind(hash.0.as_slice()).fetch_optional(&self.read).await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE 1 = 1"));
        if let Some(env) = &filter.env {
            q.push(" AND env = ").push_bind(env.clone());
        }
        if let Some(client) = &filter.client_id {
            q.push(" AND client_id = ").push_bind(client.clone());
        }
        if let Some(run) = &filter.run_id {
            q.push(" AND run_id = ").push_bind(run.clone());
        }
        if let Some(at) = filter.unexpired_at {
            q.push(" AND revoked_at IS NULL AND expires_at > ").push_bind(micros(at));
            q.push(" AND (grace_until IS NULL OR grace_until > ").push_bind(micros(at)).push(")");
        }
        q.push(" ORDER BY created_at DESC, id");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows = q.build().fetch_all(&self.read).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn live_tokens(&self, now: DateTime<Utc>) -> Result<Vec<(Option<TokenHash>, Token)>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND expires_at > ? \
             AND (grace_until IS NULL OR grace_until > ?)"
        );
        let rows = sqlx::query(&sql).bind(micros(now)).bind(micros(now)).fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| {
                let hash: Option<Vec<u8>> = row.try_get("hash")?;
                Ok((hash.map(|h| TokenHash(hash32(h))), token_from_row(row)?))
            })
            .collect()
    }

    async fn is_empty(&self) -> Result<bool> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM tokens) AS any").fetch_one(&self.read).await?;
        Ok(!row.try_get::<bool, _>("any")?)
    }

    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after as i64)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_head(&self) -> Result<ChainHead> {
        let mut conn = self.read.acquire().await?;
        load_head(&mut conn).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let rows =
            sqlx::query("SELECT * FROM signing_keys ORDER BY env, alg, created_at").fetch_all(&self.read).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn system_key(&self, purpose: &str) -> Result<Option<(Vec<u8>, String)>> {
        let row = sqlx::query("SELECT sealed, master_fingerprint FROM system_keys WHERE purpose = ?")
            .bind(purpose)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok((r.try_get("sealed")?, r.try_get("master_fingerprint")?))).transpose()
    }

    async fn secret_config(&self, env: &str, name: &str) -> Result<Option<SecretConfig>> {
        let row = sqlx::query("SELECT * FROM secrets WHERE env = ? AND name = ?")
            .bind(env)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(secret_config_from_row).transpose()
    }

    async fn secret_configs(&self, env: Option<&str>) -> Result<Vec<SecretConfig>> {
        let rows = sqlx::query("SELECT * FROM secrets WHERE (?1 IS NULL OR env = ?1) ORDER BY name, env")
            .bind(env)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(secret_config_from_row).collect()
    }

    async fn secret_versions(&self, env: Option<&str>, name: Option<&str>) -> Result<Vec<StoredSecretVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM secret_versions WHERE (?1 IS NULL OR env = ?1) AND (?2 IS NULL OR name = ?2) \
             ORDER BY env, name, version DESC",
        )
        .bind(env)
        .bind(name)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(secret_version_from_row).collect()
    }

    async fn upstreams(&self) -> Result<Vec<Upstream>> {
        let rows = sqlx::query("SELECT * FROM upstreams ORDER BY env, name").fetch_all(&self.read).await?;
        rows.iter().map(upstream_from_row).collect()
    }

    async fn faults(&self) -> Result<Vec<Fault>> {
        let rows = sqlx::query("SELECT * FROM gateway_faults ORDER BY created_at").fetch_all(&self.read).await?;
        rows.iter().map(fault_from_row).collect()
    }

    async fn gateway_uses(&self, run_id: Option<&str>, limit: u32) -> Result<Vec<GatewayUse>> {
        let rows =
            sqlx::query("SELECT * FROM gateway_usage WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id DESC LIMIT ?2")
                .bind(run_id)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(GatewayUse {
                    at: from_micros(r.try_get("at")?)?,
                    env: r.try_get("env")?,
                    upstream: r.try_get("upstream")?,
                    token_id: r.try_get("token_id")?,
                    run_id: r.try_get("run_id")?,
                    method: r.try_get("method")?,
                    path: r.try_get("path")?,
                    status: r.try_get::<i64, _>("status")?.clamp(0, 999) as u16,
                    latency_us: r.try_get::<i64, _>("latency_us")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn run(&self, id: &str) -> Result<Option<Run>> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn runs(&self, env: Option<&str>, label: Option<&str>, limit: u32) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE (?1 IS NULL OR env = ?1) AND (?2 IS NULL OR label = ?2) \
             ORDER BY started_at DESC LIMIT ?3",
        )
        .bind(env)
        .bind(label)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn stale_runs(&self, now: DateTime<Utc>) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE status = 'running' AND heartbeat_at + heartbeat_timeout_s * 1000000 < ?",
        )
        .bind(micros(now))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}
