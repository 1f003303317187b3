//! JWT access tokens (RFC 9068): signing with the environment's current key and verification
//! against the keyring. Compact JWS only; the algorithm allow-list is exactly the keyring's
//! (`EdDSA`, `ES256`, `RS256`) and the algorithm must match the key named by `kid`, so
//! `alg: none`, HMAC confusion and unknown keys are all refused before any signature check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keys::{Keyring, SigningKey};

/// Claims of a Tessera access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    pub env: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// Why a JWT does not verify. Says nothing about the token's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token type is not at+jwt")]
    WrongType,
    #[error("issuer does not match the signing key's environment")]
    WrongIssuer,
}

/// True when `s` has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    ok(parts.next()) && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Signs `claims` with `key` as an `at+jwt`.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let header = Header { alg: key.alg.as_str().to_owned(), typ: Some("at+jwt".into()), kid: Some(key.kid.clone()) };
    let mut out = B64.encode(serde_json::to_vec(&header).expect("header serializes"));
    out.push('.');
    out.push_str(&B64.encode(serde_json::to_vec(claims).expect("claims serialize")));
    let sig = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&B64.encode(sig));
    out
}

/// Verifies the signature with the keyring and returns the claims with the key used. Time
/// claims are *not* checked here: the lifecycle rules do that with the stored record.
pub fn verify(
    keyring: &Keyring,
    token: &str,
    issuer_of: impl Fn(&str) -> String,
) -> Result<(Claims, String), JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: Header =
        serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?).map_err(|_| JwtError::Malformed)?;
    if !matches!(header.alg.as_str(), "EdDSA" | "ES256" | "RS256") {
        return Err(JwtError::AlgorithmNotAllowed);
    }
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("at+jwt") && !t.eq_ignore_ascii_case("application/at+jwt"))
    {
        return Err(JwtError::WrongType);
    }
    let kid = header.kid.ok_or(JwtError::UnknownKey)?;
    let key = keyring.get(&kid).ok_or(JwtError::UnknownKey)?;
    if key.alg.as_str() != header.alg {
        return Err(JwtError::AlgorithmNotAllowed);
    }
    let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
    let signed_len = h.len() + 1 + p.len();
    if !key.verify(&token.as_bytes()[..signed_len], &sig) {
        return Err(JwtError::BadSignature);
    }
    let claims: Claims =
        serde_json::from_slice(&B64.decode(p).map_err(|_| JwtError::Malformed)?).map_err(|_| JwtError::Malformed)?;
    if claims.env != key.env || claims.iss != issuer_of(&key.env) {
        return Err(JwtError::WrongIssuer);
    }
    Ok((claims, key.env.clone()))
}
