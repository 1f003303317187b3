//! Admin access by bearer tokens: challenges, inactive credentials, per-environment scopes.

use std::time::{Duration, Instant};

use tessera_client::api::{BulkRevoke, CreateEnvironment, CreateToken};
use tessera_client::TokenQuery;

use crate::harness::{problem, TestServer};

#[tokio::test]
async fn every_bad_credential_gets_401_with_a_bearer_challenge() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.client("ops", &[("staging", &["tessera:env:staging:read"])]).await;
    let (revoked, revoked_id) = s.token("staging", "ops", &["tessera:env:staging:read"]).await;
    s.root_client().revoke_token(&revoked_id, &Default::default()).await.unwrap();
    let mut typo = s.root.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let unknown = tessera_core::TokenSecret::generate().expose().to_owned();
    let url = format!("{}/v1/environments", s.url);
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "Bearer realm=\"tessera\""),
        ("wrong scheme", Some(format!("Basic {}", s.root)), "error=\"invalid_token\""),
        ("empty bearer", Some("Bearer ".into()), "error=\"invalid_token\""),
        ("garbage", Some("Bearer hello".into()), "neither a Tessera token"),
        ("bad checksum", Some(format!("Bearer {typo}")), "checksum does not match"),
        ("unknown", Some(format!("Bearer {unknown}")), "unknown token"),
        ("revoked", Some(format!("Bearer {revoked}")), "inactive (revoked)"),
    ];
    let before = s.audit_seq().await;
    for (name, header, challenge) in cases {
        let mut req = s.http().get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{name}");
        let www = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(www.starts_with("Bearer "), "{name}: {www}");
        assert!(www.contains(challenge), "{name}: {www:?} lacks {challenge:?}");
        if name == "missing" {
            assert!(!www.contains("error="), "no error attribute without credentials (RFC 6750 §3)");
        }
        let body = resp.text().await.unwrap();
        assert!(!body.contains(&s.root[4..]) && !body.contains(&revoked[4..]), "{name}: the token is echoed");
    }
    assert_eq!(s.audit_seq().await, before);
}

#[tokio::test]
async fn a_staging_token_cannot_see_or_touch_qa() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.env("qa").await;
    s.client("svc", &[("staging", &["orders:read"]), ("qa", &["orders:read"])]).await;
    s.client("staging-admin", &[("staging", &["tessera:env:staging:write"])]).await;
    s.client("staging-reader", &[("staging", &["tessera:env:staging:read"])]).await;
    let (writer, _) = s.token("staging", "staging-admin", &["tessera:env:staging:write"]).await;
    let (reader, _) = s.token("staging", "staging-reader", &["tessera:env:staging:read"]).await;
    let (_, qa_id) = s.token("qa", "svc", &["orders:read"]).await;
    let (_, staging_id) = s.token("staging", "svc", &["orders:read"]).await;
    let w = s.client_with(&writer);
    let r = s.client_with(&reader);

    // Writer: works in staging, blind and powerless in qa.
    let minted = w
        .create_token(&CreateToken { env: "staging".into(), client: "svc".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(minted.info.env, "staging");
    let visible: Vec<String> = w.tokens(&TokenQuery::default()).await.unwrap().into_iter().map(|t| t.env).collect();
    assert!(visible.iter().all(|e| e == "staging"), "{visible:?}");
    let envs: Vec<String> = w.environments().await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(envs, ["staging"]);
    for (name, result) in [
        ("show qa token", w.token(&qa_id).await.map(drop)),
        ("revoke qa token", w.revoke_token(&qa_id, &Default::default()).await.map(drop)),
        ("list qa", w.tokens(&TokenQuery { env: Some("qa".into()), ..Default::default() }).await.map(drop)),
        (
            "mint in qa",
            w.create_token(&CreateToken { env: "qa".into(), client: "svc".into(), ..Default::default() })
                .await
                .map(drop),
        ),
        ("show qa env", w.environment("qa").await.map(drop)),
        (
            "create env",
            w.create_environment(&CreateEnvironment { name: "x".into(), ..Default::default() }).await.map(drop),
        ),
        (
            "bulk revoke qa",
            w.revoke_tokens(&BulkRevoke { env: Some("qa".into()), ..Default::default() }).await.map(drop),
        ),
    ] {
        let (status, p) = problem(result);
        assert_eq!(status, 403, "{name}: {p:?}");
        assert_eq!(p.kind, "urn:tessera:problem:insufficient-scope", "{name}");
    }
    // Reader: may look, may not change.
    assert_eq!(r.token(&staging_id).await.unwrap().id, staging_id);
    let (status, _) = problem(r.revoke_token(&staging_id, &Default::default()).await);
    assert_eq!(status, 403);
    // The 403 challenge names the missing scope.
    let resp = s.http().post(format!("{}/v1/tokens/{qa_id}/revoke", s.url)).bearer_auth(&writer).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("scope=\"tessera:env:qa:write\""), "{www}");
    // A token with no admin scope at all is refused everywhere.
    let (plain, _) = s.token("staging", "svc", &["orders:read"]).await;
    let (status, p) = problem(s.client_with(&plain).environments().await);
    assert_eq!(status, 403, "{p:?}");
}

