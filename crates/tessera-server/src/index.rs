//! The in-memory validation index: every live token by id and by secret hash, with use
//! counts and last-use times kept in atomics.
//!
//! Validation (admin authentication now; introspection and the gateway later) answers from
//! here without touching the database. Every change this server commits is written through to
//! the index before the API call returns, so a revocation takes effect for the very next
//! request. Use counts and last-use times are flushed to the store in batches by
//! [`crate::background`]: a crash loses at most one flush interval of usage data, never a
//! change of state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tessera_core::{InactiveReason, Token, TokenHash, TokenLife};
use tessera_store::UsageUpdate;

#[derive(Debug, Default)]
struct Usage {
    uses: AtomicU64,
    /// The part of `uses` already written to the store (or loaded from it).
    flushed: AtomicU64,
    /// Microseconds since the epoch; 0 when never used.
    last_used: AtomicI64,
    dirty: AtomicBool,
}

/// One token in the index.
#[derive(Debug)]
pub struct Entry {
    token: Token,
    usage: Arc<Usage>,
}

impl Entry {
    /// The token's record as last loaded or written through. Its use count and last-use time
    /// may lag behind the live counters: read those through [`snapshot`](Self::snapshot) or
    /// [`life`](Self::life). Borrowing it is what keeps the hot paths free of copies.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The token with its live use count and last-use time.
    pub fn snapshot(&self) -> Token {
        let mut t = self.token.clone();
        (t.uses, t.last_used_at) = self.live_usage();
        t
    }

    /// The lifecycle facts with the live use count and last-use time (no copy of the record).
    pub fn life(&self) -> TokenLife {
        let mut life = self.token.life();
        (life.uses, life.last_used_at) = self.live_usage();
        life
    }

    fn live_usage(&self) -> (u64, Option<DateTime<Utc>>) {
        let uses = self.token.uses.max(self.usage.uses.load(Ordering::Relaxed));
        let last = self.usage.last_used.load(Ordering::Relaxed);
        let last_used_at = if last > 0 {
            self.token.last_used_at.max(DateTime::from_timestamp_micros(last))
        } else {
            self.token.last_used_at
        };
        (uses, last_used_at)
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Arc<Entry>>,
    by_hash: HashMap<TokenHash, String>,
}

/// Live tokens by id and hash. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct TokenIndex {
    inner: RwLock<Inner>,
}

impl TokenIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a token, keeping the use counters of an existing entry.
    pub fn upsert(&self, hash: Option<TokenHash>, token: Token) {
        let mut inner = self.inner.write().expect("index lock poisoned");
        let usage = match inner.by_id.get(&token.id) {
            Some(existing) => existing.usage.clone(),
            None => Arc::new(Usage {
                uses: AtomicU64::new(token.uses),
                flushed: AtomicU64::new(token.uses),
                last_used: AtomicI64::new(token.last_used_at.map_or(0, |t| t.timestamp_micros())),
                dirty: AtomicBool::new(false),
            }),
        };
        if let Some(hash) = hash {
            inner.by_hash.insert(hash, token.id.clone());
        }
        inner.by_id.insert(token.id.clone(), Arc::new(Entry { token, usage }));
    }

    /// Lets `hash` (of a verified JWT's text) find the indexed token `id`.
    pub fn alias(&self, hash: TokenHash, id: &str) {
        let mut inner = self.inner.write().expect("index lock poisoned");
        if inner.by_id.contains_key(id) {
            inner.by_hash.insert(hash, id.to_owned());
        }
    }

    /// Replaces the record of a token already indexed (after renew, revoke, rotate). Tokens
    /// not in the index are left out: they will be loaded on their next use.
    pub fn refresh(&self, token: Token) {
        let mut inner = self.inner.write().expect("index lock poisoned");
        if let Some(existing) = inner.by_id.get(&token.id) {
            let usage = existing.usage.clone();
            inner.by_id.insert(token.id.clone(), Arc::new(Entry { token, usage }));
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.inner.read().expect("index lock poisoned").by_id.get(id).cloned()
    }

    pub fn get_by_hash(&self, hash: &TokenHash) -> Option<Arc<Entry>> {
        let inner = self.inner.read().expect("index lock poisoned");
        inner.by_hash.get(hash).and_then(|id| inner.by_id.get(id)).cloned()
    }

    /// Ids of every indexed token.
    pub fn ids(&self) -> Vec<String> {
        self.inner.read().expect("index lock poisoned").by_id.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("index lock poisoned").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the lifecycle rules at `now` and, when the token is active, counts one use.
    /// Returns the use count including this use; the record is not copied.
    pub fn use_token(&self, entry: &Entry, now: DateTime<Utc>) -> Result<u64, InactiveReason> {
        let life = entry.life();
        life.check(now)?;
        let before = entry.usage.uses.fetch_add(1, Ordering::AcqRel);
        if life.max_uses.is_some_and(|max| before >= max) {
            entry.usage.uses.fetch_sub(1, Ordering::AcqRel);
            return Err(InactiveReason::Exhausted);
        }
        entry.usage.last_used.fetch_max(now.timestamp_micros(), Ordering::AcqRel);
        entry.usage.dirty.store(true, Ordering::Release);
        Ok(life.uses.max(before + 1))
    }

    /// Usage observed since the last call, to be written to the store: the uses not yet
    /// written (they add to the stored count, so replicas' counts add up) and the last use.
    pub fn take_usage(&self) -> Vec<UsageUpdate> {
        let inner = self.inner.read().expect("index lock poisoned");
        inner
            .by_id
            .values()
            .filter(|e| e.usage.dirty.swap(false, Ordering::AcqRel))
            .filter_map(|e| {
                let last = DateTime::from_timestamp_micros(e.usage.last_used.load(Ordering::Acquire))?;
                let uses = e.usage.uses.load(Ordering::Acquire);
                let flushed = e.usage.flushed.swap(uses, Ordering::AcqRel);
                Some(UsageUpdate {
                    token_id: e.token.id.clone(),
                    new_uses: uses.saturating_sub(flushed),
                    last_used_at: last,
                })
            })
            .collect()
    }

    /// Puts usage updates back as pending (after a failed flush).
    pub fn mark_dirty(&self, updates: &[UsageUpdate]) {
        let inner = self.inner.read().expect("index lock poisoned");
        for u in updates {
            if let Some(e) = inner.by_id.get(&u.token_id) {
                e.usage.flushed.fetch_sub(u.new_uses, Ordering::AcqRel);
                e.usage.dirty.store(true, Ordering::Release);
            }
        }
    }

    /// Drops tokens that are finished (revoked, expired, past grace) and have no pending
    /// usage; their answers come from the store from then on.
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        let mut inner = self.inner.write().expect("index lock poisoned");
        let finished: Vec<String> = inner
            .by_id
            .values()
            .filter(|e| e.token.is_finished(now) && !e.usage.dirty.load(Ordering::Acquire))
            .map(|e| e.token.id.clone())
            .collect();
        for id in &finished {
            inner.by_id.remove(id);
        }
        let Inner { by_id, by_hash } = &mut *inner;
        by_hash.retain(|_, id| by_id.contains_key(id));
        finished.len()
    }
}
