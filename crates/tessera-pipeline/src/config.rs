//! `tessera.toml`: environments, clients, upstreams and what a suite needs. Every error
//! points at the file, line and column, shows the line with a caret, and says what to do.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera_core::parse_duration;
use toml::Spanned;

/// The file name `tessera` looks for, walking up from the working directory.
pub const FILE_NAME: &str = "tessera.toml";

/// A problem in `tessera.toml`, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending line and a caret under the span.
    pub snippet: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn locate(path: &Path, text: &str, span: Range<usize>, message: String) -> ConfigError {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..start].matches('\n').count() + 1;
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let column = text[line_start..start].chars().count() + 1;
    let width = text[start..span.end.min(line_end).max(start)].chars().count().max(1);
    let gutter = line_no.to_string().len();
    let snippet = format!(
        "{:gutter$} |\n{line_no} | {line}\n{:gutter$} | {}{}",
        "",
        "",
        " ".repeat(column - 1),
        "^".repeat(width),
    );
    ConfigError { path: path.to_owned(), line: line_no, column, message, snippet }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    environments: BTreeMap<Spanned<String>, RawEnv>,
    #[serde(default)]
    clients: BTreeMap<Spanned<String>, RawClient>,
    #[serde(default)]
    needs: BTreeMap<Spanned<String>, RawNeed>,
    #[serde(default)]
    upstreams: BTreeMap<Spanned<String>, RawUpstream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    default_ttl: Option<Spanned<String>>,
    max_ttl: Option<Spanned<String>>,
    idle_ttl: Option<Spanned<String>>,
    rotation_period: Option<Spanned<String>>,
    max_uses: Option<u64>,
    #[serde(default)]
    protected: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    scopes: Spanned<BTreeMap<Spanned<String>, Vec<String>>>,
    token_format: Option<Spanned<String>>,
    alg: Option<Spanned<String>>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeed {
    client: Option<Spanned<String>>,
    scopes: Option<Spanned<Vec<String>>>,
    audience: Option<String>,
    format: Option<Spanned<String>>,
    ttl: Option<Spanned<String>>,
    min_remaining: Option<Spanned<String>>,
    probe: Option<RawProbe>,
    upstream: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[serde(default = "get")]
    method: String,
    url: Spanned<String>,
    #[serde(default = "ok")]
    expect: u16,
}

fn get() -> String {
    "GET".into()
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    env: Spanned<String>,
    url: String,
    secret: String,
    inject: Option<String>,
    #[serde(default)]
    allow_paths: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    timeout: Option<Spanned<String>>,
}

/// An environment as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvDecl {
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub idle_ttl: Option<String>,
    pub rotation_period: Option<String>,
    pub max_uses: Option<u64>,
    pub protected: bool,
}

/// A client as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDecl {
    pub scopes: BTreeMap<String, Vec<String>>,
    pub token_format: Option<String>,
    pub alg: Option<String>,
    pub description: Option<String>,
}

/// An upstream as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDecl {
    pub env: String,
    pub url: String,
    pub secret: String,
    pub inject: Option<String>,
    pub allow_paths: Vec<String>,
    pub allow_methods: Vec<String>,
    pub timeout: Option<String>,
}

/// A live check of a token need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub method: String,
    pub url: String,
    pub expect: u16,
}

/// What a need asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeedKind {
    /// A Tessera token, injected as the variable itself.
    Token {
        client: String,
        scopes: Option<Vec<String>>,
        audience: Option<String>,
        format: Option<String>,
        ttl: Option<Duration>,
        min_remaining: Option<Duration>,
        probe: Option<Probe>,
    },
    /// The gateway: `NAME_URL` (gateway base URL) and `NAME_TOKEN` (scope `gw:{upstream}`).
    Upstream { upstream: String },
    /// An upstream secret injected as is.
    Secret { secret: String },
}

/// One need: the environment variable(s) `run` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    pub kind: NeedKind,
    /// Where it is declared, for error messages.
    pub line: usize,
}

/// A parsed and checked `tessera.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    pub environments: BTreeMap<String, EnvDecl>,
    pub clients: BTreeMap<String, ClientDecl>,
    pub upstreams: BTreeMap<String, UpstreamDecl>,
    pub needs: Vec<Need>,
    text: String,
    /// Spans of need scopes, to point at them when an environment refuses them.
    need_scope_spans: BTreeMap<String, Range<usize>>,
}

