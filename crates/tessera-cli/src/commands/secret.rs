//! `tessera secret set|list|versions|rotate|reveal`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tessera_api::{PutSecret, SecretVersionView};

use super::Ctx;
use crate::cli::SecretCommand;
use crate::output;

fn versions_table(versions: &[SecretVersionView]) {
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.state.clone(),
                v.fingerprint.clone(),
                output::time(v.created_at),
                v.created_by.clone(),
                output::opt_time(v.valid_until),
                output::opt_time(v.expires_at),
            ]
        })
        .collect();
    output::table(&["VERSION", "STATE", "FINGERPRINT", "CREATED", "BY", "VALID UNTIL", "EXPIRES"], &rows);
}

pub async fn run(ctx: &Ctx, cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        SecretCommand::Set { env, name, from_file, hook, hook_timeout, rotation_period, overlap, expires_in } => {
            let mut value = match &from_file {
                Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).context("reading the value from stdin")?;
                    s
                }
            };
            // One trailing newline is how files and `echo` end; it is not part of the value.
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            if value.is_empty() {
                bail!("no value: pipe it on stdin or give --from-file");
            }
            let req = PutSecret {
                value,
                hook: (!hook.is_empty()).then_some(hook),
                hook_timeout,
                rotation_period,
                overlap,
                expires_in,
            };
            let v = client.put_secret(&env, &name, &req).await?;
            if ctx.json() {
                output::json(&v)?;
            } else {
                println!("{}/{} version {} stored (fingerprint {})", v.env, v.name, v.version, v.fingerprint);
            }
        }
        SecretCommand::List { env } => {
            let secrets = client.secrets(env.as_deref()).await?;
            if ctx.json() {
                output::json(&secrets)?;
            } else {
                let rows: Vec<Vec<String>> = secrets
                    .iter()
                    .map(|s| {
                        vec![
                            s.env.clone(),
                            s.name.clone(),
                            s.current.as_ref().map_or("-".into(), |v| v.version.to_string()),
                            s.current.as_ref().map_or("-".into(), |v| v.fingerprint.clone()),
                            output::opt(&s.rotation_period),
                            if s.has_hook { "yes" } else { "no" }.into(),
                            if s.due { "DUE" } else { "ok" }.into(),
                        ]
                    })
                    .collect();
                output::table(&["ENV", "NAME", "VERSION", "FINGERPRINT", "ROTATION", "HOOK", "STATUS"], &rows);
            }
        }
        SecretCommand::Versions { env, name } => {
            let versions = client.secret_versions(&env, &name).await?;
            if ctx.json() {
                output::json(&versions)?;
            } else {
                versions_table(&versions);
            }
        }
        SecretCommand::Rotate { env, name } => {
            let v = client.rotate_secret(&env, &name).await?;
            if ctx.json() {
                output::json(&v)?;
            } else {
                println!("{}/{} rotated to version {} (fingerprint {})", v.env, v.name, v.version, v.fingerprint);
            }
        }
        SecretCommand::Reveal { env, name } => {
            let s = client.reveal_secret(&env, &name).await?;
            if ctx.json() {
                output::json(
                    &serde_json::json!({"env": s.env, "name": s.name, "version": s.version, "value": s.value}),
                )?;
            } else {
                println!("{}", s.value);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
