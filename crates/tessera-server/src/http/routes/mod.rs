//! One module per resource; each owns its routes and request/response handling.

pub mod audit;
pub mod clients;
pub mod environments;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod oauth;
pub mod runs;
pub mod secrets;
pub mod tokens;
pub mod upstreams;

use std::time::Duration;

use serde::Deserialize;
use tessera_core::Access;

use crate::http::error::ApiError;
use crate::http::extract::Caller;

/// `?env=NAME` of listing routes: optional, and when given the caller must read that
/// environment (listings are otherwise filtered to what the caller may read).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFilter {
    pub env: Option<String>,
}

impl EnvFilter {
    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        match &self.env {
            Some(env) => caller.require(env, Access::Read),
            None => Ok(()),
        }
    }
}

/// Parses an optional duration field of a request body, naming the field on error.
pub fn duration_field(field: &str, value: Option<&str>) -> Result<Option<Duration>, ApiError> {
    value
        .map(|v| tessera_core::parse_duration(v).map_err(|e| ApiError::Validation(format!("{field}: {e}"))))
        .transpose()
}
