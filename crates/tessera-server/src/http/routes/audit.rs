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

/// Verifies the chain up to a head that was recorded before the entries were read, so writes
/// that commit during verification are never mistaken for tampering: every head covers
/// entries committed with it, and entries past the last head read are checked again against a
/// fresh head before being called foreign.
async fn verify(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<AuditVerification>> {
    let mut verifier = ChainVerifier::new();
    let mut checked = 0;
    let mut after = 0;
    let mut head = state.store.audit_head().await?;
    let result = 'verify: loop {
        while after < head.seq {
            let batch = state.store.audit_entries(after, 5_000).await?;
            let Some(last) = batch.last() else { break };
            for e in batch.iter().take_while(|e| e.seq <= head.seq) {
                if let Err(e) = verifier.push(e) {
                    break 'verify Err(e);
                }
                checked += 1;
            }
            after = last.seq.min(head.seq);
            if last.seq >= head.seq {
                break;
            }
        }
        // Anything beyond the head we hold? Either newer writes (the head moved too) or rows
        // added behind Tessera's back (the head did not move).
        if state.store.audit_entries(head.seq, 1).await?.is_empty() {
            break verifier.finish(&head);
        }
        let fresh = state.store.audit_head().await?;
        if fresh.seq == head.seq {
            let extra = tessera_core::ChainBreak::HeadMismatch { last: head.seq + 1, head: head.seq };
            break verifier.finish(&head).and(Err(extra));
        }
        head = fresh;
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
