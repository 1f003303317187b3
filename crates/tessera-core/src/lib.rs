//! Tessera's domain: token format and checksum, policies, lifecycle rules, scopes, audit chain.
//!
//! This crate does no I/O, spawns nothing and knows nothing of HTTP, SQL or wire formats: it
//! is the set of rules every other crate applies. Time is always passed in (`now`), never read,
//! so every rule is testable with fixed instants.

pub mod audit;
pub mod crypto;
pub mod duration;
pub mod id;
pub mod lifecycle;
pub mod mask;
pub mod model;
pub mod names;
pub mod policy;
pub mod scope;
pub mod token;
pub mod upstream;

pub use audit::{AuditEntry, AuditEvent, ChainBreak, ChainHead, ChainVerifier};
pub use crypto::{MasterKey, SecretHasher, TokenHash};
pub use duration::{format_duration, parse_duration, DurationError};
pub use lifecycle::{InactiveReason, TokenLife};
pub use model::{Client, Environment, NewToken, Run, Token, TokenFormat};
pub use policy::{EnvPolicy, PolicyError, TtlDecision};
pub use scope::{Access, Scope, ScopeError, ScopeSet};
pub use token::{ClientSecret, IssuedToken, TokenFormatError, TokenSecret};
