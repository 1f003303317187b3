//! `tessera keys list|rotate`.

use std::process::ExitCode;

use anyhow::Context;
use tessera_api::{Rewrap, RotateKeys};

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
        KeysCommand::Rewrap { new_key_file } => {
            let new_master_key = new_key_file
                .map(|f| std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display())))
                .transpose()?
                .map(|s| s.trim().to_owned());
            let done = client.rewrap(&Rewrap { new_master_key }).await?;
            if ctx.json() {
                output::json(&done)?;
            } else {
                println!(
                    "master key {} → {}: re-sealed {} signing keys and {} secret versions",
                    done.old_fingerprint, done.new_fingerprint, done.signing_keys, done.secret_versions
                );
                match done.key_file {
                    Some(f) => println!("the new master key is in {f}"),
                    None => println!("set TESSERA_MASTER_KEY to the new key before the next restart"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
