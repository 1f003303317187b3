//! The [`Store`] trait: what the server needs from persistence, shaped so that a PostgreSQL
//! implementation can follow without changing callers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tessera_core::audit::ChainHead;
use tessera_core::upstream::{Fault, SecretConfig, SecretVersion, Upstream};
use tessera_core::{AuditEntry, AuditEvent, Client, Environment, NewToken, Run, Token, TokenHash};

/// A secret version as stored: metadata, the sealed data key and the sealed value.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecretVersion {
    pub meta: SecretVersion,
    pub sealed_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for StoredSecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecretVersion").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// One proxied request, recorded in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayUse {
    pub at: DateTime<Utc>,
    pub env: String,
    pub upstream: String,
    pub token_id: String,
    pub run_id: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub latency_us: u64,
}

/// New sealed forms of everything the master key protects (see `Change::Rewrap`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Resealed {
    pub system: Vec<(String, Vec<u8>)>,
    pub signing: Vec<(String, Vec<u8>)>,
    /// (env, name, version, sealed data key)
    pub deks: Vec<(String, String, u32, Vec<u8>)>,
    pub master_fingerprint: String,
}

impl std::fmt::Debug for Resealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resealed")
            .field("system", &self.system.len())
            .field("signing", &self.signing.len())
            .field("deks", &self.deks.len())
            .finish()
    }
}

/// A JWT signing key as stored: the private key only in sealed form.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub env: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// `next` (published, not yet signing), `current` (signing), `retired` (published only).
    pub state: String,
    /// Nonce and ciphertext of the private key under the key-sealing key.
    pub sealed_key: Vec<u8>,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("env", &self.env)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("sealed_key", &"sealed")
            .finish_non_exhaustive()
    }
}

use crate::error::Result;

/// One state change. Conditions that make a change invalid at commit time (rotating a token
/// that was revoked meanwhile) fail the whole [`WriteUnit`] with `Conflict`.
#[derive(Debug, Clone)]
pub enum Change {
    CreateEnvironment(Environment),
    CreateClient(Client),
    CreateToken(NewToken),
    /// Supersede `old_id` (valid until `grace_until`) by `new`. Fails when `old_id` is revoked
    /// or already superseded.
    RotateToken {
        old_id: String,
        grace_until: DateTime<Utc>,
        new: NewToken,
    },
    /// Move `id`'s expiry. Fails when the token is revoked or superseded.
    RenewToken {
        id: String,
        expires_at: DateTime<Utc>,
    },
    /// Revoke every listed token that is not revoked yet (already revoked ones are left as
    /// they are: revocation is idempotent).
    RevokeTokens {
        ids: Vec<String>,
        at: DateTime<Utc>,
        reason: Option<String>,
    },
    /// Enable or disable a client.
    SetClientDisabled {
        id: String,
        disabled: bool,
    },
    AddSigningKey(StoredKey),
    /// Key rotation for one environment and algorithm: `promote` (next) starts signing,
    /// `retire` (current) stays published until `publish_until`, `next` is the new
    /// pre-published key. Fails when the keys are not in the expected states.
    RotateSigningKeys {
        promote: String,
        retire: Option<String>,
        publish_until: DateTime<Utc>,
        next: StoredKey,
        at: DateTime<Utc>,
    },
    /// Remove a retired key from the keyring (its last token has expired).
    DropSigningKey {
        kid: String,
    },
    /// Store a data key sealed under the master key (first start).
    SetSystemKey {
        purpose: String,
        sealed: Vec<u8>,
        master_fingerprint: String,
    },
    /// Create or update a secret's configuration.
    PutSecretConfig(SecretConfig),
    /// Add a version that becomes current; the former current version stays valid as
    /// `previous` until `previous_valid_until`, older previous versions are retired.
    PutSecretVersion {
        version: StoredSecretVersion,
        previous_valid_until: DateTime<Utc>,
    },
    /// Replace every sealed data key at once (master key rewrap).
    Rewrap(Resealed),
    /// Create or replace an upstream.
    PutUpstream(Upstream),
    AddFault(Fault),
    /// Remove faults (all, or those of one environment / upstream).
    ClearFaults {
        env: Option<String>,
        upstream: Option<String>,
    },
    /// Append gateway usage rows (no audit: they are not changes of state).
    RecordGatewayUse(Vec<GatewayUse>),
    CreateRun(Run),
    /// Replace an environment's policy and protection.
    UpdateEnvironment(Environment),
    /// Replace a client's description, scopes, token format and algorithm (not its secret).
    UpdateClient(Client),
    /// Record a heartbeat of a running run.
    RunHeartbeat {
        id: String,
        at: DateTime<Utc>,
    },
    /// End a run (`finished` or `reaped`). Fails when it already ended.
    EndRun {
        id: String,
        at: DateTime<Utc>,
        exit_code: Option<i32>,
        status: String,
        tokens_revoked: u32,
    },
    /// Count tokens minted for a run after it started (JWT refreshes).
    AddRunTokens {
        id: String,
        count: u32,
    },
}

