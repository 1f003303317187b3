//! Token lifecycle through the API: create, list, show, rotate with grace, renew, revoke.

use std::collections::BTreeMap;

use tessera_client::api::{BulkRevoke, CreateEnvironment, CreateToken, RenewToken, RevokeToken, RotateToken};
use tessera_client::TokenQuery;

use crate::harness::{problem, TestServer};

async fn setup() -> TestServer {
    let s = TestServer::start().await;
    s.root_client()
        .create_environment(&CreateEnvironment {
            name: "staging".into(),
            default_ttl: Some("1h".into()),
            max_ttl: Some("2h".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    s.env("qa").await;
    s.client(
        "checkout-tests",
        &[("staging", &["orders:read", "orders:write", "tessera:env:staging:read"]), ("qa", &["orders:read"])],
    )
    .await;
    s
}

#[tokio::test]
async fn a_token_is_created_shown_and_listed_without_its_secret() {
    let s = setup().await;
    let c = s.root_client();
    let created = c
        .create_token(&CreateToken {
            env: "staging".into(),
            client: "checkout-tests".into(),
            scopes: Some(vec!["orders:read".into()]),
            audience: Some("orders-api".into()),
            ttl: Some("30m".into()),
            idle_ttl: Some("5m".into()),
            max_uses: Some(100),
            labels: BTreeMap::from([("suite".into(), "checkout".into())]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(tessera_core::TokenSecret::parse(&created.token).is_ok());
    assert!(created.warnings.is_empty());
    let info = &created.info;
    assert!(info.id.starts_with("tok_"));
    assert_eq!(info.state, "active");
    assert_eq!(info.scopes, ["orders:read"]);
    assert_eq!(info.audience.as_deref(), Some("orders-api"));
    assert_eq!(info.idle_ttl.as_deref(), Some("5m"));
    assert_eq!(info.max_uses, Some(100));
    assert_eq!((info.expires_at - info.created_at).num_seconds(), 1_800);
    assert_eq!(&c.token(&info.id).await.unwrap(), info);
    let json = serde_json::to_string(&c.tokens(&TokenQuery::default()).await.unwrap()).unwrap();
    assert!(!json.contains(&created.token[4..]), "no listing shows a secret");
    // Defaults: every allowed scope, the environment's default TTL.
    let default = c
        .create_token(&CreateToken { env: "staging".into(), client: "checkout-tests".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(default.info.scopes, ["orders:read", "orders:write", "tessera:env:staging:read"]);
    assert_eq!((default.info.expires_at - default.info.created_at).num_seconds(), 3_600);
}

#[tokio::test]
async fn a_ttl_above_max_is_clamped_and_the_answer_says_so() {
    let s = setup().await;
    let created = s
        .root_client()
        .create_token(&CreateToken {
            env: "staging".into(),
            client: "checkout-tests".into(),
            ttl: Some("7d".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((created.info.expires_at - created.info.created_at).num_seconds(), 7_200);
    assert_eq!(created.warnings, ["ttl 7d is above the max_ttl of environment staging; clamped to 2h"]);
}

#[tokio::test]
async fn lists_filter_by_env_client_state_and_label() {
    let s = setup().await;
    s.client("other", &[("staging", &["x"])]).await;
    let c = s.root_client();
    let mk = |env: &str, client: &str, label: &str| CreateToken {
        env: env.into(),
        client: client.into(),
        labels: BTreeMap::from([("suite".into(), label.into())]),
        ..Default::default()
    };
    let a = c.create_token(&mk("staging", "checkout-tests", "a")).await.unwrap().info.id;
    let b = c.create_token(&mk("staging", "other", "b")).await.unwrap().info.id;
    let q = c.create_token(&mk("qa", "checkout-tests", "a")).await.unwrap().info.id;
    c.revoke_token(&b, &Default::default()).await.unwrap();
    let ids = |query: TokenQuery| {
        let c = c.clone();
        async move {
            let mut v: Vec<String> = c.tokens(&query).await.unwrap().into_iter().map(|t| t.id).collect();
            v.sort();
            v
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(TokenQuery { env: Some("staging".into()), ..Default::default() }).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(ids(TokenQuery { client: Some("other".into()), ..Default::default() }).await, vec![b.clone()]);
    assert_eq!(
        ids(TokenQuery { env: Some("staging".into()), state: Some("active".into()), ..Default::default() }).await,
        vec![a.clone()]
    );
    assert_eq!(
        ids(TokenQuery { env: Some("staging".into()), state: Some("inactive".into()), ..Default::default() }).await,
        vec![b.clone()]
    );
    assert_eq!(ids(TokenQuery { label: Some("suite=a".into()), ..Default::default() }).await, sorted(vec![a, q]));
    let (status, _) = problem(c.tokens(&TokenQuery { state: Some("sleeping".into()), ..Default::default() }).await);
    assert_eq!(status, 400);
}

#[tokio::test]
async fn rotation_keeps_the_old_token_valid_for_the_grace_period_only() {
    let s = setup().await;
    let c = s.root_client();
    let (old_secret, old_id) = s.token("staging", "checkout-tests", &["tessera:env:staging:read"]).await;
    let before = s.audit_seq().await;
    let rotated = c.rotate_token(&old_id, &RotateToken { grace: Some("1h".into()) }).await.unwrap();
    assert_eq!(s.audit_seq().await, before + 1);
    assert_eq!(rotated.previous.id, old_id);
    assert_eq!(rotated.previous.superseded_by.as_deref(), Some(rotated.info.id.as_str()));
    assert_eq!(rotated.info.rotated_from.as_deref(), Some(old_id.as_str()));
    assert_eq!(rotated.info.scopes, ["tessera:env:staging:read"]);
    // Within grace both work.
    s.client_with(&old_secret).environments().await.unwrap();
    s.client_with(&rotated.token).environments().await.unwrap();
    assert_eq!(c.token(&old_id).await.unwrap().state, "active");
    // Rotating the old one again is refused; the new one can be rotated.
    let (status, p) = problem(c.rotate_token(&old_id, &Default::default()).await);
    assert_eq!(status, 409);
    assert!(p.detail.contains("already rotated"), "{p:?}");
    // Zero grace: the previous token stops at once.
    let again = c.rotate_token(&rotated.info.id, &RotateToken { grace: Some("0s".into()) }).await.unwrap();
    let (status, p) = problem(s.client_with(&rotated.token).environments().await);
    assert_eq!(status, 401);
    assert!(p.detail.contains("inactive (rotated)"), "{p:?}");
    assert_eq!(c.token(&rotated.info.id).await.unwrap().inactive_reason.as_deref(), Some("rotated"));
    s.client_with(&again.token).environments().await.unwrap();
}

#[tokio::test]
async fn renewal_extends_up_to_max_ttl_from_creation() {
    let s = setup().await;
    let c = s.root_client();
    let t = c
        .create_token(&CreateToken {
            env: "staging".into(),
            client: "checkout-tests".into(),
            ttl: Some("10m".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .info;
    let renewed = c.renew_token(&t.id, &RenewToken { ttl: Some("1h".into()) }).await.unwrap();
    assert!(renewed.changed);
    assert!(renewed.info.expires_at > t.expires_at);
    let capped = c.renew_token(&t.id, &RenewToken { ttl: Some("5h".into()) }).await.unwrap();
    assert_eq!((capped.info.expires_at - t.created_at).num_seconds(), 7_200);
    assert!(capped.warnings[0].contains("renewal capped"), "{:?}", capped.warnings);
    let again = c.renew_token(&t.id, &RenewToken { ttl: Some("5h".into()) }).await.unwrap();
    assert!(!again.changed);
    let (status, _) = problem(c.renew_token(&t.id, &RenewToken { ttl: Some("soon".into()) }).await);
    assert_eq!(status, 422);
}

#[tokio::test]
async fn revocation_is_immediate_and_idempotent() {
    let s = setup().await;
    let c = s.root_client();
    let (secret, id) = s.token("staging", "checkout-tests", &["tessera:env:staging:read"]).await;
    s.client_with(&secret).environments().await.unwrap();
    let before = s.audit_seq().await;
    let first = c.revoke_token(&id, &RevokeToken { reason: Some("leaked in CI log".into()) }).await.unwrap();
    assert!(first.changed);
    assert_eq!(first.info.inactive_reason.as_deref(), Some("revoked"));
    assert_eq!(first.info.revoke_reason.as_deref(), Some("leaked in CI log"));
    let (status, _) = problem(s.client_with(&secret).environments().await);
    assert_eq!(status, 401, "the very next request is refused");
    let second = c.revoke_token(&id, &Default::default()).await.unwrap();
    assert!(!second.changed);
    assert_eq!(second.info.revoked_at, first.info.revoked_at);
    assert_eq!(s.audit_seq().await, before + 1, "revoking twice audits once");
    let entries = c.audit(before, 10).await.unwrap().entries;
    assert_eq!(entries[0].action, "token.revoke");
    assert_eq!(entries[0].details["reason"], "leaked in CI log");
}

#[tokio::test]
async fn bulk_revocation_by_selector_counts_then_revokes() {
    let s = setup().await;
    let c = s.root_client();
    let mk = |label: &str| CreateToken {
        env: "staging".into(),
        client: "checkout-tests".into(),
        labels: BTreeMap::from([("suite".into(), label.into())]),
        ..Default::default()
    };
    for _ in 0..3 {
        c.create_token(&mk("nightly")).await.unwrap();
    }
    let keep = c.create_token(&mk("smoke")).await.unwrap().info.id;
    let selector = BulkRevoke {
        env: Some("staging".into()),
        labels: BTreeMap::from([("suite".into(), "nightly".into())]),
        dry_run: true,
        ..Default::default()
    };
    let before = s.audit_seq().await;
    let preview = c.revoke_tokens(&selector).await.unwrap();
    assert_eq!((preview.count, preview.dry_run), (3, true));
    assert_eq!(s.audit_seq().await, before, "a dry run changes nothing");
    let done = c.revoke_tokens(&BulkRevoke { dry_run: false, ..selector.clone() }).await.unwrap();
    assert_eq!(done.count, 3);
    assert_eq!(s.audit_seq().await, before + 3);
    assert_eq!(c.revoke_tokens(&selector).await.unwrap().count, 0);
    assert_eq!(c.token(&keep).await.unwrap().state, "active");
    let (status, _) = problem(c.revoke_tokens(&BulkRevoke::default()).await);
    assert_eq!(status, 422);
}
