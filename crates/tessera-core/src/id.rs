//! Random identifiers and the base62 alphabet shared by ids, tokens and secrets.

use rand::rngs::OsRng;
use rand::RngCore;

/// `0-9A-Za-z`, in this order, so that base62 numbers sort like their values.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` base62 characters from the operating system's CSPRNG, uniformly distributed
/// (rejection sampling: bytes ≥ 248 are drawn again, so `% 62` has no bias).
pub fn random_base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        OsRng.fill_bytes(&mut buf);
        for &b in &buf {
            if b < 248 && out.len() < n {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Encodes `value` as exactly `width` base62 digits, most significant first, zero padded.
pub fn base62_fixed(mut value: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

/// True when every byte of `s` is in [`BASE62`].
pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new public id such as `tok_3kTMd9Qx0aZ8bPq1`: a prefix naming the kind of object and
/// 16 random base62 characters (95 bits), safe to show in lists, logs and audit entries.
pub fn new_public_id(kind: &str) -> String {
    format!("{kind}_{}", random_base62(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_base62_has_requested_length_and_alphabet() {
        for n in [0, 1, 16, 32, 100] {
            let s = random_base62(n);
            assert_eq!(s.len(), n);
            assert!(is_base62(&s));
        }
    }

    #[test]
    fn base62_fixed_pads_and_orders() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 2), "0z");
        assert_eq!(base62_fixed(62, 2), "10");
        assert_eq!(base62_fixed(u32::MAX as u64, 6), "4gfFC3");
    }

    #[test]
    fn public_ids_are_prefixed_and_distinct() {
        let a = new_public_id("tok");
        let b = new_public_id("tok");
        assert!(a.starts_with("tok_") && a.len() == 20);
        assert_ne!(a, b);
    }
}
