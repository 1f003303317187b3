//! `plan` / `apply`: the difference between `tessera.toml` and the server, and its
//! application. Apply is idempotent (PUTs that write and audit only what differs). Objects on
//! the server that the file does not declare are reported, never deleted.

use serde::Serialize;
use tessera_api::{CreateClient, CreateEnvironment, PutUpstream};
use tessera_client::Client;

use crate::config::Config;

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `create`, `update`, or `unmanaged` (on the server, not in the file: left alone).
    pub action: String,
    /// `environment`, `client` or `upstream`.
    pub kind: String,
    pub name: String,
    /// What differs, field by field (never a secret value).
    pub details: Vec<String>,
}

/// The plan: changes in the order `apply` makes them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// True when applying would change something on the server.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != "unmanaged")
    }
}

fn env_request(name: &str, e: &crate::config::EnvDecl) -> CreateEnvironment {
    CreateEnvironment {
        name: name.to_owned(),
        default_ttl: e.default_ttl.clone(),
        max_ttl: e.max_ttl.clone(),
        idle_ttl: e.idle_ttl.clone(),
        rotation_period: e.rotation_period.clone(),
        max_uses: e.max_uses,
        protected: e.protected,
    }
}

fn client_request(id: &str, c: &crate::config::ClientDecl) -> CreateClient {
    CreateClient {
        id: id.to_owned(),
        description: c.description.clone(),
        scopes: c.scopes.clone(),
        token_format: c.token_format.clone(),
        alg: c.alg.clone(),
    }
}

fn upstream_request(name: &str, u: &crate::config::UpstreamDecl) -> PutUpstream {
    PutUpstream {
        name: name.to_owned(),
        env: u.env.clone(),
        url: u.url.clone(),
        secret: u.secret.clone(),
        inject: u.inject.clone(),
        allow_paths: u.allow_paths.clone(),
        allow_methods: u.allow_methods.clone(),
        timeout: u.timeout.clone(),
    }
}

fn norm(d: &Option<String>) -> Option<u64> {
    d.as_deref().and_then(|s| tessera_core::parse_duration(s).ok()).map(|d| d.as_secs())
}

/// Records `field` when the server's value and the file's differ (compared as shown).
fn diff(details: &mut Vec<String>, field: &str, have: impl std::fmt::Debug, want: impl std::fmt::Debug) {
    if format!("{have:?}") != format!("{want:?}") {
        details.push(format!("{field}: {have:?} → {want:?}"));
    }
}

