//! A typed async client of the Tessera server API, used by the `tessera` CLI and usable by
//! Rust test suites.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_client::Error> {
//! let client = tessera_client::Client::new("http://127.0.0.1:7340", Some("tsr_…".into()))?;
//! let token = client
//!     .create_token(&tessera_api::CreateToken {
//!         env: "staging".into(),
//!         client: "checkout-tests".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("minted {}", token.info.id);
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tessera_api::*;
use url::Url;

pub use tessera_api as api;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach Tessera at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server answered with an RFC 9457 problem.
    #[error("{} ({})", problem.detail, status.as_u16())]
    Api { status: StatusCode, problem: Problem },
    #[error("unexpected answer from {url} ({status}): {reason}")]
    Decode { url: String, status: StatusCode, reason: String },
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Filters of `GET /v1/tokens`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `active`, `inactive` or `all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `KEY=VALUE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A connection to one Tessera server with one credential.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "redacted"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7340`) that authenticates
    /// with `token` when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidUrl { url: base_url.to_owned(), reason };
        let mut base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("use http:// or https://".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self { http, base, token })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("http URLs have paths").pop_if_empty().extend(segments);
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut req = self.http.request(method, self.url(segments));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let req = req.build().map_err(|e| Error::InvalidUrl { url: self.base.to_string(), reason: e.to_string() })?;
        let url = req.url().clone();
        let shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"))
            + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let resp =
            self.http.execute(req).await.map_err(|e| Error::Connect { url: shown.clone(), reason: root_cause(&e) })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::Connect { url: shown.clone(), reason: root_cause(&e) })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
                url: shown,
                status,
                reason: e.to_string(),
            });
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(problem) => Err(Error::Api { status, problem }),
            Err(_) => Err(Error::Decode {
                url: shown,
                status,
                reason: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            }),
        }
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        self.send(self.request(Method::GET, segments)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T> {
        self.send(self.request(Method::POST, segments).json(body)).await
    }

    pub async fn health(&self) -> Result<Health> {
        self.get(&["healthz"]).await
    }

    pub async fn ready(&self) -> Result<Health> {
        self.get(&["readyz"]).await
    }

    pub async fn create_environment(&self, req: &CreateEnvironment) -> Result<EnvironmentView> {
        self.post(&["v1", "environments"], req).await
    }

    /// Creates the environment or replaces its policy.
    pub async fn put_environment(&self, req: &CreateEnvironment) -> Result<Upserted<EnvironmentView>> {
        self.send(self.request(Method::PUT, &["v1", "environments", &req.name]).json(req)).await
    }

    /// Creates the client or replaces its scopes, format and algorithm.
    pub async fn put_client(&self, req: &CreateClient) -> Result<Upserted<ClientView>> {
        self.send(self.request(Method::PUT, &["v1", "clients", &req.id]).json(req)).await
    }

    pub async fn environments(&self) -> Result<Vec<EnvironmentView>> {
        Ok(self.get::<EnvironmentList>(&["v1", "environments"]).await?.environments)
    }

    pub async fn environment(&self, name: &str) -> Result<EnvironmentView> {
        self.get(&["v1", "environments", name]).await
    }

    pub async fn create_client(&self, req: &CreateClient) -> Result<CreatedClient> {
        self.post(&["v1", "clients"], req).await
    }

    pub async fn clients(&self) -> Result<Vec<ClientView>> {
        Ok(self.get::<ClientList>(&["v1", "clients"]).await?.clients)
    }

    pub async fn client(&self, id: &str) -> Result<ClientView> {
        self.get(&["v1", "clients", id]).await
    }

    pub async fn create_token(&self, req: &CreateToken) -> Result<CreatedToken> {
        self.post(&["v1", "tokens"], req).await
    }

    /// Mints a token with explicit times (test environments only).
    pub async fn create_test_token(&self, req: &CreateTestToken) -> Result<CreatedToken> {
        self.post(&["v1", "test-tokens"], req).await
    }

    pub async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenView>> {
        let req = self.request(Method::GET, &["v1", "tokens"]).query(query);
        Ok(self.send::<TokenList>(req).await?.tokens)
    }

    pub async fn token(&self, id: &str) -> Result<TokenView> {
        self.get(&["v1", "tokens", id]).await
    }

    pub async fn rotate_token(&self, id: &str, req: &RotateToken) -> Result<RotatedToken> {
        self.post(&["v1", "tokens", id, "rotate"], req).await
    }

    pub async fn renew_token(&self, id: &str, req: &RenewToken) -> Result<TokenChange> {
        self.post(&["v1", "tokens", id, "renew"], req).await
    }

    pub async fn revoke_token(&self, id: &str, req: &RevokeToken) -> Result<TokenChange> {
        self.post(&["v1", "tokens", id, "revoke"], req).await
    }

    /// Revokes every active token matching the selector (or counts them, with `dry_run`).
    pub async fn revoke_tokens(&self, req: &BulkRevoke) -> Result<BulkRevoked> {
        self.post(&["v1", "tokens", "revoke"], req).await
    }

    /// One page of the audit log: entries after `after`, at most `limit`.
    pub async fn audit(&self, after: u64, limit: u32) -> Result<AuditList> {
        let req = self.request(Method::GET, &["v1", "audit"]).query(&[("after", after), ("limit", u64::from(limit))]);
        self.send(req).await
    }

    pub async fn disable_client(&self, id: &str) -> Result<ClientView> {
        self.post(&["v1", "clients", id, "disable"], &serde_json::json!({})).await
    }

    pub async fn enable_client(&self, id: &str) -> Result<ClientView> {
        self.post(&["v1", "clients", id, "enable"], &serde_json::json!({})).await
    }

    /// Signing keys of `env` (all readable environments when `None`).
    pub async fn keys(&self, env: Option<&str>) -> Result<Vec<KeyView>> {
        let mut req = self.request(Method::GET, &["v1", "keys"]);
        if let Some(env) = env {
            req = req.query(&[("env", env)]);
        }
        Ok(self.send::<KeyList>(req).await?.keys)
    }

    pub async fn rotate_keys(&self, req: &RotateKeys) -> Result<RotatedKeys> {
        self.post(&["v1", "keys", "rotate"], req).await
    }

    /// RFC 7662 introspection with this client's (admin) bearer token: inactive answers carry
    /// the reason.
    pub async fn introspect(&self, token: &str) -> Result<Introspection> {
        let req = self.request(Method::POST, &["oauth2", "introspect"]).form(&[("token", token)]);
        self.send_oauth(req).await
    }

    /// Sends a request to an OAuth endpoint, whose errors are RFC 6749 JSON, not problems.
    async fn send_oauth<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        match self.send(req).await {
            Err(Error::Decode { status, reason, .. }) => {
                let v: serde_json::Value = serde_json::from_str(&reason).unwrap_or_default();
                let detail = v["error_description"].as_str().or(v["error"].as_str()).unwrap_or(&reason).to_owned();
                Err(Error::Api {
                    status,
                    problem: Problem {
                        kind: format!("oauth:{}", v["error"].as_str().unwrap_or("error")),
                        title: String::new(),
                        status: status.as_u16(),
                        detail,
                    },
                })
            }
            other => other,
        }
    }

    /// Stores a new version of an upstream secret (the value travels only in the body).
    pub async fn put_secret(&self, env: &str, name: &str, req: &PutSecret) -> Result<SecretVersionView> {
        self.send(self.request(Method::PUT, &["v1", "secrets", env, name]).json(req)).await
    }

    pub async fn secrets(&self, env: Option<&str>) -> Result<Vec<SecretView>> {
        let mut req = self.request(Method::GET, &["v1", "secrets"]);
        if let Some(env) = env {
            req = req.query(&[("env", env)]);
        }
        Ok(self.send::<SecretList>(req).await?.secrets)
    }

    pub async fn secret_versions(&self, env: &str, name: &str) -> Result<Vec<SecretVersionView>> {
        Ok(self.get::<SecretVersionList>(&["v1", "secrets", env, name, "versions"]).await?.versions)
    }

    /// The current value (needs `tessera:env:ENV:reveal`; audited).
    pub async fn reveal_secret(&self, env: &str, name: &str) -> Result<RevealedSecret> {
        self.get(&["v1", "secrets", env, name]).await
    }

    pub async fn rotate_secret(&self, env: &str, name: &str) -> Result<SecretVersionView> {
        self.post(&["v1", "secrets", env, name, "rotate"], &serde_json::json!({})).await
    }

    pub async fn drift(&self) -> Result<DriftReport> {
        self.get(&["v1", "drift"]).await
    }

    pub async fn put_upstream(&self, req: &PutUpstream) -> Result<UpstreamView> {
        self.post(&["v1", "upstreams"], req).await
    }

    pub async fn upstreams(&self, env: Option<&str>) -> Result<Vec<UpstreamView>> {
        let mut req = self.request(Method::GET, &["v1", "upstreams"]);
        if let Some(env) = env {
            req = req.query(&[("env", env)]);
        }
        Ok(self.send::<UpstreamList>(req).await?.upstreams)
    }

    pub async fn upstream(&self, env: &str, name: &str) -> Result<UpstreamView> {
        self.get(&["v1", "upstreams", env, name]).await
    }

    pub async fn add_fault(&self, req: &AddFault) -> Result<FaultView> {
        self.post(&["v1", "gateway", "faults"], req).await
    }

    pub async fn faults(&self) -> Result<Vec<FaultView>> {
        Ok(self.get::<FaultList>(&["v1", "gateway", "faults"]).await?.faults)
    }

    /// Removes faults (of one environment / upstream when given); returns those removed.
    pub async fn clear_faults(&self, env: Option<&str>, upstream: Option<&str>) -> Result<Vec<FaultView>> {
        let mut query = Vec::new();
        if let Some(e) = env {
            query.push(("env", e));
        }
        if let Some(u) = upstream {
            query.push(("upstream", u));
        }
        let req = self.request(Method::DELETE, &["v1", "gateway", "faults"]).query(&query);
        Ok(self.send::<FaultList>(req).await?.faults)
    }

    /// Re-seals every data key under a new master key.
    pub async fn rewrap(&self, req: &Rewrap) -> Result<Rewrapped> {
        self.post(&["v1", "keys", "rewrap"], req).await
    }

    /// Registers a run and mints its tokens.
    pub async fn start_run(&self, req: &StartRun) -> Result<StartedRun> {
        self.post(&["v1", "runs"], req).await
    }

    pub async fn heartbeat(&self, run_id: &str) -> Result<HeartbeatAnswer> {
        self.post(&["v1", "runs", run_id, "heartbeat"], &serde_json::json!({})).await
    }

    /// Ends a run: its tokens are revoked.
    pub async fn finish_run(&self, run_id: &str, req: &FinishRun) -> Result<FinishedRun> {
        self.post(&["v1", "runs", run_id, "finish"], req).await
    }

    pub async fn runs(&self, env: Option<&str>, label: Option<&str>) -> Result<Vec<RunView>> {
        let mut query = Vec::new();
        if let Some(e) = env {
            query.push(("env", e));
        }
        if let Some(l) = label {
            query.push(("label", l));
        }
        let req = self.request(Method::GET, &["v1", "runs"]).query(&query);
        Ok(self.send::<RunList>(req).await?.runs)
    }

    pub async fn forecast(&self, env: &str, label: Option<&str>) -> Result<Forecast> {
        let mut query = vec![("env", env)];
        if let Some(l) = label {
            query.push(("label", l));
        }
        self.send(self.request(Method::GET, &["v1", "runs", "forecast"]).query(&query)).await
    }

    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        self.get(&["v1", "audit", "verify"]).await
    }
}

/// The innermost cause of a transport error ("connection refused"), which is what a user
/// needs; reqwest's outer layers only say "error sending request".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
