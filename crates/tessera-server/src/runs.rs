//! Pipeline runs: tokens minted for one run, renewed while it heartbeats, revoked when it
//! finishes or when the reaper finds it silent.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tessera_api::{RunNeed, RunToken, RunView};
use tessera_core::audit::actions;
use tessera_core::id::new_public_id;
use tessera_core::model::percentile;
use tessera_core::{AuditEvent, Run, ScopeSet, Token, TokenFormat};
use tessera_store::{Change, TokenFilter, WriteUnit};

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tokens::{self, MintRequest, Minted};

/// Label key naming the need a run token serves.
pub const NEED_LABEL: &str = "need";
/// Default: reap a run after this long without a heartbeat.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn view(r: &Run, now: DateTime<Utc>) -> RunView {
    RunView {
        id: r.id.clone(),
        env: r.env.clone(),
        label: r.label.clone(),
        started_at: r.started_at,
        heartbeat_at: r.heartbeat_at,
        finished_at: r.finished_at,
        duration_s: r.duration(now).as_secs_f64(),
        exit_code: r.exit_code,
        status: r.status.clone(),
        tokens_minted: r.tokens_minted,
        tokens_revoked: r.tokens_revoked,
    }
}

/// p50 and p95 of the durations of the last finished runs of `env` with `label`.
pub async fn forecast(
    state: &AppState,
    env: &str,
    label: Option<&str>,
) -> ApiResult<(usize, Option<Duration>, Option<Duration>)> {
    let now = crate::now();
    let mut durations: Vec<Duration> = state
        .store
        .runs(Some(env), label, 200)
        .await?
        .iter()
        .filter(|r| r.status == "finished" && r.label.as_deref() == label)
        .take(50)
        .map(|r| r.duration(now))
        .collect();
    let n = durations.len();
    Ok((n, percentile(&mut durations, 50), percentile(&mut durations, 95)))
}

fn run_token(need: &str, m: &Minted) -> RunToken {
    RunToken {
        name: need.to_owned(),
        token: m.secret.expose().to_owned(),
        id: m.token.id.clone(),
        format: m.token.format.as_str().to_owned(),
        expires_at: m.token.expires_at,
    }
}

fn mint_request(env: &str, run_id: &str, need: &RunNeed, ttl: Option<Duration>, actor: &str) -> ApiResult<MintRequest> {
    let scopes = need
        .scopes
        .as_ref()
        .map(|s| ScopeSet::from_list(s).map_err(|e| ApiError::Validation(format!("need {}: {e}", need.name))))
        .transpose()?;
    let format = need
        .format
        .as_deref()
        .map(|f| f.parse::<TokenFormat>().map_err(|e| ApiError::Validation(format!("need {}: {e}", need.name))))
        .transpose()?;
    Ok(MintRequest {
        env: env.to_owned(),
        client_id: need.client.clone(),
        scopes,
        audience: need.audience.clone(),
        ttl,
        idle_ttl: None,
        max_uses: None,
        format,
        labels: BTreeMap::from([(NEED_LABEL.to_owned(), need.name.clone())]),
        run_id: Some(run_id.to_owned()),
        created_by: actor.to_owned(),
    })
}

fn check_need_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(format!("need name {name:?} must be an environment variable name (A-Z, 0-9, _)")))
    }
}

/// Registers a run and mints one token per need, bound to it. Nothing is left behind when a
/// need cannot be minted: the run is ended and what was minted is revoked.
pub async fn start(
    state: &AppState,
    actor: &str,
    env: &str,
    label: Option<String>,
    needs: &[RunNeed],
    heartbeat_timeout: Duration,
) -> ApiResult<(Run, Vec<RunToken>, Vec<String>)> {
    let environment = tokens::environment(state, env).await?;
    for need in needs {
        check_need_name(&need.name)?;
    }
    let now = crate::now();
    let (samples, _, p95) = forecast(state, env, label.as_deref()).await?;
    let mut run = Run {
        id: new_public_id("run"),
        env: env.to_owned(),
        label: label.clone(),
        started_at: now,
        heartbeat_at: now,
        heartbeat_timeout,
        finished_at: None,
        exit_code: None,
        status: "running".into(),
        tokens_minted: 0,
        tokens_revoked: 0,
        created_by: actor.to_owned(),
    };
    let mut event =
        AuditEvent::new(actions::RUN_START, actor).env(env).target(&run.id).detail("needs", needs.len().to_string());
    if let Some(l) = &label {
        event = event.detail("label", l.clone());
    }
    state.store.commit(WriteUnit::new(Change::CreateRun(run.clone()), event)).await?;
    let mut minted = Vec::new();
    let mut warnings = Vec::new();
    for need in needs {
        // TTL: the need's own, else sized to cover the p95 of past runs (plus 20%), at least the
        // environment default. Heartbeats renew past it anyway.
        let ttl = match &need.ttl {
            Some(t) => Some(
                tessera_core::parse_duration(t)
                    .map_err(|e| ApiError::Validation(format!("need {}: ttl: {e}", need.name)))?,
            ),
            None => p95.map(|p| (p + p / 5).max(environment.policy.default_ttl)),
        };
        let req = match mint_request(env, &run.id, need, ttl, actor) {
            Ok(r) => r,
            Err(e) => {
                abort(state, &mut run, actor).await;
                return Err(e);
            }
        };
        match tokens::mint(state, req).await {
            Ok(m) => {
                warnings.extend(m.warnings.iter().map(|w| format!("{}: {w}", need.name)));
                minted.push(run_token(&need.name, &m));
            }
            Err(e) => {
                abort(state, &mut run, actor).await;
                return Err(match e {
                    ApiError::Validation(d) => ApiError::Validation(format!("need {}: {d}", need.name)),
                    ApiError::NotFound(d) => ApiError::NotFound(format!("need {}: {d}", need.name)),
                    other => other,
                });
            }
        }
    }
    if let (true, Some(p95)) = (samples > 0, p95) {
        tracing::debug!(run = %run.id, samples, p95_s = p95.as_secs(), "sized run tokens from the forecast");
    }
    state
        .store
        .commit(WriteUnit {
            changes: vec![Change::AddRunTokens { id: run.id.clone(), count: minted.len() as u32 }],
            audit: vec![],
        })
        .await?;
    run.tokens_minted = minted.len() as u32;
    Ok((run, minted, warnings))
}

