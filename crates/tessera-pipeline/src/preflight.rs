//! `preflight --env E`: is every need satisfiable right now, and will its token live long
//! enough? One row per need: pass, warn or fail, with the reason.

use std::time::Duration;

use serde::Serialize;
use tessera_api::{CreateToken, RevokeToken};
use tessera_client::Client;
use tessera_core::{format_duration, parse_duration};

use crate::config::{Config, NeedKind};

/// The verdict on one need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub need: String,
    /// `token`, `upstream` or `secret`.
    pub kind: String,
    /// `pass`, `warn` or `fail`.
    pub status: String,
    pub reason: String,
}

fn check(need: &str, kind: &str, status: &str, reason: impl Into<String>) -> Check {
    Check { need: need.to_owned(), kind: kind.to_owned(), status: status.to_owned(), reason: reason.into() }
}

/// The lifetime a token minted now would get: requested (or default) clamped to max.
fn lifetime(ttl: Option<Duration>, default: &str, max: &str) -> Duration {
    let default = parse_duration(default).unwrap_or_default();
    let max = parse_duration(max).unwrap_or_default();
    ttl.unwrap_or(default).min(max)
}

/// Runs every check of `config`'s needs in `env`.
pub async fn preflight(config: &Config, client: &Client, env: &str, label: Option<&str>) -> anyhow::Result<Vec<Check>> {
    let mut out = Vec::new();
    if let Err(e) = config.check_env(env) {
        out.push(check("tessera.toml", "config", "fail", e.to_string()));
    }
    let environment = client.environment(env).await?;
    let clients = client.clients().await?;
    let forecast = client.forecast(env, label).await.ok();
    let secrets = client.secrets(Some(env)).await?;
    for need in &config.needs {
        let name = need.name.as_str();
        match &need.kind {
            NeedKind::Token { client: id, scopes, ttl, min_remaining, probe, audience, format } => {
                let Some(c) = clients.iter().find(|c| &c.id == id) else {
                    out.push(check(
                        name,
                        "token",
                        "fail",
                        format!("client {id} does not exist on the server; run `tessera apply`"),
                    ));
                    continue;
                };
                if c.disabled {
                    out.push(check(name, "token", "fail", format!("client {id} is disabled")));
                    continue;
                }
                let allowed = c.scopes.get(env).cloned().unwrap_or_default();
                let wanted = scopes.clone().unwrap_or_else(|| allowed.clone());
                let missing: Vec<&String> = wanted.iter().filter(|s| !allowed.contains(s)).collect();
                if allowed.is_empty() || !missing.is_empty() {
                    out.push(check(
                        name,
                        "token",
                        "fail",
                        format!(
                            "client {id} may not hold {} in {env}",
                            if allowed.is_empty() {
                                "any scope".to_owned()
                            } else {
                                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                            }
                        ),
                    ));
                    continue;
                }
                let life = lifetime(*ttl, &environment.default_ttl, &environment.max_ttl);
                if let Some(min) = min_remaining {
                    if life < *min {
                        out.push(check(
                            name,
                            "token",
                            "fail",
                            format!(
                                "a token minted now lives {} < min_remaining {} (max_ttl of {env} is {})",
                                format_duration(life),
                                format_duration(*min),
                                environment.max_ttl
                            ),
                        ));
                        continue;
                    }
                }
                if let Some(probe) = probe {
                    match run_probe(client, env, id, wanted.clone(), audience.clone(), format.clone(), probe).await {
                        Ok(()) => {}
                        Err(reason) => {
                            out.push(check(name, "token", "fail", reason));
                            continue;
                        }
                    }
                }
                let p95 = forecast.as_ref().and_then(|f| f.p95_s).map(Duration::from_secs);
                match p95 {
                    Some(p95) if life < p95 => out.push(check(
                        name,
                        "token",
                        "warn",
                        format!(
                            "token lifetime {} is shorter than the p95 run time {} of past runs{}; `run` renews it while the run heartbeats",
                            format_duration(life),
                            format_duration(p95),
                            label.map(|l| format!(" labelled {l}")).unwrap_or_default()
                        ),
                    )),
                    _ => out.push(check(name, "token", "pass", format!("client {id}, lifetime {}{}", format_duration(life), if probe.is_some() { ", probe ok" } else { "" }))),
                }
            }
            NeedKind::Upstream { upstream } => match client.upstream(env, upstream).await {
                Err(e) => out.push(check(name, "upstream", "fail", format!("upstream {upstream} in {env}: {e}"))),
                Ok(u) => match secrets.iter().find(|s| s.name == u.secret) {
                    None => out.push(check(
                        name,
                        "upstream",
                        "fail",
                        format!("upstream {upstream} injects secret {}, which is not set in {env}", u.secret),
                    )),
                    Some(s) if s.due => out.push(check(
                        name,
                        "upstream",
                        "warn",
                        format!("secret {} is past its rotation period or expiry", u.secret),
                    )),
                    Some(_) => out.push(check(name, "upstream", "pass", format!("via {}", u.gateway_url))),
                },
            },
            NeedKind::Secret { secret } => match secrets.iter().find(|s| &s.name == secret) {
                None => out.push(check(name, "secret", "fail", format!("secret {secret} is not set in {env}"))),
                Some(s) => {
                    let expired =
                        s.current.as_ref().and_then(|v| v.expires_at).is_some_and(|e| e <= chrono::Utc::now());
                    // Decryptable: a reveal opens it (and is audited as the preflight's read).
                    match client.reveal_secret(env, secret).await {
                        Err(e) => {
                            out.push(check(name, "secret", "fail", format!("secret {secret} cannot be read: {e}")))
                        }
                        Ok(_) if expired => {
                            out.push(check(name, "secret", "fail", format!("secret {secret} has expired")))
                        }
                        Ok(_) if s.due => out.push(check(
                            name,
                            "secret",
                            "warn",
                            format!("secret {secret} is past its rotation period"),
                        )),
                        Ok(v) => out.push(check(name, "secret", "pass", format!("version {}", v.version))),
                    }
                }
            },
        }
    }
    Ok(out)
}

/// Mints a short-lived token, sends the probe request with it, revokes it.
async fn run_probe(
    client: &Client,
    env: &str,
    client_id: &str,
    scopes: Vec<String>,
    audience: Option<String>,
    format: Option<String>,
    probe: &crate::config::Probe,
) -> Result<(), String> {
    let minted = client
        .create_token(&CreateToken {
            env: env.to_owned(),
            client: client_id.to_owned(),
            scopes: Some(scopes),
            audience,
            ttl: Some("2m".into()),
            format,
            labels: [("purpose".to_owned(), "preflight-probe".to_owned())].into(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("minting the probe token: {e}"))?;
    let method = reqwest::Method::from_bytes(probe.method.as_bytes())
        .map_err(|_| format!("bad probe method {}", probe.method))?;
    let result = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .request(method, &probe.url)
        .bearer_auth(&minted.token)
        .send()
        .await;
    let _ = client.revoke_token(&minted.info.id, &RevokeToken { reason: Some("preflight probe done".into()) }).await;
    match result {
        Err(e) => Err(format!("probe {} {}: {}", probe.method, probe.url, tessera_client::root_cause(&e))),
        Ok(r) if r.status().as_u16() == probe.expect => Ok(()),
        Ok(r) => Err(format!(
            "probe {} {} answered {}, expected {}",
            probe.method,
            probe.url,
            r.status().as_u16(),
            probe.expect
        )),
    }
}
