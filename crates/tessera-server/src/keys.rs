//! JWT signing keys: generation, sealing at rest, the in-memory keyring, rotation.
//!
//! Each environment has, per algorithm, a `current` key (signs), a `next` key (published in
//! the JWKS but not signing yet) and any `retired` keys (published until the last token they
//! signed has expired). Rotation promotes `next` to `current`, so a key is always published
//! before it signs anything.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use tessera_core::audit::actions;
use tessera_core::id::new_public_id;
use tessera_core::AuditEvent;
use tessera_store::{Change, StoredKey, WriteUnit};

use crate::http::error::{ApiError, ApiResult};
use crate::seal::Sealer;
use crate::state::AppState;

/// JWT signing algorithms Tessera issues with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    EdDSA,
    ES256,
    RS256,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::EdDSA, Alg::ES256, Alg::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
        }
    }
}

impl FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Alg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unsupported alg {s:?} (use EdDSA, ES256 or RS256)"))
    }
}

enum Signer {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A usable signing key: private key in memory (never serialized), public parts, state.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub env: String,
    pub alg: Alg,
    pub state: String,
    pub public_jwk: Value,
    public_bytes: Arc<Vec<u8>>,
    signer: Arc<Signer>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("env", &self.env)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &*self.signer {
            Signer::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
            Signer::Ec(kp) => kp.sign(&rng, msg).expect("ECDSA signing works").as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig).expect("RSA signing works");
                sig
            }
        }
    }

    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Alg::EdDSA => &signature::ED25519,
            Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(alg, self.public_bytes.as_slice()).verify(msg, sig).is_ok()
    }

    /// Published in the JWKS at `now`.
    pub fn is_published(&self, now: DateTime<Utc>) -> bool {
        self.state != "retired" || self.publish_until.is_some_and(|until| now < until)
    }

    fn from_private(stored: &StoredKey, private: &[u8]) -> Result<Self, String> {
        let alg = Alg::from_str(&stored.alg)?;
        let bad = |e: ring::error::KeyRejected| format!("signing key {} does not load: {e}", stored.kid);
        let (signer, public) = match alg {
            Alg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(private).map_err(bad)?;
                let public = kp.public_key().as_ref().to_vec();
                (Signer::Ed(kp), public)
            }
            Alg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &SystemRandom::new(),
                )
                .map_err(bad)?;
                let public = kp.public_key().as_ref().to_vec();
                (Signer::Ec(kp), public)
            }
            Alg::RS256 => {
                let kp = RsaKeyPair::from_der(private).map_err(bad)?;
                let public = kp.public().as_ref().to_vec();
                (Signer::Rsa(kp), public)
            }
        };
        let public_jwk = serde_json::from_str(&stored.public_jwk).map_err(|e| format!("JWK of {}: {e}", stored.kid))?;
        Ok(Self {
            kid: stored.kid.clone(),
            env: stored.env.clone(),
            alg,
            state: stored.state.clone(),
            public_jwk,
            public_bytes: Arc::new(public),
            signer: Arc::new(signer),
            created_at: stored.created_at,
            activated_at: stored.activated_at,
            retired_at: stored.retired_at,
            publish_until: stored.publish_until,
        })
    }

    /// Opens a stored key with `sealer`.
    pub fn open(stored: &StoredKey, sealer: &Sealer) -> Result<Self, String> {
        let private = sealer
            .open(&stored.sealed_key, stored.kid.as_bytes())
            .map_err(|e| format!("signing key {}: {e}", stored.kid))?;
        Self::from_private(stored, &private)
    }
}

/// Generates a key pair (RSA takes a while: call from a blocking thread) and returns its
/// stored (sealed) form and its usable form.
pub fn generate(env: &str, alg: Alg, state: &str, now: DateTime<Utc>, sealer: &Sealer) -> (StoredKey, SigningKey) {
    let rng = SystemRandom::new();
    let kid = new_public_id("key");
    let private: zeroize::Zeroizing<Vec<u8>> = match alg {
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key generation").as_ref().to_vec().into(),
        Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation")
            .as_ref()
            .to_vec()
            .into(),
        Alg::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rand_core_rng(), 2048).expect("RSA key generation");
            key.to_pkcs1_der().expect("RSA key encodes").as_bytes().to_vec().into()
        }
    };
    let mut stored = StoredKey {
        kid: kid.clone(),
        env: env.to_owned(),
        alg: alg.as_str().to_owned(),
        state: state.to_owned(),
        sealed_key: sealer.seal(&private, kid.as_bytes()),
        public_jwk: String::new(),
        created_at: now,
        activated_at: (state == "current").then_some(now),
        retired_at: None,
        publish_until: None,
    };
    // The JWK needs the public key, which the loaded key pair gives us.
    let mut key = SigningKey::from_private(&StoredKey { public_jwk: "{}".into(), ..stored.clone() }, &private)
        .expect("a freshly generated key loads");
    key.public_jwk = jwk(&key);
    stored.public_jwk = key.public_jwk.to_string();
    (stored, key)
}

