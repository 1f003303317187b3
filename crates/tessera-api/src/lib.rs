//! Wire types of Tessera's HTTP API: the JSON bodies the server accepts and returns.
//!
//! Shared by `tessera-server` (which produces them) and `tessera-client` (which consumes
//! them) so the two cannot drift apart. Durations travel as strings in the CLI notation
//! (`1h30m`); instants as RFC 3339 UTC.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// RFC 9457 problem details: every error the API returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:tessera:problem:<slug>`, stable for programs to match on.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// `POST /v1/environments`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    #[serde(default)]
    pub protected: bool,
}

/// An environment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentView {
    pub name: String,
    pub default_ttl: String,
    pub max_ttl: String,
    pub idle_ttl: Option<String>,
    pub rotation_period: Option<String>,
    pub max_uses: Option<u64>,
    pub protected: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentList {
    pub environments: Vec<EnvironmentView>,
}

/// `POST /v1/clients`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Environment name → scopes the client's tokens may carry there.
    pub scopes: BTreeMap<String, Vec<String>>,
    /// `opaque` (default) or `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_format: Option<String>,
    /// `EdDSA` (default), `ES256` or `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

/// A client as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    pub id: String,
    pub description: Option<String>,
    pub scopes: BTreeMap<String, Vec<String>>,
    pub token_format: String,
    pub alg: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// Answer to `POST /v1/clients`: the client and its secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedClient {
    pub client: ClientView,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub env: String,
    pub client: String,
    /// Defaults to every scope the client may hold in `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `POST /v1/test-tokens`: a token with explicit times, e.g. already expired or not yet
/// valid, to test how APIs reject it. Refused in protected environments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTestToken {
    pub env: String,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `iat` and creation time (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// Default: `issued_at` + the environment's default TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A token as the API shows it: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub env: String,
    pub client: String,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub format: String,
    pub labels: BTreeMap<String, String>,
    pub run_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub idle_ttl: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub max_uses: Option<u64>,
    pub uses: u64,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub rotated_from: Option<String>,
    pub superseded_by: Option<String>,
    pub grace_until: Option<DateTime<Utc>>,
    /// `active` or `inactive`.
    pub state: String,
    /// Why the token is inactive: `expired`, `idle_expired`, `revoked`, `exhausted`, `rotated`.
    pub inactive_reason: Option<String>,
    /// Seconds of life left (0 when inactive).
    pub remaining_s: u64,
}

/// Answer to token creation and rotation: the new token's secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenView,
    /// What the server adjusted, e.g. a TTL clamped to the environment's `max_ttl`.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// `POST /v1/tokens/{id}/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long the old token stays valid (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// Answer to rotation: the new token (shown once) and the old one's new state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedToken {
    pub token: String,
    pub info: TokenView,
    pub previous: TokenView,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `POST /v1/tokens/{id}/renew`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewToken {
    /// New lifetime from now (default: the environment's default TTL), capped at `max_ttl`
    /// counted from the token's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// `POST /v1/tokens/{id}/revoke`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer to renew and revoke.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenChange {
    pub info: TokenView,
    /// False when the call changed nothing (e.g. revoking a revoked token).
    pub changed: bool,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `POST /v1/tokens/revoke`: revoke every active token matching a selector.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRevoke {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Count and list, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkRevoked {
    pub count: usize,
    pub tokens: Vec<String>,
    pub dry_run: bool,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntryView {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub env: Option<String>,
    pub target: Option<String>,
    pub details: BTreeMap<String, String>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditList {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` to get the next page; absent at the end.
    pub next_after: Option<u64>,
}

/// `GET /v1/audit/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    pub head_seq: u64,
    pub head_hash: String,
    /// The first entry that does not verify.
    pub first_bad_seq: Option<u64>,
    pub error: Option<String>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// `/readyz` only: `leader` when this server runs the background work (rotation, the run
    /// reaper), `standby` when another replica does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A JWT signing key (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub kid: String,
    pub env: String,
    pub alg: String,
    /// `next` (published, not signing yet), `current` (signing), `retired` (published only).
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// `POST /v1/keys/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    pub env: String,
    /// One algorithm; default: every algorithm the environment has keys for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedKey {
    pub alg: String,
    /// The key that signs from now on.
    pub current: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedKeys {
    pub env: String,
    pub rotated: Vec<RotatedKey>,
}

/// An RFC 7662 introspection answer (plus Tessera's `env`, and `inactive_reason` for admins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_reason: Option<String>,
}

/// `PUT /v1/secrets/{env}/{name}`: a new version (the value travels only in this body).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    pub value: String,
    /// Rotation hook: executable and arguments; prints the new value on stdout, receives the
    /// old one on stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    /// How long the previous version stays valid after a new one (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// The value expires (e.g. a sandbox key with a fixed lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecret").field("value", &"redacted").field("hook", &self.hook).finish_non_exhaustive()
    }
}

/// Metadata of one secret version (never the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionView {
    pub env: String,
    pub name: String,
    pub version: u32,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// `current`, `previous` (still valid during the overlap) or `retired`.
    pub state: String,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretVersionList {
    pub versions: Vec<SecretVersionView>,
}

/// One secret in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretView {
    pub env: String,
    pub name: String,
    pub current: Option<SecretVersionView>,
    pub has_hook: bool,
    pub rotation_period: Option<String>,
    pub overlap: String,
    /// Past its rotation period or expiry.
    pub due: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretList {
    pub secrets: Vec<SecretView>,
}

/// `GET /v1/secrets/{env}/{name}` (needs `tessera:env:ENV:reveal`).
#[derive(Clone, Serialize, Deserialize)]
pub struct RevealedSecret {
    pub env: String,
    pub name: String,
    pub version: u32,
    pub value: String,
}

impl std::fmt::Debug for RevealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevealedSecret").field("env", &self.env).field("name", &self.name).finish_non_exhaustive()
    }
}

