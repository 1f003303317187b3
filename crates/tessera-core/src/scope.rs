//! Scopes (RFC 6749 §3.3 scope-tokens), scope sets, and the admin scopes that guard the
//! control plane: `tessera:admin`, `tessera:env:NAME:read|write|reveal`.

use std::collections::BTreeSet;
use std::fmt;

/// The scope that allows everything.
pub const ADMIN_SCOPE: &str = "tessera:admin";
const ENV_SCOPE_PREFIX: &str = "tessera:env:";
const MAX_SCOPE_LEN: usize = 200;

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("empty scope")]
    Empty,
    #[error("scope {scope:?} is longer than {MAX_SCOPE_LEN} characters")]
    TooLong { scope: String },
    #[error("scope {scope:?} contains a space, quote, backslash or control character")]
    InvalidCharacter { scope: String },
    #[error(
        "scope {scope:?} is not a valid Tessera admin scope (use tessera:admin or tessera:env:NAME:read|write|reveal)"
    )]
    InvalidAdminScope { scope: String },
}

/// What an admin caller wants to do in an environment. `Write` implies `Read`; `Reveal`
/// (upstream secret values) is granted only explicitly or by `tessera:admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Reveal,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Reveal => "reveal",
        }
    }
}

/// One validated scope-token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Validates `s` as an RFC 6749 scope-token; scopes in Tessera's own `tessera:` namespace
    /// must also be well-formed admin scopes.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.is_empty() {
            return Err(ScopeError::Empty);
        }
        if s.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong { scope: s.chars().take(40).collect::<String>() + "…" });
        }
        // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if !s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
            return Err(ScopeError::InvalidCharacter { scope: s.escape_debug().to_string() });
        }
        if s.starts_with("tessera:") && s != ADMIN_SCOPE && parse_env_scope(s).is_none() {
            return Err(ScopeError::InvalidAdminScope { scope: s.to_owned() });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for scopes that grant control-plane access (`tessera:…`).
    pub fn is_admin_scope(&self) -> bool {
        self.0.starts_with("tessera:")
    }

    /// The admin scope granting `access` to environment `env`.
    pub fn env_access(env: &str, access: Access) -> Self {
        Self(format!("{ENV_SCOPE_PREFIX}{env}:{}", access.as_str()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_env_scope(s: &str) -> Option<(&str, Access)> {
    let rest = s.strip_prefix(ENV_SCOPE_PREFIX)?;
    let (env, access) = rest.rsplit_once(':')?;
    let access = match access {
        "read" => Access::Read,
        "write" => Access::Write,
        "reveal" => Access::Reveal,
        _ => return None,
    };
    crate::names::validate_env_name(env).ok()?;
    Some((env, access))
}

/// An ordered set of scopes; its text form is space-separated (RFC 6749 `scope`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses scopes given one by one (e.g. repeated `--scope` flags or a JSON array).
    pub fn from_list<I, S>(items: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        items.into_iter().map(|s| Scope::parse(s.as_ref())).collect::<Result<BTreeSet<_>, _>>().map(Self)
    }

    /// Parses an RFC 6749 space-separated scope string.
    pub fn parse_space_separated(s: &str) -> Result<Self, ScopeError> {
        Self::from_list(s.split(' ').filter(|p| !p.is_empty()))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0.insert(scope);
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes of `self` that are not in `other`.
    pub fn difference(&self, other: &ScopeSet) -> Vec<Scope> {
        self.0.difference(&other.0).cloned().collect()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }

    /// True when these scopes grant `access` to environment `env`.
    pub fn permits(&self, env: &str, access: Access) -> bool {
        self.is_admin()
            || self.0.iter().any(|s| match parse_env_scope(s.as_str()) {
                Some((e, granted)) => {
                    e == env && (granted == access || (granted == Access::Write && access == Access::Read))
                }
                None => false,
            })
    }

    /// True when these scopes carry `tessera:admin`.
    pub fn is_admin(&self) -> bool {
        self.contains(ADMIN_SCOPE)
    }

    /// True when these scopes carry any control-plane scope at all.
    pub fn has_any_admin_scope(&self) -> bool {
        self.0.iter().any(Scope::is_admin_scope)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse_space_separated(s).unwrap()
    }

    #[test]
    fn validates_scope_tokens() {
        for ok in ["orders:read", "a", "gw:payments", "tessera:admin", "tessera:env:qa-1:write", "x!#[]~"] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        let bad = [
            ("", ScopeError::Empty),
            ("a b", ScopeError::InvalidCharacter { scope: "a b".into() }),
            ("a\"b", ScopeError::InvalidCharacter { scope: "a\\\"b".into() }),
            ("tessera:root", ScopeError::InvalidAdminScope { scope: "tessera:root".into() }),
            ("tessera:env:qa:delete", ScopeError::InvalidAdminScope { scope: "tessera:env:qa:delete".into() }),
            ("tessera:env:Bad Env:read", ScopeError::InvalidCharacter { scope: "tessera:env:Bad Env:read".into() }),
        ];
        for (input, err) in bad {
            assert_eq!(Scope::parse(input), Err(err), "{input:?}");
        }
        assert!(matches!(Scope::parse(&"a".repeat(201)), Err(ScopeError::TooLong { .. })));
    }

    #[test]
    fn admin_scopes_are_per_environment() {
        let cases: &[(&str, &str, Access, bool)] = &[
            ("tessera:admin", "qa", Access::Reveal, true),
            ("tessera:env:staging:read", "staging", Access::Read, true),
            ("tessera:env:staging:read", "staging", Access::Write, false),
            ("tessera:env:staging:read", "qa", Access::Read, false),
            ("tessera:env:staging:write", "staging", Access::Read, true),
            ("tessera:env:staging:write", "staging", Access::Reveal, false),
            ("tessera:env:staging:reveal", "staging", Access::Reveal, true),
            ("tessera:env:staging:reveal", "staging", Access::Read, false),
            ("orders:read", "staging", Access::Read, false),
        ];
        for &(scopes, env, access, expected) in cases {
            assert_eq!(set(scopes).permits(env, access), expected, "{scopes} {env} {access:?}");
        }
    }

    #[test]
    fn sets_are_ordered_and_deduplicated() {
        let s = set("b a  b");
        assert_eq!(s.to_string(), "a b");
        assert!(set("a").is_subset(&s));
        assert_eq!(set("a c").difference(&s), vec![Scope::parse("c").unwrap()]);
    }
}