fn rand_core_rng() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}

fn jwk(key: &SigningKey) -> Value {
    let p = key.public_bytes.as_slice();
    match key.alg {
        Alg::EdDSA => {
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(p), "kid": key.kid, "alg": "EdDSA", "use": "sig"})
        }
        Alg::ES256 => json!({
            "kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65]),
            "kid": key.kid, "alg": "ES256", "use": "sig"
        }),
        Alg::RS256 => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::traits::PublicKeyParts;
            let public = rsa::RsaPublicKey::from_pkcs1_der(p).expect("ring gives a DER RSAPublicKey");
            json!({
                "kty": "RSA", "n": B64.encode(public.n().to_bytes_be()), "e": B64.encode(public.e().to_bytes_be()),
                "kid": key.kid, "alg": "RS256", "use": "sig"
            })
        }
    }
}

/// All signing keys, by kid. Read on every JWT validation; written on rotation.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: RwLock<HashMap<String, Arc<SigningKey>>>,
}

impl Keyring {
    pub fn insert(&self, key: SigningKey) {
        self.keys.write().expect("keyring lock").insert(key.kid.clone(), Arc::new(key));
    }

    pub fn remove(&self, kid: &str) {
        self.keys.write().expect("keyring lock").remove(kid);
    }

    /// Replaces every key at once.
    pub fn replace_all(&self, keys: Vec<Arc<SigningKey>>) {
        *self.keys.write().expect("keyring lock") = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
    }

    pub fn get(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.read().expect("keyring lock").get(kid).cloned()
    }

    fn find(&self, env: &str, alg: Alg, state: &str) -> Option<Arc<SigningKey>> {
        self.keys
            .read()
            .expect("keyring lock")
            .values()
            .filter(|k| k.env == env && k.alg == alg && k.state == state)
            .max_by_key(|k| k.created_at)
            .cloned()
    }

    /// The key that signs new tokens of `env` with `alg`.
    pub fn current(&self, env: &str, alg: Alg) -> Option<Arc<SigningKey>> {
        self.find(env, alg, "current")
    }

    /// Keys of `env` (all environments when `None`), oldest first.
    pub fn list(&self, env: Option<&str>) -> Vec<Arc<SigningKey>> {
        let mut keys: Vec<_> = self
            .keys
            .read()
            .expect("keyring lock")
            .values()
            .filter(|k| env.is_none_or(|e| k.env == e))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (&a.env, a.alg.as_str(), a.created_at).cmp(&(&b.env, b.alg.as_str(), b.created_at)));
        keys
    }

    /// The public keys `env` publishes at `now`.
    pub fn jwks(&self, env: &str, now: DateTime<Utc>) -> Vec<Value> {
        self.list(Some(env)).iter().filter(|k| k.is_published(now)).map(|k| k.public_jwk.clone()).collect()
    }
}

async fn generate_blocking(
    state: &AppState,
    env: &str,
    alg: Alg,
    key_state: &str,
) -> ApiResult<(StoredKey, SigningKey)> {
    let (env, key_state, kek) = (env.to_owned(), key_state.to_owned(), state.kek());
    tokio::task::spawn_blocking(move || generate(&env, alg, &key_state, crate::now(), &kek.signing))
        .await
        .map_err(|e| ApiError::Internal(format!("key generation failed: {e}")))
}

/// Loads the keyring from the store (at start, and when another replica changed keys). Keys
/// already open whose state did not change are kept as they are (opening RSA keys is slow).
pub async fn reload(state: &AppState) -> ApiResult<()> {
    let stored = state.store.signing_keys().await?;
    let kek = state.kek();
    let mut keys = Vec::with_capacity(stored.len());
    for s in &stored {
        match state.keyring.get(&s.kid) {
            Some(k) if k.state == s.state && k.publish_until == s.publish_until => keys.push(k),
            _ => keys.push(Arc::new(SigningKey::open(s, &kek.signing).map_err(|e| {
                ApiError::Internal(format!("{e} (is TESSERA_MASTER_KEY the key this data was created with?)"))
            })?)),
        }
    }
    state.keyring.replace_all(keys);
    Ok(())
}

