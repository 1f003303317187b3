//! Tessera's persistence: the [`Store`] trait and its SQLite and PostgreSQL implementation.
//!
//! Callers never see SQL. Every state change goes through [`Store::commit`] as one
//! [`WriteUnit`]: the changes and the audit events that describe them commit in one
//! transaction, or not at all. Reads are plain methods. The statements are written once
//! (`ops.rs`, over the small dialect layer in `sql.rs`) and serve both databases.

mod error;
mod ops;
mod postgres;
mod sql;
mod sql_store;
mod sqlite;
mod store;
mod writer;

pub use error::{Result, StoreError};
pub use postgres::PostgresOptions;
pub use sql_store::SqlStore;
pub use sqlite::SqliteOptions;
pub use store::{
    Change, ChangeKind, ChangeRecord, CommitOutcome, GatewayUse, Resealed, Store, StoredKey, StoredSecretVersion,
    TokenFilter, UsageUpdate, WriteUnit,
};

use std::sync::Arc;
use std::time::Duration;

/// Connection settings that apply to PostgreSQL (SQLite ignores them).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        let d = PostgresOptions::new("");
        Self {
            max_connections: d.max_connections,
            acquire_timeout: d.acquire_timeout,
            statement_timeout: d.statement_timeout,
        }
    }
}

/// Opens the store a `TESSERA_DB` URL names: `sqlite://PATH` (created when missing) or
/// `postgres://…` / `postgresql://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, &PoolSettings::default()).await
}

/// [`open`] with explicit connection pool settings.
pub async fn open_with(url: &str, pool: &PoolSettings) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let store = SqlStore::open_sqlite(SqliteOptions::new(path)).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions {
            url: url.to_owned(),
            max_connections: pool.max_connections,
            acquire_timeout: pool.acquire_timeout,
            statement_timeout: pool.statement_timeout,
        };
        return Ok(Arc::new(SqlStore::open_postgres(options).await?));
    }
    Err(StoreError::Unsupported(format!(
        "unsupported database URL scheme in {:?} (use sqlite://PATH or postgres://…)",
        url.split("://").next().unwrap_or(url)
    )))
}

/// A name for this process in the change feed: unique enough to tell replicas apart.
fn new_origin() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{:08x}", std::process::id(), nanos)
}