/// Changes and the audit events describing them: committed together or not at all.
#[derive(Debug, Clone, Default)]
pub struct WriteUnit {
    pub changes: Vec<Change>,
    pub audit: Vec<AuditEvent>,
}

impl WriteUnit {
    pub fn new(change: Change, event: AuditEvent) -> Self {
        Self { changes: vec![change], audit: vec![event] }
    }
}

/// What a committed [`WriteUnit`] produced.
#[derive(Debug, Clone, Default)]
pub struct CommitOutcome {
    pub audit: Vec<AuditEntry>,
    /// Ids of tokens that `RevokeTokens` changes actually revoked (not those already revoked).
    pub revoked: Vec<String>,
}

/// Uses observed in memory since the last flush, written in batches. `new_uses` is added to
/// the stored count (so several replicas' counts add up); `last_used_at` only ever moves the
/// stored value forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageUpdate {
    pub token_id: String,
    pub new_uses: u64,
    pub last_used_at: DateTime<Utc>,
}

/// What kind of record a committed change touched (see [`Store::changes_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A token, by id.
    Token,
    /// A client, by id.
    Client,
    /// An environment, by name.
    Environment,
    /// Signing keys (of an environment, or all when the key is empty).
    SigningKeys,
    /// A secret's configuration or versions, by `env/name`.
    Secret,
    /// An upstream, by `env/name`.
    Upstream,
    /// Gateway fault rules.
    Faults,
    /// Every sealed key was re-sealed under a new master key.
    MasterKey,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Token => "token",
            ChangeKind::Client => "client",
            ChangeKind::Environment => "environment",
            ChangeKind::SigningKeys => "signing_keys",
            ChangeKind::Secret => "secret",
            ChangeKind::Upstream => "upstream",
            ChangeKind::Faults => "faults",
            ChangeKind::MasterKey => "master_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "token" => ChangeKind::Token,
            "client" => ChangeKind::Client,
            "environment" => ChangeKind::Environment,
            "signing_keys" => ChangeKind::SigningKeys,
            "secret" => ChangeKind::Secret,
            "upstream" => ChangeKind::Upstream,
            "faults" => ChangeKind::Faults,
            "master_key" => ChangeKind::MasterKey,
            _ => return None,
        })
    }
}

/// One entry of the change feed: which record a commit touched, and which server process
/// (`origin`, see [`Store::origin`]) committed it. Sequence numbers are gap-free and in commit
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub seq: u64,
    pub kind: ChangeKind,
    pub key: String,
    pub origin: String,
}

