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
pub use postgres::{PoolSettings, PostgresOptions};
pub use sql_store::SqlStore;
pub use sqlite::SqliteOptions;
pub use store::{
    Change, ChangeKind, ChangeRecord, CommitOutcome, GatewayUse, Resealed, Store, StoredKey, StoredSecretVersion,
    TokenFilter, UsageUpdate, WriteUnit,
};

use std::sync::Arc;

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
        let options = PostgresOptions { url: url.to_owned(), pool: pool.clone() };
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

/// `text` with the password of any `scheme://user:password@host` in it replaced by `…`, for
/// messages and logs.
pub fn redact_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ', '"', '\'']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@').and_then(|at| authority[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push('…');
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_in_urls_are_redacted_and_nothing_else() {
        assert_eq!(redact_password("postgres://app:s3cr%40t@db:5432/t"), "postgres://app:…@db:5432/t");
        assert_eq!(redact_password("postgres://app@db/t"), "postgres://app@db/t");
        assert_eq!(redact_password("sqlite:///var/t.db"), "sqlite:///var/t.db");
        assert_eq!(
            redact_password("bad \"postgres://u:p@h:x/d\" and postgres://v:q@h2"),
            "bad \"postgres://u:…@h:x/d\" and postgres://v:…@h2"
        );
    }
}
