//! The tokens of the matrix: minted by Tessera (valid, expired, revoked, rotated …) or forged
//! locally (tampered, `alg: none`, unknown key, garbage).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{TimeDelta, Utc};
use tessera_api::{CreateTestToken, CreateToken, RevokeToken, RotateToken};
use tessera_client::Client;

/// The credential each case sends, or why it cannot run here.
pub type CaseTokens = BTreeMap<&'static str, Result<String, String>>;

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A Tessera server mints every kind of token.
    Tessera { client: Client, env: String, client_id: String, audience: Option<String> },
    /// Only a valid token is given; cases that need an issuer are skipped.
    Given(String),
}

/// True when `t` is a compact JWS.
pub fn is_jwt(t: &str) -> bool {
    t.split('.').count() == 3 && t.split('.').all(|p| !p.is_empty() || t.ends_with('.'))
}

fn forge(valid: &str, out: &mut CaseTokens) {
    out.insert("garbage", Ok("not-a-token-3f9c2b".into()));
    let mut chars: Vec<char> = valid.chars().collect();
    if is_jwt(valid) {
        let parts: Vec<&str> = valid.split('.').collect();
        // Flip a character in the middle of the signature: every byte there matters.
        let mut sig: Vec<char> = parts[2].chars().collect();
        let i = sig.len() / 2;
        sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
        out.insert(
            "tampered_signature",
            Ok(format!("{}.{}.{}", parts[0], parts[1], sig.into_iter().collect::<String>())),
        );
        let header: serde_json::Value =
            B64.decode(parts[0]).ok().and_then(|h| serde_json::from_slice(&h).ok()).unwrap_or_default();
        let none = serde_json::json!({"alg": "none", "typ": header.get("typ").cloned().unwrap_or("JWT".into())});
        out.insert("alg_none", Ok(format!("{}.{}.", B64.encode(none.to_string()), parts[1])));
        out.insert("unknown_key", Ok(sign_with_unknown_key(parts[1])));
    } else {
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        out.insert("tampered_signature", Ok(chars.into_iter().collect()));
        for case in ["alg_none", "unknown_key"] {
            out.insert(case, Err("the valid token is not a JWT".into()));
        }
    }
}

/// The same claims, signed by a fresh Ed25519 key nobody published.
fn sign_with_unknown_key(payload: &str) -> String {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key generation");
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("fresh key loads");
    let kid = format!("authtest-{}", &B64.encode(kp.public_key().as_ref())[..8]);
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let signing_input = format!("{}.{payload}", B64.encode(header.to_string()));
    let sig = kp.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.as_ref()))
}

