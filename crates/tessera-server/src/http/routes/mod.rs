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

use crate::http::error::ApiError;

/// Parses an optional duration field of a request body, naming the field on error.
pub fn duration_field(field: &str, value: Option<&str>) -> Result<Option<Duration>, ApiError> {
    value
        .map(|v| tessera_core::parse_duration(v).map_err(|e| ApiError::Validation(format!("{field}: {e}"))))
        .transpose()
}
