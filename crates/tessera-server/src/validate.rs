//! Token validation, the hot path: one function for opaque and JWT tokens, answering from the
//! in-memory index and keyring. Used by admin authentication, introspection, revocation and
//! the gateway.
//!
//! [`check`] answers with the index entry itself (no copy of the record), for the hot paths
//! that only read a few fields; [`validate`] with a copy of the token, for the others.

use std::sync::Arc;

use tessera_core::{InactiveReason, Token};

use crate::http::error::ApiError;
use crate::index::Entry;
use crate::jwt;
use crate::state::AppState;

/// What a presented token turned out to be.
#[derive(Debug)]
pub enum Validation {
    Active(Token),
    /// Known token, inactive for this reason (the record is there for admin views).
    Inactive(InactiveReason, Option<Token>),
}

/// Like [`Validation`], with the index entry instead of a copy of the token: read its record
/// with [`Entry::token`] (use counts there may lag; [`Entry::snapshot`] has the live ones).
#[derive(Debug)]
pub enum Checked {
    Active(Arc<Entry>),
    Inactive(InactiveReason, Option<Arc<Entry>>),
}

/// Whether validating counts as a use (resource-server checks do; admin inspection does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Use,
    Peek,
}

/// Finds the token behind `raw` (opaque `tsr_…` or JWT) and applies the lifecycle rules.
/// Malformed, unknown and badly signed tokens are all `Inactive(Unknown)`. The token returned
/// as active is as it is after this use.
pub async fn validate(state: &AppState, raw: &str, count: Count) -> Result<Validation, ApiError> {
    Ok(match check(state, raw, count).await? {
        Checked::Active(entry) => Validation::Active(entry.snapshot()),
        Checked::Inactive(reason, entry) => Validation::Inactive(reason, entry.map(|e| e.snapshot())),
    })
}

/// [`validate`] without copying the token: the same lookup, rules and use counting.
pub async fn check(state: &AppState, raw: &str, count: Count) -> Result<Checked, ApiError> {
    let entry = if raw.starts_with(tessera_core::token::TOKEN_PREFIX) {
        if !tessera_core::token::is_valid_token(raw) {
            return Ok(unknown());
        }
        let hash = state.hasher.hash(raw);
        match state.index.get_by_hash(&hash) {
            Some(e) => e,
            None => match state.store.token_by_hash(&hash).await? {
                Some(token) => {
                    state.index.upsert(Some(hash), token);
                    match state.index.get_by_hash(&hash) {
                        Some(e) => e,
                        None => return Ok(unknown()),
                    }
                }
                None => return Ok(unknown()),
            },
        }
    } else if jwt::looks_like_jwt(raw) {
        // A JWT whose exact text was verified before is found by its keyed hash, like an opaque
        // token: the signature is checked once per token, not once per request.
        let hash = state.hasher.hash(raw);
        if let Some(e) = state.index.get_by_hash(&hash) {
            e
        } else {
            let Ok((claims, _env)) = jwt::verify(&state.keyring, raw, |env| state.issuer(env)) else {
                return Ok(unknown());
            };
            match by_id(state, &claims.jti).await? {
                Some(e) => {
                    state.index.alias(hash, &claims.jti);
                    e
                }
                None => return Ok(unknown()),
            }
        }
    } else {
        return Ok(unknown());
    };
    Ok(apply_rules(state, entry, count))
}

fn unknown() -> Checked {
    Checked::Inactive(InactiveReason::Unknown, None)
}

async fn by_id(state: &AppState, id: &str) -> Result<Option<Arc<Entry>>, ApiError> {
    if let Some(e) = state.index.get(id) {
        return Ok(Some(e));
    }
    match state.store.token(id).await? {
        Some(token) => {
            state.index.upsert(None, token);
            Ok(state.index.get(id))
        }
        None => Ok(None),
    }
}

fn apply_rules(state: &AppState, entry: Arc<Entry>, count: Count) -> Checked {
    let now = crate::now();
    let result = match count {
        Count::Use => state.index.use_token(&entry, now).map(drop),
        Count::Peek => entry.life().check(now),
    };
    match result {
        Ok(()) => Checked::Active(entry),
        Err(reason) => Checked::Inactive(reason, Some(entry)),
    }
}
