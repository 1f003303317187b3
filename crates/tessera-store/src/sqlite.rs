//! Opening the SQLite store: WAL journal, `synchronous = FULL`, one writer connection.
//!
//! Durability: in WAL mode `synchronous = FULL` fsyncs the WAL at every commit, so an
//! acknowledged write survives `kill -9` *and* power loss (`NORMAL` would survive `kill -9`
//! only). The cost of that fsync is shared by every write that arrived meanwhile (group
//! commit, see `writer.rs`). One process owns a SQLite store: it is not shared between
//! replicas (use PostgreSQL for that).

use std::path::PathBuf;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::mpsc;

use crate::error::{Result, StoreError};
use crate::ops;
use crate::sql::Conn;
use crate::sql_store::{Reads, SqlStore};
use crate::writer::{writer_loop, Target, MAX_BATCH};

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

impl SqlStore {
    /// Opens (creating when missing) the SQLite database at `options.path` and migrates it.
    pub async fn open_sqlite(options: SqliteOptions) -> Result<Self> {
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
        let head = ops::load_head(&mut Conn::Sqlite(&mut conn), false).await?;
        let read =
            SqlitePoolOptions::new().max_connections(options.read_connections.max(1)).connect_with(connect).await?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer_loop(Target::Sqlite { conn, head }, rx));
        Ok(Self { reads: Reads::Sqlite(read), writer: tx, origin: crate::new_origin(), shared: None })
    }
}
