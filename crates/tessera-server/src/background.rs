//! Background work: flushing use counts and gateway uses, pruning the validation index (every
//! server, for what it observed itself), and, on the leader only, the run reaper and key and
//! secret rotation. With SQLite the one server always leads; with PostgreSQL one replica leads
//! by holding an advisory lock (see `tessera_store`), checked at every tick: when the leader
//! dies, another replica takes over at its next tick.

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
        let mut backoff = RotationBackoff::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            flush_usage(&state).await;
            flush_gateway_uses(&state).await;
            rounds += 1;
            if rounds.is_multiple_of(60) {
                state.index.prune(crate::now());
            }
            let took_over = match lead(&state).await {
                Some(took_over) => took_over,
                None => continue,
            };
            if took_over || rounds.is_multiple_of(5) {
                if let Err(e) = crate::runs::reap(&state).await {
                    tracing::warn!(error = %e, "reaping silent runs failed");
                }
            }
            if took_over || rounds.is_multiple_of(60) {
                if let Err(e) = state.store.prune_changes(crate::follow::KEEP_CHANGES).await {
                    tracing::warn!(error = %e, "pruning the change feed failed");
                }
                rotate_due_keys(&state).await;
                rotate_due_secrets(&state, &mut backoff).await;
            }
        }
        flush_usage(&state).await;
        flush_gateway_uses(&state).await;
    })
}

/// Checks leadership: `None` when another replica leads (or the database cannot tell),
/// `Some(true)` when this server just became the leader (it then catches up on all
/// background work at once), `Some(false)` when it led already.
async fn lead(state: &AppState) -> Option<bool> {
    use std::sync::atomic::Ordering;
    let leading = match state.store.try_lead().await {
        Ok(leading) => leading,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check leadership of background work");
            false
        }
    };
    let was = state.leading.swap(leading, Ordering::AcqRel);
    state.metrics.leader.set(i64::from(leading));
    if leading != was && state.store.is_shared() {
        tracing::info!(role = if leading { "leader" } else { "standby" }, "background work role changed");
    }
    leading.then_some(!was)
}

/// Writes the gateway uses recorded since the last flush in one batch.
pub async fn flush_gateway_uses(state: &AppState) {
    let batch = std::mem::take(&mut *state.gateway_uses.lock().expect("usage lock"));
    if batch.is_empty() {
        return;
    }
    let unit = tessera_store::WriteUnit {
        changes: vec![tessera_store::Change::RecordGatewayUse(batch.clone())],
        audit: vec![],
    };
    if let Err(e) = state.store.commit(unit).await {
        tracing::warn!(error = %e, pending = batch.len(), "could not record gateway uses; will retry");
        state.gateway_uses.lock().expect("usage lock").extend(batch);
    }
}

/// When to retry the scheduled rotation of secrets whose hook failed: after 1 minute, then
/// doubling up to 1 hour, so a broken hook is not run (and audited) every minute forever.
/// Kept in memory: a restart (or a new leader) tries again at once.
#[derive(Debug, Default)]
pub struct RotationBackoff {
    failing: std::collections::HashMap<(String, String), (u32, chrono::DateTime<chrono::Utc>)>,
}

impl RotationBackoff {
    const FIRST: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
    const MAX: chrono::TimeDelta = chrono::TimeDelta::hours(1);

    fn may_try(&self, key: &(String, String), now: chrono::DateTime<chrono::Utc>) -> bool {
        self.failing.get(key).is_none_or(|(_, next)| now >= *next)
    }

    fn failed(&mut self, key: (String, String), now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let failures = self.failing.get(&key).map_or(0, |(n, _)| *n).saturating_add(1);
        let wait = Self::FIRST.checked_mul(1 << (failures - 1).min(10)).unwrap_or(Self::MAX).min(Self::MAX);
        self.failing.insert(key, (failures, now + wait));
        now + wait
    }

    fn succeeded(&mut self, key: &(String, String)) {
        self.failing.remove(key);
    }
}

/// Runs the rotation hooks of secrets past their rotation period (skipping those whose hook
/// failed recently, see [`RotationBackoff`]).
pub async fn rotate_due_secrets(state: &AppState, backoff: &mut RotationBackoff) {
    let now = crate::now();
    let Ok(configs) = state.store.secret_configs(None).await else { return };
    let Ok(versions) = state.store.secret_versions(None, None).await else { return };
    for c in configs.iter().filter(|c| c.hook.is_some() && c.rotation_period.is_some()) {
        let due = versions
            .iter()
            .find(|v| v.meta.env == c.env && v.meta.name == c.name && v.meta.state == "current")
            .is_some_and(|v| crate::secrets::is_due(&v.meta, c.rotation_period, now).0);
        let key = (c.env.clone(), c.name.clone());
        if !due || !backoff.may_try(&key, now) {
            continue;
        }
        match crate::secrets::rotate(state, "system", &c.env, &c.name).await {
            Ok(_) => backoff.succeeded(&key),
            Err(e) => {
                let retry_at = backoff.failed(key, now);
                tracing::warn!(env = %c.env, name = %c.name, error = %e, %retry_at, "scheduled secret rotation failed");
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_rotations_back_off_from_one_minute_to_one_hour() {
        let mut b = RotationBackoff::default();
        let key = ("qa".to_owned(), "stripe".to_owned());
        let t0 = chrono::Utc::now();
        assert!(b.may_try(&key, t0));
        let waits: Vec<i64> = (0..9).map(|_| (b.failed(key.clone(), t0) - t0).num_minutes()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(!b.may_try(&key, t0 + chrono::TimeDelta::minutes(59)));
        assert!(b.may_try(&key, t0 + chrono::TimeDelta::minutes(60)));
        b.succeeded(&key);
        assert!(b.may_try(&key, t0));
    }
}
