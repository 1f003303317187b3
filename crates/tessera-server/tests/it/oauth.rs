//! The OAuth 2.0 issuer over real HTTP: token endpoint, introspection, revocation, metadata,
//! JWKS, key rotation, and every bad input the RFCs name.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tessera_client::api::{CreateClient, CreateEnvironment, CreateTestToken, RotateKeys};

use crate::harness::{problem, TestServer};

pub struct Issuer {
    pub s: TestServer,
    /// Secrets of clients `svc` (opaque), `jwt-ed`, `jwt-es`, `jwt-rs` (JWT per algorithm) and
    /// `rs-api` (a resource server that introspects).
    pub secrets: BTreeMap<String, String>,
}

pub async fn issuer() -> Issuer {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.env("qa").await;
    let c = s.root_client();
    let mut secrets = BTreeMap::new();
    for (id, format, alg) in
        [("svc", "opaque", "EdDSA"), ("jwt-ed", "jwt", "EdDSA"), ("jwt-es", "jwt", "ES256"), ("jwt-rs", "jwt", "RS256")]
    {
        let created = c
            .create_client(&CreateClient {
                id: id.into(),
                scopes: BTreeMap::from([
                    ("staging".into(), vec!["orders:read".into(), "orders:write".into()]),
                    ("qa".into(), vec!["orders:read".into()]),
                ]),
                token_format: Some(format.into()),
                alg: Some(alg.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        secrets.insert(id.to_owned(), created.client_secret);
    }
    let rs = c
        .create_client(&CreateClient {
            id: "rs-api".into(),
            scopes: BTreeMap::from([("staging".into(), vec!["introspect".into()])]),
            ..Default::default()
        })
        .await
        .unwrap();
    secrets.insert("rs-api".into(), rs.client_secret);
    Issuer { s, secrets }
}

impl Issuer {
    pub fn basic(&self, id: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{}", self.secrets[id])))
    }

    pub async fn token_request(&self, env: &str, auth: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.s.http().post(format!("{}/env/{env}/oauth2/token", self.s.url)).form(form);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap()
    }

    /// A token for `client` in `env` via client_credentials with HTTP Basic.
    pub async fn mint(&self, env: &str, client: &str, form: &[(&str, &str)]) -> Value {
        let mut all = vec![("grant_type", "client_credentials")];
        all.extend_from_slice(form);
        let resp = self.token_request(env, Some(&self.basic(client)), &all).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        resp.json().await.unwrap()
    }

    /// Introspection as the resource server `rs-api`.
    pub async fn introspect(&self, token: &str) -> Value {
        self.introspect_as(&self.basic("rs-api"), token).await
    }

    pub async fn introspect_as(&self, auth: &str, token: &str) -> Value {
        let resp = self
            .s
            .http()
            .post(format!("{}/oauth2/introspect", self.s.url))
            .header("authorization", auth)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = serde_json::from_slice(&B64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&B64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

#[tokio::test]
async fn client_credentials_with_basic_and_post_authentication() {
    let i = issuer().await;
    let t = i.mint("staging", "svc", &[("scope", "orders:read")]).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "orders:read");
    assert_eq!(t["expires_in"], 3_600);
    let opaque = t["access_token"].as_str().unwrap();
    assert!(tessera_core::TokenSecret::parse(opaque).is_ok());

    let resp = i
        .token_request(
            "staging",
            None,
            &[("grant_type", "client_credentials"), ("client_id", "svc"), ("client_secret", &i.secrets["svc"])],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "orders:read orders:write", "no scope asked: every allowed scope");

    // Tokens from the OAuth endpoint are control-plane tokens: listed and audited.
    let listed = i.s.root_client().tokens(&Default::default()).await.unwrap();
    assert!(listed.iter().filter(|t| t.client == "svc").count() == 2);
    let audit = i.s.root_client().audit(0, 1000).await.unwrap().entries;
    assert!(audit.iter().any(|e| e.action == "token.create" && e.actor == "client:svc"));
}

#[tokio::test]
async fn jwt_access_tokens_follow_rfc_9068() {
    let i = issuer().await;
    for (client, alg) in [("jwt-ed", "EdDSA"), ("jwt-es", "ES256"), ("jwt-rs", "RS256")] {
        let t = i.mint("staging", client, &[("scope", "orders:read"), ("audience", "orders-api")]).await;
        let jwt = t["access_token"].as_str().unwrap();
        let (header, claims) = jwt_parts(jwt);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg);
        assert!(header["kid"].as_str().unwrap().starts_with("key_"));
        assert_eq!(claims["iss"], format!("{}/env/staging", i.s.url));
        assert_eq!(claims["aud"], "orders-api");
        assert_eq!(claims["sub"], client);
        assert_eq!(claims["client_id"], client);
        assert_eq!(claims["scope"], "orders:read");
        assert_eq!(claims["env"], "staging");
        assert!(claims["jti"].as_str().unwrap().starts_with("tok_"));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3_600);
        assert_eq!(claims["nbf"], claims["iat"]);
        let intro = i.introspect(jwt).await;
        assert_eq!(intro["active"], true, "{client}: {intro}");
        assert_eq!(intro["jti"], claims["jti"]);
        // The admin view lists it as a jwt token.
        let view = i.s.root_client().token(claims["jti"].as_str().unwrap()).await.unwrap();
        assert_eq!(view.format, "jwt");
    }
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let i = issuer().await;
    let good = i.basic("svc");
    let wrong_secret =
        format!("Basic {}", STANDARD.encode(format!("svc:{}", tessera_core::ClientSecret::generate().expose())));
    let unknown = format!("Basic {}", STANDARD.encode(format!("ghost:{}", i.secrets["svc"])));
    i.s.root_client().disable_client("jwt-ed").await.unwrap();
    let disabled = i.basic("jwt-ed");
    let cc = ("grant_type", "client_credentials");
    let before = i.s.audit_seq().await;
    type Case<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("wrong secret", Some(&wrong_secret), vec![cc], 401, "invalid_client"),
        ("unknown client", Some(&unknown), vec![cc], 401, "invalid_client"),
        ("disabled client", Some(&disabled), vec![cc], 401, "invalid_client"),
        ("no authentication", None, vec![cc], 401, "invalid_client"),
        ("scope not allowed", Some(&good), vec![cc, ("scope", "orders:delete")], 400, "invalid_scope"),
        ("scope not allowed in qa", Some(&good), vec![cc, ("scope", "orders:write")], 400, "invalid_scope"),
        ("malformed scope", Some(&good), vec![cc, ("scope", "a\"b")], 400, "invalid_scope"),
        ("unsupported grant", Some(&good), vec![("grant_type", "password")], 400, "unsupported_grant_type"),
        ("missing grant", Some(&good), vec![], 400, "invalid_request"),
        (
            "duplicate parameter",
            Some(&good),
            vec![cc, ("scope", "orders:read"), ("scope", "orders:read")],
            400,
            "invalid_request",
        ),
        (
            "two authentication methods",
            Some(&good),
            vec![cc, ("client_id", "svc"), ("client_secret", i.secrets["svc"].as_str())],
            400,
            "invalid_request",
        ),
        ("conflicting targets", Some(&good), vec![cc, ("audience", "a"), ("resource", "b")], 400, "invalid_request"),
    ];
    for (name, auth, form, status, error) in cases {
        let env = if name.ends_with("in qa") { "qa" } else { "staging" };
        let resp = i.token_request(env, auth, &form).await;
        assert_eq!(resp.status().as_u16(), status, "{name}");
        if status == 401 {
            let www = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(www.starts_with("Basic"), "{name}: {www}");
        }
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], error, "{name}: {body}");
        assert!(!text.contains(&i.secrets["svc"][4..]), "{name}: the secret is echoed");
    }
    // Unknown environment; wrong content type; oversized body.
    let resp = i.token_request("prod", Some(&good), &[cc]).await;
    assert_eq!(resp.status(), 404);
    let resp =
        i.s.http()
            .post(format!("{}/env/staging/oauth2/token", i.s.url))
            .header("authorization", &good)
            .json(&json!({"grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    let huge = format!("grant_type=client_credentials&scope={}", "a".repeat(100_000));
    let resp =
        i.s.http()
            .post(format!("{}/env/staging/oauth2/token", i.s.url))
            .header("authorization", &good)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(huge)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    assert_eq!(i.s.audit_seq().await, before, "no refused request changed anything");
}

#[tokio::test]
async fn introspection_answers_active_or_exactly_inactive() {
    let i = issuer().await;
    let opaque = i.mint("staging", "svc", &[("scope", "orders:read"), ("resource", "orders-api")]).await;
    let opaque = opaque["access_token"].as_str().unwrap();
    let a = i.introspect(opaque).await;
    assert_eq!(a["active"], true);
    assert_eq!(a["scope"], "orders:read");
    assert_eq!(a["client_id"], "svc");
    assert_eq!(a["aud"], "orders-api");
    assert_eq!(a["token_type"], "Bearer");
    assert_eq!(a["iss"], format!("{}/env/staging", i.s.url));
    assert!(a["exp"].as_i64().unwrap() > a["iat"].as_i64().unwrap());
    let id = a["jti"].as_str().unwrap().to_owned();

    i.s.root_client().revoke_token(&id, &Default::default()).await.unwrap();
    assert_eq!(i.introspect(opaque).await, json!({"active": false}), "a resource server learns nothing more");
    let admin = i.introspect_as(&format!("Bearer {}", i.s.root), opaque).await;
    assert_eq!(admin["active"], false);
    assert_eq!(admin["inactive_reason"], "revoked", "an admin learns why");
    for garbage in ["", "x", "tsr_short", "a.b.c", &"x".repeat(5000)] {
        let resp =
            i.s.http()
                .post(format!("{}/oauth2/introspect", i.s.url))
                .header("authorization", i.basic("rs-api"))
                .form(&[("token", garbage)])
                .send()
                .await
                .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if garbage.is_empty() {
            assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_request")));
        } else {
            assert_eq!(body, json!({"active": false}), "{garbage:?}");
        }
    }
    // Caller authentication is required.
    let resp =
        i.s.http().post(format!("{}/oauth2/introspect", i.s.url)).form(&[("token", opaque)]).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // A client of another environment learns nothing about staging tokens.
    let qa_only =
        i.s.root_client()
            .create_client(&CreateClient {
                id: "qa-api".into(),
                scopes: BTreeMap::from([("qa".into(), vec!["introspect".into()])]),
                ..Default::default()
            })
            .await
            .unwrap();
    let live = i.mint("staging", "svc", &[]).await;
    let qa_auth = format!("Basic {}", STANDARD.encode(format!("qa-api:{}", qa_only.client_secret)));
    assert_eq!(i.introspect_as(&qa_auth, live["access_token"].as_str().unwrap()).await, json!({"active": false}));
}

#[tokio::test]
async fn introspections_count_as_uses_and_admin_inspection_does_not() {
    let i = issuer().await;
    let created =
        i.s.root_client()
            .create_token(&tessera_client::api::CreateToken {
                env: "staging".into(),
                client: "svc".into(),
                max_uses: Some(3),
                ..Default::default()
            })
            .await
            .unwrap();
    let admin = format!("Bearer {}", i.s.root);
    for _ in 0..5 {
        assert_eq!(i.introspect_as(&admin, &created.token).await["active"], true);
    }
    for n in 1..=3 {
        assert_eq!(i.introspect(&created.token).await["active"], true, "use {n}");
    }
    assert_eq!(i.introspect(&created.token).await, json!({"active": false}));
    assert_eq!(i.introspect_as(&admin, &created.token).await["inactive_reason"], "exhausted");
    let view = i.s.root_client().token(&created.info.id).await.unwrap();
    assert_eq!((view.uses, view.inactive_reason.as_deref()), (3, Some("exhausted")));
    assert!(view.last_used_at.is_some());
    let metrics = i.s.http().get(format!("{}/metrics", i.s.url)).send().await.unwrap().text().await.unwrap();
    // Every introspection is counted in metrics, the admin's too: 5 + 3 active, 1 + 1 exhausted.
    assert!(metrics.contains("tessera_tokens_introspected_total{result=\"exhausted\"} 2"), "{metrics}");
    assert!(metrics.contains("tessera_tokens_introspected_total{result=\"active\"} 8"), "{metrics}");
    assert!(
        metrics.contains("tessera_http_requests_total{method=\"POST\",route=\"/oauth2/introspect\",status=\"200\"}")
    );
}

#[tokio::test]
async fn forged_and_tampered_jwts_are_inactive() {
    let i = issuer().await;
    let t = i.mint("staging", "jwt-ed", &[("scope", "orders:read")]).await;
    let jwt = t["access_token"].as_str().unwrap().to_owned();
    let (header, claims) = jwt_parts(&jwt);
    let parts: Vec<&str> = jwt.split('.').collect();
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());

    let mut widened = claims.clone();
    widened["scope"] = "orders:read orders:write".into();
    let tampered = format!("{}.{}.{}", parts[0], enc(&widened), parts[2]);

    let none = format!("{}.{}.", enc(&json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]})), parts[1]);

    // HS256 "confusion": an HMAC keyed with the published public key.
    let jwks: Value =
        i.s.http()
            .get(format!("{}/env/staging/.well-known/jwks.json", i.s.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let kid = header["kid"].as_str();
    let sign = |alg, kid: Option<&str>, key: &jsonwebtoken::EncodingKey| {
        let header = jsonwebtoken::Header { alg, kid: kid.map(Into::into), ..Default::default() };
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let hs = sign(jsonwebtoken::Algorithm::HS256, kid, &jsonwebtoken::EncodingKey::from_secret(public_x.as_bytes()));

    // Signed by a key Tessera never published.
    let rogue = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let rogue = jsonwebtoken::EncodingKey::from_ed_der(rogue.as_ref());
    let unknown_kid = sign(jsonwebtoken::Algorithm::EdDSA, Some("key_rogue"), &rogue);
    let same_kid_rogue_key = sign(jsonwebtoken::Algorithm::EdDSA, kid, &rogue);
    let truncated_sig = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);

    assert_eq!(i.introspect(&jwt).await["active"], true);
    for (name, forged) in [
        ("tampered payload", tampered),
        ("alg none", none),
        ("HS256 with the public key", hs),
        ("unknown kid", unknown_kid),
        ("known kid, wrong key", same_kid_rogue_key),
        ("truncated signature", truncated_sig),
    ] {
        assert_eq!(i.introspect(&forged).await, json!({"active": false}), "{name}");
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_inactive() {
    let i = issuer().await;
    let c = i.s.root_client();
    let now = chrono::Utc::now();
    for format in ["opaque", "jwt"] {
        let expired = c
            .create_test_token(&CreateTestToken {
                env: "staging".into(),
                client: "svc".into(),
                format: Some(format.into()),
                issued_at: Some(now - chrono::TimeDelta::hours(2)),
                expires_at: Some(now - chrono::TimeDelta::hours(1)),
                ..Default::default()
            })
            .await
            .unwrap();
        let future = c
            .create_test_token(&CreateTestToken {
                env: "staging".into(),
                client: "svc".into(),
                format: Some(format.into()),
                not_before: Some(now + chrono::TimeDelta::hours(1)),
                ..Default::default()
            })
            .await
            .unwrap();
        let admin = format!("Bearer {}", i.s.root);
        assert_eq!(i.introspect(&expired.token).await, json!({"active": false}), "{format}");
        assert_eq!(i.introspect_as(&admin, &expired.token).await["inactive_reason"], "expired", "{format}");
        assert_eq!(i.introspect(&future.token).await, json!({"active": false}), "{format}");
        assert_eq!(i.introspect_as(&admin, &future.token).await["inactive_reason"], "not_yet_valid", "{format}");
        if format == "jwt" {
            let (_, claims) = jwt_parts(&expired.token);
            assert_eq!(claims["exp"].as_i64().unwrap(), (now - chrono::TimeDelta::hours(1)).timestamp());
            let (_, claims) = jwt_parts(&future.token);
            assert_eq!(claims["nbf"].as_i64().unwrap(), (now + chrono::TimeDelta::hours(1)).timestamp());
        }
    }
    // Never in a protected environment.
    c.create_environment(&CreateEnvironment { name: "prod".into(), protected: true, ..Default::default() })
        .await
        .unwrap();
    let (status, p) = problem(
        c.create_test_token(&CreateTestToken { env: "prod".into(), client: "svc".into(), ..Default::default() }).await,
    );
    assert_eq!(status, 403, "{p:?}");
    assert!(p.detail.contains("protected"));
}

#[tokio::test]
async fn revocation_endpoint_follows_rfc_7009() {
    let i = issuer().await;
    let t = i.mint("staging", "svc", &[]).await;
    let token = t["access_token"].as_str().unwrap();
    let revoke = |auth: String, form: Vec<(&'static str, String)>| {
        let http = i.s.http();
        let url = format!("{}/oauth2/revoke", i.s.url);
        async move { http.post(url).header("authorization", auth).form(&form).send().await.unwrap() }
    };
    // Another client may not revoke it.
    let resp = revoke(i.basic("jwt-es"), vec![("token", token.into())]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    assert_eq!(i.introspect(token).await["active"], true);
    // Unsupported hint.
    let resp = revoke(i.basic("svc"), vec![("token", token.into()), ("token_type_hint", "id_token".into())]).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unsupported_token_type");
    // The owner may; twice is fine; unknown tokens get 200 too.
    for _ in 0..2 {
        let resp =
            revoke(i.basic("svc"), vec![("token", token.into()), ("token_type_hint", "access_token".into())]).await;
        assert_eq!(resp.status(), 200);
    }
    let resp = revoke(i.basic("svc"), vec![("token", "tsr_unknown".into())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(i.introspect(token).await, json!({"active": false}));
    let audit = i.s.root_client().audit(0, 1000).await.unwrap().entries;
    let revokes: Vec<_> = audit.iter().filter(|e| e.action == "token.revoke").collect();
    assert_eq!(revokes.len(), 1, "revoking twice audits once");
    assert_eq!(revokes[0].details["via"], "oauth2");
    // JWTs are revocable the same way.
    let jwt = i.mint("staging", "jwt-rs", &[]).await;
    let jwt = jwt["access_token"].as_str().unwrap();
    let resp = revoke(i.basic("jwt-rs"), vec![("token", jwt.into())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(i.introspect(jwt).await, json!({"active": false}));
}

#[tokio::test]
async fn metadata_and_jwks_per_environment() {
    let i = issuer().await;
    for path in
        ["/env/staging/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/env/staging"]
    {
        let m: Value = i.s.http().get(format!("{}{path}", i.s.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(m["issuer"], format!("{}/env/staging", i.s.url));
        assert_eq!(m["token_endpoint"], format!("{}/env/staging/oauth2/token", i.s.url));
        assert_eq!(m["jwks_uri"], format!("{}/env/staging/.well-known/jwks.json", i.s.url));
        assert_eq!(m["introspection_endpoint"], format!("{}/oauth2/introspect", i.s.url));
        assert_eq!(m["revocation_endpoint"], format!("{}/oauth2/revoke", i.s.url));
        assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    }
    let resp = i.s.http().get(format!("{}/env/nope/.well-known/jwks.json", i.s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let jwks: Value =
        i.s.http()
            .get(format!("{}/env/staging/.well-known/jwks.json", i.s.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let algs: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    // current + next for each algorithm a client uses in staging.
    for alg in ["EdDSA", "ES256", "RS256"] {
        assert_eq!(algs.iter().filter(|a| **a == alg).count(), 2, "{alg}: {algs:?}");
    }
    let keys = i.s.root_client().keys(Some("staging")).await.unwrap();
    assert!(keys.iter().all(|k| k.env == "staging"));
    assert!(!serde_json::to_string(&jwks).unwrap().contains("\"d\""), "no private key parameter is published");
}

#[tokio::test]
async fn key_rotation_publishes_before_signing_and_keeps_old_tokens_valid() {
    let i = issuer().await;
    let jwks = |env: &'static str| {
        let http = i.s.http();
        let url = format!("{}/env/{env}/.well-known/jwks.json", i.s.url);
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    let before = jwks("staging").await;
    let old = i.mint("staging", "jwt-ed", &[]).await;
    let old = old["access_token"].as_str().unwrap().to_owned();
    let rotated =
        i.s.root_client().rotate_keys(&RotateKeys { env: "staging".into(), alg: Some("EdDSA".into()) }).await.unwrap();
    let new_kid = rotated.rotated[0].current.clone();
    assert!(before.contains(&new_kid), "the new signing key was published before it signed");
    let new = i.mint("staging", "jwt-ed", &[]).await;
    let new = new["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_parts(&new).0["kid"], new_kid.as_str());
    let after = jwks("staging").await;
    assert!(after.contains(&jwt_parts(&old).0["kid"].as_str().unwrap().to_owned()), "the old key stays published");
    assert_eq!(i.introspect(&old).await["active"], true);
    assert_eq!(i.introspect(&new).await["active"], true);
    let states: Vec<String> =
        i.s.root_client()
            .keys(Some("staging"))
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.alg == "EdDSA")
            .map(|k| k.state)
            .collect();
    assert_eq!(states.iter().filter(|s| *s == "retired").count(), 1, "{states:?}");
    assert_eq!(states.iter().filter(|s| *s == "next").count(), 1, "{states:?}");
    // Keys survive a restart (sealed under the master key).
    // Issuers derive from the public URL, so the restarted server keeps the old one.
    let url = i.s.url.clone();
    let dir = i.s.stop().await;
    let s = TestServer::start_with(dir, Some(url)).await;
    let resp = s
        .http()
        .post(format!("{}/oauth2/introspect", s.url))
        .bearer_auth(&s.root)
        .form(&[("token", old.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);
}
