//! `tessera token create|list|show|rotate|renew|revoke`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use tessera_api::{BulkRevoke, CreateToken, RenewToken, RevokeToken, RotateToken, TokenView};
use tessera_client::TokenQuery;
use tessera_core::names::parse_label;

use super::Ctx;
use crate::cli::TokenCommand;
use crate::output;

fn labels(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    args.iter().map(|l| parse_label(l).with_context(|| format!("--label {l:?}"))).collect()
}

pub async fn run(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        TokenCommand::Create {
            env,
            client: client_id,
            scopes,
            audience,
            ttl,
            idle_ttl,
            max_uses,
            format,
            labels: l,
        } => {
            let req = CreateToken {
                env,
                client: client_id,
                scopes: (!scopes.is_empty()).then_some(scopes),
                audience,
                ttl,
                idle_ttl,
                max_uses,
                format,
                labels: labels(&l)?,
            };
            let created = client.create_token(&req).await?;
            output::warn(&created.warnings);
            print_secret(ctx, &created.token, &created.info, &created)?;
        }
        TokenCommand::List { env, client: client_id, state, label, run } => {
            let query = TokenQuery { env, client: client_id, state: Some(state), label, run, limit: None };
            let tokens = client.tokens(&query).await?;
            if ctx.json() {
                output::json(&tokens)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.env.clone(),
                            t.client.clone(),
                            state_text(t),
                            output::time(t.expires_at),
                            t.scopes.join(" "),
                        ]
                    })
                    .collect();
                output::table(&["ID", "ENV", "CLIENT", "STATE", "EXPIRES", "SCOPES"], &rows);
            }
        }
        TokenCommand::Show { id } => show(ctx, &client.token(&id).await?)?,
        TokenCommand::Inspect { text } => {
            let text = if text == "-" {
                let mut s = String::new();
                std::io::stdin().lock().read_line(&mut s).context("reading the token from stdin")?;
                s.trim().to_owned()
            } else {
                text
            };
            if text.is_empty() {
                bail!("no token given");
            }
            let answer = client.introspect(&text).await?;
            if ctx.json() {
                output::json(&answer)?;
            } else if answer.active {
                output::fields(&[
                    ("active", "true".into()),
                    ("jti", output::opt(&answer.jti)),
                    ("env", output::opt(&answer.env)),
                    ("client_id", output::opt(&answer.client_id)),
                    ("scope", output::opt(&answer.scope)),
                    ("aud", output::opt(&answer.aud)),
                    ("iss", output::opt(&answer.iss)),
                    ("exp", output::opt_time(answer.exp.and_then(|t| chrono::DateTime::from_timestamp(t, 0)))),
                ]);
            } else {
                output::fields(&[
                    ("active", "false".into()),
                    ("reason", answer.inactive_reason.clone().unwrap_or_else(|| "unknown".into())),
                    ("jti", output::opt(&answer.jti)),
                ]);
            }
            return Ok(if answer.active { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        TokenCommand::Rotate { id, grace } => {
            let rotated = client.rotate_token(&id, &RotateToken { grace }).await?;
            output::warn(&rotated.warnings);
            if !ctx.json() {
                eprintln!(
                    "rotated {} → {}; the old token stays valid until {}",
                    rotated.previous.id,
                    rotated.info.id,
                    output::opt_time(rotated.previous.grace_until)
                );
            }
            print_secret(ctx, &rotated.token, &rotated.info, &rotated)?;
        }
        TokenCommand::Renew { id, ttl } => {
            let changed = client.renew_token(&id, &RenewToken { ttl }).await?;
            output::warn(&changed.warnings);
            if ctx.json() {
                output::json(&changed)?;
            } else {
                println!("{} expires at {}", changed.info.id, output::time(changed.info.expires_at));
            }
        }
        TokenCommand::Revoke { id: Some(id), reason, .. } => {
            let changed = client.revoke_token(&id, &RevokeToken { reason }).await?;
            output::warn(&changed.warnings);
            if ctx.json() {
                output::json(&changed)?;
            } else if changed.changed {
                println!("revoked {id}");
            } else {
                println!("{id} was already revoked");
            }
        }
        TokenCommand::Revoke { id: None, reason, env, client: client_id, labels: l, run, yes } => {
            let mut req = BulkRevoke { env, client: client_id, labels: labels(&l)?, run, reason, dry_run: true };
            if req.env.is_none() && req.client.is_none() && req.labels.is_empty() && req.run.is_none() {
                bail!("name a token id or a selector (--env, --client, --label, --run)");
            }
            let preview = client.revoke_tokens(&req).await?;
            if preview.count == 0 {
                if ctx.json() {
                    output::json(&preview)?;
                } else {
                    println!("no active tokens match");
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !yes && !confirm(preview.count)? {
                bail!("revocation of {} tokens not confirmed; nothing changed", preview.count);
            }
            req.dry_run = false;
            let done = client.revoke_tokens(&req).await?;
            if ctx.json() {
                output::json(&done)?;
            } else {
                println!("revoked {} tokens", done.count);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; without one, refuses (scripts pass `--yes`).
fn confirm(count: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{count} tokens match; pass --yes to revoke them without a terminal to confirm on");
    }
    eprint!("Revoke {count} active tokens? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Shows a new token once: alone on stdout when piped (so `T=$(tessera token create …)`
/// works), with its details on a terminal, or the whole answer as JSON.
fn print_secret<T: serde::Serialize>(ctx: &Ctx, secret: &str, info: &TokenView, whole: &T) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(whole);
    }
    if !output::stdout_is_terminal() {
        println!("{secret}");
        return Ok(());
    }
    println!("{secret}\n");
    println!("This token is shown once. Its id is {}.", info.id);
    show_fields(info);
    Ok(())
}

fn state_text(t: &TokenView) -> String {
    match &t.inactive_reason {
        Some(reason) => format!("inactive ({reason})"),
        None => t.state.clone(),
    }
}

fn show(ctx: &Ctx, t: &TokenView) -> anyhow::Result<()> {
    if ctx.json() {
        return output::json(t);
    }
    show_fields(t);
    Ok(())
}

fn show_fields(t: &TokenView) {
    let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    output::fields(&[
        ("id", t.id.clone()),
        ("state", state_text(t)),
        ("env", t.env.clone()),
        ("client", t.client.clone()),
        ("scopes", t.scopes.join(" ")),
        ("audience", output::opt(&t.audience)),
        ("format", t.format.clone()),
        ("labels", if labels.is_empty() { "-".into() } else { labels.join(", ") }),
        ("created_at", output::time(t.created_at)),
        ("expires_at", output::time(t.expires_at)),
        ("remaining", tessera_core::format_duration(std::time::Duration::from_secs(t.remaining_s))),
        ("idle_ttl", output::opt(&t.idle_ttl)),
        ("last_used_at", output::opt_time(t.last_used_at)),
        (
            "uses",
            match t.max_uses {
                Some(max) => format!("{} of {max}", t.uses),
                None => t.uses.to_string(),
            },
        ),
        ("revoked_at", output::opt_time(t.revoked_at)),
        ("revoke_reason", output::opt(&t.revoke_reason)),
        ("rotated_from", output::opt(&t.rotated_from)),
        ("superseded_by", output::opt(&t.superseded_by)),
        ("grace_until", output::opt_time(t.grace_until)),
        ("created_by", t.created_by.clone()),
    ]);
}
