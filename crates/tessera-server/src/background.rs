//! Background work of one server: flushing use counts, pruning the validation index.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Runs until `stop` turns true, then flushes once more and returns.
pub fn spawn(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            flush_usage(&state).await;
            rounds += 1;
            if rounds.is_multiple_of(60) {
                state.index.prune(crate::now());
                rotate_due_keys(&state).await;
            }
        }
        flush_usage(&state).await;
    })
}

/// Writes the use counts observed since the last flush; on failure they stay pending.
pub async fn flush_usage(state: &AppState) {
    let updates = state.index.take_usage();
    if updates.is_empty() {
        return;
    }
    if let Err(e) = state.store.record_usage(updates.clone()).await {
        tracing::warn!(error = %e, pending = updates.len(), "could not record token usage; will retry");
        state.index.mark_dirty(&updates);
    }
}

/// Rotates signing keys that have signed for longer than the rotation period, and drops
/// retired keys whose last token has expired.
pub async fn rotate_due_keys(state: &AppState) {
    let now = crate::now();
    let period = chrono::TimeDelta::from_std(state.key_rotation_period).unwrap_or(chrono::TimeDelta::MAX);
    let due: Vec<_> = state
        .keyring
        .list(None)
        .into_iter()
        .filter(|k| k.state == "current" && k.activated_at.is_some_and(|at| now - at >= period))
        .collect();
    for key in due {
        let max_ttl = match state.store.environment(&key.env).await {
            Ok(Some(env)) => env.policy.max_ttl,
            _ => continue,
        };
        if let Err(e) = crate::keys::rotate(state, "system", &key.env, key.alg, max_ttl).await {
            tracing::warn!(env = %key.env, alg = key.alg.as_str(), error = %e, "scheduled key rotation failed");
        }
    }
    if let Err(e) = crate::keys::prune(state).await {
        tracing::warn!(error = %e, "dropping expired signing keys failed");
    }
}
