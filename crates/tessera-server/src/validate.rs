//! Token validation, the hot path: one function for opaque and JWT tokens, answering from the
//! in-memory index and keyring. Used by admin authentication, introspection and revocation.

use tessera_core::{InactiveReason, Token, TokenSecret};

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

/// Whether validating counts as a use (resource-server checks do; admin inspection does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Use,
    Peek,
}

/// Finds the token behind `raw` (opaque `tsr_…` or JWT) and applies the lifecycle rules.
/// Malformed, unknown and badly signed tokens are all `Inactive(Unknown)`.
pub async fn validate(state: &AppState, raw: &str, count: Count) -> Result<Validation, ApiError> {
    let entry = if raw.starts_with(tessera_core::token::TOKEN_PREFIX) {
        let Ok(secret) = TokenSecret::parse(raw) else { return Ok(unknown()) };
        let hash = state.hasher.hash(secret.expose());
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
    Ok(check(state, &entry, count))
}

fn unknown() -> Validation {
    Validation::Inactive(InactiveReason::Unknown, None)
}

async fn by_id(state: &AppState, id: &str) -> Result<Option<std::sync::Arc<Entry>>, ApiError> {
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

fn check(state: &AppState, entry: &Entry, count: Count) -> Validation {
    let now = crate::now();
    let result = match count {
        Count::Use => state.index.use_token(entry, now),
        Count::Peek => {
            let t = entry.snapshot();
            t.check(now).map(|()| t)
        }
    };
    match result {
        Ok(t) => Validation::Active(t),
        Err(reason) => Validation::Inactive(reason, Some(entry.snapshot())),
    }
}
