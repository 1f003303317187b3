//! `tessera drift`: credentials across environments; exit 1 when there are problems.

use std::process::ExitCode;

use super::Ctx;
use crate::output;

pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let report = ctx.client()?.drift().await?;
    if ctx.json() {
        output::json(&report)?;
    } else {
        let mut rows = Vec::new();
        for c in &report.credentials {
            for h in &c.holdings {
                let mut notes = Vec::new();
                if h.rotation_due {
                    notes.push("rotation due".to_owned());
                }
                if h.expired {
                    notes.push("EXPIRED".to_owned());
                }
                if c.shared_across_protection.iter().any(|g| g.contains(&h.env)) {
                    notes.push("SAME VALUE as a protected/unprotected env".to_owned());
                }
                rows.push(vec![
                    c.name.clone(),
                    h.env.clone(),
                    format!("v{}", h.version),
                    h.fingerprint.clone(),
                    output::time(h.created_at),
                    if notes.is_empty() { "ok".into() } else { notes.join(", ") },
                ]);
            }
            for env in &c.missing {
                rows.push(vec![c.name.clone(), env.clone(), "-".into(), "-".into(), "-".into(), "MISSING".into()]);
            }
        }
        output::table(&["CREDENTIAL", "ENV", "VERSION", "FINGERPRINT", "CREATED", "STATUS"], &rows);
        println!("{} problem(s)", report.problems);
    }
    Ok(if report.problems == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
