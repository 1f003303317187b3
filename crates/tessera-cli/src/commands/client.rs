//! `tessera client create|list|show`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use tessera_api::{ClientView, CreateClient};

use super::Ctx;
use crate::cli::ClientCommand;
use crate::output;

/// Parses repeated `ENV=SCOPE[,SCOPE…]` arguments into a map (repeats for one env merge).
fn parse_scopes(args: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for arg in args {
        let Some((env, scopes)) = arg.split_once('=') else {
            bail!("--scopes {arg:?}: expected ENV=SCOPE[,SCOPE…], e.g. staging=orders:read,orders:write");
        };
        if env.is_empty() || scopes.is_empty() {
            bail!("--scopes {arg:?}: expected ENV=SCOPE[,SCOPE…], e.g. staging=orders:read,orders:write");
        }
        let list = map.entry(env.to_owned()).or_default();
        for s in scopes.split(',').filter(|s| !s.is_empty()) {
            if !list.iter().any(|x| x == s) {
                list.push(s.to_owned());
            }
        }
    }
    Ok(map)
}

fn scopes_text(c: &ClientView) -> String {
    c.scopes.iter().map(|(env, s)| format!("{env}={}", s.join(","))).collect::<Vec<_>>().join(" ")
}

pub async fn run(ctx: &Ctx, cmd: ClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Create { id, scopes, token_format, alg, description } => {
            let req = CreateClient { id, description, scopes: parse_scopes(&scopes)?, token_format, alg };
            let created = ctx.client()?.create_client(&req).await?;
            if ctx.json() {
                output::json(&created)?;
            } else {
                show(&created.client);
                println!("\nclient secret (shown once, store it now):\n{}", created.client_secret);
            }
        }
        ClientCommand::List => {
            let clients = ctx.client()?.clients().await?;
            if ctx.json() {
                output::json(&clients)?;
            } else {
                let rows: Vec<Vec<String>> =
                    clients.iter().map(|c| vec![c.id.clone(), c.token_format.clone(), scopes_text(c)]).collect();
                output::table(&["ID", "FORMAT", "SCOPES"], &rows);
            }
        }
        ClientCommand::Disable { id } => {
            let c = ctx.client()?.disable_client(&id).await?;
            if ctx.json() {
                output::json(&c)?;
            } else {
                println!("client {} disabled", c.id);
            }
        }
        ClientCommand::Enable { id } => {
            let c = ctx.client()?.enable_client(&id).await?;
            if ctx.json() {
                output::json(&c)?;
            } else {
                println!("client {} enabled", c.id);
            }
        }
        ClientCommand::Show { id } => {
            let c = ctx.client()?.client(&id).await?;
            if ctx.json() {
                output::json(&c)?;
            } else {
                show(&c);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(c: &ClientView) {
    output::fields(&[
        ("id", c.id.clone()),
        ("description", output::opt(&c.description)),
        ("scopes", scopes_text(c)),
        ("token_format", c.token_format.clone()),
        ("alg", c.alg.clone()),
        ("disabled", c.disabled.to_string()),
        ("created_at", output::time(c.created_at)),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_merge_per_environment() {
        let m = parse_scopes(&["staging=a,b".into(), "qa=a".into(), "staging=c,a".into()]).unwrap();
        assert_eq!(m["staging"], vec!["a", "b", "c"]);
        assert_eq!(m["qa"], vec!["a"]);
        assert!(parse_scopes(&["staging".into()]).is_err());
        assert!(parse_scopes(&["=a".into()]).is_err());
    }
}
