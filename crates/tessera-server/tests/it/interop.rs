//! Interoperability with independent implementations: the `oauth2` crate as the OAuth client,
//! and `jsonwebtoken` validating Tessera's JWTs from nothing but the published metadata and
//! JWKS, for every algorithm, across a key rotation.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, IntrospectionUrl, Scope, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;
use tessera_client::api::RotateKeys;

use crate::oauth::issuer;

#[tokio::test]
async fn the_oauth2_crate_obtains_and_introspects_a_token() {
    let i = issuer().await;
    let base = &i.s.url;
    let http = oauth2::reqwest::Client::builder().redirect(oauth2::reqwest::redirect::Policy::none()).build().unwrap();
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new("svc".into()))
            .set_client_secret(ClientSecret::new(i.secrets["svc"].clone()))
            .set_auth_type(auth.clone())
            .set_token_uri(TokenUrl::new(format!("{base}/env/staging/oauth2/token")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(format!("{base}/oauth2/introspect")).unwrap());
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("orders:read".into()))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        assert_eq!(token.scopes().unwrap()[0].as_str(), "orders:read");
        assert!(token.expires_in().unwrap().as_secs() > 3_500);
        let introspected = client.introspect(token.access_token()).request_async(&http).await.unwrap();
        assert!(introspected.active(), "{auth:?}");
        assert_eq!(introspected.client_id().unwrap().as_str(), "svc");
    }
    // A wrong secret is an error the library understands.
    let bad = BasicClient::new(ClientId::new("svc".into()))
        .set_client_secret(ClientSecret::new("tsc_wrong".into()))
        .set_token_uri(TokenUrl::new(format!("{base}/env/staging/oauth2/token")).unwrap());
    let err = bad.exchange_client_credentials().request_async(&http).await.unwrap_err();
    assert!(format!("{err:?}").contains("invalid_client"), "{err:?}");
}

/// Validates `jwt` the way an independent resource server does: discover the issuer metadata,
/// fetch its JWKS, pick the key by `kid`, check signature, issuer, audience and expiry.
async fn validate_independently(
    http: &reqwest::Client,
    base: &str,
    env: &str,
    jwt: &str,
    audience: &str,
) -> Result<Value, String> {
    let meta: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server/env/{env}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks: JwkSet = http.get(meta["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let header = decode_header(jwt).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("kid {kid} not in the JWKS of {env}"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    if ![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256].contains(&header.alg) {
        return Err(format!("algorithm {:?} not allowed", header.alg));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[meta["issuer"].as_str().unwrap()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(jwt, &key, &validation).map(|d| d.claims).map_err(|e| e.to_string())
}

#[tokio::test]
async fn jsonwebtoken_validates_every_algorithm_across_a_rotation_using_only_the_jwks() {
    let i = issuer().await;
    let http = reqwest::Client::new();
    let base = i.s.url.clone();
    for (client, alg) in [("jwt-ed", "EdDSA"), ("jwt-es", "ES256"), ("jwt-rs", "RS256")] {
        let before = i.mint("staging", client, &[("audience", "orders-api")]).await;
        let before = before["access_token"].as_str().unwrap().to_owned();
        i.s.root_client().rotate_keys(&RotateKeys { env: "staging".into(), alg: Some(alg.into()) }).await.unwrap();
        let after = i.mint("staging", client, &[("audience", "orders-api")]).await;
        let after = after["access_token"].as_str().unwrap().to_owned();
        assert_ne!(decode_header(&before).unwrap().kid, decode_header(&after).unwrap().kid, "{alg}");
        for jwt in [&before, &after] {
            let claims = validate_independently(&http, &base, "staging", jwt, "orders-api")
                .await
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(claims["client_id"], client);
        }
        // Wrong audience, and another environment's keys: refused.
        let wrong_aud = validate_independently(&http, &base, "staging", &after, "billing-api").await;
        assert!(wrong_aud.unwrap_err().contains("Audience"), "{alg}");
        let other_env = validate_independently(&http, &base, "qa", &after, "orders-api").await;
        assert!(other_env.unwrap_err().contains("not in the JWKS of qa"), "{alg}");
    }
    // A qa token does not validate against staging either, and vice versa for introspection.
    let qa = i.mint("qa", "jwt-ed", &[("audience", "orders-api")]).await;
    let qa = qa["access_token"].as_str().unwrap();
    assert!(validate_independently(&http, &base, "staging", qa, "orders-api").await.is_err());
    assert!(validate_independently(&http, &base, "qa", qa, "orders-api").await.is_ok());
}
