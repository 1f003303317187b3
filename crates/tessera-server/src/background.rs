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
