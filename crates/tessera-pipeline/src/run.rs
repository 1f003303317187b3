//! `tessera run -- CMD`: fresh tokens for one run, injected as environment variables, renewed
//! while the run lasts, masked in its output, revoked when it ends however it ends.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tessera_api::{FinishRun, FinishedRun, RunNeed, RunToken, StartRun};
use tessera_client::Client;
use tessera_core::mask::Masker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::config::{Config, NeedKind};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub env: String,
    pub label: Option<String>,
    pub command: Vec<String>,
    /// Mask injected values (and their base64 / URL-encoded forms) in the command's output.
    pub mask: bool,
    /// Also write every variable to a 0600 file named by `TESSERA_ENV_FILE` (removed after).
    pub env_file: bool,
    pub heartbeat_timeout: Option<String>,
    /// The server URL as the command should reach it (for gateway needs).
    pub server_url: String,
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    /// The command's exit code (128 + signal number when killed by a signal).
    pub exit_code: i32,
    pub minted: u32,
    pub refreshed: u32,
    pub finished: Option<FinishedRun>,
}

/// Values that are secret for this run, and a generation counter bumped when they change.
#[derive(Default)]
struct Secrets {
    values: Mutex<Vec<Zeroizing<String>>>,
    generation: AtomicU32,
}

