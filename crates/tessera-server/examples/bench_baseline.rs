//! Minimal axum server for the benchmarks: the "minimal axum handler" baseline and the fake upstream.
//!
//! Binds `127.0.0.1:0` (or the address given as the first argument), prints
//! `listening on http://ADDR` to stdout and answers any method on any path with the fixed JSON
//! body `{"ok":true}` (`content-type: application/json`).
//!
//! ```sh
//! cargo run --release -p tessera-server --example bench_baseline [ADDR]
//! ```

use std::io::Write as _;
use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Router;

const BODY: &str = r#"{"ok":true}"#;

async fn ok() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], BODY)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| anyhow::anyhow!("invalid listen address {arg:?}: {e}"))?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}")?;
        stdout.flush()?;
    }
    let app = Router::new().fallback(ok);
    axum::serve(listener, app).await?;
    Ok(())
}
