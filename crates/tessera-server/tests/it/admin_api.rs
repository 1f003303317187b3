//! Environments, clients, bad input, request bodies and the audit chain through the API.

use std::collections::BTreeMap;

use tessera_client::api::{CreateClient, CreateEnvironment, CreateToken};

use crate::harness::{problem, TestServer};

#[tokio::test]
async fn environments_are_created_listed_and_shown() {
    let s = TestServer::start().await;
    let c = s.root_client();
    let env = c
        .create_environment(&CreateEnvironment {
            name: "staging".into(),
            default_ttl: Some("30m".into()),
            max_ttl: Some("1h30m".into()),
            idle_ttl: Some("15m".into()),
            rotation_period: Some("7d".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((env.default_ttl.as_str(), env.max_ttl.as_str()), ("30m", "1h30m"));
    assert_eq!(env.idle_ttl.as_deref(), Some("15m"));
    assert_eq!(env.rotation_period.as_deref(), Some("7d"));
    let names: Vec<String> = c.environments().await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["staging", "tessera"]);
    assert_eq!(c.environment("staging").await.unwrap(), env);
    let (status, p) = problem(c.environment("nope").await);
    assert_eq!(status, 404);
    assert!(p.detail.contains("\"nope\" not found"), "{}", p.detail);
}

#[tokio::test]
async fn clients_get_a_secret_shown_once() {
    let s = TestServer::start().await;
    s.env("staging").await;
    let c = s.root_client();
    let created = c
        .create_client(&CreateClient {
            id: "checkout-tests".into(),
            scopes: BTreeMap::from([("staging".into(), vec!["orders:read".into(), "orders:write".into()])]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(tessera_core::ClientSecret::parse(&created.client_secret).is_ok());
    let shown = c.client("checkout-tests").await.unwrap();
    assert_eq!(shown, created.client);
    assert_eq!(shown.scopes["staging"], ["orders:read", "orders:write"]);
    assert_eq!(shown.token_format, "opaque");
    let listed = serde_json::to_string(&c.clients().await.unwrap()).unwrap();
    assert!(listed.contains("checkout-tests"));
    assert!(!listed.contains(&created.client_secret), "a listing never shows the secret");
}

/// Every bad request gets a specific error and leaves the audit log (so the state) unchanged.
#[tokio::test]
async fn bad_input_is_refused_specifically_and_changes_nothing() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.env("qa").await;
    s.client("checkout-tests", &[("staging", &["orders:read"])]).await;
    let (_, revoked_id) = s.token("staging", "checkout-tests", &["orders:read"]).await;
    s.root_client().revoke_token(&revoked_id, &Default::default()).await.unwrap();
    let c = s.root_client();
    let before = s.audit_seq().await;
    let env = |name: &str| CreateEnvironment { name: name.into(), ..Default::default() };
    let token = |env: &str, client: &str, scopes: &[&str]| CreateToken {
        env: env.into(),
        client: client.into(),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let client = |id: &str, env: &str, scopes: &[&str]| CreateClient {
        id: id.into(),
        scopes: BTreeMap::from([(env.to_owned(), scopes.iter().map(|s| s.to_string()).collect())]),
        ..Default::default()
    };
    let cases: Vec<(&str, u16, &str, Result<(), tessera_client::Error>)> = vec![
        ("duplicate env", 409, "already exists", c.create_environment(&env("staging")).await.map(drop)),
        ("reserved env", 422, "reserved", c.create_environment(&env("tessera")).await.map(drop)),
        ("bad env name", 422, "invalid environment name", c.create_environment(&env("QA 1")).await.map(drop)),
        (
            "malformed duration",
            422,
            "max_ttl: invalid duration \"10y\"",
            c.create_environment(&CreateEnvironment {
                name: "x".into(),
                max_ttl: Some("10y".into()),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "default above max",
            422,
            "must not exceed max_ttl",
            c.create_environment(&CreateEnvironment {
                name: "x".into(),
                default_ttl: Some("2h".into()),
                max_ttl: Some("1h".into()),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "unknown env for token",
            404,
            "environment \"prod\" not found",
            c.create_token(&token("prod", "checkout-tests", &["orders:read"])).await.map(drop),
        ),
        (
            "unknown client",
            404,
            "client \"ghost\" not found",
            c.create_token(&token("staging", "ghost", &["orders:read"])).await.map(drop),
        ),
        (
            "scope not allowed",
            422,
            "scopes not allowed for client checkout-tests in environment staging: orders:write",
            c.create_token(&token("staging", "checkout-tests", &["orders:write"])).await.map(drop),
        ),
        (
            "client has no scopes in env",
            422,
            "has no scopes in environment qa",
            c.create_token(&token("qa", "checkout-tests", &["orders:read"])).await.map(drop),
        ),
        (
            "invalid scope",
            422,
            "contains a space",
            c.create_token(&token("staging", "checkout-tests", &["a b"])).await.map(drop),
        ),
        (
            "bad ttl",
            422,
            "ttl: invalid duration",
            c.create_token(&CreateToken {
                ttl: Some("1.5h".into()),
                ..token("staging", "checkout-tests", &["orders:read"])
            })
            .await
            .map(drop),
        ),
        (
            "zero ttl",
            422,
            "ttl must be greater than zero",
            c.create_token(&CreateToken {
                ttl: Some("0s".into()),
                ..token("staging", "checkout-tests", &["orders:read"])
            })
            .await
            .map(drop),
        ),
        (
            "bad label",
            422,
            "label",
            c.create_token(&CreateToken {
                labels: BTreeMap::from([("bad key".into(), "v".into())]),
                ..token("staging", "checkout-tests", &["orders:read"])
            })
            .await
            .map(drop),
        ),
        (
            "duplicate client",
            409,
            "already exists",
            c.create_client(&client("checkout-tests", "staging", &["a"])).await.map(drop),
        ),
        (
            "client for unknown env",
            404,
            "environment \"prod\" not found",
            c.create_client(&client("c2", "prod", &["a"])).await.map(drop),
        ),
        (
            "bad admin scope",
            422,
            "not a valid Tessera admin scope",
            c.create_client(&client("c3", "staging", &["tessera:root"])).await.map(drop),
        ),
        (
            "bad client id",
            422,
            "invalid client name",
            c.create_client(&client("Bad Id", "staging", &["a"])).await.map(drop),
        ),
        ("rotate revoked", 409, "inactive (revoked)", c.rotate_token(&revoked_id, &Default::default()).await.map(drop)),
        ("renew revoked", 409, "inactive (revoked)", c.renew_token(&revoked_id, &Default::default()).await.map(drop)),
        ("unknown token", 404, "not found", c.token("tok_doesnotexist0000").await.map(drop)),
    ];
    for (name, status, detail, result) in cases {
        let (got, p) = problem(result);
        assert_eq!(got, status, "{name}: {p:?}");
        assert_eq!(p.status, status, "{name}");
        assert!(p.kind.starts_with("urn:tessera:problem:"), "{name}: {}", p.kind);
        assert!(p.detail.contains(detail), "{name}: {:?} does not contain {detail:?}", p.detail);
    }
    assert_eq!(s.audit_seq().await, before, "no bad request may change anything");
    assert_eq!(c.environments().await.unwrap().len(), 3);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_problem_json() {
    let s = TestServer::start().await;
    let before = s.audit_seq().await;
    let http = s.http();
    let url = format!("{}/v1/environments", s.url);
    let post = |body: Vec<u8>, ct: Option<&str>| {
        let mut r = http.post(&url).bearer_auth(&s.root).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("syntax", b"{\"name\": ".to_vec(), Some("application/json"), 400, "EOF"),
        ("wrong type", br#"{"name": 5}"#.to_vec(), Some("application/json"), 422, "invalid type"),
        (
            "unknown field",
            br#"{"name": "x", "colour": "red"}"#.to_vec(),
            Some("application/json"),
            422,
            "unknown field `colour`",
        ),
        ("no content type", br#"{"name": "x"}"#.to_vec(), None, 415, "Content-Type: application/json"),
        (
            "oversized",
            format!("{{\"name\": \"{}\"}}", "a".repeat(100_000)).into_bytes(),
            Some("application/json"),
            413,
            "larger than",
        ),
    ];
    for (name, body, ct, status, detail) in cases {
        let resp = post(body, ct).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{name}");
        let p: tessera_client::api::Problem = resp.json().await.unwrap();
        assert!(p.detail.contains(detail), "{name}: {:?}", p.detail);
    }
    let resp = http.get(format!("{}/v1/nothing-here", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(s.audit_seq().await, before);
}

#[tokio::test]
async fn the_audit_chain_verifies_after_thousands_of_concurrent_operations() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.client("load", &[("staging", &["a"])]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let c = s.root_client();
        tasks.spawn(async move {
            for i in 0..250 {
                let t = c
                    .create_token(&CreateToken { env: "staging".into(), client: "load".into(), ..Default::default() })
                    .await
                    .unwrap();
                if i % 5 == worker % 5 {
                    c.revoke_token(&t.info.id, &Default::default()).await.unwrap();
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let v = s.root_client().verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert!(v.entries >= 2_000 + 6, "{v:?}");
    assert_eq!(v.entries, v.head_seq);
    // Pages fit together with no gap or overlap.
    let first = s.root_client().audit(0, 1_000).await.unwrap();
    let second = s.root_client().audit(first.next_after.unwrap(), 1_000).await.unwrap();
    assert_eq!(first.entries.last().unwrap().seq + 1, second.entries[0].seq);
    assert_eq!(second.entries[0].prev_hash, first.entries.last().unwrap().hash);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let s = TestServer::start().await;
    assert_eq!(s.anonymous().health().await.unwrap().status, "ok");
    assert_eq!(s.anonymous().ready().await.unwrap().status, "ready");
}