impl Secrets {
    fn add(&self, v: &str) {
        self.values.lock().expect("secrets lock").push(Zeroizing::new(v.to_owned()));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn masker(&self) -> Masker {
        let values = self.values.lock().expect("secrets lock");
        Masker::with_encodings(values.iter().map(|v| v.as_bytes()))
    }
}

/// Copies `from` to `to`, masking secrets, as the bytes arrive (so line-buffered output stays
/// line-buffered); rebuilds the masker when new secrets appear.
async fn pump<R, W>(mut from: R, mut to: W, secrets: Arc<Secrets>)
where
    R: AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut seen = secrets.generation.load(Ordering::Acquire);
    let mut masker = secrets.masker();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = secrets.generation.load(Ordering::Acquire);
        if now != seen {
            let rest = masker.finish();
            let _ = to.write_all(&rest).await;
            masker = secrets.masker();
            seen = now;
        }
        let out = masker.push(&buf[..n]);
        if to.write_all(&out).await.is_err() {
            break;
        }
        let _ = to.flush().await;
    }
    let _ = to.write_all(&masker.finish()).await;
    let _ = to.flush().await;
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Serves the current value of each JWT need at `{prefix}/tokens/{NAME}` on loopback.
async fn serve_tokens(
    current: Arc<Mutex<BTreeMap<String, Zeroizing<String>>>>,
    prefix: String,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::extract::Path as AxPath;
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the run's token endpoint")?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        &format!("/{prefix}/tokens/{{name}}"),
        axum::routing::get(move |AxPath(name): AxPath<String>| {
            let current = current.clone();
            async move {
                match current.lock().expect("token lock").get(&name) {
                    Some(v) => (StatusCode::OK, v.to_string()),
                    None => (StatusCode::NOT_FOUND, "no such need\n".to_owned()),
                }
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/{prefix}"), task))
}

/// Runs the command with the needs of `config` in `opts.env`.
pub async fn run(config: &Config, client: &Client, opts: RunOptions) -> anyhow::Result<RunOutcome> {
    if opts.command.is_empty() {
        bail!("no command given: tessera run --env E -- CMD [ARGS…]");
    }
    config.check_env(&opts.env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut needs = Vec::new();
    for need in &config.needs {
        match &need.kind {
            NeedKind::Token { client: c, scopes, audience, format, ttl, .. } => needs.push(RunNeed {
                name: need.name.clone(),
                client: c.clone(),
                scopes: scopes.clone(),
                audience: audience.clone(),
                format: format.clone(),
                ttl: ttl.map(tessera_core::format_duration),
            }),
            NeedKind::Upstream { upstream } => needs.push(RunNeed {
                name: format!("{}_TOKEN", need.name),
                client: config.gateway_client(&opts.env, upstream).expect("checked by check_env").to_owned(),
                scopes: Some(vec![format!("gw:{upstream}")]),
                format: Some("opaque".into()),
                ..Default::default()
            }),
            NeedKind::Secret { .. } => {}
        }
    }
    let started = client
        .start_run(&StartRun {
            env: opts.env.clone(),
            label: opts.label.clone(),
            needs,
            heartbeat_timeout: opts.heartbeat_timeout.clone(),
        })
        .await
        .context("registering the run")?;
    for w in &started.warnings {
        eprintln!("tessera: warning: {w}");
    }
    let run_id = started.run.id.clone();
    match prepare_and_run(config, client, &opts, &started.tokens, started.heartbeat_interval_s, &run_id).await {
        Ok((exit_code, refreshed)) => {
            let finished = finish(client, &run_id, Some(exit_code)).await;
            Ok(RunOutcome { run_id, exit_code, minted: started.tokens.len() as u32 + refreshed, refreshed, finished })
        }
        Err(e) => {
            // The command never ran (or could not start): clean up before reporting.
            let _ = finish(client, &run_id, None).await;
            Err(e)
        }
    }
}

/// Ends the run (its tokens are revoked), retrying while the server is unreachable. When it
/// stays unreachable the server's reaper revokes them after the heartbeat timeout.
async fn finish(client: &Client, run_id: &str, exit_code: Option<i32>) -> Option<FinishedRun> {
    for attempt in 0..5 {
        match client.finish_run(run_id, &FinishRun { exit_code }).await {
            Ok(f) => return Some(f),
            Err(e) => {
                if attempt == 4 {
                    eprintln!("tessera: could not finish run {run_id} ({e}); the server reaps it when its heartbeat times out");
                }
                tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
            }
        }
    }
    None
}

async fn prepare_and_run(
    config: &Config,
    client: &Client,
    opts: &RunOptions,
    tokens: &[RunToken],
    heartbeat_s: u64,
    run_id: &str,
) -> anyhow::Result<(i32, u32)> {
    let secrets = Arc::new(Secrets::default());
    let mut vars: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let dir =
        tempfile::Builder::new().prefix("tessera-run-").tempdir().context("creating the run's private directory")?;
    let jwt_current: Arc<Mutex<BTreeMap<String, Zeroizing<String>>>> = Arc::default();
    let mut jwt_files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for t in tokens {
        secrets.add(&t.token);
        vars.insert(t.name.clone(), Zeroizing::new(t.token.clone()));
        if t.format == "jwt" {
            let path = dir.path().join(&t.name);
            write_private(&path, t.token.as_bytes()).context("writing a token file")?;
            vars.insert(format!("{}_FILE", t.name), Zeroizing::new(path.display().to_string()));
            jwt_current.lock().expect("token lock").insert(t.name.clone(), Zeroizing::new(t.token.clone()));
            jwt_files.insert(t.name.clone(), path);
        }
    }
    for need in &config.needs {
        match &need.kind {
            NeedKind::Upstream { upstream } => {
                vars.insert(
                    format!("{}_URL", need.name),
                    Zeroizing::new(format!("{}/gw/{upstream}", opts.server_url.trim_end_matches('/'))),
                );
            }
            NeedKind::Secret { secret } => {
                let s = client
                    .reveal_secret(&opts.env, secret)
                    .await
                    .with_context(|| format!("reading secret {secret} for {}", need.name))?;
                secrets.add(&s.value);
                vars.insert(need.name.clone(), Zeroizing::new(s.value));
            }
            NeedKind::Token { .. } => {}
        }
    }
    vars.insert("TESSERA_RUN_ID".into(), Zeroizing::new(run_id.to_owned()));
    let server = if jwt_files.is_empty() {
        None
    } else {
        let prefix = tessera_core::id::random_base62(24);
        let (url, task) = serve_tokens(jwt_current.clone(), prefix).await?;
        vars.insert("TESSERA_RUN_URL".into(), Zeroizing::new(url));
        Some(task)
    };
    if opts.env_file {
        let path = dir.path().join("env");
        let mut text = Zeroizing::new(String::new());
        for (k, v) in &vars {
            text.push_str(&format!("{k}={}\n", v.as_str()));
        }
        write_private(&path, text.as_bytes()).context("writing the env file")?;
        vars.insert("TESSERA_ENV_FILE".into(), Zeroizing::new(path.display().to_string()));
    }

    let mut cmd = tokio::process::Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..]).stdin(Stdio::inherit());
    for (k, v) in &vars {
        cmd.env(k, v.as_str());
    }
    if opts.mask {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot start {:?}", opts.command[0]))?;
    drop(vars);
    let pumps = if opts.mask {
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        vec![
            tokio::spawn(pump(out, tokio::io::stdout(), secrets.clone())),
            tokio::spawn(pump(err, tokio::io::stderr(), secrets.clone())),
        ]
    } else {
        Vec::new()
    };

    let refreshed = Arc::new(AtomicU32::new(0));
    let heartbeat = {
        let (client, run_id, secrets, jwt_current, refreshed) =
            (client.clone(), run_id.to_owned(), secrets.clone(), jwt_current.clone(), refreshed.clone());
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                tokio::time::sleep(Duration::from_secs(heartbeat_s.max(1))).await;
                match client.heartbeat(&run_id).await {
                    Ok(answer) => {
                        warned = false;
                        for t in answer.refreshed {
                            secrets.add(&t.token);
                            if let Some(path) = jwt_files.get(&t.name) {
                                if let Err(e) = write_private(path, t.token.as_bytes()) {
                                    eprintln!("tessera: could not refresh {}: {e}", path.display());
                                }
                            }
                            jwt_current
                                .lock()
                                .expect("token lock")
                                .insert(t.name.clone(), Zeroizing::new(t.token.clone()));
                            refreshed.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    Err(e) => {
                        if !warned {
                            eprintln!("tessera: heartbeat failed ({e}); retrying, the command keeps running");
                            warned = true;
                        }
                    }
                }
            }
        })
    };

    // Forward SIGINT, SIGTERM and SIGHUP to the command; it decides when to stop.
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let forward = tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            return;
        };
        loop {
            let sig = tokio::select! {
                _ = int.recv() => nix::sys::signal::Signal::SIGINT,
                _ = term.recv() => nix::sys::signal::Signal::SIGTERM,
                _ = hup.recv() => nix::sys::signal::Signal::SIGHUP,
            };
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    });

    let status = child.wait().await.context("waiting for the command")?;
    for p in pumps {
        let _ = p.await;
    }
    heartbeat.abort();
    forward.abort();
    if let Some(s) = server {
        s.abort();
    }
    drop(dir);
    let code = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    Ok((code, refreshed.load(Ordering::Acquire)))
}
