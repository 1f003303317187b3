//! `tessera authtest`: the auth-fault matrix against an API described by OpenAPI.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tessera_authtest::matrix::{Overrides, CASES};
use tessera_authtest::openapi::Operation;
use tessera_authtest::runner::{self, Settings};
use tessera_authtest::tokens::Source;
use tessera_authtest::{report, Document};

use super::Ctx;
use crate::cli::AuthtestArgs;
use crate::output;

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head) && text.len() >= head.len() && glob_rest(tail, &text[head.len()..])
        }
    }
}

fn glob_rest(pattern: &str, text: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    (0..=text.len()).filter(|i| text.is_char_boundary(*i)).any(|i| glob(pattern, &text[i..]))
}

fn matches(op: &Operation, filter: &str) -> bool {
    op.tags.iter().any(|t| t == filter)
        || op.operation_id.as_deref() == Some(filter)
        || glob(filter, &op.path)
        || glob(filter, &op.name())
}

async fn load_spec(spec: &str) -> anyhow::Result<String> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        let resp = reqwest::get(spec).await.with_context(|| format!("fetching {spec}"))?;
        if !resp.status().is_success() {
            bail!("fetching {spec}: {}", resp.status());
        }
        Ok(resp.text().await?)
    } else {
        std::fs::read_to_string(spec).with_context(|| format!("reading {spec}"))
    }
}

pub async fn run(ctx: &Ctx, args: AuthtestArgs) -> anyhow::Result<ExitCode> {
    for case in args.only.iter().chain(&args.skip) {
        if !CASES.contains(&case.as_str()) {
            bail!("unknown case {case:?} (cases: {})", CASES.join(", "));
        }
    }
    let vars: BTreeMap<String, String> = args
        .var
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--var {v:?}: expected NAME=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let headers: Vec<(String, String)> = args
        .header
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("--header {h:?}: expected NAME: VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let overrides = match &args.config {
        None => Overrides::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Overrides::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
    };
    let timeout = tessera_core::parse_duration(&args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let text = load_spec(&args.spec).await?;
    let doc = Document::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.spec))?;
    let ops: Vec<Operation> = doc
        .operations_with(&vars)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.spec))?
        .into_iter()
        .filter(|op| args.include.is_empty() || args.include.iter().any(|f| matches(op, f)))
        .filter(|op| !args.exclude.iter().any(|f| matches(op, f)))
        .collect();
    // An unreachable API is a usage error, not a thousand failed cases.
    let base =
        reqwest::Url::parse(&args.base_url).map_err(|e| anyhow::anyhow!("--base-url {:?}: {e}", args.base_url))?;
    let addr = format!("{}:{}", base.host_str().unwrap_or("127.0.0.1"), base.port_or_known_default().unwrap_or(80));
    tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| anyhow::anyhow!("the API at {} does not answer", args.base_url))?
        .map_err(|e| anyhow::anyhow!("cannot reach the API at {}: {e}", args.base_url))?;
    let source = match (&args.token, &args.env, &args.client) {
        (Some(t), _, _) => Source::Given(t.clone()),
        (None, Some(env), Some(client)) => Source::Tessera {
            client: ctx.client()?,
            env: env.clone(),
            client_id: client.clone(),
            audience: args.audience.clone(),
        },
        _ => bail!("give --env and --client (tokens from Tessera) or --token (a valid token)"),
    };
    let label = format!("{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
    let settings = Settings {
        base_url: args.base_url.clone(),
        concurrency: args.concurrency,
        timeout,
        only: args.only.clone(),
        skip: args.skip.clone(),
        overrides,
        fail_fast: args.fail_fast,
        headers,
        label,
    };
    let terminal = std::io::stderr().is_terminal() && !ctx.json();
    let bar = indicatif::ProgressBar::new(ops.len() as u64);
    if !terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bar2 = bar.clone();
    let json = ctx.json();
    let report = runner::run(ops, source, settings, move |op| {
        let count = |o: &str| op.cases.iter().filter(|c| c.outcome == o).count();
        let line = format!(
            "{}: {} pass, {} fail, {} skip, {} inconclusive",
            op.operation,
            count("pass"),
            count("fail"),
            count("skip"),
            count("inconclusive")
        );
        if terminal {
            bar2.set_message(line);
            bar2.inc(1);
        } else if !json {
            eprintln!("{line}");
        }
    })
    .await;
    bar.finish_and_clear();
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&report)).with_context(|| format!("writing {}", path.display()))?;
    }
    if ctx.json() {
        output::json(&report)?;
    } else {
        print!("{}", report::text(&report));
    }
    Ok(if report.summary.fail > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
