//! Pipeline integration: `tessera.toml` (tokens as code), plan/apply against a server,
//! preflight checks, and `run`, which injects fresh tokens into a command and cleans up.

pub mod config;
pub mod plan;
pub mod preflight;
pub mod run;

pub use config::{Config, ConfigError, Need, NeedKind};
