//! Minimal reverse proxy for the gateway benchmark: the floor of "axum in, reqwest out".
//!
//! Forwards every request to the upstream given as the first argument (`http://HOST:PORT`),
//! with the same stack as the gateway (axum 0.8 server, reqwest 0.12 client with a shared
//! connection pool, streamed bodies both ways) and none of its work: no token, no secret, no
//! masking, no metrics, no usage records; the same allocator as the `tessera` binary
//! (mimalloc). `bench/gateway.sh` measures it beside the gateway, so
//! the gateway's ratio to a direct request can be read against what any proxy of this kind
//! costs on the same machine in the same run.
//!
//! Binds `127.0.0.1:0` (or the address given as the second argument) and prints
//! `listening on http://ADDR`.
//!
//! ```sh
//! cargo run --release -p tessera-server --example bench_proxy http://127.0.0.1:8080 [ADDR]
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Proxy {
    upstream: String,
    client: reqwest::Client,
}

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(header::HOST);
    let target = format!("{}{}", proxy.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let sent = proxy
        .client
        .request(parts.method, target)
        .headers(parts.headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
            }
            response.body(Body::from_stream(answer.bytes_stream())).unwrap_or_else(|_| bad_gateway())
        }
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> Response {
    StatusCode::BAD_GATEWAY.into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let upstream = args.next().ok_or_else(|| anyhow::anyhow!("usage: bench_proxy http://UPSTREAM [ADDR]"))?;
    let addr: SocketAddr = match args.next() {
        Some(arg) => arg.parse().map_err(|e| anyhow::anyhow!("invalid listen address {arg:?}: {e}"))?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(256).build()?;
    let proxy = Arc::new(Proxy { upstream: upstream.trim_end_matches('/').to_owned(), client });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local}")?;
        stdout.flush()?;
    }
    let app = Router::new().fallback(forward).with_state(proxy);
    axum::serve(listener, app).await?;
    Ok(())
}
