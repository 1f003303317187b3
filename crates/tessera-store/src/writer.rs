//! Group commit, shared by both databases: one writer task per process drains its queue into
//! a single transaction.
//!
//! A batch is first applied optimistically, without savepoints: the audit entries of all its
//! units go in with multi-row INSERTs and the chain head is written once, so a typical token
//! create costs one statement of its own. If any unit fails (a conflict, a duplicate), the
//! transaction is rolled back and the batch replayed with one SAVEPOINT per unit, so that the
//! failing unit rolls back alone and the others commit.
//!
//! With PostgreSQL, the transaction starts by locking the chain head row (`FOR UPDATE`), which
//! serialises appends from every replica: the chain stays one unbroken sequence. In the same
//! transaction it appends what the batch touched to the change feed and notifies listeners.

use sqlx::postgres::PgPool;
use sqlx::SqliteConnection;
use tessera_core::audit::ChainHead;
use tessera_core::{AuditEntry, NewToken};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};
use crate::ops;
use crate::sql::{stmt, Conn, Dialect};
use crate::store::{Change, CommitOutcome, UsageUpdate, WriteUnit};

/// Most write units committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// The channel other replicas listen on for change-feed announcements.
pub const CHANGE_CHANNEL: &str = "tessera_changes";

pub enum WriteRequest {
    Unit(WriteUnit, oneshot::Sender<Result<CommitOutcome>>),
    Usage(Vec<UsageUpdate>, oneshot::Sender<Result<()>>),
}

/// Where the writer writes.
pub enum Target {
    /// A dedicated connection; the chain head is cached (this process is the only writer).
    Sqlite { conn: SqliteConnection, head: ChainHead },
    /// A pool; the head is read under a row lock by every transaction.
    Postgres { pool: PgPool, origin: String },
}

pub async fn writer_loop(mut target: Target, mut rx: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let requests = std::mem::take(&mut batch);
        match &mut target {
            Target::Sqlite { conn, head } => {
                let mut c = Conn::Sqlite(conn);
                commit_batch(&mut c, Some(head), None, requests).await;
            }
            Target::Postgres { pool, origin } => match pool.acquire().await {
                Ok(mut pc) => {
                    let healthy = {
                        let mut c = Conn::Postgres(&mut pc);
                        commit_batch(&mut c, None, Some(origin), requests).await
                    };
                    if !healthy {
                        // The connection may be mid-transaction or broken: never reuse it.
                        drop(pc.detach());
                    }
                }
                Err(e) => {
                    let err = StoreError::from(e);
                    for req in requests {
                        fail(req, StoreError::Unavailable(err.to_string()));
                    }
                }
            },
        }
    }
}

