//! `tessera scan`: secrets in files, history or the index; optional live check and revocation
//! of Tessera tokens (nothing is ever sent to any other provider).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tessera_api::RevokeToken;
use tessera_scan::{report, walk, Finding, RuleSet, Scanner};

use super::Ctx;
use crate::cli::ScanArgs;
use crate::output;

pub async fn run(ctx: &Ctx, args: ScanArgs) -> anyhow::Result<ExitCode> {
    let mut rules = RuleSet::built_in();
    for f in &args.rules {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        rules.add(&text, &f.display().to_string())?;
    }
    let scanner = Scanner::new(rules.clone());
    let root = args.paths.first().cloned().unwrap_or_else(|| PathBuf::from("."));
    let (mut findings, stats) = if args.git {
        walk::scan_history(&scanner, &root).map_err(anyhow::Error::msg)?
    } else if args.staged {
        walk::scan_staged(&scanner, &root).map_err(anyhow::Error::msg)?
    } else if args.paths.len() == 1 && args.paths[0].as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
        (scanner.scan(&text, "<stdin>", None), walk::Stats { files: 1, bytes: text.len() as u64, skipped: 0 })
    } else {
        let roots = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
        for r in &roots {
            if !r.exists() {
                bail!("{}: no such file or directory", r.display());
            }
        }
        walk::scan_paths(&scanner, &roots)
    };
    if let Some(path) = &args.write_baseline {
        std::fs::write(path, serde_json::to_string_pretty(&report::baseline(&findings))?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote a baseline of {} finding(s) to {}", findings.len(), path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.baseline {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        findings = report::apply_baseline(findings, &value).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if args.verify || args.revoke {
        verify(ctx, &mut findings, args.revoke).await?;
    }
    match args.format.as_str() {
        "json" => output::json(&serde_json::json!({
            "findings": findings,
            "files": stats.files,
            "bytes": stats.bytes,
            "skipped": stats.skipped,
        }))?,
        "sarif" => output::json(&report::sarif(&findings, &rules))?,
        _ => print!("{}", report::text(&findings, std::io::stdout().is_terminal())),
    }
    Ok(if findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Marks Tessera tokens live or inactive (introspection as admin); with `revoke`, revokes
/// the live ones with a reason naming where they were found.
async fn verify(ctx: &Ctx, findings: &mut [Finding], revoke: bool) -> anyhow::Result<()> {
    let client = ctx.client()?;
    for f in findings.iter_mut().filter(|f| f.rule == "tessera-token") {
        let answer = client.introspect(&f.secret).await.context("asking Tessera about a found token")?;
        if !answer.active {
            f.status = Some(format!("inactive ({})", answer.inactive_reason.as_deref().unwrap_or("unknown")));
            continue;
        }
        f.status = Some("live".into());
        if revoke {
            let Some(id) = &answer.jti else { continue };
            let place = format!(
                "{}:{}{}",
                f.path,
                f.line,
                f.commit.as_ref().map(|c| format!(" (commit {c})")).unwrap_or_default()
            );
            client
                .revoke_token(id, &RevokeToken { reason: Some(format!("found leaked by tessera scan in {place}")) })
                .await
                .with_context(|| format!("revoking {id}"))?;
            f.status = Some(format!("revoked ({id})"));
        }
    }
    Ok(())
}
