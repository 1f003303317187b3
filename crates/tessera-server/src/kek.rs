//! Key-encryption keys: the sealers derived from the master key, and the data keys they seal.
//!
//! The master key never protects data directly. It seals data keys: the key of the token and
//! client-secret hashes (random, stored sealed in `system_keys`), every JWT signing key, and
//! every secret version's data key. Replacing the master key (`tessera keys rewrap`) re-seals
//! those data keys in one transaction; nothing they protect changes.

use std::fmt;

use tessera_core::{MasterKey, SecretHasher};
use zeroize::Zeroizing;

use crate::seal::{SealError, Sealer};

/// Purpose of the data key behind token and client-secret hashes and fingerprints.
pub const HASH_KEY: &str = "hash-key";

/// The sealers of one master key.
pub struct Kek {
    pub fingerprint: String,
    pub signing: Sealer,
    pub dek: Sealer,
    pub system: Sealer,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl Kek {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            fingerprint: master.fingerprint(),
            signing: Sealer::new(master, "signing-keys"),
            dek: Sealer::new(master, "secret-dek"),
            system: Sealer::new(master, "system"),
        }
    }

    /// Opens the hash key sealed under this master key.
    pub fn open_hash_key(&self, sealed: &[u8]) -> Result<SecretHasher, SealError> {
        let raw = self.system.open(sealed, HASH_KEY.as_bytes())?;
        let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| SealError::Truncated)?;
        Ok(SecretHasher::from_key(key))
    }

    /// A new random hash key: the hasher and the key sealed for storage.
    pub fn new_hash_key(&self) -> (SecretHasher, Vec<u8>) {
        let mut raw = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), raw.as_mut_slice()).expect("system RNG");
        let sealed = self.system.seal(raw.as_slice(), HASH_KEY.as_bytes());
        (SecretHasher::from_key(*raw), sealed)
    }
}