/// Makes sure `env` has a current and a next key for `alg` (creating both when missing).
pub async fn ensure(state: &AppState, actor: &str, env: &str, alg: Alg) -> ApiResult<Arc<SigningKey>> {
    if let Some(k) = state.keyring.current(env, alg) {
        return Ok(k);
    }
    let _guard = state.key_lock.lock().await;
    let _sealing = state.seal_lock.read().await;
    if state.store.is_shared() {
        // Another replica may have created them a moment ago.
        reload(state).await?;
    }
    if let Some(k) = state.keyring.current(env, alg) {
        return Ok(k);
    }
    let (cur_stored, cur) = generate_blocking(state, env, alg, "current").await?;
    let (next_stored, next) = generate_blocking(state, env, alg, "next").await?;
    let event = |k: &StoredKey| {
        AuditEvent::new(actions::KEY_CREATE, actor)
            .env(env)
            .target(&k.kid)
            .detail("alg", alg.as_str())
            .detail("state", k.state.clone())
    };
    let unit = WriteUnit {
        audit: vec![event(&cur_stored), event(&next_stored)],
        changes: vec![Change::AddSigningKey(cur_stored), Change::AddSigningKey(next_stored)],
    };
    state.store.commit(unit).await?;
    state.keyring.insert(next);
    state.keyring.insert(cur.clone());
    Ok(state.keyring.current(env, alg).unwrap_or(Arc::new(cur)))
}

/// Rotates `env`'s `alg` keys: next → current, current → retired (published until every token
/// it signed has expired: now + the environment's max TTL), and a new next key.
pub async fn rotate(
    state: &AppState,
    actor: &str,
    env: &str,
    alg: Alg,
    max_ttl: std::time::Duration,
) -> ApiResult<Arc<SigningKey>> {
    let guard = state.key_lock.lock().await;
    let sealing = state.seal_lock.read().await;
    let now = crate::now();
    let current = state.keyring.current(env, alg);
    let Some(next) = state.keyring.find(env, alg, "next") else {
        drop(sealing);
        drop(guard);
        return ensure(state, actor, env, alg).await;
    };
    let (new_stored, new_next) = generate_blocking(state, env, alg, "next").await?;
    let publish_until = now + TimeDelta::from_std(max_ttl).unwrap_or(TimeDelta::days(365)) + TimeDelta::minutes(5);
    let mut event = AuditEvent::new(actions::KEY_ROTATE, actor)
        .env(env)
        .target(&next.kid)
        .detail("alg", alg.as_str())
        .detail("next", new_stored.kid.clone());
    if let Some(c) = &current {
        event = event
            .detail("retired", c.kid.clone())
            .detail("published_until", publish_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let change = Change::RotateSigningKeys {
        promote: next.kid.clone(),
        retire: current.as_ref().map(|c| c.kid.clone()),
        publish_until,
        next: new_stored,
        at: now,
    };
    state.store.commit(WriteUnit::new(change, event)).await?;
    if let Some(c) = current {
        let mut retired = (*c).clone();
        retired.state = "retired".into();
        retired.retired_at = Some(now);
        retired.publish_until = Some(publish_until);
        state.keyring.insert(retired);
    }
    let mut promoted = (*next).clone();
    promoted.state = "current".into();
    promoted.activated_at = Some(now);
    state.keyring.insert(promoted.clone());
    state.keyring.insert(new_next);
    Ok(Arc::new(promoted))
}

/// Drops retired keys whose publication period has ended.
pub async fn prune(state: &AppState) -> ApiResult<usize> {
    let now = crate::now();
    let expired: Vec<Arc<SigningKey>> = state.keyring.list(None).into_iter().filter(|k| !k.is_published(now)).collect();
    for k in &expired {
        let event =
            AuditEvent::new(actions::KEY_DROP, "system").env(&k.env).target(&k.kid).detail("alg", k.alg.as_str());
        state.store.commit(WriteUnit::new(Change::DropSigningKey { kid: k.kid.clone() }, event)).await?;
        state.keyring.remove(&k.kid);
    }
    Ok(expired.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::MasterKey;

    #[test]
    fn generated_keys_sign_verify_and_reopen_from_their_sealed_form() {
        let sealer = Sealer::new(&MasterKey::generate(), "signing-keys");
        for alg in Alg::ALL {
            let (stored, key) = generate("qa", alg, "current", Utc::now(), &sealer);
            let sig = key.sign(b"hello");
            assert!(key.verify(b"hello", &sig), "{alg:?}");
            assert!(!key.verify(b"hellO", &sig), "{alg:?}");
            let reopened = SigningKey::open(&stored, &sealer).unwrap();
            assert!(reopened.verify(b"hello", &sig));
            assert_eq!(reopened.public_jwk["kid"], stored.kid.as_str());
            assert!(!format!("{stored:?}{key:?}").contains("BEGIN"), "no key material in Debug");
        }
    }
}
