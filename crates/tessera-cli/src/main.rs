//! The `tessera` binary: parse arguments, run the command, map the outcome to an exit code.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

// The server's hot paths (introspection, the gateway) allocate on one tokio worker and free on
// another; glibc's malloc spent 10-15% of their CPU in arena locking and consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
