//! Tessera's HTTP server: the admin API of the control plane.
//!
//! [`router`] builds the axum `Router` (tests call it in-process); [`start`] opens the store,
//! bootstraps a first start, binds, and serves until [`RunningServer::shutdown`].

pub mod background;
pub mod bootstrap;
pub mod config;
pub mod follow;
pub mod http;
pub mod index;
pub mod jwt;
pub mod kek;
pub mod keys;
pub mod metrics;
pub mod runs;
pub mod seal;
pub mod secrets;
pub mod state;
pub mod tokens;
pub mod validate;
pub mod views;

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::ServerConfig;
pub use state::AppState;

use crate::http::error::ApiError;
use crate::http::routes;

/// The current instant at the precision the store keeps (microseconds), so that what an
/// answer shows is exactly what a later read returns.
pub fn now() -> chrono::DateTime<Utc> {
    tessera_core::audit::audit_time(Utc::now())
}

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API as one `Router`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::routes())
        .merge(routes::environments::routes())
        .merge(routes::clients::routes())
        .merge(routes::tokens::routes())
        .merge(routes::audit::routes())
        .merge(routes::keys::routes())
        .merge(routes::oauth::routes())
        .merge(routes::secrets::routes())
        .merge(routes::upstreams::routes())
        .merge(routes::gateway::routes())
        .merge(routes::runs::routes())
        .route("/metrics", axum::routing::get(metrics::render))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::BadRequest("method not allowed on this route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(metrics::TrackLayer::new(state.clone()))
        .with_state(state)
}

/// A server started by [`start`].
#[derive(Debug)]
pub struct RunningServer {
    pub local_addr: SocketAddr,
    /// The root admin token, when this start created it (first start on an empty store).
    pub root_token: Option<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, flushes usage, returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await.context("server task panicked")?
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        self.shutdown().await
    }
}

/// Fills the in-memory caches (live tokens, clients, signing keys) from the store.
pub(crate) async fn load_caches(state: &AppState) -> anyhow::Result<()> {
    for (hash, token) in state.store.live_tokens(crate::now()).await.context("loading live tokens")? {
        state.index.upsert(hash, token);
    }
    for client in state.store.clients().await.context("loading clients")? {
        state.clients.insert(client);
    }
    for upstream in state.store.upstreams().await.context("loading upstreams")? {
        state.upstreams.put(upstream);
    }
    state.faults.set(state.store.faults().await.context("loading gateway faults")?);
    keys::reload(state).await.map_err(|e| anyhow::anyhow!("loading signing keys: {e}"))?;
    Ok(())
}

/// Opens the store, bootstraps a first start, binds `config.listen` and starts serving.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let (master, master_key_file) = bootstrap::master_key(&config)?;
    let store = tessera_store::open_with(&config.db_url(), &config.pool)
        .await
        .with_context(|| format!("opening {}", config.redacted_db_url()))?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}"));
    let (kek, hasher) = bootstrap::open_with_master(store.as_ref(), master, master_key_file.as_deref()).await?;
    let state = AppState::new(store, kek, hasher, master_key_file, public_url, config.key_rotation_period);
    let root_token = bootstrap::first_start(&state, &config).await?;
    // Changes committed by other replicas from here on are replayed by the follower.
    let feed_start = state.store.change_seq().await.context("reading the change feed")?;
    load_caches(&state).await?;
    let (shutdown, mut stop) = watch::channel(false);
    let app = router(state.clone());
    let background = background::spawn(state.clone(), config.usage_flush_interval, shutdown.subscribe());
    let follower = follow::spawn(state.clone(), feed_start, config.change_poll_interval, shutdown.subscribe());
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        axum::serve(listener, app).with_graceful_shutdown(stopped).await.context("serving HTTP")?;
        background.await.context("background task panicked")?;
        if let Some(f) = follower {
            f.await.context("change follower panicked")?;
        }
        Ok(())
    });
    tracing::info!(%local_addr, tokens = state.index.len(), "tessera listening");
    Ok(RunningServer { local_addr, root_token, shutdown, task })
}