/// Tokens for an operation requiring `scopes`. Minted tokens carry exactly those scopes.
pub async fn tokens_for(source: &Source, scopes: &[String], run_label: &str) -> Result<CaseTokens, String> {
    let mut out = CaseTokens::new();
    match source {
        Source::Given(token) => {
            out.insert("valid", Ok(token.clone()));
            forge(token, &mut out);
            for case in [
                "expired",
                "not_yet_valid",
                "revoked",
                "wrong_audience",
                "wrong_environment",
                "insufficient_scope",
                "rotated_after_grace",
                "rotated_within_grace",
                "idle_expired",
                "exhausted",
            ] {
                out.insert(
                    case,
                    Err("needs a Tessera server to mint it (--env and --client instead of --token)".into()),
                );
            }
        }
        Source::Tessera { client, env, client_id, audience } => {
            let labels = BTreeMap::from([("authtest".to_owned(), run_label.to_owned())]);
            let scopes_opt = (!scopes.is_empty()).then(|| scopes.to_vec());
            let base = CreateToken {
                env: env.clone(),
                client: client_id.clone(),
                scopes: scopes_opt.clone(),
                audience: audience.clone(),
                ttl: Some("15m".into()),
                labels: labels.clone(),
                ..Default::default()
            };
            let mint = |req: CreateToken| async move { client.create_token(&req).await.map_err(|e| e.to_string()) };
            let valid = mint(base.clone()).await.map_err(|e| format!("cannot mint a valid token: {e}"))?;
            out.insert("valid", Ok(valid.token.clone()));
            forge(&valid.token, &mut out);
            let test = |f: &dyn Fn(&mut CreateTestToken)| {
                let mut req = CreateTestToken {
                    env: env.clone(),
                    client: client_id.clone(),
                    scopes: scopes_opt.clone(),
                    audience: audience.clone(),
                    labels: labels.clone(),
                    ..Default::default()
                };
                f(&mut req);
                async move { client.create_test_token(&req).await.map(|t| t.token).map_err(|e| e.to_string()) }
            };
            let now = Utc::now();
            out.insert(
                "expired",
                test(&|r| {
                    r.issued_at = Some(now - TimeDelta::hours(2));
                    r.expires_at = Some(now - TimeDelta::hours(1));
                })
                .await,
            );
            out.insert("not_yet_valid", test(&|r| r.not_before = Some(now + TimeDelta::hours(1))).await);
            out.insert("wrong_audience", test(&|r| r.audience = Some("tessera-authtest-wrong-audience".into())).await);
            out.insert(
                "idle_expired",
                test(&|r| {
                    r.issued_at = Some(now - TimeDelta::minutes(10));
                    r.expires_at = Some(now + TimeDelta::hours(1));
                    r.idle_ttl = Some("1m".into());
                })
                .await,
            );
            out.insert("exhausted", test(&|r| r.max_uses = Some(1)).await);
            let revoked = mint(base.clone()).await;
            out.insert(
                "revoked",
                match revoked {
                    Ok(t) => client
                        .revoke_token(&t.info.id, &RevokeToken { reason: Some("authtest".into()) })
                        .await
                        .map(|_| t.token)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                },
            );
            for (case, grace) in [("rotated_after_grace", "0s"), ("rotated_within_grace", "1h")] {
                let r = mint(base.clone()).await;
                out.insert(
                    case,
                    match r {
                        Ok(t) => client
                            .rotate_token(&t.info.id, &RotateToken { grace: Some(grace.into()) })
                            .await
                            .map(|_| t.token)
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    },
                );
            }
            out.insert(
                "insufficient_scope",
                match scopes.split_last() {
                    None => Err("the operation requires no scope".into()),
                    Some((_, [])) => {
                        // Lacking the only required scope: a token of the client's other scopes.
                        let others = client
                            .client(client_id)
                            .await
                            .map_err(|e| e.to_string())?
                            .scopes
                            .get(env)
                            .map(|s| s.iter().filter(|x| !scopes.contains(x)).cloned().collect::<Vec<_>>())
                            .unwrap_or_default();
                        if others.is_empty() {
                            Err(format!(
                                "client {client_id} holds no scope in {env} besides the required {}",
                                scopes[0]
                            ))
                        } else {
                            mint(CreateToken { scopes: Some(vec![others[0].clone()]), ..base.clone() })
                                .await
                                .map(|t| t.token)
                        }
                    }
                    Some((_, rest)) => {
                        mint(CreateToken { scopes: Some(rest.to_vec()), ..base.clone() }).await.map(|t| t.token)
                    }
                },
            );
            let other_env = client
                .client(client_id)
                .await
                .map_err(|e| e.to_string())?
                .scopes
                .into_iter()
                .find(|(e, s)| e != env && scopes.iter().all(|x| s.contains(x)))
                .map(|(e, _)| e);
            out.insert(
                "wrong_environment",
                match other_env {
                    Some(e) => mint(CreateToken { env: e, ..base.clone() }).await.map(|t| t.token),
                    None => Err(format!("client {client_id} holds these scopes in no environment besides {env}")),
                },
            );
        }
    }
    out.insert("missing", Ok(String::new()));
    out.insert("malformed_header", out["valid"].clone());
    out.insert("wrong_scheme", out["valid"].clone());
    out.insert("token_in_query", out["valid"].clone());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_jwts_keep_the_claims_and_break_the_signature() {
        let jwt = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
        let mut out = CaseTokens::new();
        forge(jwt, &mut out);
        let tampered = out["tampered_signature"].clone().unwrap();
        assert_ne!(tampered, jwt);
        assert_eq!(tampered.split('.').nth(1), jwt.split('.').nth(1));
        let none = out["alg_none"].clone().unwrap();
        assert!(none.ends_with('.'));
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(none.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "none");
        let unknown = out["unknown_key"].clone().unwrap();
        assert_eq!(unknown.split('.').nth(1), jwt.split('.').nth(1));
        let mut opaque = CaseTokens::new();
        let token = tessera_core::TokenSecret::generate();
        forge(token.expose(), &mut opaque);
        assert!(opaque["alg_none"].is_err());
        assert_ne!(opaque["tampered_signature"].clone().unwrap(), token.expose());
    }
}
