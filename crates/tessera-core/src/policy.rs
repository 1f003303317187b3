//! Environment token policies and how requested lifetimes are clamped by them.
//!
//! Decision (documented in the README): a requested TTL above `max_ttl` is *clamped*, as
//! DESIGN.md says, and the answer says so (`TtlDecision::clamped_from`) so the caller sees it.
//! An idle TTL or use limit above the environment's is clamped the same way: a token can be
//! stricter than its environment, never looser.

use std::time::Duration;

use crate::duration::format_duration;

/// Token policy of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPolicy {
    /// TTL of a token created without an explicit one.
    pub default_ttl: Duration,
    /// Upper bound of any token's lifetime, including renewals (counted from creation).
    pub max_ttl: Duration,
    /// Tokens unused for this long become inactive (`idle_expired`).
    pub idle_ttl: Option<Duration>,
    /// Tokens older than this are due for rotation.
    pub rotation_period: Option<Duration>,
    /// Upper bound of a token's use limit.
    pub max_uses: Option<u64>,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field} must be greater than zero")]
    Zero { field: &'static str },
    #[error("default_ttl ({default}) must not exceed max_ttl ({max})")]
    DefaultAboveMax { default: String, max: String },
}

impl EnvPolicy {
    /// The policy of an environment created with no options: 1h default, 24h max.
    pub fn standard() -> Self {
        Self {
            default_ttl: Duration::from_secs(3_600),
            max_ttl: Duration::from_secs(86_400),
            idle_ttl: None,
            rotation_period: None,
            max_uses: None,
        }
    }

    /// Builds a policy from optional user input, filling gaps from [`EnvPolicy::standard`]. A
    /// `max_ttl` given alone below the standard default lowers the default with it.
    pub fn from_parts(
        default_ttl: Option<Duration>,
        max_ttl: Option<Duration>,
        idle_ttl: Option<Duration>,
        rotation_period: Option<Duration>,
        max_uses: Option<u64>,
    ) -> Result<Self, PolicyError> {
        let standard = Self::standard();
        let max_ttl = max_ttl.unwrap_or(standard.max_ttl.max(default_ttl.unwrap_or_default()));
        let default_ttl = default_ttl.unwrap_or(standard.default_ttl.min(max_ttl));
        let policy = Self { default_ttl, max_ttl, idle_ttl, rotation_period, max_uses };
        policy.validate()?;
        Ok(policy)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        let zero = |d: Duration| d.as_secs() == 0;
        if zero(self.default_ttl) {
            return Err(PolicyError::Zero { field: "default_ttl" });
        }
        if zero(self.max_ttl) {
            return Err(PolicyError::Zero { field: "max_ttl" });
        }
        if self.idle_ttl.is_some_and(zero) {
            return Err(PolicyError::Zero { field: "idle_ttl" });
        }
        if self.rotation_period.is_some_and(zero) {
            return Err(PolicyError::Zero { field: "rotation_period" });
        }
        if self.max_uses == Some(0) {
            return Err(PolicyError::Zero { field: "max_uses" });
        }
        if self.default_ttl > self.max_ttl {
            return Err(PolicyError::DefaultAboveMax {
                default: format_duration(self.default_ttl),
                max: format_duration(self.max_ttl),
            });
        }
        Ok(())
    }

    /// The TTL a new token gets: the requested one (or the default), clamped to `max_ttl`.
    pub fn resolve_ttl(&self, requested: Option<Duration>) -> Result<TtlDecision, PolicyError> {
        let wanted = requested.unwrap_or(self.default_ttl);
        if wanted.as_secs() == 0 {
            return Err(PolicyError::Zero { field: "ttl" });
        }
        Ok(if wanted > self.max_ttl {
            TtlDecision { ttl: self.max_ttl, clamped_from: Some(wanted) }
        } else {
            TtlDecision { ttl: wanted, clamped_from: None }
        })
    }

    /// The idle TTL a new token gets: the stricter of the requested one and the environment's.
    pub fn resolve_idle_ttl(&self, requested: Option<Duration>) -> Result<Option<Duration>, PolicyError> {
        if requested.is_some_and(|d| d.as_secs() == 0) {
            return Err(PolicyError::Zero { field: "idle_ttl" });
        }
        Ok(match (requested, self.idle_ttl) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        })
    }

    /// The use limit a new token gets: the stricter of the requested one and the environment's.
    pub fn resolve_max_uses(&self, requested: Option<u64>) -> Result<Option<u64>, PolicyError> {
        if requested == Some(0) {
            return Err(PolicyError::Zero { field: "max_uses" });
        }
        Ok(match (requested, self.max_uses) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        })
    }
}

/// The outcome of [`EnvPolicy::resolve_ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlDecision {
    pub ttl: Duration,
    /// The requested TTL, when it was above `max_ttl` and was lowered.
    pub clamped_from: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ttl_is_clamped_to_max() {
        let p = EnvPolicy::from_parts(Some(secs(60)), Some(secs(3_600)), None, None, None).unwrap();
        assert_eq!(p.resolve_ttl(None).unwrap(), TtlDecision { ttl: secs(60), clamped_from: None });
        assert_eq!(p.resolve_ttl(Some(secs(600))).unwrap().ttl, secs(600));
        assert_eq!(
            p.resolve_ttl(Some(secs(7_200))).unwrap(),
            TtlDecision { ttl: secs(3_600), clamped_from: Some(secs(7_200)) }
        );
        assert_eq!(p.resolve_ttl(Some(secs(0))), Err(PolicyError::Zero { field: "ttl" }));
    }

    #[test]
    fn defaults_follow_a_lone_max() {
        let p = EnvPolicy::from_parts(None, Some(secs(600)), None, None, None).unwrap();
        assert_eq!(p.default_ttl, secs(600));
        let p = EnvPolicy::from_parts(Some(secs(172_800)), None, None, None, None).unwrap();
        assert_eq!(p.max_ttl, secs(172_800));
    }

    #[test]
    fn inconsistent_policies_are_refused() {
        assert!(matches!(
            EnvPolicy::from_parts(Some(secs(7_200)), Some(secs(3_600)), None, None, None),
            Err(PolicyError::DefaultAboveMax { .. })
        ));
        assert_eq!(
            EnvPolicy::from_parts(None, None, Some(secs(0)), None, None),
            Err(PolicyError::Zero { field: "idle_ttl" })
        );
    }

    #[test]
    fn idle_ttl_and_uses_take_the_stricter() {
        let p = EnvPolicy::from_parts(None, None, Some(secs(900)), None, Some(10)).unwrap();
        assert_eq!(p.resolve_idle_ttl(None).unwrap(), Some(secs(900)));
        assert_eq!(p.resolve_idle_ttl(Some(secs(60))).unwrap(), Some(secs(60)));
        assert_eq!(p.resolve_idle_ttl(Some(secs(9_000))).unwrap(), Some(secs(900)));
        assert_eq!(p.resolve_max_uses(Some(50)).unwrap(), Some(10));
        assert_eq!(EnvPolicy::standard().resolve_max_uses(None).unwrap(), None);
    }
}