/// `POST /v1/upstreams` (creates or replaces).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUpstream {
    pub name: String,
    pub env: String,
    pub url: String,
    pub secret: String,
    /// `header:NAME=TEMPLATE` (TEMPLATE with `{secret}`) or `query:NAME`; default
    /// `header:Authorization=Bearer {secret}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamView {
    pub name: String,
    pub env: String,
    pub url: String,
    pub secret: String,
    pub inject: String,
    pub allow_paths: Vec<String>,
    pub allow_methods: Vec<String>,
    pub timeout: String,
    /// Where test code sends requests: `{public_url}/gw/{name}`.
    pub gateway_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamList {
    pub upstreams: Vec<UpstreamView>,
}

/// `POST /v1/gateway/faults`: exactly one of `fail_after`, `revoke_after`, `rotate_after`,
/// `latency`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFault {
    pub env: String,
    pub upstream: String,
    /// Only this token (`tok_…`); default: every token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_after: Option<u64>,
    /// Status of `fail_after` answers (default 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultView {
    pub id: String,
    pub env: String,
    pub upstream: String,
    pub token: Option<String>,
    /// `fail_after`, `revoke_after`, `rotate_after` or `latency`.
    pub kind: String,
    /// `n`, `status`, or a duration, by kind.
    pub detail: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultList {
    pub faults: Vec<FaultView>,
}

/// `POST /v1/keys/rewrap`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrap {
    /// The new master key (64 hex characters). Omitted: the server generates one and writes
    /// it to its key file (only when the master key is file-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_master_key: Option<String>,
}

impl std::fmt::Debug for Rewrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewrap(redacted)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rewrapped {
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub signing_keys: usize,
    pub secret_versions: usize,
    /// Set when the new key was written to the server's key file.
    pub key_file: Option<String>,
}

/// One environment's holding of a credential, in a drift report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftHolding {
    pub env: String,
    pub version: u32,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub protected: bool,
    /// Past the rotation period.
    pub rotation_due: bool,
    pub expired: bool,
}

/// Drift of one credential name across environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEntry {
    pub name: String,
    pub holdings: Vec<DriftHolding>,
    /// Environments (not protected-only ones) that lack it.
    pub missing: Vec<String>,
    /// Groups of environments holding the very same value although one is protected and another
    /// is not (production-like and test values must differ).
    pub shared_across_protection: Vec<Vec<String>>,
    /// Environments holding different values (informational: values usually differ per env).
    pub distinct_values: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftReport {
    pub credentials: Vec<DriftEntry>,
    /// Number of problems: missing, shared across protection, due or expired.
    pub problems: usize,
}

/// One token need of a run: the environment variable it is injected as, and how to mint it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunNeed {
    /// Environment variable name, e.g. `ORDERS_API_TOKEN`.
    pub name: String,
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `opaque` or `jwt` (default: the client's format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Default: sized from the forecast of past runs with the same label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// `POST /v1/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    pub env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default)]
    pub needs: Vec<RunNeed>,
    /// Reap the run (revoke its tokens) when no heartbeat came for this long (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    pub env: String,
    pub label: Option<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_s: f64,
    pub exit_code: Option<i32>,
    /// `running`, `finished` or `reaped`.
    pub status: String,
    pub tokens_minted: u32,
    pub tokens_revoked: u32,
}

/// A token minted for a run: shown once, to the runner.
#[derive(Clone, Serialize, Deserialize)]
pub struct RunToken {
    /// The need (environment variable) it serves.
    pub name: String,
    pub token: String,
    pub id: String,
    pub format: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for RunToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunToken").field("name", &self.name).field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartedRun {
    pub run: RunView,
    pub tokens: Vec<RunToken>,
    /// Send a heartbeat at least this often.
    pub heartbeat_interval_s: u64,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Answer to `POST /v1/runs/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub run: RunView,
    /// Opaque tokens whose expiry was extended (same token, new expiry).
    pub renewed: Vec<String>,
    /// JWTs cannot be extended: fresh ones for the needs whose JWT nears expiry.
    pub refreshed: Vec<RunToken>,
}

/// `POST /v1/runs/{id}/finish`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishedRun {
    pub run: RunView,
    /// Tokens this call revoked.
    pub revoked: u32,
    /// Tokens that were already inactive (expired or revoked): cleaned up too.
    pub already_inactive: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunView>,
}

/// `GET /v1/runs/forecast?env=&label=`: how long runs with this label take.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forecast {
    pub env: String,
    pub label: Option<String>,
    pub samples: usize,
    pub p50_s: Option<u64>,
    pub p95_s: Option<u64>,
}

/// Answer to `PUT /v1/environments/{name}` and `PUT /v1/clients/{id}` (create or replace).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upserted<T> {
    pub item: T,
    pub created: bool,
    /// False when the stored object already matched (nothing written, nothing audited).
    pub changed: bool,
    /// A new client's secret, shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}
