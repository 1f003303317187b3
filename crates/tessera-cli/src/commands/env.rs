//! `tessera env create|list|show`.

use std::process::ExitCode;

use tessera_api::{CreateEnvironment, EnvironmentView};

use super::Ctx;
use crate::cli::EnvCommand;
use crate::output;

pub async fn run(ctx: &Ctx, cmd: EnvCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        EnvCommand::Create { name, default_ttl, max_ttl, idle_ttl, rotation_period, max_uses, protected } => {
            let env = client
                .create_environment(&CreateEnvironment {
                    name,
                    default_ttl,
                    max_ttl,
                    idle_ttl,
                    rotation_period,
                    max_uses,
                    protected,
                })
                .await?;
            show(ctx, &env)?;
        }
        EnvCommand::List => {
            let envs = client.environments().await?;
            if ctx.json() {
                output::json(&envs)?;
            } else {
                let rows: Vec<Vec<String>> = envs
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.default_ttl.clone(),
                            e.max_ttl.clone(),
                            output::opt(&e.idle_ttl),
                            output::opt(&e.rotation_period),
                            if e.protected { "yes" } else { "no" }.to_owned(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "DEFAULT TTL", "MAX TTL", "IDLE TTL", "ROTATION", "PROTECTED"], &rows);
            }
        }
        EnvCommand::Show { name } => show(ctx, &client.environment(&name).await?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, e: &EnvironmentView) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(e);
    }
    output::fields(&[
        ("name", e.name.clone()),
        ("default_ttl", e.default_ttl.clone()),
        ("max_ttl", e.max_ttl.clone()),
        ("idle_ttl", output::opt(&e.idle_ttl)),
        ("rotation_period", output::opt(&e.rotation_period)),
        ("max_uses", output::opt(&e.max_uses)),
        ("protected", e.protected.to_string()),
        ("created_at", output::time(e.created_at)),
    ]);
    Ok(())
}
