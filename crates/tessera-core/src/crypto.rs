//! Key material: the master key and the keyed hashes derived from it.
//!
//! Tokens and client secrets are random with ≥ 190 bits of entropy, so a keyed hash
//! (HMAC-SHA256) is the right way to store them: a slow password hash adds nothing for
//! random secrets and would cap the token endpoint at a few hundred requests per second.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

/// Why a master key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key must be 64 hexadecimal characters (32 bytes); got {len} characters")]
    Malformed { len: usize },
}

/// The 32-byte master key every other key is derived from. Redacted `Debug`, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<Self, MasterKeyError> {
        let s = s.trim();
        let mut k = [0u8; 32];
        hex::decode_to_slice(s, &mut k).map_err(|_| MasterKeyError::Malformed { len: s.len() })?;
        Ok(Self(k))
    }

    /// The key as 64 hex characters, for the key file written at first start.
    pub fn to_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode(self.0))
    }

    /// A sub-key for one purpose, so that no two uses share a key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(b"tessera/v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A short, non-secret identifier of this key (to tell keys apart in logs).
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.derive("fingerprint")[..6])
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

/// `HMAC-SHA256(key, secret)`: what the store keeps instead of a token or client secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Constant-time equality, for comparing a presented secret's hash with a stored one.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// Computes keyed hashes of secrets with a key derived from the master key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretHasher {
    key: [u8; 32],
}

impl SecretHasher {
    /// A hasher keyed by a key derived from `master` (for tests and tools).
    pub fn new(master: &MasterKey) -> Self {
        Self { key: master.derive("secret-hash") }
    }

    /// A hasher with an explicit 32-byte key (the server's sealed hash key).
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// A short keyed fingerprint of a value (16 hex characters): equal values have equal
    /// fingerprints, and nothing about the value can be learnt from it without the key.
    pub fn fingerprint(&self, value: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(b"fingerprint/");
        mac.update(value);
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    pub fn hash(&self, secret: &str) -> TokenHash {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(secret.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_parses_hex_and_refuses_the_rest() {
        let k = MasterKey::generate();
        let again = MasterKey::from_hex(&k.to_hex()).unwrap();
        assert_eq!(k.fingerprint(), again.fingerprint());
        assert_eq!(MasterKey::from_hex("abc").unwrap_err(), MasterKeyError::Malformed { len: 3 });
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(redacted)");
    }

    #[test]
    fn hashes_depend_on_key_and_secret() {
        let a = SecretHasher::new(&MasterKey::generate());
        let b = SecretHasher::new(&MasterKey::generate());
        assert!(a.hash("x").ct_eq(&a.hash("x")));
        assert!(!a.hash("x").ct_eq(&a.hash("y")));
        assert!(!a.hash("x").ct_eq(&b.hash("x")));
    }
}