#[tokio::test]
async fn only_tessera_admin_may_grant_admin_scopes() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.client("staging-admin", &[("staging", &["tessera:env:staging:write"])]).await;
    let (writer, _) = s.token("staging", "staging-admin", &["tessera:env:staging:write"]).await;
    let w = s.client_with(&writer);
    let escalate = tessera_client::api::CreateClient {
        id: "sneaky".into(),
        scopes: [("staging".to_owned(), vec!["tessera:admin".to_owned()])].into(),
        ..Default::default()
    };
    let (status, _) = problem(w.create_client(&escalate).await);
    assert_eq!(status, 403);
    let ordinary = tessera_client::api::CreateClient {
        id: "fine".into(),
        scopes: [("staging".to_owned(), vec!["orders:read".to_owned()])].into(),
        ..Default::default()
    };
    w.create_client(&ordinary).await.unwrap();
}

#[tokio::test]
async fn use_limits_and_expiry_apply_to_admin_credentials() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.client("ops", &[("staging", &["tessera:env:staging:read"])]).await;
    let c = s.root_client();
    let limited = c
        .create_token(&CreateToken {
            env: "staging".into(),
            client: "ops".into(),
            max_uses: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let l = s.client_with(&limited.token);
    l.environments().await.unwrap();
    l.environments().await.unwrap();
    let (status, p) = problem(l.environments().await);
    assert_eq!(status, 401);
    assert!(p.detail.contains("inactive (exhausted)"), "{p:?}");
    let shown = c.token(&limited.info.id).await.unwrap();
    assert_eq!((shown.uses, shown.inactive_reason.as_deref()), (2, Some("exhausted")));

    let short = c
        .create_token(&CreateToken {
            env: "staging".into(),
            client: "ops".into(),
            ttl: Some("1s".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sc = s.client_with(&short.token);
    sc.environments().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let p = loop {
        match sc.environments().await {
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(_) => panic!("a 1s token still works after 10s"),
            Err(e) => break problem::<()>(Err(e)).1,
        }
    };
    assert!(p.detail.contains("inactive (expired)"), "{p:?}");
    assert_eq!(c.token(&short.info.id).await.unwrap().inactive_reason.as_deref(), Some("expired"));
}

#[tokio::test]
async fn usage_is_counted_in_memory_and_flushed_to_the_store() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.client("ops", &[("staging", &["tessera:env:staging:read"])]).await;
    let (secret, id) = s.token("staging", "ops", &["tessera:env:staging:read"]).await;
    let c = s.client_with(&secret);
    for _ in 0..5 {
        c.environments().await.unwrap();
    }
    let live = s.root_client().token(&id).await.unwrap();
    assert_eq!(live.uses, 5);
    assert!(live.last_used_at.is_some());
    // After a restart the counts come from the store: the flush happened.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let stored = s.root_client().token(&id).await.unwrap();
    assert_eq!(stored.uses, 5);
    assert_eq!(stored.last_used_at.map(|t| t.timestamp_micros()), live.last_used_at.map(|t| t.timestamp_micros()));
}
