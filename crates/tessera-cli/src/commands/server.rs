//! `tessera server`: start, print the root token on first start, serve until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use tessera_server::ServerConfig;
use tracing_subscriber::EnvFilter;

use crate::cli::ServerArgs;

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let mut config = ServerConfig::new(args.listen, &args.data_dir);
    config.db_url = args.db;
    config.pool = tessera_store::PoolSettings {
        max_connections: args.db_max_connections,
        acquire_timeout: args.db_acquire_timeout,
        statement_timeout: args.db_statement_timeout,
    };
    config.change_poll_interval = args.change_poll_interval;
    config.public_url = args.public_url;
    config.master_key = std::env::var("TESSERA_MASTER_KEY").ok().filter(|k| !k.trim().is_empty());
    let server = tessera_server::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        if let Some(root) = &server.root_token {
            writeln!(
                out,
                "Root admin token (shown once; also written to {}, mode 0600):\n{root}\n",
                args.data_dir.join("root-token").display()
            )?;
        }
        writeln!(out, "tessera listening on http://{}", server.local_addr)?;
        out.flush()?;
    }
    server.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
