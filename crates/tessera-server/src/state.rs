//! Shared server state: the store, key-derived secrets, and the in-memory caches that keep
//! validation off the database (tokens, clients, signing keys).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_core::upstream::{Fault, Upstream};
use tessera_core::{Client, Environment, SecretHasher};
use tessera_store::{GatewayUse, Store};
use zeroize::Zeroizing;

use crate::index::TokenIndex;
use crate::kek::Kek;
use crate::keys::Keyring;
use crate::metrics::Metrics;

/// Cheap to clone; handed to every request handler.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    kek: RwLock<Arc<Kek>>,
    /// Held (shared) while sealing with the current master key; held exclusively by rewrap.
    pub seal_lock: tokio::sync::RwLock<()>,
    /// Where the master key lives when it is file-based (rewrap writes the new one there).
    pub master_key_file: Option<std::path::PathBuf>,
    pub index: TokenIndex,
    pub secrets: SecretCache,
    pub upstreams: UpstreamCache,
    pub faults: FaultState,
    /// Gateway uses waiting for the next batched write.
    pub gateway_uses: std::sync::Mutex<Vec<GatewayUse>>,
    /// Outbound HTTP client of the gateway (connection pool shared by all upstreams).
    pub http: reqwest::Client,
    /// What the gateway derives once per upstream and secret value (base URL, injected header,
    /// masker), rebuilt when either changes.
    pub prepared_upstreams: crate::http::routes::gateway::PreparedUpstreams,
    pub clients: ClientCache,
    pub environments: EnvCache,
    pub keyring: Keyring,
    /// Serialises key generation and rotation.
    pub key_lock: tokio::sync::Mutex<()>,
    pub metrics: Metrics,
    /// Base URL issuers are derived from: `{public_url}/env/{name}`.
    pub public_url: String,
    /// Signing keys older than this are rotated by the background task.
    pub key_rotation_period: Duration,
    /// Whether this server leads background work (always, unless the store is shared).
    pub leading: std::sync::atomic::AtomicBool,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        kek: Kek,
        hasher: SecretHasher,
        master_key_file: Option<std::path::PathBuf>,
        public_url: String,
        key_rotation_period: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()
            .expect("the gateway HTTP client builds");
        Self(Arc::new(Inner {
            store,
            hasher,
            kek: RwLock::new(Arc::new(kek)),
            seal_lock: tokio::sync::RwLock::new(()),
            master_key_file,
            index: TokenIndex::new(),
            secrets: SecretCache::default(),
            upstreams: UpstreamCache::default(),
            faults: FaultState::default(),
            gateway_uses: std::sync::Mutex::new(Vec::new()),
            http,
            prepared_upstreams: Default::default(),
            clients: ClientCache::default(),
            environments: EnvCache::default(),
            keyring: Keyring::default(),
            key_lock: tokio::sync::Mutex::new(()),
            metrics: Metrics::new(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            key_rotation_period,
            leading: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The sealers of the current master key.
    pub fn kek(&self) -> Arc<Kek> {
        self.kek.read().expect("kek lock").clone()
    }

    /// Switches to a new master key (after its data keys were re-sealed and committed).
    pub fn set_kek(&self, kek: Kek) {
        *self.kek.write().expect("kek lock") = Arc::new(kek);
    }

    /// The issuer identifier of environment `env`.
    pub fn issuer(&self, env: &str) -> String {
        self.issuer_of(env).to_string()
    }

    /// The issuer identifier of `env` as a `Display` value: written straight into an answer
    /// by the hot paths instead of being built as a `String` per request.
    pub fn issuer_of<'a>(&'a self, env: &'a str) -> Issuer<'a> {
        Issuer { public_url: &self.public_url, env }
    }
}

/// An environment's issuer identifier, `{public_url}/env/{name}`; see [`AppState::issuer_of`].
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    public_url: &'a str,
    env: &'a str,
}

impl std::fmt::Display for Issuer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/env/{}", self.public_url, self.env)
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Clients by id, so client authentication does not read the database per request. Written
/// through on every client change this server makes; misses fall back to the store.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: RwLock<HashMap<String, Arc<Client>>>,
}

impl ClientCache {
    pub fn insert(&self, client: Client) {
        self.clients.write().expect("client cache lock").insert(client.id.clone(), Arc::new(client));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.clients.read().expect("client cache lock").get(id).cloned()
    }
}

/// Values by environment, then name: looked up per gateway request with borrowed keys (a map
/// keyed by a `(String, String)` pair would need both copied for every lookup).
pub type ByEnv<T> = HashMap<String, HashMap<String, T>>;

/// Decrypted current secret values, for the gateway's injection (zeroized when dropped).
/// Invalidated on every new version this server writes.
#[derive(Debug, Default)]
pub struct SecretCache {
    values: RwLock<ByEnv<SecretValue>>,
}

/// A decrypted secret value shared by the requests that inject it.
pub type SecretValue = Arc<Zeroizing<String>>;

impl SecretCache {
    pub fn get(&self, env: &str, name: &str) -> Option<SecretValue> {
        self.values.read().expect("secret cache lock").get(env)?.get(name).cloned()
    }

    pub fn put(&self, env: &str, name: &str, value: Zeroizing<String>) {
        let mut values = self.values.write().expect("secret cache lock");
        values.entry(env.to_owned()).or_default().insert(name.to_owned(), Arc::new(value));
    }

    pub fn clear(&self) {
        self.values.write().expect("secret cache lock").clear();
    }

    /// Forgets one secret's value (a new version was written elsewhere).
    pub fn forget(&self, env: &str, name: &str) {
        if let Some(by_name) = self.values.write().expect("secret cache lock").get_mut(env) {
            by_name.remove(name);
        }
    }
}

/// Upstreams by (environment, name).
#[derive(Debug, Default)]
pub struct UpstreamCache {
    upstreams: RwLock<ByEnv<Arc<Upstream>>>,
}

impl UpstreamCache {
    pub fn get(&self, env: &str, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams.read().expect("upstream cache lock").get(env)?.get(name).cloned()
    }

    pub fn put(&self, u: Upstream) {
        let mut upstreams = self.upstreams.write().expect("upstream cache lock");
        upstreams.entry(u.env.clone()).or_default().insert(u.name.clone(), Arc::new(u));
    }

    pub fn all(&self) -> Vec<Arc<Upstream>> {
        let upstreams = self.upstreams.read().expect("upstream cache lock");
        let mut v: Vec<_> = upstreams.values().flat_map(|by_name| by_name.values().cloned()).collect();
        v.sort_by(|a, b| (&a.env, &a.name).cmp(&(&b.env, &b.name)));
        v
    }
}

/// Active gateway faults and their per-token request counters.
#[derive(Debug, Default)]
pub struct FaultState {
    faults: RwLock<Vec<Arc<Fault>>>,
    /// (fault id, token id) → requests seen.
    counters: std::sync::Mutex<HashMap<(String, String), u64>>,
}

impl FaultState {
    pub fn set(&self, faults: Vec<Fault>) {
        *self.faults.write().expect("fault lock") = faults.into_iter().map(Arc::new).collect();
        self.counters.lock().expect("fault counter lock").clear();
    }

    pub fn add(&self, fault: Fault) {
        self.faults.write().expect("fault lock").push(Arc::new(fault));
    }

    pub fn all(&self) -> Vec<Arc<Fault>> {
        self.faults.read().expect("fault lock").clone()
    }

    /// Faults that apply to a request of `token_id` to `upstream` in `env`.
    pub fn matching(&self, env: &str, upstream: &str, token_id: &str) -> Vec<Arc<Fault>> {
        self.faults
            .read()
            .expect("fault lock")
            .iter()
            .filter(|f| f.env == env && f.upstream == upstream && f.token_id.as_deref().is_none_or(|t| t == token_id))
            .cloned()
            .collect()
    }

    /// Counts one request of `token_id` under `fault`; returns the count including this one.
    pub fn count(&self, fault: &Fault, token_id: &str) -> u64 {
        let mut c = self.counters.lock().expect("fault counter lock");
        let n = c.entry((fault.id.clone(), token_id.to_owned())).or_insert(0);
        *n += 1;
        *n
    }
}

/// Environments by name (they change rarely and are read on every mint).
#[derive(Debug, Default)]
pub struct EnvCache {
    envs: RwLock<HashMap<String, Arc<Environment>>>,
}

impl EnvCache {
    pub fn insert(&self, env: Environment) {
        self.envs.write().expect("env cache lock").insert(env.name.clone(), Arc::new(env));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Environment>> {
        self.envs.read().expect("env cache lock").get(name).cloned()
    }
}
