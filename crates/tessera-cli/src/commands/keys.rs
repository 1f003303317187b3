//! `tessera keys list|rotate`.

use std::process::ExitCode;

use tessera_api::RotateKeys;

use super::Ctx;
use crate::cli::KeysCommand;
use crate::output;

pub async fn run(ctx: &Ctx, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        KeysCommand::List { env } => {
            let keys = client.keys(env.as_deref()).await?;
            if ctx.json() {
                output::json(&keys)?;
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.kid.clone(),
                            k.env.clone(),
                            k.alg.clone(),
                            k.state.clone(),
                            output::time(k.created_at),
                            output::opt_time(k.publish_until),
                        ]
                    })
                    .collect();
                output::table(&["KID", "ENV", "ALG", "STATE", "CREATED", "PUBLISHED UNTIL"], &rows);
            }
        }
        KeysCommand::Rotate { env, alg } => {
            let rotated = client.rotate_keys(&RotateKeys { env, alg }).await?;
            if ctx.json() {
                output::json(&rotated)?;
            } else {
                for r in &rotated.rotated {
                    println!("{} {}: now signing with {}", rotated.env, r.alg, r.current);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
