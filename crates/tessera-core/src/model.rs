//! The control plane's records: environments, clients, tokens.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crypto::TokenHash;
use crate::lifecycle::{InactiveReason, TokenLife};
use crate::policy::EnvPolicy;
use crate::scope::ScopeSet;

/// A test environment (dev, staging, qa-1 …) and its token policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub policy: EnvPolicy,
    /// Production-like: refuses everything that exists only to make tokens fail on purpose.
    pub protected: bool,
    pub created_at: DateTime<Utc>,
}

/// How a client's tokens are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    Opaque,
    Jwt,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Opaque => "opaque",
            TokenFormat::Jwt => "jwt",
        }
    }
}

impl FromStr for TokenFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "opaque" => Ok(TokenFormat::Opaque),
            "jwt" => Ok(TokenFormat::Jwt),
            other => Err(format!("unknown token format {other:?} (use opaque or jwt)")),
        }
    }
}

impl fmt::Display for TokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service account such as `checkout-tests`, with the scopes it may hold per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub description: Option<String>,
    /// Environment name → scopes the client's tokens may carry there.
    pub allowed_scopes: BTreeMap<String, ScopeSet>,
    pub token_format: TokenFormat,
    /// JWT signing algorithm (`EdDSA`, `ES256`, `RS256`).
    pub alg: String,
    /// Keyed hash of the client secret; the secret itself is shown once and never stored.
    pub secret_hash: TokenHash,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl Client {
    /// The scopes this client may hold in `env` (empty when none).
    pub fn scopes_in(&self, env: &str) -> ScopeSet {
        self.allowed_scopes.get(env).cloned().unwrap_or_default()
    }
}

/// A token of the control plane (opaque or JWT), without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Public id (`tok_…`), used in APIs, lists, logs.
    pub id: String,
    pub env: String,
    pub client_id: String,
    pub scopes: ScopeSet,
    pub audience: Option<String>,
    pub format: TokenFormat,
    pub labels: BTreeMap<String, String>,
    pub run_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub idle_ttl: Option<Duration>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub max_uses: Option<u64>,
    pub uses: u64,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    /// The token this one replaced by rotation.
    pub rotated_from: Option<String>,
    /// The token that replaced this one by rotation.
    pub superseded_by: Option<String>,
    pub grace_until: Option<DateTime<Utc>>,
}

impl Token {
    /// The lifecycle facts of this token.
    pub fn life(&self) -> TokenLife {
        TokenLife {
            created_at: self.created_at,
            not_before: self.not_before,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            idle_ttl: self.idle_ttl,
            last_used_at: self.last_used_at,
            max_uses: self.max_uses,
            uses: self.uses,
            grace_until: self.grace_until,
        }
    }

    /// `Ok` when active at `now`, else the rule that says it is not.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), InactiveReason> {
        self.life().check(now)
    }

    /// True while no later change can make this token active again and none is pending on
    /// it: revoked, expired, or past its rotation grace.
    pub fn is_finished(&self, now: DateTime<Utc>) -> bool {
        matches!(self.check(now), Err(InactiveReason::Revoked | InactiveReason::Expired | InactiveReason::Rotated))
    }
}

/// A token to be stored: its record and the keyed hash of its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: Token,
    pub hash: TokenHash,
}

/// One pipeline run (`tessera run`): its tokens are bound to it and revoked when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Public id (`run_…`).
    pub id: String,
    pub env: String,
    pub label: Option<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// A run whose heartbeat is older than this is reaped: its tokens are revoked.
    pub heartbeat_timeout: Duration,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// `running`, `finished` or `reaped`.
    pub status: String,
    pub tokens_minted: u32,
    pub tokens_revoked: u32,
    pub created_by: String,
}

impl Run {
    /// Wall-clock duration (so far, when still running).
    pub fn duration(&self, now: DateTime<Utc>) -> Duration {
        (self.finished_at.unwrap_or(now) - self.started_at).to_std().unwrap_or_default()
    }
}

/// The p-th percentile (0-100) of durations, nearest-rank; `None` when empty.
pub fn percentile(durations: &mut [Duration], p: u32) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    durations.sort();
    let rank = ((p.min(100) as f64 / 100.0) * durations.len() as f64).ceil().max(1.0) as usize;
    Some(durations[rank.min(durations.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let mut d: Vec<Duration> = (1..=20).map(Duration::from_secs).collect();
        assert_eq!(percentile(&mut d, 95), Some(Duration::from_secs(19)));
        assert_eq!(percentile(&mut d, 50), Some(Duration::from_secs(10)));
        assert_eq!(percentile(&mut d, 100), Some(Duration::from_secs(20)));
        assert_eq!(percentile(&mut [Duration::from_secs(7)], 95), Some(Duration::from_secs(7)));
        assert_eq!(percentile(&mut [], 95), None);
    }
}
