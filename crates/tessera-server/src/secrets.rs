//! Upstream secrets: envelope encryption, versions, reveal, rotation hooks, drift.
//!
//! Each version has its own random data key (DEK). The value is sealed under the DEK
//! (AES-256-GCM, bound to `env/name/version`), and the DEK is sealed under the master key.
//! Values exist in clear only in memory: in the gateway's injection cache and in the one
//! response of an explicit reveal.

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tessera_core::audit::actions;
use tessera_core::mask::Masker;
use tessera_core::upstream::{RotationHook, SecretConfig, SecretVersion};
use tessera_core::AuditEvent;
use tessera_store::{Change, StoredSecretVersion, WriteUnit};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use crate::http::error::{ApiError, ApiResult};
use crate::seal::Sealer;
use crate::state::{AppState, SecretValue};
use crate::tokens;

/// Largest secret value accepted.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// Overlap when none is configured: the previous version stays valid this long.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(3_600);
/// Timeout of a rotation hook when none is configured.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// What comes with a new value (all optional): configuration changes and the expiry.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub hook: Option<RotationHook>,
    pub rotation_period: Option<Duration>,
    pub overlap: Option<Duration>,
    /// The value expires this long after it is stored.
    pub expires_in: Option<Duration>,
}

fn aad(env: &str, name: &str, version: u32) -> Vec<u8> {
    format!("{env}/{name}/{version}").into_bytes()
}

/// Checks a value: not empty, not too large, text without NUL.
pub fn check_value(value: &str) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::Validation("the secret value is empty".into()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the secret value has {} bytes; at most {MAX_VALUE_BYTES} are accepted",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(ApiError::Validation("the secret value contains a NUL byte".into()));
    }
    Ok(())
}

pub fn check_name(name: &str) -> ApiResult<()> {
    tessera_core::names::validate_client_id(name).map_err(|_| {
        ApiError::Validation(format!(
            "invalid secret name {:?}: use 1-63 characters a-z, 0-9, '-', '.', '_'",
            name.chars().take(80).collect::<String>()
        ))
    })
}

/// Stores `value` as the new current version of `env/name`.
pub async fn put(
    state: &AppState,
    actor: &str,
    action: &str,
    env: &str,
    name: &str,
    value: Zeroizing<String>,
    update: PutOptions,
) -> ApiResult<SecretVersion> {
    check_name(name)?;
    check_value(&value)?;
    tokens::environment(state, env).await?;
    let now = crate::now();
    let existing = state.store.secret_config(env, name).await?;
    let config = SecretConfig {
        env: env.to_owned(),
        name: name.to_owned(),
        hook: update.hook.or_else(|| existing.as_ref().and_then(|c| c.hook.clone())),
        rotation_period: update.rotation_period.or_else(|| existing.as_ref().and_then(|c| c.rotation_period)),
        overlap: update.overlap.or(existing.as_ref().map(|c| c.overlap)).unwrap_or(DEFAULT_OVERLAP),
        created_at: existing.as_ref().map_or(now, |c| c.created_at),
    };
    let versions = state.store.secret_versions(Some(env), Some(name)).await?;
    let version = versions.iter().map(|v| v.meta.version).max().unwrap_or(0) + 1;
    let meta = SecretVersion {
        env: env.to_owned(),
        name: name.to_owned(),
        version,
        fingerprint: state.hasher.fingerprint(value.as_bytes()),
        created_at: now,
        created_by: actor.to_owned(),
        expires_at: update.expires_in.map(|d| now + TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)),
        state: "current".into(),
        valid_until: None,
    };
    let overlap_until = now + TimeDelta::from_std(config.overlap).unwrap_or(TimeDelta::MAX);
    let mut event = AuditEvent::new(action, actor)
        .env(env)
        .target(name)
        .detail("version", version.to_string())
        .detail("fingerprint", meta.fingerprint.clone());
    if version > 1 {
        event = event.detail("previous_valid_until", overlap_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    {
        // Sealing under the current master key must not interleave with a rewrap.
        let _sealing = state.seal_lock.read().await;
        let kek = state.kek();
        let mut dek = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), dek.as_mut_slice()).expect("system RNG");
        let ad = aad(env, name, version);
        let stored = StoredSecretVersion {
            ciphertext: Sealer::from_raw(&dek).seal(value.as_bytes(), &ad),
            sealed_dek: kek.dek.seal(dek.as_slice(), &ad),
            meta: meta.clone(),
        };
        let unit = WriteUnit {
            changes: vec![
                Change::PutSecretConfig(config),
                Change::PutSecretVersion { version: stored, previous_valid_until: overlap_until },
            ],
            audit: vec![event],
        };
        state.store.commit(unit).await?;
    }
    state.secrets.put(env, name, value);
    // Drop what was prepared with the previous value now, not at the next gateway request.
    state.prepared_upstreams.forget_secret(env, name);
    Ok(meta)
}

