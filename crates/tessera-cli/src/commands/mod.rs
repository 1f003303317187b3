//! One module per command group; each calls the client (or the server library) and formats.

mod audit;
mod authtest;
mod client;
mod drift;
mod env;
mod gateway;
mod keys;
mod pipeline;
mod scan;
mod secret;
mod server;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tessera_client::Client;

use crate::cli::{Cli, Command, Output};

/// What every command gets: the output format and a way to reach the server.
pub struct Ctx {
    pub output: Output,
    pub url: String,
    token: Option<String>,
}

impl Ctx {
    /// A client for `--url` with `--token`/`TESSERA_TOKEN`, else the local root token file.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token {
            Some(t) => Some(t.trim().to_owned()),
            None => local_root_token(),
        };
        Ok(Client::new(&self.url, token)?)
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// `DATA_DIR/root-token` (data dir from `TESSERA_DATA_DIR`, default `./.tessera`), so that
/// the quick start works without exporting a token.
fn local_root_token() -> Option<String> {
    let dir = std::env::var_os("TESSERA_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("./.tessera"));
    std::fs::read_to_string(dir.join("root-token")).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx { output: cli.output, url: cli.tessera_url, token: cli.tessera_token };
    match cli.command {
        Command::Server(args) => server::run(args).await.context("tessera server"),
        Command::Env(cmd) => env::run(&ctx, cmd).await,
        Command::Client(cmd) => client::run(&ctx, cmd).await,
        Command::Token(cmd) => token::run(&ctx, cmd).await,
        Command::Audit(cmd) => audit::run(&ctx, cmd).await,
        Command::Keys(cmd) => keys::run(&ctx, cmd).await,
        Command::Secret(cmd) => secret::run(&ctx, cmd).await,
        Command::Upstream(cmd) => gateway::upstream(&ctx, cmd).await,
        Command::Gateway(cmd) => gateway::run(&ctx, cmd).await,
        Command::Drift => drift::run(&ctx).await,
        Command::Plan { config, detailed_exitcode } => pipeline::plan(&ctx, config, detailed_exitcode).await,
        Command::Apply { config, show_secrets } => pipeline::apply(&ctx, config, show_secrets).await,
        Command::Preflight { env, label, config } => pipeline::preflight(&ctx, config, &env, label.as_deref()).await,
        Command::Run { env, label, config, no_mask, env_file, heartbeat_timeout, command } => {
            pipeline::run(&ctx, config, env, label, !no_mask, env_file, heartbeat_timeout, command).await
        }
        Command::Runs(crate::cli::RunsCommand::List { env, label }) => pipeline::runs(&ctx, env, label).await,
        Command::Authtest(args) => authtest::run(&ctx, args).await,
        Command::Scan(args) => scan::run(&ctx, args).await,
    }
}
