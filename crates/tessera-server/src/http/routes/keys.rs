//! `/v1/keys`: the signing keys of environments (public parts only) and on-demand rotation.

use std::str::FromStr;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tessera_api::{KeyList, KeyView, RotateKeys, RotatedKey, RotatedKeys};
use tessera_core::Access;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::keys::{self, Alg};
use crate::state::AppState;
use crate::tokens;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/keys", get(list)).route("/v1/keys/rotate", post(rotate))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    env: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<KeyList>> {
    if let Some(env) = &q.env {
        caller.require(env, Access::Read)?;
    }
    let keys: Vec<KeyView> = state
        .keyring
        .list(q.env.as_deref())
        .into_iter()
        .filter(|k| caller.can(&k.env, Access::Read))
        .map(|k| KeyView {
            kid: k.kid.clone(),
            env: k.env.clone(),
            alg: k.alg.as_str().to_owned(),
            state: k.state.clone(),
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
            publish_until: k.publish_until,
        })
        .collect();
    Ok(Json(KeyList { keys }))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RotateKeys>,
) -> ApiResult<Json<RotatedKeys>> {
    caller.require(&req.env, Access::Write)?;
    let env = tokens::environment(&state, &req.env).await?;
    let algs: Vec<Alg> = match &req.alg {
        Some(a) => vec![Alg::from_str(a).map_err(ApiError::Validation)?],
        None => {
            let mut present: Vec<Alg> = state.keyring.list(Some(&env.name)).iter().map(|k| k.alg).collect();
            present.dedup();
            if present.is_empty() {
                present.push(Alg::EdDSA);
            }
            present
        }
    };
    let mut rotated = Vec::new();
    for alg in algs {
        let key = keys::rotate(&state, &caller.token_id, &env.name, alg, env.policy.max_ttl).await?;
        rotated.push(RotatedKey { alg: alg.as_str().to_owned(), current: key.kid.clone() });
    }
    Ok(Json(RotatedKeys { env: env.name, rotated }))
}