/// Opens a stored version with the current master key.
pub fn open(state: &AppState, v: &StoredSecretVersion) -> ApiResult<Zeroizing<String>> {
    let ad = aad(&v.meta.env, &v.meta.name, v.meta.version);
    let kek = state.kek();
    let dek = kek.dek.open(&v.sealed_dek, &ad).map_err(|e| {
        ApiError::Internal(format!("data key of {}/{} v{}: {e}", v.meta.env, v.meta.name, v.meta.version))
    })?;
    let dek: [u8; 32] =
        dek.as_slice().try_into().map_err(|_| ApiError::Internal("data key has the wrong length".into()))?;
    let plain = Sealer::from_raw(&dek)
        .open(&v.ciphertext, &ad)
        .map_err(|e| ApiError::Internal(format!("value of {}/{} v{}: {e}", v.meta.env, v.meta.name, v.meta.version)))?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| ApiError::Internal("secret value is not text".into()))?;
    Ok(Zeroizing::new(text))
}

/// The current version of `env/name` with its value.
pub async fn current(state: &AppState, env: &str, name: &str) -> ApiResult<(SecretVersion, Zeroizing<String>)> {
    let versions = state.store.secret_versions(Some(env), Some(name)).await?;
    let v = versions
        .into_iter()
        .find(|v| v.meta.state == "current")
        .ok_or_else(|| ApiError::NotFound(format!("secret {name:?} not found in environment {env:?}")))?;
    let value = open(state, &v)?;
    Ok((v.meta, value))
}

/// The current value for injection: from the cache, else decrypted once and cached.
pub async fn value_for_injection(state: &AppState, env: &str, name: &str) -> ApiResult<SecretValue> {
    if let Some(v) = state.secrets.get(env, name) {
        return Ok(v);
    }
    let (_, value) = current(state, env, name).await?;
    state.secrets.put(env, name, value);
    state.secrets.get(env, name).ok_or_else(|| ApiError::Internal("secret cache lost a value".into()))
}

/// Runs the rotation hook of `env/name` and stores its output as the new version. A failing
/// hook leaves the current version in place; success and failure are both audited.
pub async fn rotate(state: &AppState, actor: &str, env: &str, name: &str) -> ApiResult<SecretVersion> {
    let config = state
        .store
        .secret_config(env, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("secret {name:?} not found in environment {env:?}")))?;
    let hook = config.hook.clone().ok_or_else(|| {
        ApiError::Conflict(format!(
            "secret {env}/{name} has no rotation hook; set one with `tessera secret set --hook`"
        ))
    })?;
    let (_, old) = current(state, env, name).await?;
    match run_hook(&hook, &old).await {
        Ok(new) => put(state, actor, actions::SECRET_ROTATE, env, name, new, PutOptions::default()).await,
        Err(reason) => {
            let event = AuditEvent::new(actions::SECRET_ROTATE_FAILED, actor)
                .env(env)
                .target(name)
                .detail("reason", reason.clone());
            state.store.commit(WriteUnit { changes: vec![], audit: vec![event] }).await?;
            tracing::warn!(%env, %name, %reason, "secret rotation hook failed");
            Err(ApiError::Conflict(format!(
                "rotation hook of {env}/{name} failed: {reason}; the current version stays"
            )))
        }
    }
}

/// Runs `hook` with `old` on stdin; returns its trimmed stdout, or why it failed (with
/// anything secret masked).
async fn run_hook(hook: &RotationHook, old: &str) -> Result<Zeroizing<String>, String> {
    let (program, args) = hook.argv.split_first().ok_or("the hook has no command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read stdin closes it early; that is fine.
        let _ = stdin.write_all(old.as_bytes()).await;
    }
    let output = match tokio::time::timeout(hook.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("waiting for the hook: {e}")),
        Err(_) => return Err(format!("timed out after {}", tessera_core::format_duration(hook.timeout))),
    };
    let stdout = Zeroizing::new(output.stdout);
    let masker = Masker::with_encodings([old.as_bytes(), stdout.as_slice()]);
    let stderr = String::from_utf8_lossy(&masker.mask_all(&output.stderr))
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    if !output.status.success() {
        let code = output.status.code().map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        return Err(if stderr.is_empty() {
            format!("exited with {code}")
        } else {
            format!("exited with {code}: {stderr}")
        });
    }
    let text = std::str::from_utf8(&stdout).map_err(|_| "the hook printed something that is not text".to_owned())?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err("the hook printed nothing".into());
    }
    if value.len() > MAX_VALUE_BYTES || value.contains('\0') {
        return Err("the hook printed an invalid value (too large or binary)".into());
    }
    if value == old {
        return Err("the hook printed the old value".into());
    }
    Ok(Zeroizing::new(value.to_owned()))
}

/// True when a version is past its expiry or its secret's rotation period at `now`.
pub fn is_due(v: &SecretVersion, period: Option<Duration>, now: DateTime<Utc>) -> (bool, bool) {
    let expired = v.expires_at.is_some_and(|e| now >= e);
    let rotation_due = period.is_some_and(|p| (now - v.created_at).to_std().is_ok_and(|age| age >= p));
    (rotation_due, expired)
}
