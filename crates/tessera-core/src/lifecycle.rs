//! The lifecycle rules: when a token is active, and if not, which rule says so.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The rule that makes a token inactive. Its text form (`expired`, …) is what audit entries,
/// metrics, `token show` and admin introspection report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InactiveReason {
    Expired,
    IdleExpired,
    Revoked,
    Exhausted,
    Rotated,
    /// `not_before` is still in the future (test tokens minted with forged times).
    NotYetValid,
    Unknown,
}

impl InactiveReason {
    pub const ALL: [InactiveReason; 7] = [
        InactiveReason::Expired,
        InactiveReason::IdleExpired,
        InactiveReason::Revoked,
        InactiveReason::Exhausted,
        InactiveReason::Rotated,
        InactiveReason::NotYetValid,
        InactiveReason::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InactiveReason::Expired => "expired",
            InactiveReason::IdleExpired => "idle_expired",
            InactiveReason::Revoked => "revoked",
            InactiveReason::Exhausted => "exhausted",
            InactiveReason::Rotated => "rotated",
            InactiveReason::NotYetValid => "not_yet_valid",
            InactiveReason::Unknown => "unknown",
        }
    }
}

impl fmt::Display for InactiveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts about a token that decide whether it is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLife {
    pub created_at: DateTime<Utc>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub idle_ttl: Option<Duration>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub max_uses: Option<u64>,
    pub uses: u64,
    /// Set when the token was superseded by rotation: it stays valid until then.
    pub grace_until: Option<DateTime<Utc>>,
}

impl TokenLife {
    /// `Ok` when the token is active at `now`; otherwise the first rule that fails, in the
    /// order revoked, rotated, expired, idle_expired, exhausted (the most deliberate first).
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), InactiveReason> {
        if self.revoked_at.is_some_and(|at| at <= now) {
            return Err(InactiveReason::Revoked);
        }
        if self.grace_until.is_some_and(|until| now >= until) {
            return Err(InactiveReason::Rotated);
        }
        if now >= self.expires_at {
            return Err(InactiveReason::Expired);
        }
        if self.is_not_yet_valid(now) {
            return Err(InactiveReason::NotYetValid);
        }
        if let Some(idle) = self.idle_ttl {
            let last = self.last_used_at.unwrap_or(self.created_at);
            if (now - last).to_std().is_ok_and(|since| since > idle) {
                return Err(InactiveReason::IdleExpired);
            }
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Err(InactiveReason::Exhausted);
        }
        Ok(())
    }

    /// True before `not_before`.
    pub fn is_not_yet_valid(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_some_and(|nbf| now < nbf)
    }

    /// Seconds left before expiry (or the end of a rotation grace period), zero when past.
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        let end = match self.grace_until {
            Some(g) if g < self.expires_at => g,
            _ => self.expires_at,
        };
        (end - now).to_std().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn base() -> TokenLife {
        TokenLife {
            created_at: t(0),
            not_before: None,
            expires_at: t(3_600),
            revoked_at: None,
            idle_ttl: None,
            last_used_at: None,
            max_uses: None,
            uses: 0,
            grace_until: None,
        }
    }

    #[test]
    fn each_rule_names_itself() {
        type Case = (&'static str, fn(&mut TokenLife), i64, Result<(), InactiveReason>);
        let cases: Vec<Case> = vec![
            ("fresh", |_| {}, 10, Ok(())),
            ("at expiry", |_| {}, 3_600, Err(InactiveReason::Expired)),
            ("just before expiry", |_| {}, 3_599, Ok(())),
            ("revoked", |l| l.revoked_at = Some(t(5)), 10, Err(InactiveReason::Revoked)),
            ("revoked and expired", |l| l.revoked_at = Some(t(5)), 9_999, Err(InactiveReason::Revoked)),
            ("idle", |l| l.idle_ttl = Some(Duration::from_secs(60)), 61, Err(InactiveReason::IdleExpired)),
            (
                "idle but used",
                |l| {
                    l.idle_ttl = Some(Duration::from_secs(60));
                    l.last_used_at = Some(t(50));
                },
                100,
                Ok(()),
            ),
            (
                "exhausted",
                |l| {
                    l.max_uses = Some(3);
                    l.uses = 3;
                },
                10,
                Err(InactiveReason::Exhausted),
            ),
            (
                "one use left",
                |l| {
                    l.max_uses = Some(3);
                    l.uses = 2;
                },
                10,
                Ok(()),
            ),
            ("within grace", |l| l.grace_until = Some(t(100)), 99, Ok(())),
            ("after grace", |l| l.grace_until = Some(t(100)), 100, Err(InactiveReason::Rotated)),
            ("not yet valid", |l| l.not_before = Some(t(100)), 99, Err(InactiveReason::NotYetValid)),
            ("valid from nbf", |l| l.not_before = Some(t(100)), 100, Ok(())),
        ];
        for (name, setup, at, expected) in cases {
            let mut life = base();
            setup(&mut life);
            assert_eq!(life.check(t(at)), expected, "{name}");
        }
    }

    #[test]
    fn remaining_counts_down_to_the_earliest_end() {
        let mut life = base();
        assert_eq!(life.remaining(t(600)), Duration::from_secs(3_000));
        life.grace_until = Some(t(700));
        assert_eq!(life.remaining(t(600)), Duration::from_secs(100));
        assert_eq!(life.remaining(t(9_000)), Duration::ZERO);
        life.not_before = Some(t(0) + TimeDelta::seconds(30));
        assert!(life.is_not_yet_valid(t(10)));
        assert!(!life.is_not_yet_valid(t(30)));
    }
}