/// Finds `tessera.toml` in `start` or its ancestors.
pub fn find(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join(FILE_NAME)).find(|p| p.is_file())
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    candidates.min_by_key(|c| strsim(name, c)).filter(|c| strsim(name, c) <= 3)
}

/// Levenshtein distance, for "did you mean".
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
            snippet: String::new(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks `text` (named `path` in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |span: Range<usize>, message: String| locate(path, text, span, message);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            err(e.span().unwrap_or(0..0), message)
        })?;
        let duration = |v: &Option<Spanned<String>>, what: &str| -> Result<Option<String>, ConfigError> {
            match v {
                None => Ok(None),
                Some(s) => parse_duration(s.get_ref())
                    .map(|_| Some(s.get_ref().clone()))
                    .map_err(|e| err(s.span(), format!("{what}: {e}"))),
            }
        };
        let mut environments = BTreeMap::new();
        for (name, e) in &raw.environments {
            tessera_core::names::validate_new_env_name(name.get_ref()).map_err(|x| err(name.span(), x.to_string()))?;
            environments.insert(
                name.get_ref().clone(),
                EnvDecl {
                    default_ttl: duration(&e.default_ttl, "default_ttl")?,
                    max_ttl: duration(&e.max_ttl, "max_ttl")?,
                    idle_ttl: duration(&e.idle_ttl, "idle_ttl")?,
                    rotation_period: duration(&e.rotation_period, "rotation_period")?,
                    max_uses: e.max_uses,
                    protected: e.protected,
                },
            );
        }
        let mut clients = BTreeMap::new();
        for (id, c) in &raw.clients {
            tessera_core::names::validate_client_id(id.get_ref()).map_err(|x| err(id.span(), x.to_string()))?;
            let mut scopes = BTreeMap::new();
            for (env, list) in c.scopes.get_ref() {
                if !environments.contains_key(env.get_ref()) {
                    let hint = closest(env.get_ref(), environments.keys()).map_or_else(
                        || format!("declare it under [environments.{}]", env.get_ref()),
                        |c| format!("did you mean {c:?}?"),
                    );
                    return Err(err(
                        env.span(),
                        format!(
                            "client {} names environment {:?}, which is not declared; {hint}",
                            id.get_ref(),
                            env.get_ref()
                        ),
                    ));
                }
                for s in list {
                    tessera_core::Scope::parse(s)
                        .map_err(|e| err(c.scopes.span(), format!("client {}: {e}", id.get_ref())))?;
                }
                scopes.insert(env.get_ref().clone(), list.clone());
            }
            for (field, v, allowed) in [
                ("token_format", &c.token_format, &["opaque", "jwt"][..]),
                ("alg", &c.alg, &["EdDSA", "ES256", "RS256"][..]),
            ] {
                if let Some(v) = v {
                    if !allowed.contains(&v.get_ref().as_str()) {
                        return Err(err(v.span(), format!("{field} must be one of {}", allowed.join(", "))));
                    }
                }
            }
            clients.insert(
                id.get_ref().clone(),
                ClientDecl {
                    scopes,
                    token_format: c.token_format.as_ref().map(|v| v.get_ref().clone()),
                    alg: c.alg.as_ref().map(|v| v.get_ref().clone()),
                    description: c.description.clone(),
                },
            );
        }
        let mut upstreams = BTreeMap::new();
        for (name, u) in &raw.upstreams {
            if !environments.contains_key(u.env.get_ref()) {
                return Err(err(
                    u.env.span(),
                    format!(
                        "upstream {} names environment {:?}, which is not declared",
                        name.get_ref(),
                        u.env.get_ref()
                    ),
                ));
            }
            if let Some(inject) = &u.inject {
                inject
                    .parse::<tessera_core::upstream::Injection>()
                    .map_err(|e| err(name.span(), format!("upstream {}: {e}", name.get_ref())))?;
            }
            upstreams.insert(
                name.get_ref().clone(),
                UpstreamDecl {
                    env: u.env.get_ref().clone(),
                    url: u.url.clone(),
                    secret: u.secret.clone(),
                    inject: u.inject.clone(),
                    allow_paths: u.allow_paths.clone(),
                    allow_methods: u.allow_methods.clone(),
                    timeout: duration(&u.timeout, "timeout")?,
                },
            );
        }
        let mut needs = Vec::new();
        let mut need_scope_spans = BTreeMap::new();
        for (name, n) in &raw.needs {
            let var = name.get_ref();
            let valid_var = !var.is_empty()
                && var.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !valid_var {
                return Err(err(
                    name.span(),
                    format!("need {var:?} must be an environment variable name (A-Z, 0-9, _)"),
                ));
            }
            let line = locate(path, text, name.span(), String::new()).line;
            let kinds = [n.client.is_some(), n.upstream.is_some(), n.secret.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(err(
                    name.span(),
                    format!("need {var} must name exactly one of client (a token), upstream (the gateway) or secret"),
                ));
            }
            let kind = if let Some(client) = &n.client {
                if !clients.contains_key(client.get_ref()) {
                    let hint = closest(client.get_ref(), clients.keys())
                        .map_or_else(|| "declare it under [clients]".to_owned(), |c| format!("did you mean {c:?}?"));
                    return Err(err(
                        client.span(),
                        format!("need {var} names client {:?}, which is not declared; {hint}", client.get_ref()),
                    ));
                }
                if let Some(f) = &n.format {
                    if !["opaque", "jwt"].contains(&f.get_ref().as_str()) {
                        return Err(err(f.span(), "format must be opaque or jwt".into()));
                    }
                }
                if let Some(s) = &n.scopes {
                    for scope in s.get_ref() {
                        tessera_core::Scope::parse(scope).map_err(|e| err(s.span(), format!("need {var}: {e}")))?;
                    }
                    need_scope_spans.insert(var.clone(), s.span());
                }
                let probe = match &n.probe {
                    None => None,
                    Some(p) => {
                        let url = reqwest::Url::parse(p.url.get_ref())
                            .map_err(|e| err(p.url.span(), format!("probe url: {e}")))?;
                        if !matches!(url.scheme(), "http" | "https") {
                            return Err(err(p.url.span(), "probe url must be http:// or https://".into()));
                        }
                        Some(Probe {
                            method: p.method.to_ascii_uppercase(),
                            url: p.url.get_ref().clone(),
                            expect: p.expect,
                        })
                    }
                };
                let dur = |v: &Option<Spanned<String>>, what: &str| -> Result<Option<Duration>, ConfigError> {
                    Ok(duration(v, what)?.map(|s| parse_duration(&s).expect("checked above")))
                };
                NeedKind::Token {
                    client: client.get_ref().clone(),
                    scopes: n.scopes.as_ref().map(|s| s.get_ref().clone()),
                    audience: n.audience.clone(),
                    format: n.format.as_ref().map(|f| f.get_ref().clone()),
                    ttl: dur(&n.ttl, "ttl")?,
                    min_remaining: dur(&n.min_remaining, "min_remaining")?,
                    probe,
                }
            } else if let Some(up) = &n.upstream {
                if !upstreams.contains_key(up.get_ref()) {
                    let hint = closest(up.get_ref(), upstreams.keys())
                        .map_or_else(|| "declare it under [upstreams]".to_owned(), |c| format!("did you mean {c:?}?"));
                    return Err(err(
                        up.span(),
                        format!("need {var} names upstream {:?}, which is not declared; {hint}", up.get_ref()),
                    ));
                }
                NeedKind::Upstream { upstream: up.get_ref().clone() }
            } else {
                let secret = n.secret.as_ref().expect("exactly one kind");
                NeedKind::Secret { secret: secret.get_ref().clone() }
            };
            needs.push(Need { name: var.clone(), kind, line });
        }
        Ok(Config {
            path: path.to_owned(),
            environments,
            clients,
            upstreams,
            needs,
            text: text.to_owned(),
            need_scope_spans,
        })
    }

    /// Checks the needs against environment `env`: a token need's scopes must be among its
    /// client's scopes there; an upstream need needs a client that may hold `gw:{upstream}`.
    pub fn check_env(&self, env: &str) -> Result<(), ConfigError> {
        for need in &self.needs {
            match &need.kind {
                NeedKind::Token { client, scopes: Some(scopes), .. } => {
                    let allowed = self.clients.get(client).and_then(|c| c.scopes.get(env)).cloned().unwrap_or_default();
                    let extra: Vec<&String> = scopes.iter().filter(|s| !allowed.contains(s)).collect();
                    if !extra.is_empty() {
                        let span = self.need_scope_spans.get(&need.name).cloned().unwrap_or(0..0);
                        return Err(locate(
                            &self.path,
                            &self.text,
                            span,
                            format!(
                                "need {} asks for {} which client {client} may not hold in {env} (allowed: {}); add them to [clients.{client}] scopes",
                                need.name,
                                extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                                if allowed.is_empty() { "nothing".to_owned() } else { allowed.join(", ") }
                            ),
                        ));
                    }
                }
                NeedKind::Upstream { upstream } if self.gateway_client(env, upstream).is_none() => {
                    return Err(ConfigError {
                        path: self.path.clone(),
                        line: need.line,
                        column: 1,
                        message: format!(
                            "need {}: no client may hold scope gw:{upstream} in {env}; add it to a client's scopes",
                            need.name
                        ),
                        snippet: String::new(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The client whose tokens reach `upstream` through the gateway in `env`.
    pub fn gateway_client(&self, env: &str, upstream: &str) -> Option<&str> {
        let scope = format!("gw:{upstream}");
        self.clients
            .iter()
            .find(|(_, c)| c.scopes.get(env).is_some_and(|s| s.contains(&scope)))
            .map(|(id, _)| id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[environments.staging]
default_ttl = "1h"
max_ttl = "24h"

[clients.checkout-tests]
scopes = { staging = ["orders:read", "orders:write", "gw:payments"] }

[needs.ORDERS_API_TOKEN]
client = "checkout-tests"
scopes = ["orders:read"]
audience = "orders-api"
min_remaining = "30m"

[needs.ORDERS_API_TOKEN.probe]
url = "http://127.0.0.1:1/v1/orders"
expect = 200

[upstreams.payments]
env = "staging"
url = "https://sandbox.payments.example"
secret = "payments-sandbox-key"
inject = "header:Authorization=Bearer {secret}"
allow_paths = ["/v1/"]

[needs.PAYMENTS]
upstream = "payments"

[needs.LEGACY_KEY]
secret = "legacy-sandbox-key"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("tessera.toml"), text)
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.needs.len(), 3);
        assert!(matches!(&c.needs[0].kind, NeedKind::Secret { secret } if secret == "legacy-sandbox-key"));
        let orders = c.needs.iter().find(|n| n.name == "ORDERS_API_TOKEN").unwrap();
        assert!(
            matches!(&orders.kind, NeedKind::Token { min_remaining: Some(d), probe: Some(_), .. } if d.as_secs() == 1800)
        );
        assert_eq!(c.gateway_client("staging", "payments"), Some("checkout-tests"));
        c.check_env("staging").unwrap();
    }

    #[test]
    fn errors_point_at_line_and_column_with_a_hint() {
        let cases: &[(&str, &str, usize, usize, &str)] = &[
            ("syntax", "[environments.staging\nmax_ttl = \"1h\"", 1, 22, "expected"),
            ("bad duration", "[environments.staging]\nmax_ttl = \"1 day\"", 2, 11, "max_ttl: invalid duration"),
            ("unknown key", "[environments.staging]\nmax_tll = \"1h\"", 2, 1, "unknown field `max_tll`"),
            (
                "unknown client",
                "[environments.staging]\n[clients.checkout-tests]\nscopes = { staging = [\"a\"] }\n[needs.T]\nclient = \"checkout-test\"",
                5,
                10,
                "did you mean \"checkout-tests\"?",
            ),
            ("unknown env", "[clients.c]\nscopes = { stagin = [\"a\"] }", 2, 12, "not declared"),
            ("two kinds", "[needs.T]\nsecret = \"a\"\nupstream = \"b\"", 1, 8, "exactly one of"),
            ("bad var", "[needs.lower]\nsecret = \"a\"", 1, 8, "environment variable name"),
            ("wrong type", "[environments.staging]\nmax_uses = \"ten\"", 2, 12, "invalid type"),
        ];
        for (name, text, line, column, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!((e.line, e.column), (*line, *column), "{name}: {e}");
            assert!(e.message.contains(needle), "{name}: {e}");
            assert!(e.to_string().contains('^'), "{name}: a caret points at the spot: {e}");
        }
    }

    #[test]
    fn needs_must_fit_the_clients_scopes_in_the_environment() {
        let text = GOOD.replace("scopes = [\"orders:read\"]", "scopes = [\"orders:read\", \"orders:delete\"]");
        let e = parse(&text).unwrap().check_env("staging").unwrap_err();
        assert!(e.message.contains("orders:delete"), "{e}");
        assert_eq!(e.line, GOOD.lines().position(|l| l.starts_with("scopes = [")).unwrap() + 1);
        let e = parse(GOOD).unwrap().check_env("qa").unwrap_err();
        assert!(e.message.contains("may not hold"), "{e}");
    }
}
