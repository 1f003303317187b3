//! Sealing secrets at rest: AES-256-GCM (ring) under a key derived from the master key.
//!
//! A sealed value is `nonce (12 bytes) ‖ ciphertext ‖ tag`. The associated data binds a sealed
//! value to its place (e.g. the key id), so a sealed blob cannot be moved to another record.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use tessera_core::MasterKey;
use zeroize::Zeroizing;

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is too short")]
    Truncated,
    #[error("sealed value does not open under this master key (wrong key or tampered data)")]
    Mismatch,
}

/// Seals and opens values with one derived key.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(redacted)")
    }
}

impl Sealer {
    /// A sealer for one `purpose` (each purpose gets its own derived key).
    pub fn new(master: &MasterKey, purpose: &str) -> Self {
        let raw = Zeroizing::new(master.derive(&format!("seal/{purpose}")));
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw.as_slice()).expect("32-byte AES key"));
        Self { key, rng: SystemRandom::new() }
    }

    /// A sealer with an explicit 32-byte key (a secret version's data key).
    pub fn from_raw(key: &[u8; 32]) -> Self {
        Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES key")),
            rng: SystemRandom::new(),
        }
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system RNG works");
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .expect("sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        buf.iter_mut().for_each(|b| *b = 0);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Truncated);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self.key.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| SealError::Mismatch)?;
        let len = plain.len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_aad() {
        let master = MasterKey::generate();
        let s = Sealer::new(&master, "test");
        let sealed = s.seal(b"private key", b"kid-1");
        assert_eq!(s.open(&sealed, b"kid-1").unwrap().as_slice(), b"private key");
        assert!(matches!(s.open(&sealed, b"kid-2"), Err(SealError::Mismatch)));
        assert!(matches!(Sealer::new(&master, "other").open(&sealed, b"kid-1"), Err(SealError::Mismatch)));
        assert!(matches!(
            Sealer::new(&MasterKey::generate(), "test").open(&sealed, b"kid-1"),
            Err(SealError::Mismatch)
        ));
        let mut tampered = sealed.clone();
        tampered[14] ^= 1;
        assert!(matches!(s.open(&tampered, b"kid-1"), Err(SealError::Mismatch)));
        assert!(matches!(s.open(&sealed[..10], b"kid-1"), Err(SealError::Truncated)));
        assert_ne!(s.seal(b"x", b""), s.seal(b"x", b""), "fresh nonce each time");
    }
}