/// Ends a run that failed to start, revoking whatever it minted.
async fn abort(state: &AppState, run: &mut Run, actor: &str) {
    if let Err(e) = end(state, run, actor, None, "finished").await {
        tracing::warn!(run = %run.id, error = %e, "could not end a run that failed to start");
    }
}

async fn run_tokens(state: &AppState, run_id: &str) -> ApiResult<Vec<Token>> {
    let filter = TokenFilter { run_id: Some(run_id.to_owned()), ..Default::default() };
    Ok(state.store.tokens(&filter).await?.into_iter().map(|t| tokens::live(state, t)).collect())
}

/// Renews the run's opaque tokens that passed half their lifetime, and mints fresh JWTs for
/// needs whose JWT did (a JWT's expiry is signed into it). Records the heartbeat.
pub async fn heartbeat(state: &AppState, run: &Run, actor: &str) -> ApiResult<(Vec<String>, Vec<RunToken>)> {
    let now = crate::now();
    state
        .store
        .commit(WriteUnit { changes: vec![Change::RunHeartbeat { id: run.id.clone(), at: now }], audit: vec![] })
        .await?;
    let all = run_tokens(state, &run.id).await?;
    let mut renewed = Vec::new();
    let mut refreshed = Vec::new();
    // The newest token of each need is the one in use.
    let mut newest: BTreeMap<String, &Token> = BTreeMap::new();
    for t in &all {
        let need = t.labels.get(NEED_LABEL).cloned().unwrap_or_default();
        if newest.get(&need).is_none_or(|n| n.created_at < t.created_at) {
            newest.insert(need, t);
        }
    }
    for (need, t) in newest {
        if t.check(now).is_err() {
            continue;
        }
        let lifetime = t.expires_at - t.created_at;
        if t.expires_at - now > lifetime / 2 {
            continue;
        }
        match t.format {
            TokenFormat::Opaque => {
                let ttl = lifetime.to_std().unwrap_or_default();
                let (_, changed, _) = tokens::renew(state, actor, t.clone(), Some(ttl)).await?;
                if changed {
                    renewed.push(t.id.clone());
                }
            }
            TokenFormat::Jwt => {
                let need_def = RunNeed {
                    name: need.clone(),
                    client: t.client_id.clone(),
                    scopes: Some(t.scopes.to_vec()),
                    audience: t.audience.clone(),
                    format: Some("jwt".into()),
                    ttl: None,
                };
                let req = mint_request(&run.env, &run.id, &need_def, lifetime.to_std().ok(), actor)?;
                let m = tokens::mint(state, req).await?;
                refreshed.push(run_token(&need, &m));
            }
        }
    }
    if !refreshed.is_empty() {
        state
            .store
            .commit(WriteUnit {
                changes: vec![Change::AddRunTokens { id: run.id.clone(), count: refreshed.len() as u32 }],
                audit: vec![],
            })
            .await?;
    }
    Ok((renewed, refreshed))
}

/// Revokes every token of the run and ends it with `status`. Tokens already inactive count as
/// cleaned up. Returns (revoked now, already inactive).
pub async fn end(
    state: &AppState,
    run: &mut Run,
    actor: &str,
    exit_code: Option<i32>,
    status: &str,
) -> ApiResult<(u32, u32)> {
    let all = run_tokens(state, &run.id).await?;
    let now = crate::now();
    let (live, gone): (Vec<Token>, Vec<Token>) = all.into_iter().partition(|t| !t.is_finished(now));
    let revoked =
        tokens::revoke(state, actor, &format!("run.{status}"), live, Some(format!("run {} {status}", run.id))).await?;
    let revoked_n = revoked.len() as u32;
    let gone_n = gone.len() as u32;
    let action = if status == "reaped" { actions::RUN_REAP } else { actions::RUN_FINISH };
    let mut event = AuditEvent::new(action, actor)
        .env(&run.env)
        .target(&run.id)
        .detail("revoked", revoked_n.to_string())
        .detail("already_inactive", gone_n.to_string())
        .detail("duration_s", run.duration(now).as_secs().to_string());
    if let Some(code) = exit_code {
        event = event.detail("exit_code", code.to_string());
    }
    let change = Change::EndRun {
        id: run.id.clone(),
        at: now,
        exit_code,
        status: status.to_owned(),
        tokens_revoked: revoked_n + gone_n,
    };
    state.store.commit(WriteUnit::new(change, event)).await?;
    run.finished_at = Some(now);
    run.exit_code = exit_code;
    run.status = status.to_owned();
    run.tokens_revoked = revoked_n + gone_n;
    Ok((revoked_n, gone_n))
}

/// Reaps runs whose heartbeat stopped (the runner was killed): revokes their tokens.
pub async fn reap(state: &AppState) -> ApiResult<usize> {
    let stale = state.store.stale_runs(crate::now()).await?;
    for mut run in stale.iter().cloned() {
        end(state, &mut run, "reaper", None, "reaped").await?;
        tracing::info!(run = %run.id, "reaped a run whose heartbeat stopped");
    }
    Ok(stale.len())
}

pub fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
