//! Tessera's persistence: the [`Store`] trait and its SQLite implementation.
//!
//! Callers never see SQL. Every state change goes through [`Store::commit`] as one
//! [`WriteUnit`]: the changes and the audit events that describe them commit in one
//! transaction, or not at all. Reads are plain methods.

mod error;
mod sqlite;
mod store;

pub use error::{Result, StoreError};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{
    Change, CommitOutcome, GatewayUse, Resealed, Store, StoredKey, StoredSecretVersion, TokenFilter, UsageUpdate,
    WriteUnit,
};

use std::sync::Arc;

/// Opens the store a `TESSERA_DB` URL names: `sqlite://PATH` (created when missing).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let store = SqliteStore::open(SqliteOptions::new(path)).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(StoreError::Unsupported("the PostgreSQL backend is not built yet; use sqlite://PATH".to_owned()));
    }
    Err(StoreError::Unsupported(format!(
        "unsupported database URL scheme in {:?} (use sqlite://PATH)",
        url.split("://").next().unwrap_or(url)
    )))
}
