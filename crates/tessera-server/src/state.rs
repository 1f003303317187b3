//! Shared server state: the store, key-derived secrets, and the in-memory caches that keep
//! validation off the database (tokens, clients, signing keys).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_core::{Client, MasterKey, SecretHasher};
use tessera_store::Store;

use crate::index::TokenIndex;
use crate::keys::Keyring;
use crate::metrics::Metrics;
use crate::seal::Sealer;

/// Cheap to clone; handed to every request handler.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    pub key_sealer: Sealer,
    pub index: TokenIndex,
    pub clients: ClientCache,
    pub keyring: Keyring,
    /// Serialises key generation and rotation.
    pub key_lock: tokio::sync::Mutex<()>,
    pub metrics: Metrics,
    /// Base URL issuers are derived from: `{public_url}/env/{name}`.
    pub public_url: String,
    /// Signing keys older than this are rotated by the background task.
    pub key_rotation_period: Duration,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, master: &MasterKey, public_url: String, key_rotation_period: Duration) -> Self {
        Self(Arc::new(Inner {
            store,
            hasher: SecretHasher::new(master),
            key_sealer: Sealer::new(master, "signing-keys"),
            index: TokenIndex::new(),
            clients: ClientCache::default(),
            keyring: Keyring::default(),
            key_lock: tokio::sync::Mutex::new(()),
            metrics: Metrics::new(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            key_rotation_period,
        }))
    }

    /// The issuer identifier of environment `env`.
    pub fn issuer(&self, env: &str) -> String {
        format!("{}/env/{env}", self.public_url)
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
