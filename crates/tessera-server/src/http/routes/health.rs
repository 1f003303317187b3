//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tessera_api::Health;

use crate::http::error::ApiResult;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

fn health(status: &str, role: Option<&str>) -> Json<Health> {
    Json(Health {
        status: status.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        role: role.map(str::to_owned),
    })
}

async fn healthz() -> Json<Health> {
    health("ok", None)
}

async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.ping().await?;
    let leading = state.leading.load(std::sync::atomic::Ordering::Relaxed);
    Ok(health("ready", Some(if leading { "leader" } else { "standby" })))
}
