//! Upstream secrets and the gateway's upstreams: injection rules, fault rules, fingerprints.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// How the gateway puts an upstream secret into a proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injection {
    /// Set header `name` to `template` with `{secret}` replaced, e.g.
    /// `Authorization: Bearer {secret}` or `X-Api-Key: {secret}`.
    Header { name: String, template: String },
    /// Set query parameter `name` to the secret.
    Query { name: String },
}

/// Why an injection rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid inject rule {rule:?}: {reason} (use header:NAME=TEMPLATE with {{secret}}, or query:NAME)")]
pub struct InjectionError {
    pub rule: String,
    pub reason: &'static str,
}

impl FromStr for Injection {
    type Err = InjectionError;

    /// Parses `header:Authorization=Bearer {secret}`, `header:X-Api-Key` (the secret as is)
    /// or `query:api_key`.
    fn from_str(s: &str) -> Result<Self, InjectionError> {
        let err = |reason| InjectionError { rule: s.chars().take(100).collect(), reason };
        let (kind, rest) = s.split_once(':').ok_or_else(|| err("missing header: or query: prefix"))?;
        let valid_name = |n: &str| {
            !n.is_empty() && n.len() <= 100 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        };
        match kind {
            "header" => {
                let (name, template) = rest.split_once('=').unwrap_or((rest, "{secret}"));
                if !valid_name(name) {
                    return Err(err("header name must be letters, digits, '-' or '_'"));
                }
                if !template.contains("{secret}") {
                    return Err(err("the template must contain {secret}"));
                }
                if template.chars().any(|c| c.is_control()) {
                    return Err(err("the template must not contain control characters"));
                }
                let lower = name.to_ascii_lowercase();
                if ["host", "content-length", "transfer-encoding", "connection"].contains(&lower.as_str()) {
                    return Err(err("that header cannot carry a credential"));
                }
                Ok(Injection::Header { name: name.to_owned(), template: template.to_owned() })
            }
            "query" if valid_name(rest) => Ok(Injection::Query { name: rest.to_owned() }),
            "query" => Err(err("query parameter name must be letters, digits, '-' or '_'")),
            _ => Err(err("unknown kind")),
        }
    }
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injection::Header { name, template } => write!(f, "header:{name}={template}"),
            Injection::Query { name } => write!(f, "query:{name}"),
        }
    }
}

/// A third-party API the gateway forwards to, per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub env: String,
    pub name: String,
    /// Base URL, e.g. `https://sandbox.payments.example`.
    pub url: String,
    /// Name of the upstream secret (in the same environment) to inject.
    pub secret: String,
    pub inject: Injection,
    /// Path prefixes the gateway forwards (empty: all).
    pub allow_paths: Vec<String>,
    /// Methods the gateway forwards (empty: all).
    pub allow_methods: Vec<String>,
    pub timeout: Duration,
    pub created_at: DateTime<Utc>,
}

impl Upstream {
    /// True when `path` (already normalised, starting with `/`) is inside the allow-list.
    pub fn allows_path(&self, path: &str) -> bool {
        self.allow_paths.is_empty() || self.allow_paths.iter().any(|p| path.starts_with(p.as_str()))
    }

    pub fn allows_method(&self, method: &str) -> bool {
        self.allow_methods.is_empty() || self.allow_methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A path is forwarded only when it cannot climb out of an allowed prefix: no `.`/`..`
/// segments (raw or percent-encoded), no backslashes, no empty segments.
pub fn is_safe_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return false;
    }
    path.split('/').skip(1).all(|seg| seg != "." && seg != "..") && !path.contains("//")
}

/// A rotation hook: an executable and its arguments, run with a timeout; prints the new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationHook {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

/// Configuration of one upstream secret (its values live in versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretConfig {
    pub env: String,
    pub name: String,
    pub hook: Option<RotationHook>,
    pub rotation_period: Option<Duration>,
    /// How long the previous version stays valid after a rotation.
    pub overlap: Duration,
    pub created_at: DateTime<Utc>,
}

/// Metadata of one version of a secret: never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub env: String,
    pub name: String,
    pub version: u32,
    /// Short keyed hash of the value: equal values have equal fingerprints everywhere.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// `current`, `previous` (valid until `valid_until`) or `retired`.
    pub state: String,
    pub valid_until: Option<DateTime<Utc>>,
}

impl SecretVersion {
    /// The state at `now`: a `previous` version past its overlap is `retired`.
    pub fn state_at(&self, now: DateTime<Utc>) -> &str {
        match (self.state.as_str(), self.valid_until) {
            ("previous", Some(until)) if now >= until => "retired",
            (s, _) => s,
        }
    }
}

/// Gateway auth-fault rules, for testing how clients cope with credentials failing mid-run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// From the `n`th request on, answer `status` (401 by default) as if the token expired.
    FailAfter { n: u64, status: u16 },
    /// Revoke the caller's token after `n` requests.
    RevokeAfter { n: u64 },
    /// Rotate the caller's token (no grace) once `after` has passed since the fault was added.
    RotateAfter { after: Duration },
    /// Delay every request.
    Latency { delay: Duration },
}

/// One fault rule, scoped to an upstream of an environment and optionally to one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub id: String,
    pub env: String,
    pub upstream: String,
    pub token_id: Option<String>,
    pub kind: FaultKind,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_rules_parse_or_say_why_not() {
        assert_eq!(
            "header:Authorization=Bearer {secret}".parse(),
            Ok(Injection::Header { name: "Authorization".into(), template: "Bearer {secret}".into() })
        );
        assert_eq!(
            "header:X-Api-Key".parse(),
            Ok(Injection::Header { name: "X-Api-Key".into(), template: "{secret}".into() })
        );
        assert_eq!("query:api_key".parse(), Ok(Injection::Query { name: "api_key".into() }));
        for bad in
            ["Authorization", "header:=x{secret}", "header:X=Bearer", "header:Host={secret}", "cookie:a", "query:a b"]
        {
            assert!(bad.parse::<Injection>().is_err(), "{bad}");
        }
        let rule: Injection = "header:X-Key=k {secret}".parse().unwrap();
        assert_eq!(rule.to_string(), "header:X-Key=k {secret}");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for ok in ["/v1/charges", "/v1/a.b/c", "/"] {
            assert!(is_safe_path(ok), "{ok}");
        }
        for bad in ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/%2E./x", "/v1//x", "/v1/./x", "/v1\\..\\x", "/v1/a%2fb"] {
            assert!(!is_safe_path(bad), "{bad}");
        }
    }
}
