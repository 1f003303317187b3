//! Shared server state: the store, the key-derived hasher, the validation index.

use std::ops::Deref;
use std::sync::Arc;

use tessera_core::SecretHasher;
use tessera_store::Store;

use crate::index::TokenIndex;

/// Cheap to clone; handed to every request handler.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    pub index: TokenIndex,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, hasher: SecretHasher) -> Self {
        Self(Arc::new(Inner { store, hasher, index: TokenIndex::new() }))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
