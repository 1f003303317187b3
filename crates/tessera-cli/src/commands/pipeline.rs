//! `tessera plan|apply|preflight|run|runs list`: tessera.toml and pipeline runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tessera_pipeline::plan::{apply as apply_plan, plan as make_plan};
use tessera_pipeline::run::RunOptions;
use tessera_pipeline::Config;

use super::Ctx;
use crate::output;

fn load(config: Option<PathBuf>) -> anyhow::Result<Config> {
    let path = match config {
        Some(p) => p,
        None => {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            tessera_pipeline::config::find(&cwd).with_context(|| {
                format!("no {} here or in any parent directory (or pass --config)", tessera_pipeline::config::FILE_NAME)
            })?
        }
    };
    Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))
}

pub async fn plan(ctx: &Ctx, config: Option<PathBuf>, detailed: bool) -> anyhow::Result<ExitCode> {
    let config = load(config)?;
    let plan = make_plan(&config, &ctx.client()?).await?;
    if ctx.json() {
        output::json(&plan)?;
    } else if plan.changes.is_empty() {
        println!("no changes: the server matches {}", config.path.display());
    } else {
        for c in &plan.changes {
            let sign = match c.action.as_str() {
                "create" => "+",
                "update" => "~",
                _ => "?",
            };
            let note = if c.action == "unmanaged" { "  (on the server, not in the file; left alone)" } else { "" };
            println!("{sign} {} {}{note}", c.kind, c.name);
            for d in &c.details {
                println!("    {d}");
            }
        }
    }
    Ok(if detailed && plan.has_changes() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub async fn apply(ctx: &Ctx, config: Option<PathBuf>, show_secrets: bool) -> anyhow::Result<ExitCode> {
    let config = load(config)?;
    let applied = apply_plan(&config, &ctx.client()?).await?;
    if ctx.json() {
        let secrets: Vec<serde_json::Value> = applied
            .new_client_secrets
            .iter()
            .map(|(id, s)| serde_json::json!({"client": id, "client_secret": if show_secrets { s.as_str() } else { "" }}))
            .collect();
        output::json(&serde_json::json!({"changed": applied.changed, "new_clients": secrets}))?;
    } else {
        println!("applied {} change(s)", applied.changed);
        for (id, secret) in &applied.new_client_secrets {
            if show_secrets {
                println!("client {id} secret (shown once): {secret}");
            } else {
                println!("client {id} created; its secret is not shown (use --show-secrets to print new client secrets once)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn preflight(ctx: &Ctx, config: Option<PathBuf>, env: &str, label: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = load(config)?;
    let checks = tessera_pipeline::preflight::preflight(&config, &ctx.client()?, env, label).await?;
    if ctx.json() {
        output::json(&checks)?;
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| vec![c.need.clone(), c.kind.clone(), c.status.to_uppercase(), c.reason.clone()])
            .collect();
        output::table(&["NEED", "KIND", "STATUS", "REASON"], &rows);
    }
    Ok(if checks.iter().any(|c| c.status == "fail") { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[allow(clippy::too_many_arguments)] // reason: one argument per flag of `tessera run`
pub async fn run(
    ctx: &Ctx,
    config: Option<PathBuf>,
    env: String,
    label: Option<String>,
    mask: bool,
    env_file: bool,
    heartbeat_timeout: Option<String>,
    command: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let config = load(config)?;
    let client = ctx.client()?;
    let opts = RunOptions { env, label, command, mask, env_file, heartbeat_timeout, server_url: ctx.url.clone() };
    let outcome = tessera_pipeline::run::run(&config, &client, opts).await?;
    let revoked = outcome
        .finished
        .as_ref()
        .map_or_else(|| "not confirmed".to_owned(), |f| (f.revoked + f.already_inactive).to_string());
    eprintln!(
        "tessera: run {} exited {}; {} token(s) minted ({} JWT refreshes), {revoked} cleaned up",
        outcome.run_id, outcome.exit_code, outcome.minted, outcome.refreshed
    );
    Ok(ExitCode::from(outcome.exit_code.clamp(0, 255) as u8))
}

pub async fn runs(ctx: &Ctx, env: Option<String>, label: Option<String>) -> anyhow::Result<ExitCode> {
    let runs = ctx.client()?.runs(env.as_deref(), label.as_deref()).await?;
    if ctx.json() {
        output::json(&runs)?;
    } else {
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    output::opt(&r.label),
                    r.env.clone(),
                    output::time(r.started_at),
                    tessera_core::format_duration(std::time::Duration::from_secs_f64(r.duration_s.max(0.0))),
                    output::opt(&r.exit_code),
                    r.status.clone(),
                    format!("{}/{}", r.tokens_revoked, r.tokens_minted),
                ]
            })
            .collect();
        output::table(&["ID", "LABEL", "ENV", "STARTED", "DURATION", "EXIT", "STATUS", "REVOKED/MINTED"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}
