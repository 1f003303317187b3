//! `/v1/audit`: the hash-chained log, paged; `/v1/audit/verify`: recompute the chain.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tessera_api::{AuditList, AuditVerification};
use tessera_core::{Access, ChainVerifier};

use crate::http::error::ApiResult;
use crate::http::extract::{ApiQuery, Caller};
use crate::state::AppState;
use crate::views;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list)).route("/v1/audit/verify", get(verify))
}

const PAGE: u32 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

/// Entries the caller may read: all for `tessera:admin`, else those of readable environments.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<AuditList>> {
    let limit = q.limit.unwrap_or(100).clamp(1, PAGE);
    let mut after = q.after.unwrap_or(0);
    let mut entries = Vec::new();
    // Filtering can thin a page out; keep reading until the page is full or the log ends.
    loop {
        let batch = state.store.audit_entries(after, PAGE).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let full = batch.len() as u32 == PAGE;
        for e in &batch {
            let readable =
                caller.scopes.is_admin() || e.event.env.as_deref().is_some_and(|env| caller.can(env, Access::Read));
            if readable {
                entries.push(views::audit(e));
                if entries.len() as u32 == limit {
                    let next_after = Some(e.seq);
                    return Ok(Json(AuditList { entries, next_after }));
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(Json(AuditList { entries, next_after: None }))
}

async fn verify(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<AuditVerification>> {
    let head = state.store.audit_head().await?;
    let mut verifier = ChainVerifier::new();
    let mut after = 0;
    let mut checked = 0;
    let failure = 'scan: loop {
        let batch = state.store.audit_entries(after, 5_000).await?;
        let Some(last) = batch.last() else { break 'scan None };
        after = last.seq;
        for e in &batch {
            if let Err(e) = verifier.push(e) {
                break 'scan Some(e);
            }
            checked += 1;
        }
    };
    let result = match failure {
        Some(e) => Err(e),
        None => verifier.finish(&head),
    };
    Ok(Json(match result {
        Ok(n) => AuditVerification {
            ok: true,
            entries: n,
            head_seq: head.seq,
            head_hash: views::hex_encode(&head.hash),
            first_bad_seq: None,
            error: None,
        },
        Err(e) => AuditVerification {
            ok: false,
            entries: checked,
            head_seq: head.seq,
            head_hash: views::hex_encode(&head.hash),
            first_bad_seq: Some(e.first_bad_seq()),
            error: Some(e.to_string()),
        },
    }))
}
