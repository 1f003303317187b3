//! Following the change feed of a shared store (PostgreSQL with several replicas).
//!
//! Every replica keeps its own in-memory caches (validation index, clients, environments,
//! signing keys, secrets, upstreams, faults) and writes its own changes through to them. The
//! changes other replicas commit arrive here: the store announces each commit (`LISTEN/NOTIFY`)
//! and the follower also polls every `poll` interval, reading the feed by sequence number, so a
//! dropped notification or connection delays a change by at most one poll, never loses it.
//!
//! Each record names what changed; the follower re-reads that record from the store and
//! replaces its cached copy. Replaying a record is harmless, so on any read error the follower
//! keeps its position and retries at the next wake-up.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use tessera_store::{ChangeKind, ChangeRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Most change records read at once.
const PAGE: u32 = 1_000;

/// Change records the leader keeps (older ones are deleted every minute). A replica that falls
/// further behind (offline for that many changes) reloads all its caches instead.
pub const KEEP_CHANGES: u64 = 100_000;

/// Starts the follower when the store is shared; `from` is the feed position the caches were
/// loaded at. Runs until `stop` turns true.
pub fn spawn(state: AppState, from: u64, poll: Duration, mut stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    let mut announced = state.store.change_notifications()?;
    Some(tokio::spawn(async move {
        let mut position = from;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = announced.changed() => {
                    if changed.is_err() {
                        // The store's listener ended; keep polling.
                        announced = watch::channel(0).1;
                    }
                }
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = catch_up(&state, &mut position).await {
                tracing::warn!(error = %e, position, "could not follow the change feed; will retry");
            }
        }
    }))
}

/// Applies every change record after `position` that another process committed.
pub async fn catch_up(state: &AppState, position: &mut u64) -> anyhow::Result<()> {
    loop {
        let page = state.store.changes_after(*position, PAGE).await?;
        let Some(last) = page.last().map(|c| c.seq) else { return Ok(()) };
        if page[0].seq > *position + 1 {
            // Records this replica never saw were pruned: start over from the store.
            tracing::warn!(position, next = page[0].seq, "fell behind the change feed; reloading caches");
            let newest = state.store.change_seq().await?;
            reload_all(state).await?;
            *position = newest;
            continue;
        }
        let foreign: Vec<&ChangeRecord> = page.iter().filter(|c| c.origin != state.store.origin()).collect();
        apply(state, &foreign).await?;
        state.metrics.changes_followed.inc_by(foreign.len() as u64);
        *position = last;
        if page.len() < PAGE as usize {
            return Ok(());
        }
    }
}

/// Reloads every cache from the store, including the indexed tokens that are no longer live
/// (revoked or rotated while this replica was not following).
async fn reload_all(state: &AppState) -> anyhow::Result<()> {
    let live: std::collections::HashSet<String> =
        state.store.live_tokens(crate::now()).await?.into_iter().map(|(_, t)| t.id).collect();
    for id in state.index.ids().into_iter().filter(|id| !live.contains(id)) {
        if let Some(token) = state.store.token(&id).await? {
            state.index.refresh(token);
        }
    }
    crate::load_caches(state).await
}

async fn apply(state: &AppState, changes: &[&ChangeRecord]) -> anyhow::Result<()> {
    let mut tokens = BTreeSet::new();
    let mut reloads = HashSet::new();
    for c in changes {
        match c.kind {
            ChangeKind::Token => {
                tokens.insert(c.key.as_str());
            }
            ChangeKind::Client => {
                if let Some(client) = state.store.client(&c.key).await? {
                    state.clients.insert(client);
                }
            }
            ChangeKind::Environment => {
                if let Some(env) = state.store.environment(&c.key).await? {
                    state.environments.insert(env);
                }
            }
            ChangeKind::Secret => match c.key.split_once('/') {
                Some((env, name)) => {
                    state.secrets.forget(env, name);
                    state.prepared_upstreams.forget_secret(env, name);
                }
                None => state.secrets.clear(),
            },
            other => {
                reloads.insert(other);
            }
        }
    }
    for id in tokens {
        // Tokens this replica has not indexed are read from the store on their first use.
        if let Some(token) = state.store.token(id).await? {
            state.index.refresh(token);
        }
    }
    for kind in reloads {
        match kind {
            ChangeKind::SigningKeys => {
                crate::keys::reload(state).await.map_err(|e| anyhow::anyhow!("reloading signing keys: {e}"))?
            }
            ChangeKind::Upstream => {
                for upstream in state.store.upstreams().await? {
                    state.upstreams.put(upstream);
                }
            }
            ChangeKind::Faults => state.faults.set(state.store.faults().await?),
            ChangeKind::MasterKey => tracing::error!(
                "another replica re-sealed the data under a new master key: restart this replica with the new \
                 TESSERA_MASTER_KEY"
            ),
            _ => {}
        }
    }
    Ok(())
}
