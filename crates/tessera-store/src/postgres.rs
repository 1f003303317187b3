//! Opening the PostgreSQL store, which several server replicas share.
//!
//! PostgreSQL is the source of truth and the only coordinator:
//! - appends to the audit chain are serialised by a row lock on the chain head, taken by every
//!   write transaction of every replica (`writer.rs`);
//! - each write transaction appends what it touched to `change_log` and `NOTIFY`s
//!   [`CHANGE_CHANNEL`]; replicas listen, and also poll the log by sequence number so a dropped
//!   connection loses nothing;
//! - one replica leads background work, by holding a session-level advisory lock on a
//!   dedicated connection ([`Leadership`]); when the leader dies its connection closes, the
//!   lock is released, and another replica takes it at its next attempt.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, watch, Mutex};

use crate::error::{Result, StoreError};
use crate::ops;
use crate::sql::Conn;
use crate::sql_store::{Reads, Shared, SqlStore};
use crate::writer::{writer_loop, Target, CHANGE_CHANNEL, MAX_BATCH};

/// The advisory lock key whose holder leads background work ("tessera" in ASCII).
const LEADER_LOCK: i64 = 0x0074_6573_7365_7261;

/// Connection pool limits and timeouts of one replica (SQLite ignores them).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most pooled connections (reads and the writer; the change listener and the leadership
    /// connection come on top).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (and a connection attempt) before it
    /// fails with "database unavailable".
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement (`statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// How to open a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    pub pool: PoolSettings,
}

impl PostgresOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), pool: PoolSettings::default() }
    }

    fn connect_options(&self) -> Result<PgConnectOptions> {
        let options = PgConnectOptions::from_str(&self.url).map_err(|e| {
            StoreError::Unsupported(format!("invalid PostgreSQL URL: {}", crate::redact_password(&e.to_string())))
        })?;
        Ok(options
            .application_name("tessera")
            .options([("statement_timeout", format!("{}ms", self.pool.statement_timeout.as_millis()))])
            .disable_statement_logging())
    }
}

impl SqlStore {
    /// Connects to PostgreSQL, migrates the schema (under sqlx's migration lock, so replicas
    /// starting together migrate once) and starts the writer and the change listener.
    pub async fn open_postgres(options: PostgresOptions) -> Result<Self> {
        let connect = options.connect_options()?;
        let pool = PgPoolOptions::new()
            .max_connections(options.pool.max_connections.max(2))
            .acquire_timeout(options.pool.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        {
            let mut conn = pool.acquire().await?;
            ops::ensure_head(&mut Conn::Postgres(&mut conn)).await?;
        }
        let origin = crate::new_origin();
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer_loop(Target::Postgres { pool: pool.clone(), origin: origin.clone() }, rx));
        let (announce, notifications) = watch::channel(0);
        tokio::spawn(listen(pool.clone(), announce));
        let leadership = Leadership { connect, timeout: options.pool.acquire_timeout, conn: Mutex::new(None) };
        Ok(Self {
            reads: Reads::Postgres(pool),
            writer: tx,
            origin,
            shared: Some(Shared { notifications, leadership }),
        })
    }
}

/// Forwards change announcements; re-announces after every (re)connection so that
/// subscribers catch up on what they may have missed. Ends when nobody listens any more.
async fn listen(pool: PgPool, announce: watch::Sender<u64>) {
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANGE_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            r = connected => match r {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "change listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
            _ = announce.closed() => return,
        };
        announce.send_modify(|_| {});
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = announce.closed() => return,
            };
            match next {
                Ok(Some(n)) => {
                    if let Ok(seq) = n.payload().parse::<u64>() {
                        announce.send_if_modified(|v| {
                            let newer = seq > *v;
                            *v = (*v).max(seq);
                            newer
                        });
                    }
                }
                // The connection dropped; the next call reconnects. Notifications sent meanwhile
                // are lost, so tell subscribers to catch up by sequence number.
                Ok(None) => announce.send_modify(|_| {}),
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Leadership of background work: a session-level advisory lock held on a dedicated
/// connection.
pub(crate) struct Leadership {
    connect: PgConnectOptions,
    timeout: Duration,
    /// The connection, and whether it holds the lock.
    conn: Mutex<Option<(PgConnection, bool)>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").finish_non_exhaustive()
    }
}

impl Leadership {
    /// Keeps the lock (checking its connection is alive) or tries to take it. Any error drops
    /// the connection, which releases the lock if it was held.
    pub async fn try_lead(&self) -> Result<bool> {
        let mut slot = self.conn.lock().await;
        let attempt = tokio::time::timeout(self.timeout, async {
            if slot.is_none() {
                *slot = Some((PgConnection::connect_with(&self.connect).await?, false));
            }
            let (conn, leading) = slot.as_mut().expect("connected above");
            if *leading {
                conn.ping().await?;
            } else {
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LEADER_LOCK)
                    .fetch_one(&mut *conn)
                    .await?;
                *leading = got;
            }
            Ok::<bool, sqlx::Error>(*leading)
        })
        .await;
        match attempt {
            Ok(Ok(leading)) => Ok(leading),
            Ok(Err(e)) => {
                *slot = None;
                Err(e.into())
            }
            Err(_) => {
                *slot = None;
                Err(StoreError::Unavailable("timed out checking leadership".into()))
            }
        }
    }
}
