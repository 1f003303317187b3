//! [`SqlStore`]: the [`Store`] of both databases. Writes go to the writer task
//! (`writer.rs`), reads to a connection pool; the statements are in `ops.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};
use tessera_core::audit::ChainHead;
use tessera_core::upstream::{Fault, SecretConfig, Upstream};
use tessera_core::{AuditEntry, Client, Environment, Run, Token, TokenHash};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Result, StoreError};
use crate::ops;
use crate::postgres::Leadership;
use crate::sql::Conn;
use crate::store::{
    ChangeRecord, CommitOutcome, GatewayUse, Store, StoredKey, StoredSecretVersion, TokenFilter, UsageUpdate, WriteUnit,
};
use crate::writer::WriteRequest;

/// The SQLite or PostgreSQL implementation of [`Store`]; open it with
/// [`SqlStore::open_sqlite`](crate::SqliteOptions) or [`crate::open`].
#[derive(Debug)]
pub struct SqlStore {
    pub(crate) reads: Reads,
    pub(crate) writer: mpsc::Sender<WriteRequest>,
    pub(crate) origin: String,
    /// PostgreSQL only: change announcements and leadership.
    pub(crate) shared: Option<Shared>,
}

#[derive(Debug)]
pub(crate) enum Reads {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub notifications: watch::Receiver<u64>,
    pub leadership: Leadership,
}

impl std::fmt::Debug for WriteRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteRequest")
    }
}

/// Runs `$body` with `$c` bound to a read connection from the pool.
macro_rules! read {
    ($self:ident, |$c:ident| $body:expr) => {
        match &$self.reads {
            Reads::Sqlite(pool) => {
                let mut pooled = pool.acquire().await?;
                let $c = &mut Conn::Sqlite(&mut pooled);
                $body.await
            }
            Reads::Postgres(pool) => {
                let mut pooled = pool.acquire().await?;
                let $c = &mut Conn::Postgres(&mut pooled);
                $body.await
            }
        }
    };
}

impl SqlStore {
    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> WriteRequest) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(make(tx)).await.map_err(|_| StoreError::Unavailable("the writer task has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the writer task has stopped".into()))?
    }
}

#[async_trait]
impl Store for SqlStore {
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
        read!(self, |c| ops::environment(c, name))
    }

    async fn environments(&self) -> Result<Vec<Environment>> {
        read!(self, |c| ops::environments(c))
    }

    async fn client(&self, id: &str) -> Result<Option<Client>> {
        read!(self, |c| ops::client(c, id))
    }

    async fn clients(&self) -> Result<Vec<Client>> {
        read!(self, |c| ops::clients(c))
    }

    async fn token(&self, id: &str) -> Result<Option<Token>> {
        read!(self, |c| ops::token(c, id))
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>> {
        read!(self, |c| ops::token_by_hash(c, hash))
    }

    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>> {
        read!(self, |c| ops::tokens(c, filter))
    }

    async fn live_tokens(&self, now: DateTime<Utc>) -> Result<Vec<(Option<TokenHash>, Token)>> {
        read!(self, |c| ops::live_tokens(c, now))
    }

    async fn is_empty(&self) -> Result<bool> {
        read!(self, |c| ops::is_empty(c))
    }

    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        read!(self, |c| ops::audit_entries(c, after, limit))
    }

    async fn audit_head(&self) -> Result<ChainHead> {
        read!(self, |c| ops::load_head(c, false))
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        read!(self, |c| ops::signing_keys(c))
    }

    async fn system_key(&self, purpose: &str) -> Result<Option<(Vec<u8>, String)>> {
        read!(self, |c| ops::system_key(c, purpose))
    }

    async fn secret_config(&self, env: &str, name: &str) -> Result<Option<SecretConfig>> {
        read!(self, |c| ops::secret_config(c, env, name))
    }

    async fn secret_configs(&self, env: Option<&str>) -> Result<Vec<SecretConfig>> {
        read!(self, |c| ops::secret_configs(c, env))
    }

    async fn secret_versions(&self, env: Option<&str>, name: Option<&str>) -> Result<Vec<StoredSecretVersion>> {
        read!(self, |c| ops::secret_versions(c, env, name))
    }

    async fn upstreams(&self) -> Result<Vec<Upstream>> {
        read!(self, |c| ops::upstreams(c))
    }

    async fn faults(&self) -> Result<Vec<Fault>> {
        read!(self, |c| ops::faults(c))
    }

    async fn gateway_uses(&self, run_id: Option<&str>, limit: u32) -> Result<Vec<GatewayUse>> {
        read!(self, |c| ops::gateway_uses(c, run_id, limit))
    }

    async fn run(&self, id: &str) -> Result<Option<Run>> {
        read!(self, |c| ops::run(c, id))
    }

    async fn runs(&self, env: Option<&str>, label: Option<&str>, limit: u32) -> Result<Vec<Run>> {
        read!(self, |c| ops::runs(c, env, label, limit))
    }

    async fn stale_runs(&self, now: DateTime<Utc>) -> Result<Vec<Run>> {
        read!(self, |c| ops::stale_runs(c, now))
    }

    async fn ping(&self) -> Result<()> {
        read!(self, |c| ops::ping(c))
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        if self.shared.is_none() {
            return Ok(Vec::new());
        }
        read!(self, |c| ops::changes_after(c, after, limit))
    }

    async fn change_seq(&self) -> Result<u64> {
        if self.shared.is_none() {
            return Ok(0);
        }
        read!(self, |c| ops::change_seq(c))
    }

    async fn prune_changes(&self, keep: u64) -> Result<u64> {
        if self.shared.is_none() {
            return Ok(0);
        }
        read!(self, |c| ops::prune_changes(c, keep))
    }

    fn change_notifications(&self) -> Option<watch::Receiver<u64>> {
        self.shared.as_ref().map(|s| s.notifications.clone())
    }

    async fn try_lead(&self) -> Result<bool> {
        match &self.shared {
            None => Ok(true),
            Some(s) => s.leadership.try_lead().await,
        }
    }
}
