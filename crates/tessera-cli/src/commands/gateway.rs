//! `tessera upstream create|list|show` and `tessera gateway faults add|list|clear`.

use std::process::ExitCode;

use tessera_api::{AddFault, FaultView, PutUpstream, UpstreamView};

use super::Ctx;
use crate::cli::{FaultsCommand, GatewayCommand, UpstreamCommand};
use crate::output;

fn show_upstream(u: &UpstreamView) {
    output::fields(&[
        ("name", u.name.clone()),
        ("env", u.env.clone()),
        ("url", u.url.clone()),
        ("secret", u.secret.clone()),
        ("inject", u.inject.clone()),
        ("allow_paths", if u.allow_paths.is_empty() { "(all)".into() } else { u.allow_paths.join(" ") }),
        ("allow_methods", if u.allow_methods.is_empty() { "(all)".into() } else { u.allow_methods.join(" ") }),
        ("timeout", u.timeout.clone()),
        ("gateway_url", u.gateway_url.clone()),
    ]);
}

pub async fn upstream(ctx: &Ctx, cmd: UpstreamCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        UpstreamCommand::Create { name, env, url, secret, inject, allow_paths, allow_methods, timeout } => {
            let u = client
                .put_upstream(&PutUpstream { name, env, url, secret, inject, allow_paths, allow_methods, timeout })
                .await?;
            if ctx.json() {
                output::json(&u)?;
            } else {
                show_upstream(&u);
            }
        }
        UpstreamCommand::List { env } => {
            let list = client.upstreams(env.as_deref()).await?;
            if ctx.json() {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| vec![u.env.clone(), u.name.clone(), u.url.clone(), u.secret.clone(), u.inject.clone()])
                    .collect();
                output::table(&["ENV", "NAME", "URL", "SECRET", "INJECT"], &rows);
            }
        }
        UpstreamCommand::Show { name, env } => {
            let u = client.upstream(&env, &name).await?;
            if ctx.json() {
                output::json(&u)?;
            } else {
                show_upstream(&u);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn faults_table(faults: &[FaultView]) {
    let rows: Vec<Vec<String>> = faults
        .iter()
        .map(|f| {
            vec![
                f.id.clone(),
                f.env.clone(),
                f.upstream.clone(),
                output::opt(&f.token),
                f.kind.clone(),
                f.detail.clone(),
            ]
        })
        .collect();
    output::table(&["ID", "ENV", "UPSTREAM", "TOKEN", "KIND", "RULE"], &rows);
}

pub async fn run(ctx: &Ctx, cmd: GatewayCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let GatewayCommand::Faults(cmd) = cmd;
    match cmd {
        FaultsCommand::Add { env, upstream, token, fail_after, status, revoke_after, rotate_after, latency } => {
            let f = client
                .add_fault(&AddFault { env, upstream, token, fail_after, status, revoke_after, rotate_after, latency })
                .await?;
            if ctx.json() {
                output::json(&f)?;
            } else {
                println!("added {} ({}: {})", f.id, f.kind, f.detail);
            }
        }
        FaultsCommand::List => {
            let faults = client.faults().await?;
            if ctx.json() {
                output::json(&faults)?;
            } else {
                faults_table(&faults);
            }
        }
        FaultsCommand::Clear { env, upstream } => {
            let cleared = client.clear_faults(env.as_deref(), upstream.as_deref()).await?;
            if ctx.json() {
                output::json(&cleared)?;
            } else {
                println!("cleared {} fault rules", cleared.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
