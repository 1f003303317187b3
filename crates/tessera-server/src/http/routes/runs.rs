//! `/v1/runs`: register a run and mint its tokens, heartbeat, finish, history, forecast.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_api::{FinishRun, FinishedRun, Forecast, HeartbeatAnswer, RunList, StartRun, StartedRun};
use tessera_core::{Access, Run};

use super::duration_field;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, Caller, OptionalJson};
use crate::runs;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", post(start).get(list))
        .route("/v1/runs/forecast", get(forecast))
        .route("/v1/runs/{id}/heartbeat", post(heartbeat))
        .route("/v1/runs/{id}/finish", post(finish))
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<StartRun>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    caller.require(&req.env, Access::Write)?;
    if req.label.as_ref().is_some_and(|l| l.is_empty() || l.len() > 200 || l.chars().any(char::is_control)) {
        return Err(ApiError::Validation("label must have 1-200 printable characters".into()));
    }
    if req.needs.len() > 64 {
        return Err(ApiError::Validation("at most 64 needs per run".into()));
    }
    let timeout = duration_field("heartbeat_timeout", req.heartbeat_timeout.as_deref())?
        .unwrap_or(runs::DEFAULT_HEARTBEAT_TIMEOUT);
    if timeout.as_secs() < 3 || timeout.as_secs() > 3_600 {
        return Err(ApiError::Validation("heartbeat_timeout must be between 3s and 1h".into()));
    }
    let (run, tokens, warnings) =
        runs::start(&state, &caller.token_id, &req.env, req.label, &req.needs, timeout).await?;
    Ok((
        StatusCode::CREATED,
        Json(StartedRun {
            run: runs::view(&run, crate::now()),
            tokens,
            heartbeat_interval_s: (timeout.as_secs() / 3).max(1),
            warnings,
        }),
    ))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Run> {
    let run = state.store.run(id).await?.ok_or_else(|| ApiError::NotFound(format!("run {id:?} not found")))?;
    caller.require(&run.env, Access::Write)?;
    Ok(run)
}

async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<HeartbeatAnswer>> {
    let run = load(&state, &caller, &id).await?;
    if run.status != "running" {
        return Err(ApiError::Conflict(format!("run {id} is {}; its tokens were revoked", run.status)));
    }
    let (renewed, refreshed) = runs::heartbeat(&state, &run, &caller.token_id).await?;
    let run = load(&state, &caller, &id).await?;
    Ok(Json(HeartbeatAnswer { run: runs::view(&run, crate::now()), renewed, refreshed }))
}

async fn finish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<FinishRun>,
) -> ApiResult<Json<FinishedRun>> {
    let mut run = load(&state, &caller, &id).await?;
    if run.status != "running" {
        // Finishing twice (or after the reaper) is not an error: the tokens are gone either way.
        return Ok(Json(FinishedRun {
            run: runs::view(&run, crate::now()),
            revoked: 0,
            already_inactive: run.tokens_revoked,
        }));
    }
    let (revoked, already_inactive) = runs::end(&state, &mut run, &caller.token_id, req.exit_code, "finished").await?;
    Ok(Json(FinishedRun { run: runs::view(&run, crate::now()), revoked, already_inactive }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    env: Option<String>,
    label: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<RunList>> {
    if let Some(env) = &q.env {
        caller.require(env, Access::Read)?;
    }
    let now = crate::now();
    let runs = state
        .store
        .runs(q.env.as_deref(), q.label.as_deref(), q.limit.unwrap_or(100).min(1_000))
        .await?
        .iter()
        .filter(|r| caller.can(&r.env, Access::Read))
        .map(|r| runs::view(r, now))
        .collect();
    Ok(Json(RunList { runs }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastQuery {
    env: String,
    label: Option<String>,
}

async fn forecast(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ForecastQuery>,
) -> ApiResult<Json<Forecast>> {
    caller.require(&q.env, Access::Read)?;
    let (samples, p50, p95) = runs::forecast(&state, &q.env, q.label.as_deref()).await?;
    Ok(Json(Forecast {
        env: q.env,
        label: q.label,
        samples,
        p50_s: p50.map(|d| d.as_secs()),
        p95_s: p95.map(|d| d.as_secs()),
    }))
}
