//! Audit events and the hash chain that makes the audit log tamper-evident.
//!
//! Entry `n` stores `hash_n = SHA-256(canonical(seq, at, event) ‖ hash_{n-1})`, with 32 zero
//! bytes before the first entry. The canonical form is length-prefixed binary, so no two
//! different entries encode alike and no JSON formatting choice can change a hash. Editing any
//! field, deleting or reordering rows breaks the chain at that entry; the store also keeps the
//! head (last seq and hash) so that truncating the tail is detected too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The hash "before" the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Names of audited actions.
pub mod actions {
    pub const SERVER_INIT: &str = "server.init";
    pub const ENVIRONMENT_CREATE: &str = "environment.create";
    pub const CLIENT_CREATE: &str = "client.create";
    pub const CLIENT_UPDATE: &str = "client.update";
    pub const ENVIRONMENT_UPDATE: &str = "environment.update";
    pub const TOKEN_CREATE: &str = "token.create";
    pub const TOKEN_ROTATE: &str = "token.rotate";
    pub const TOKEN_RENEW: &str = "token.renew";
    pub const TOKEN_REVOKE: &str = "token.revoke";
    pub const CLIENT_DISABLE: &str = "client.disable";
    pub const CLIENT_ENABLE: &str = "client.enable";
    pub const KEY_CREATE: &str = "key.create";
    pub const KEY_ROTATE: &str = "key.rotate";
    pub const KEY_DROP: &str = "key.drop";
    pub const KEY_REWRAP: &str = "key.rewrap";
    pub const SYSTEM_KEY_CREATE: &str = "system.key_create";
    pub const SECRET_SET: &str = "secret.set";
    pub const SECRET_ROTATE: &str = "secret.rotate";
    pub const SECRET_ROTATE_FAILED: &str = "secret.rotate_failed";
    pub const SECRET_REVEAL: &str = "secret.reveal";
    pub const UPSTREAM_PUT: &str = "upstream.put";
    pub const FAULT_ADD: &str = "gateway.fault_add";
    pub const FAULT_CLEAR: &str = "gateway.fault_clear";
    pub const RUN_START: &str = "run.start";
    pub const RUN_FINISH: &str = "run.finish";
    pub const RUN_REAP: &str = "run.reap";
}

/// What happened, by whom, to what. Never holds a secret: tokens appear by public id only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub action: String,
    /// Public id of the token that made the change (or `system`).
    pub actor: String,
    pub env: Option<String>,
    /// Public id or name of the object changed.
    pub target: Option<String>,
    pub details: BTreeMap<String, String>,
}

impl AuditEvent {
    pub fn new(action: &str, actor: &str) -> Self {
        Self { action: action.to_owned(), actor: actor.to_owned(), env: None, target: None, details: BTreeMap::new() }
    }

    pub fn env(mut self, env: &str) -> Self {
        self.env = Some(env.to_owned());
        self
    }

    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_owned());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// A stored audit entry: the event, its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// 1, 2, 3 … with no gaps.
    pub seq: u64,
    /// Microsecond precision; the hash covers the microseconds since the epoch.
    pub at: DateTime<Utc>,
    pub event: AuditEvent,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn put_opt(h: &mut Sha256, v: Option<&str>) {
    match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            put(h, s.as_bytes());
        }
    }
}

/// The chain hash of an entry with these contents following `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: u64, at: DateTime<Utc>, event: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tessera-audit-v1");
    h.update(seq.to_be_bytes());
    h.update(at.timestamp_micros().to_be_bytes());
    put(&mut h, event.action.as_bytes());
    put(&mut h, event.actor.as_bytes());
    put_opt(&mut h, event.env.as_deref());
    put_opt(&mut h, event.target.as_deref());
    h.update((event.details.len() as u64).to_be_bytes());
    for (k, v) in &event.details {
        put(&mut h, k.as_bytes());
        put(&mut h, v.as_bytes());
    }
    h.update(prev);
    h.finalize().into()
}

/// Truncates to whole microseconds, the precision the chain (and the store) keeps.
pub fn audit_time(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).expect("a valid instant stays valid")
}

/// Appends events to a chain: keeps the last seq and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl ChainHead {
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS_HASH }
    }

    /// The entry that follows this head, and advances the head past it.
    pub fn append(&mut self, at: DateTime<Utc>, event: AuditEvent) -> AuditEntry {
        let at = audit_time(at);
        let seq = self.seq + 1;
        let hash = entry_hash(&self.hash, seq, at, &event);
        let entry = AuditEntry { seq, at, event, prev_hash: self.hash, hash };
        self.seq = seq;
        self.hash = hash;
        entry
    }
}