/// Which tokens to list. All filters are optional and combine with AND.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub env: Option<String>,
    pub client_id: Option<String>,
    pub run_id: Option<String>,
    /// Only tokens that are not revoked and not past `expires_at` at this instant.
    pub unexpired_at: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// Tessera's persistence.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Applies `unit` in one transaction with its audit entries appended to the chain.
    async fn commit(&self, unit: WriteUnit) -> Result<CommitOutcome>;
    /// Applies usage observations (no audit: they are not changes of state).
    async fn record_usage(&self, updates: Vec<UsageUpdate>) -> Result<()>;

    async fn environment(&self, name: &str) -> Result<Option<Environment>>;
    async fn environments(&self) -> Result<Vec<Environment>>;
    async fn client(&self, id: &str) -> Result<Option<Client>>;
    async fn clients(&self) -> Result<Vec<Client>>;
    async fn token(&self, id: &str) -> Result<Option<Token>>;
    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>>;
    /// Newest first.
    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>>;
    /// Every token that may still validate at `now` (not revoked, not past expiry or grace),
    /// with its hash: what the server's in-memory validation index is built from.
    async fn live_tokens(&self, now: DateTime<Utc>) -> Result<Vec<(Option<TokenHash>, Token)>>;
    /// True when no token was ever stored (first start).
    async fn is_empty(&self) -> Result<bool>;

    /// Entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// The recorded head of the chain (seq 0 and the genesis hash when empty).
    async fn audit_head(&self) -> Result<ChainHead>;
    /// Every signing key of every environment (sealed).
    async fn signing_keys(&self) -> Result<Vec<StoredKey>>;
    /// A data key sealed under the master key, and that master key's fingerprint.
    async fn system_key(&self, purpose: &str) -> Result<Option<(Vec<u8>, String)>>;
    async fn secret_config(&self, env: &str, name: &str) -> Result<Option<SecretConfig>>;
    /// Secret configurations, of one environment or all.
    async fn secret_configs(&self, env: Option<&str>) -> Result<Vec<SecretConfig>>;
    /// Versions of one secret (or of all secrets when `name` is `None`) in `env` (or all
    /// environments when `None`), newest first.
    async fn secret_versions(&self, env: Option<&str>, name: Option<&str>) -> Result<Vec<StoredSecretVersion>>;
    async fn upstreams(&self) -> Result<Vec<Upstream>>;
    async fn faults(&self) -> Result<Vec<Fault>>;
    /// The most recent gateway uses, newest first.
    async fn gateway_uses(&self, run_id: Option<&str>, limit: u32) -> Result<Vec<GatewayUse>>;
    async fn run(&self, id: &str) -> Result<Option<Run>>;
    /// Runs, newest first, filtered by environment and label.
    async fn runs(&self, env: Option<&str>, label: Option<&str>, limit: u32) -> Result<Vec<Run>>;
    /// Running runs whose last heartbeat is older than their timeout at `now`.
    async fn stale_runs(&self, now: DateTime<Utc>) -> Result<Vec<Run>>;
    /// Cheap liveness check of the database.
    async fn ping(&self) -> Result<()>;

    /// This process's identity in the change feed.
    fn origin(&self) -> &str;
    /// Whether several server processes may share this store (PostgreSQL): then caches follow
    /// the change feed and background work needs leadership.
    fn is_shared(&self) -> bool;
    /// Change records with `seq > after`, oldest first, at most `limit` (empty when the store
    /// is not shared).
    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>>;
    /// The sequence number of the newest change record (0 when none).
    async fn change_seq(&self) -> Result<u64>;
    /// Deletes change records older than the newest `keep`; returns how many. A replica that
    /// falls further behind than that reloads its caches instead (it sees a gap).
    async fn prune_changes(&self, keep: u64) -> Result<u64>;
    /// Announces new change records as they are committed by any process: the value is the
    /// newest announced sequence number; it also changes (to the same value) after the
    /// announcement channel reconnects, so that listeners catch up. `None` when not shared.
    fn change_notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>>;
    /// Takes or keeps leadership of background work; true while this process leads. With a
    /// store that is not shared, always true.
    async fn try_lead(&self) -> Result<bool>;
}
