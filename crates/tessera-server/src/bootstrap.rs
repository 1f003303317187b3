//! First start: the master key file, and the root admin token on an empty store.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::TimeDelta;
use tessera_core::audit::actions;
use tessera_core::id::new_public_id;
use tessera_core::names::SYSTEM_ENV;
use tessera_core::scope::ADMIN_SCOPE;
use tessera_core::token::ClientSecret;
use tessera_core::SecretHasher;
use tessera_core::{
    AuditEvent, Client, EnvPolicy, Environment, MasterKey, NewToken, ScopeSet, Token, TokenFormat, TokenSecret,
};
use tessera_store::{Change, Store, WriteUnit};

use crate::kek::{Kek, HASH_KEY};

use crate::config::ServerConfig;
use crate::state::AppState;

/// The client that owns the root token.
pub const ROOT_CLIENT: &str = "tessera-root";
/// Lifetime of the root token: long, because losing it locks the operator out; rotate it and
/// hand out narrower, shorter-lived admin tokens for daily work.
const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Writes `contents` to a new file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}

/// The master key: `TESSERA_MASTER_KEY` when given, else `DATA_DIR/master.key`, generated
/// (mode 0600) when missing. Also returns the key file's path when the key is file-based.
pub fn master_key(config: &ServerConfig) -> anyhow::Result<(MasterKey, Option<PathBuf>)> {
    if let Some(hex) = &config.master_key {
        return Ok((MasterKey::from_hex(hex).context("TESSERA_MASTER_KEY")?, None));
    }
    let path = config.data_dir.join("master.key");
    // A rewrap that was interrupted after its commit left the new key beside the old one.
    let pending = config.data_dir.join("master.key.new");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = MasterKey::from_hex(&text).with_context(|| format!("reading {}", path.display()))?;
            Ok((key, Some(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !pending.exists() => {
            let key = MasterKey::generate();
            write_private(&path, format!("{}\n", key.to_hex().as_str()).as_bytes())?;
            tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(), "generated master key");
            Ok((key, Some(path)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Opens the stored data keys with `master`; if that fails and an interrupted rewrap left
/// `master.key.new`, finishes the rewrap by installing that key.
pub async fn open_with_master(
    store: &dyn Store,
    master: MasterKey,
    key_file: Option<&Path>,
) -> anyhow::Result<(Kek, SecretHasher)> {
    let kek = Kek::new(&master);
    match hash_key(store, &kek).await {
        Ok(hasher) => Ok((kek, hasher)),
        Err(first) => {
            let Some(path) = key_file else { return Err(first) };
            let pending = path.with_extension("key.new");
            let Ok(text) = std::fs::read_to_string(&pending) else { return Err(first) };
            let new_kek = Kek::new(&MasterKey::from_hex(&text).context("reading master.key.new")?);
            let hasher = hash_key(store, &new_kek).await.map_err(|_| first)?;
            std::fs::rename(&pending, path).context("installing master.key.new")?;
            tracing::warn!("finished an interrupted master key rewrap");
            Ok((new_kek, hasher))
        }
    }
}

/// Loads the key of token and client-secret hashes, sealed under the master key; creates it
/// on first start. When the master key does not open it, a pending rewrap's new key is tried.
pub async fn hash_key(store: &dyn Store, kek: &Kek) -> anyhow::Result<SecretHasher> {
    match store.system_key(HASH_KEY).await? {
        Some((sealed, fingerprint)) => kek.open_hash_key(&sealed).map_err(|_| {
            anyhow::anyhow!(
                "the master key (fingerprint {}) does not open this data, which was sealed under master key {fingerprint}; \
                 set TESSERA_MASTER_KEY or restore DATA_DIR/master.key",
                kek.fingerprint
            )
        }),
        None => {
            let (hasher, sealed) = kek.new_hash_key();
            let event = AuditEvent::new(actions::SYSTEM_KEY_CREATE, "system")
                .target(HASH_KEY)
                .detail("master_fingerprint", kek.fingerprint.clone());
            let change = Change::SetSystemKey {
                purpose: HASH_KEY.to_owned(),
                sealed,
                master_fingerprint: kek.fingerprint.clone(),
            };
            match store.commit(WriteUnit::new(change, event)).await {
                Ok(_) => Ok(hasher),
                // Another replica starting at the same time stored its own first: use that one.
                Err(tessera_store::StoreError::AlreadyExists { .. }) => Box::pin(hash_key(store, kek)).await,
                Err(e) => Err(e).context("storing the hash key"),
            }
        }
    }
}

/// On an empty store: creates the `tessera` environment, the `tessera-root` client and the
/// root token (`tessera:admin`), writes the token to `DATA_DIR/root-token` (0600) and returns
/// it so the caller can print it once.
pub async fn first_start(state: &AppState, config: &ServerConfig) -> anyhow::Result<Option<String>> {
    if !state.store.is_empty().await? {
        return Ok(None);
    }
    let now = crate::now();
    let policy = EnvPolicy::from_parts(Some(Duration::from_secs(3_600)), Some(ROOT_TTL), None, None, None)
        .expect("the system policy is valid");
    let env = Environment { name: SYSTEM_ENV.to_owned(), policy, protected: true, created_at: now };
    let admin = ScopeSet::parse_space_separated(ADMIN_SCOPE).expect("the admin scope is valid");
    let client = Client {
        id: ROOT_CLIENT.to_owned(),
        description: Some("owner of the root admin token".to_owned()),
        allowed_scopes: BTreeMap::from([(SYSTEM_ENV.to_owned(), admin.clone())]),
        token_format: TokenFormat::Opaque,
        alg: "EdDSA".to_owned(),
        // Nobody knows this secret: the root client exists to own the root token.
        secret_hash: state.hasher.hash(ClientSecret::generate().expose()),
        disabled: false,
        created_at: now,
    };
    let secret = TokenSecret::generate();
    let token = Token {
        id: new_public_id("tok"),
        env: SYSTEM_ENV.to_owned(),
        client_id: ROOT_CLIENT.to_owned(),
        scopes: admin,
        audience: None,
        format: TokenFormat::Opaque,
        labels: BTreeMap::from([("role".to_owned(), "root".to_owned())]),
        run_id: None,
        created_by: "system".to_owned(),
        created_at: now,
        not_before: None,
        expires_at: now + TimeDelta::from_std(ROOT_TTL).expect("ten years fit"),
        idle_ttl: None,
        last_used_at: None,
        max_uses: None,
        uses: 0,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        superseded_by: None,
        grace_until: None,
    };
    let hash = state.hasher.hash(secret.expose());
    let unit = WriteUnit {
        changes: vec![
            Change::CreateEnvironment(env),
            Change::CreateClient(client),
            Change::CreateToken(NewToken { token: token.clone(), hash }),
        ],
        audit: vec![
            AuditEvent::new(actions::SERVER_INIT, "system").detail("version", env!("CARGO_PKG_VERSION")),
            AuditEvent::new(actions::ENVIRONMENT_CREATE, "system").env(SYSTEM_ENV).target(SYSTEM_ENV),
            AuditEvent::new(actions::CLIENT_CREATE, "system").target(ROOT_CLIENT),
            AuditEvent::new(actions::TOKEN_CREATE, "system")
                .env(SYSTEM_ENV)
                .target(&token.id)
                .detail("client", ROOT_CLIENT)
                .detail("scopes", ADMIN_SCOPE),
        ],
    };
    match state.store.commit(unit).await {
        Ok(_) => {}
        // Another replica on the same database bootstrapped it a moment earlier.
        Err(tessera_store::StoreError::AlreadyExists { .. }) if state.store.is_shared() => return Ok(None),
        Err(e) => return Err(e).context("creating the root token"),
    }
    let path = config.data_dir.join("root-token");
    let _ = std::fs::remove_file(&path);
    write_private(&path, format!("{}\n", secret.expose()).as_bytes())?;
    Ok(Some(secret.expose().to_owned()))
}