/// Where and why a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("audit entry {seq}: expected sequence number {expected} (an entry is missing or out of order)")]
    Gap { seq: u64, expected: u64 },
    #[error(
        "audit entry {seq}: previous-hash link does not match entry {prev} (an earlier entry was changed or removed)"
    )]
    BrokenLink { seq: u64, prev: u64 },
    #[error("audit entry {seq}: content does not match its hash (the entry was edited)")]
    HashMismatch { seq: u64 },
    #[error(
        "audit log ends at entry {last} but its recorded head is entry {head} (entries were removed from the end)"
    )]
    Truncated { last: u64, head: u64 },
    #[error("audit log continues past its recorded head {head} to entry {last} (entries were added outside Tessera)")]
    HeadMismatch { last: u64, head: u64 },
}

impl ChainBreak {
    /// Sequence number of the first bad entry.
    pub fn first_bad_seq(&self) -> u64 {
        match *self {
            ChainBreak::Gap { seq, .. } | ChainBreak::BrokenLink { seq, .. } | ChainBreak::HashMismatch { seq } => seq,
            ChainBreak::Truncated { last, .. } => last + 1,
            ChainBreak::HeadMismatch { head, .. } => head + 1,
        }
    }
}

/// Verifies a chain entry by entry, in order, without holding it in memory.
#[derive(Debug)]
pub struct ChainVerifier {
    head: ChainHead,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self { head: ChainHead::genesis() }
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let expected = self.head.seq + 1;
        if entry.seq != expected {
            return Err(ChainBreak::Gap { seq: entry.seq, expected });
        }
        if entry.prev_hash != self.head.hash {
            return Err(ChainBreak::BrokenLink { seq: entry.seq, prev: self.head.seq });
        }
        let computed = entry_hash(&entry.prev_hash, entry.seq, entry.at, &entry.event);
        if computed != entry.hash {
            return Err(ChainBreak::HashMismatch { seq: entry.seq });
        }
        self.head = ChainHead { seq: entry.seq, hash: entry.hash };
        Ok(())
    }

    /// Ends verification against the head the store recorded; returns the number of entries.
    pub fn finish(self, recorded: &ChainHead) -> Result<u64, ChainBreak> {
        let last = self.head.seq;
        if last < recorded.seq {
            return Err(ChainBreak::Truncated { last, head: recorded.seq });
        }
        if last > recorded.seq || self.head.hash != recorded.hash {
            return Err(ChainBreak::HeadMismatch { last, head: recorded.seq });
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> (Vec<AuditEntry>, ChainHead) {
        let mut head = ChainHead::genesis();
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let entries = (0..n)
            .map(|i| {
                let event = AuditEvent::new(actions::TOKEN_CREATE, "tok_root")
                    .env("qa")
                    .target(&format!("tok_{i}"))
                    .detail("scopes", "a b");
                head.append(start + chrono::TimeDelta::milliseconds(i as i64), event)
            })
            .collect();
        (entries, head)
    }

    fn verify(entries: &[AuditEntry], head: &ChainHead) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for e in entries {
            v.push(e)?;
        }
        v.finish(head)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (entries, head) = chain(50);
        assert_eq!(verify(&entries, &head), Ok(50));
        assert_eq!(verify(&[], &ChainHead::genesis()), Ok(0));
    }

    #[test]
    fn every_kind_of_tampering_names_the_first_bad_entry() {
        let (entries, head) = chain(10);
        let mut edited = entries.clone();
        edited[4].event.actor = "tok_mallory".into();
        assert_eq!(verify(&edited, &head), Err(ChainBreak::HashMismatch { seq: 5 }));

        let mut detail = entries.clone();
        detail[2].event.details.insert("scopes".into(), "a b c".into());
        assert_eq!(verify(&detail, &head).unwrap_err().first_bad_seq(), 3);

        let mut rehashed = entries.clone();
        rehashed[4].event.actor = "tok_mallory".into();
        rehashed[4].hash = entry_hash(&rehashed[4].prev_hash, 5, rehashed[4].at, &rehashed[4].event);
        assert_eq!(verify(&rehashed, &head), Err(ChainBreak::BrokenLink { seq: 6, prev: 5 }));

        let mut deleted = entries.clone();
        deleted.remove(3);
        assert_eq!(verify(&deleted, &head), Err(ChainBreak::Gap { seq: 5, expected: 4 }));

        let truncated = &entries[..9];
        assert_eq!(verify(truncated, &head), Err(ChainBreak::Truncated { last: 9, head: 10 }));
        assert_eq!(verify(truncated, &head).unwrap_err().first_bad_seq(), 10);

        let mut moved = entries.clone();
        moved[7].at += chrono::TimeDelta::microseconds(1);
        assert_eq!(verify(&moved, &head), Err(ChainBreak::HashMismatch { seq: 8 }));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let a = AuditEvent::new("ab", "c");
        let b = AuditEvent::new("a", "bc");
        assert_ne!(entry_hash(&GENESIS_HASH, 1, at, &a), entry_hash(&GENESIS_HASH, 1, at, &b));
        let none = AuditEvent::new("x", "y");
        let empty = AuditEvent::new("x", "y").env("");
        assert_ne!(entry_hash(&GENESIS_HASH, 1, at, &none), entry_hash(&GENESIS_HASH, 1, at, &empty));
    }
}