/// Compares the file with the server.
pub async fn plan(config: &Config, client: &Client) -> anyhow::Result<Plan> {
    let mut changes = Vec::new();
    let envs = client.environments().await?;
    for (name, want) in &config.environments {
        match envs.iter().find(|e| &e.name == name) {
            None => changes.push(Change {
                action: "create".into(),
                kind: "environment".into(),
                name: name.clone(),
                details: vec![],
            }),
            Some(have) => {
                let mut d = Vec::new();
                // Unset fields take the server's defaults; compare what the file states.
                if want.default_ttl.is_some() {
                    diff(&mut d, "default_ttl", norm(&Some(have.default_ttl.clone())), norm(&want.default_ttl));
                }
                if want.max_ttl.is_some() {
                    diff(&mut d, "max_ttl", norm(&Some(have.max_ttl.clone())), norm(&want.max_ttl));
                }
                diff(&mut d, "idle_ttl", norm(&have.idle_ttl), norm(&want.idle_ttl));
                diff(&mut d, "rotation_period", norm(&have.rotation_period), norm(&want.rotation_period));
                diff(&mut d, "max_uses", have.max_uses, want.max_uses);
                diff(&mut d, "protected", have.protected, want.protected);
                if !d.is_empty() {
                    changes.push(Change {
                        action: "update".into(),
                        kind: "environment".into(),
                        name: name.clone(),
                        details: d,
                    });
                }
            }
        }
    }
    let clients = client.clients().await?;
    for (id, want) in &config.clients {
        match clients.iter().find(|c| &c.id == id) {
            None => changes.push(Change {
                action: "create".into(),
                kind: "client".into(),
                name: id.clone(),
                details: vec![],
            }),
            Some(have) => {
                let mut d = Vec::new();
                let mut want_scopes = want.scopes.clone();
                for v in want_scopes.values_mut() {
                    v.sort();
                    v.dedup();
                }
                diff(&mut d, "scopes", &have.scopes, &want_scopes);
                diff(
                    &mut d,
                    "token_format",
                    have.token_format.as_str(),
                    want.token_format.as_deref().unwrap_or("opaque"),
                );
                diff(&mut d, "alg", have.alg.as_str(), want.alg.as_deref().unwrap_or("EdDSA"));
                if want.description.is_some() {
                    diff(&mut d, "description", &have.description, &want.description);
                }
                if !d.is_empty() {
                    changes.push(Change {
                        action: "update".into(),
                        kind: "client".into(),
                        name: id.clone(),
                        details: d,
                    });
                }
            }
        }
    }
    let upstreams = client.upstreams(None).await?;
    for (name, want) in &config.upstreams {
        match upstreams.iter().find(|u| &u.name == name && u.env == want.env) {
            None => changes.push(Change {
                action: "create".into(),
                kind: "upstream".into(),
                name: name.clone(),
                details: vec![],
            }),
            Some(have) => {
                let mut d = Vec::new();
                diff(&mut d, "url", have.url.trim_end_matches('/'), want.url.trim_end_matches('/'));
                diff(&mut d, "secret", have.secret.as_str(), want.secret.as_str());
                diff(
                    &mut d,
                    "inject",
                    have.inject.as_str(),
                    want.inject.as_deref().unwrap_or("header:Authorization=Bearer {secret}"),
                );
                diff(&mut d, "allow_paths", &have.allow_paths, &want.allow_paths);
                let methods: Vec<String> = want.allow_methods.iter().map(|m| m.to_ascii_uppercase()).collect();
                diff(&mut d, "allow_methods", &have.allow_methods, &methods);
                diff(&mut d, "timeout", norm(&Some(have.timeout.clone())), norm(&want.timeout).or(Some(30)));
                if !d.is_empty() {
                    changes.push(Change {
                        action: "update".into(),
                        kind: "upstream".into(),
                        name: name.clone(),
                        details: d,
                    });
                }
            }
        }
    }
    for e in
        envs.iter().filter(|e| !config.environments.contains_key(&e.name) && e.name != tessera_core::names::SYSTEM_ENV)
    {
        changes.push(Change {
            action: "unmanaged".into(),
            kind: "environment".into(),
            name: e.name.clone(),
            details: vec![],
        });
    }
    for c in clients.iter().filter(|c| !config.clients.contains_key(&c.id) && c.id != "tessera-root") {
        changes.push(Change { action: "unmanaged".into(), kind: "client".into(), name: c.id.clone(), details: vec![] });
    }
    Ok(Plan { changes })
}

/// What `apply` did: new client secrets are returned so the caller may show them once.
#[derive(Debug, Default)]
pub struct Applied {
    pub changed: usize,
    pub new_client_secrets: Vec<(String, String)>,
}

/// Applies the plan's creates and updates (environments, then clients, then upstreams) with
/// idempotent PUTs; applying twice changes nothing the second time.
pub async fn apply(config: &Config, client: &Client) -> anyhow::Result<Applied> {
    let plan = plan(config, client).await?;
    let mut applied = Applied::default();
    for kind in ["environment", "client", "upstream"] {
        for change in plan.changes.iter().filter(|c| c.kind == kind && c.action != "unmanaged") {
            let name = &change.name;
            match kind {
                "environment" => {
                    client.put_environment(&env_request(name, &config.environments[name])).await?;
                }
                "client" => {
                    let r = client.put_client(&client_request(name, &config.clients[name])).await?;
                    if let Some(secret) = r.client_secret {
                        applied.new_client_secrets.push((name.clone(), secret));
                    }
                }
                _ => {
                    client.put_upstream(&upstream_request(name, &config.upstreams[name])).await?;
                }
            }
            applied.changed += 1;
        }
    }
    Ok(applied)
}
