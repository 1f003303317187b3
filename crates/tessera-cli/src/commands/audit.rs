//! `tessera audit list|verify|export`.

use std::io::Write;
use std::process::ExitCode;

use super::Ctx;
use crate::cli::AuditCommand;
use crate::output;

pub async fn run(ctx: &Ctx, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        AuditCommand::List { limit, after } => {
            let page = client.audit(after, limit).await?;
            if ctx.json() {
                output::json(&page)?;
            } else {
                let rows: Vec<Vec<String>> = page
                    .entries
                    .iter()
                    .map(|e| {
                        let details: Vec<String> = e.details.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        vec![
                            e.seq.to_string(),
                            output::time(e.at),
                            e.action.clone(),
                            e.actor.clone(),
                            output::opt(&e.env),
                            output::opt(&e.target),
                            details.join(" "),
                        ]
                    })
                    .collect();
                output::table(&["SEQ", "AT", "ACTION", "ACTOR", "ENV", "TARGET", "DETAILS"], &rows);
                if let Some(next) = page.next_after {
                    eprintln!("more entries: --after {next}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => {
            let v = client.verify_audit().await?;
            if ctx.json() {
                output::json(&v)?;
            } else if v.ok {
                println!("audit log verified: {} entries, head #{} {}", v.entries, v.head_seq, v.head_hash);
            } else {
                println!(
                    "audit log does NOT verify: first bad entry #{}: {}",
                    v.first_bad_seq.unwrap_or_default(),
                    v.error.as_deref().unwrap_or("unknown")
                );
            }
            Ok(if v.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditCommand::Export => {
            let mut after = 0;
            let mut out = std::io::stdout().lock();
            loop {
                let page = client.audit(after, 1_000).await?;
                for e in &page.entries {
                    serde_json::to_writer(&mut out, e)?;
                    writeln!(out)?;
                }
                match page.next_after {
                    Some(next) => after = next,
                    None => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