/// The tokens a unit creates, when creating tokens is all it does.
fn only_token_creations(unit: &WriteUnit) -> Option<impl Iterator<Item = &NewToken>> {
    let all = !unit.changes.is_empty() && unit.changes.iter().all(|c| matches!(c, Change::CreateToken(_)));
    all.then(|| {
        unit.changes.iter().filter_map(|c| match c {
            Change::CreateToken(t) => Some(t),
            _ => None,
        })
    })
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

/// The result of one request within a committed batch.
type Outcome = Result<Option<CommitOutcome>>;

enum BatchError {
    /// A unit failed in the optimistic pass (rolled back; replay with savepoints).
    Unit,
    /// The transaction itself failed (rolled back or the connection is gone).
    Fatal(StoreError),
}

/// Commits `requests` and answers each. Returns false when the connection should be dropped.
async fn commit_batch(
    conn: &mut Conn<'_>,
    mut cached_head: Option<&mut ChainHead>,
    origin: Option<&str>,
    requests: Vec<WriteRequest>,
) -> bool {
    let mut result = run_batch(conn, cached_head.as_deref_mut(), origin, &requests, false).await;
    if let Err(BatchError::Unit) = result {
        result = run_batch(conn, cached_head.as_deref_mut(), origin, &requests, true).await;
    }
    match result {
        Ok(outcomes) => {
            for (req, out) in requests.into_iter().zip(outcomes) {
                match req {
                    WriteRequest::Unit(_, tx) => {
                        let _ = tx.send(out.map(Option::unwrap_or_default));
                    }
                    WriteRequest::Usage(_, tx) => {
                        let _ = tx.send(out.map(|_| ()));
                    }
                }
            }
            true
        }
        Err(e) => {
            let msg = match e {
                BatchError::Fatal(e) => e.to_string(),
                BatchError::Unit => "a write unit failed twice".to_owned(),
            };
            for req in requests {
                fail(req, StoreError::Unavailable(msg.clone()));
            }
            if let Some(head) = cached_head {
                // The transaction did not commit: the stored head is the truth.
                if let Ok(h) = ops::load_head(conn, false).await {
                    *head = h;
                }
            }
            false
        }
    }
}

async fn run_batch(
    conn: &mut Conn<'_>,
    cached_head: Option<&mut ChainHead>,
    origin: Option<&str>,
    requests: &[WriteRequest],
    isolate: bool,
) -> Result<Vec<Outcome>, BatchError> {
    let fatal = BatchError::Fatal;
    let begin = match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    conn.exec(stmt(begin)).await.map_err(|e| fatal(e.into()))?;
    let outcome = apply_batch(conn, cached_head.as_deref().cloned(), origin, requests, isolate).await;
    match outcome {
        Ok((outcomes, head)) => match conn.exec(stmt("COMMIT")).await {
            Ok(_) => {
                if let Some(cached) = cached_head {
                    *cached = head;
                }
                Ok(outcomes)
            }
            Err(e) => {
                let _ = conn.exec(stmt("ROLLBACK")).await;
                Err(fatal(StoreError::Unavailable(format!("commit failed: {e}"))))
            }
        },
        Err(e) => {
            let rolled_back = conn.exec(stmt("ROLLBACK")).await;
            match (e, rolled_back) {
                (BatchError::Unit, Ok(_)) => Err(BatchError::Unit),
                (BatchError::Unit, Err(e)) => Err(fatal(e.into())),
                (fatal_error, _) => Err(fatal_error),
            }
        }
    }
}

/// Applies every request inside the open transaction; returns each outcome and the new head.
async fn apply_batch(
    conn: &mut Conn<'_>,
    cached_head: Option<ChainHead>,
    origin: Option<&str>,
    requests: &[WriteRequest],
    isolate: bool,
) -> Result<(Vec<Outcome>, ChainHead), BatchError> {
    let fatal = BatchError::Fatal;
    let mut head = match cached_head {
        Some(h) => h,
        None => ops::load_head(conn, true).await.map_err(fatal)?,
    };
    let start_seq = head.seq;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(requests.len());
    // Optimistic pass: units that only create tokens (the token endpoint, `POST /v1/tokens`)
    // are gathered and inserted with multi-row INSERTs, flushed before any other unit so that
    // units still apply in order.
    let mut new_tokens: Vec<&NewToken> = Vec::new();
    for req in requests {
        if !isolate {
            if let WriteRequest::Unit(unit, _) = req {
                if let Some(tokens) = only_token_creations(unit) {
                    new_tokens.extend(tokens);
                    let out = ops::apply_unit(conn, &mut head, &[], &unit.audit).await.map_err(fatal)?;
                    outcomes.push(Ok(Some(out)));
                    continue;
                }
            }
            if !new_tokens.is_empty() {
                ops::insert_tokens(conn, &new_tokens).await.map_err(|_| BatchError::Unit)?;
                new_tokens.clear();
            }
        }
        let saved = head.clone();
        if isolate {
            conn.exec(stmt("SAVEPOINT unit")).await.map_err(|e| fatal(e.into()))?;
        }
        let result = match req {
            WriteRequest::Unit(unit, _) => ops::apply_unit(conn, &mut head, &unit.changes, &unit.audit).await.map(Some),
            WriteRequest::Usage(updates, _) => ops::apply_usage(conn, updates).await.map(|()| None),
        };
        match result {
            Ok(out) => {
                if isolate {
                    conn.exec(stmt("RELEASE unit")).await.map_err(|e| fatal(e.into()))?;
                }
                outcomes.push(Ok(out));
            }
            Err(_) if !isolate => return Err(BatchError::Unit),
            Err(e) => {
                head = saved;
                conn.exec(stmt("ROLLBACK TO unit")).await.map_err(|e| fatal(e.into()))?;
                conn.exec(stmt("RELEASE unit")).await.map_err(|e| fatal(e.into()))?;
                outcomes.push(Err(e));
            }
        }
    }
    if !new_tokens.is_empty() {
        ops::insert_tokens(conn, &new_tokens).await.map_err(|_| BatchError::Unit)?;
    }
    let entries: Vec<&AuditEntry> =
        outcomes.iter().filter_map(|o| o.as_ref().ok()?.as_ref()).flat_map(|o| o.audit.iter()).collect();
    ops::insert_audit(conn, &entries).await.map_err(fatal)?;
    if head.seq != start_seq {
        ops::store_head(conn, &head).await.map_err(fatal)?;
    }
    if let Some(origin) = origin {
        let touched: Vec<_> = requests
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_ok())
            .filter_map(|(r, _)| match r {
                WriteRequest::Unit(u, _) => Some(u.changes.iter().flat_map(ops::touched)),
                WriteRequest::Usage(..) => None,
            })
            .flatten()
            .collect();
        ops::append_changes(conn, origin, &touched).await.map_err(fatal)?;
    }
    Ok((outcomes, head))
}
