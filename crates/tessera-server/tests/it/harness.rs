//! A real server on an ephemeral loopback port, in a temp data dir, for one test.

use std::net::SocketAddr;

use tempfile::TempDir;
use tessera_client::api::{CreateClient, CreateEnvironment, CreateToken, Problem};
use tessera_client::Client;
use tessera_server::{RunningServer, ServerConfig};

pub struct TestServer {
    pub url: String,
    pub root: String,
    pub dir: TempDir,
    server: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: TempDir) -> Self {
        Self::start_with(dir, None).await
    }

    pub async fn start_with(dir: TempDir, public_url: Option<String>) -> Self {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = ServerConfig::new(addr, dir.path());
        config.public_url = public_url;
        config.usage_flush_interval = std::time::Duration::from_millis(50);
        let server = tessera_server::start(config).await.unwrap();
        let root = match &server.root_token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(dir.path().join("root-token")).unwrap().trim().to_owned(),
        };
        Self { url: format!("http://{}", server.local_addr), root, dir, server: Some(server) }
    }

    pub async fn stop(mut self) -> TempDir {
        self.server.take().unwrap().shutdown().await.unwrap();
        self.dir
    }

    pub fn root_client(&self) -> Client {
        Client::new(&self.url, Some(self.root.clone())).unwrap()
    }

    pub fn client_with(&self, token: &str) -> Client {
        Client::new(&self.url, Some(token.to_owned())).unwrap()
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.url, None).unwrap()
    }

    /// Environment `name` with standard policy.
    pub async fn env(&self, name: &str) {
        self.root_client()
            .create_environment(&CreateEnvironment { name: name.into(), ..Default::default() })
            .await
            .unwrap();
    }

    /// Client `id` with `scopes` per environment.
    pub async fn client(&self, id: &str, scopes: &[(&str, &[&str])]) -> String {
        let scopes =
            scopes.iter().map(|(env, list)| (env.to_string(), list.iter().map(|s| s.to_string()).collect())).collect();
        self.root_client()
            .create_client(&CreateClient { id: id.into(), scopes, ..Default::default() })
            .await
            .unwrap()
            .client_secret
    }

    /// A token of `client` in `env`; returns (secret, id).
    pub async fn token(&self, env: &str, client: &str, scopes: &[&str]) -> (String, String) {
        let created = self
            .root_client()
            .create_token(&CreateToken {
                env: env.into(),
                client: client.into(),
                scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            })
            .await
            .unwrap();
        (created.token, created.info.id)
    }

    pub async fn audit_seq(&self) -> u64 {
        self.root_client().verify_audit().await.unwrap().head_seq
    }

    /// Raw HTTP, for status codes and headers.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }
}

/// The problem of an API error, or a panic naming what came instead.
pub fn problem<T: std::fmt::Debug>(r: Result<T, tessera_client::Error>) -> (u16, Problem) {
    match r {
        Err(tessera_client::Error::Api { status, problem }) => (status.as_u16(), problem),
        other => panic!("expected an API error, got {other:?}"),
    }
}
