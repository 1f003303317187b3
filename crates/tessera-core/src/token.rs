//! The opaque token format: `tsr_` + 32 base62 characters of CSPRNG output + 6 base62
//! characters of CRC32 over the preceding text.
//!
//! The prefix and checksum let a scanner recognise a Tessera token with no false positives and
//! let the server reject typos before any lookup. The checksum is not a security measure: the
//! 190 random bits are.

use std::fmt;

use zeroize::Zeroizing;

use crate::id::{base62_fixed, is_base62, random_base62};

/// Prefix of every opaque access token.
pub const TOKEN_PREFIX: &str = "tsr_";
/// Prefix of every client secret.
pub const CLIENT_SECRET_PREFIX: &str = "tsc_";
const TOKEN_BODY_LEN: usize = 32;
const CLIENT_SECRET_BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// Length of an opaque token: prefix, body and checksum.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_BODY_LEN + CHECKSUM_LEN;

/// Why a string is not a well-formed Tessera token. Never carries the string itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("token does not start with `{expected}`")]
    MissingPrefix { expected: &'static str },
    #[error("token has {actual} characters, expected {expected}")]
    WrongLength { actual: usize, expected: usize },
    #[error("token contains a character outside 0-9, A-Z, a-z")]
    InvalidCharacter,
    #[error("token checksum does not match (mistyped or truncated token?)")]
    ChecksumMismatch,
}

fn checksum(text: &str) -> String {
    base62_fixed(u64::from(crc32fast::hash(text.as_bytes())), CHECKSUM_LEN)
}

fn generate(prefix: &str, body_len: usize) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(prefix.len() + body_len + CHECKSUM_LEN));
    s.push_str(prefix);
    s.push_str(&random_base62(body_len));
    let sum = checksum(&s);
    s.push_str(&sum);
    s
}

fn validate(s: &str, prefix: &'static str, body_len: usize) -> Result<(), TokenFormatError> {
    let expected = prefix.len() + body_len + CHECKSUM_LEN;
    if !s.starts_with(prefix) {
        return Err(TokenFormatError::MissingPrefix { expected: prefix });
    }
    if s.len() != expected {
        return Err(TokenFormatError::WrongLength { actual: s.len(), expected });
    }
    let rest = &s[prefix.len()..];
    if !is_base62(rest) {
        return Err(TokenFormatError::InvalidCharacter);
    }
    let (text, sum) = s.split_at(expected - CHECKSUM_LEN);
    if checksum(text) != sum {
        return Err(TokenFormatError::ChecksumMismatch);
    }
    Ok(())
}

/// True when `s` is a well-formed opaque token (prefix, length, alphabet, checksum).
pub fn is_valid_token(s: &str) -> bool {
    validate(s, TOKEN_PREFIX, TOKEN_BODY_LEN).is_ok()
}

/// True when `s` is a well-formed client secret (what [`ClientSecret::parse`] accepts), without
/// copying it.
pub fn is_valid_client_secret(s: &str) -> bool {
    validate(s, CLIENT_SECRET_PREFIX, CLIENT_SECRET_BODY_LEN).is_ok()
}

/// The secret text of an opaque token. It exists only between minting and the response that
/// shows it once, and between receiving a request and hashing it. No `Display`, no
/// `Serialize`; `Debug` is redacted; the memory is zeroized on drop.
#[derive(Clone)]
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// A new token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(generate(TOKEN_PREFIX, TOKEN_BODY_LEN))
    }

    /// Checks the format and checksum of `s` without any lookup.
    pub fn parse(s: &str) -> Result<Self, TokenFormatError> {
        validate(s, TOKEN_PREFIX, TOKEN_BODY_LEN)?;
        Ok(Self(Zeroizing::new(s.to_owned())))
    }

    /// The token text, for the single place that shows or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(tsr_…redacted)")
    }
}

/// A client secret: `tsc_` + 43 base62 characters (256 bits) + 6 checksum characters.
/// Same handling as [`TokenSecret`].
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// A new client secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(generate(CLIENT_SECRET_PREFIX, CLIENT_SECRET_BODY_LEN))
    }

    /// Checks the format and checksum of `s`.
    pub fn parse(s: &str) -> Result<Self, TokenFormatError> {
        validate(s, CLIENT_SECRET_PREFIX, CLIENT_SECRET_BODY_LEN)?;
        Ok(Self(Zeroizing::new(s.to_owned())))
    }

    /// The secret text, for the single place that shows or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(tsc_…redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let t = TokenSecret::generate();
        let s = t.expose();
        assert_eq!(s.len(), 42);
        assert!(s.starts_with("tsr_"));
        assert!(TokenSecret::parse(s).is_ok());
        assert!(is_valid_token(s));
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let t = TokenSecret::generate();
        let s = t.expose().to_owned();
        for i in 4..s.len() {
            let mut bytes = s.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(TokenSecret::parse(&changed).unwrap_err(), TokenFormatError::ChecksumMismatch, "position {i}");
        }
    }

    #[test]
    fn malformed_tokens_are_rejected_with_the_reason() {
        let good = TokenSecret::generate().expose().to_owned();
        let cases: Vec<(String, TokenFormatError)> = vec![
            (good.replacen("tsr_", "tsx_", 1), TokenFormatError::MissingPrefix { expected: "tsr_" }),
            (good[..41].to_owned(), TokenFormatError::WrongLength { actual: 41, expected: 42 }),
            (format!("{good}x"), TokenFormatError::WrongLength { actual: 43, expected: 42 }),
            (format!("tsr_{}", "-".repeat(38)), TokenFormatError::InvalidCharacter),
            (String::new(), TokenFormatError::MissingPrefix { expected: "tsr_" }),
        ];
        for (input, expected) in cases {
            assert_eq!(TokenSecret::parse(&input).unwrap_err(), expected, "{input:?}");
        }
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        let s = format!("tsr_{}", "é".repeat(19));
        assert!(TokenSecret::parse(&s).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = TokenSecret::generate();
        let debug = format!("{t:?}");
        assert!(!debug.contains(&t.expose()[4..]));
        let c = ClientSecret::generate();
        assert!(!format!("{c:?}").contains(&c.expose()[4..]));
        assert_eq!(c.expose().len(), 53);
        assert!(ClientSecret::parse(c.expose()).is_ok());
    }

    #[test]
    fn validity_checks_agree_with_parse() {
        let (t, c) = (TokenSecret::generate(), ClientSecret::generate());
        let (t, c) = (t.expose(), c.expose());
        for s in [t, c, &t[..41], &c[..52], "", "tsr_", "tsc_", &format!("{t}x"), &format!("{c}x")] {
            assert_eq!(is_valid_token(s), TokenSecret::parse(s).is_ok(), "{s:?}");
            assert_eq!(is_valid_client_secret(s), ClientSecret::parse(s).is_ok(), "{s:?}");
        }
    }
}

/// The text of an issued access token of either format (an opaque `tsr_` token or a JWT),
/// between minting and the one response that shows it. Redacted `Debug`, zeroized on drop.
#[derive(Clone)]
pub struct IssuedToken(Zeroizing<String>);

impl IssuedToken {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<TokenSecret> for IssuedToken {
    fn from(t: TokenSecret) -> Self {
        Self(t.0)
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken(redacted)")
    }
}
