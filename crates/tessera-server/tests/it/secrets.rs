//! Upstream secrets: envelope encryption, versions, reveal scope, rotation hooks, rewrap,
//! drift.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use tessera_client::api::{CreateClient, CreateEnvironment, CreateToken, PutSecret, Rewrap};

use crate::harness::{problem, TestServer};

fn put(value: &str) -> PutSecret {
    PutSecret { value: value.into(), ..Default::default() }
}

/// An executable script in `dir` with `body` (a POSIX shell script).
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn versions_reveal_and_nothing_in_clear_at_rest() {
    let s = TestServer::start().await;
    s.env("staging").await;
    let c = s.root_client();
    let v1 = c.put_secret("staging", "payments-key", &put("sk_test_first_value_0001")).await.unwrap();
    assert_eq!((v1.version, v1.state.as_str()), (1, "current"));
    let v2 = c
        .put_secret(
            "staging",
            "payments-key",
            &PutSecret { overlap: Some("1h".into()), ..put("sk_test_second_value_0002") },
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v1.fingerprint, v2.fingerprint);
    let versions = c.secret_versions("staging", "payments-key").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| (v.version, v.state.as_str())).collect::<Vec<_>>(),
        [(2, "current"), (1, "previous")]
    );
    assert!(versions[1].valid_until.is_some(), "the previous version stays valid for the overlap");
    let revealed = c.reveal_secret("staging", "payments-key").await.unwrap();
    assert_eq!((revealed.version, revealed.value.as_str()), (2, "sk_test_second_value_0002"));
    let listed = serde_json::to_string(&c.secrets(None).await.unwrap()).unwrap();
    assert!(!listed.contains("sk_test_"), "listings never show values");
    // Nothing in clear in the database file, the WAL, or the audit log.
    let audit = serde_json::to_string(&c.audit(0, 1000).await.unwrap()).unwrap();
    assert!(!audit.contains("sk_test_"));
    assert!(audit.contains("secret.reveal"), "reveals are audited");
    for file in ["tessera.db", "tessera.db-wal"] {
        if let Ok(bytes) = std::fs::read(s.dir.path().join(file)) {
            assert!(
                !bytes.windows(10).any(|w| w == b"sk_test_fi" || w == b"sk_test_se"),
                "{file} holds a value in clear"
            );
        }
    }
}

#[tokio::test]
async fn reveal_needs_the_reveal_scope_and_bad_values_are_refused() {
    let s = TestServer::start().await;
    s.env("staging").await;
    s.env("qa").await;
    let c = s.root_client();
    c.put_secret("staging", "k", &put("value-one-1234")).await.unwrap();
    s.client("writer", &[("staging", &["tessera:env:staging:write"])]).await;
    s.client("revealer", &[("staging", &["tessera:env:staging:reveal"]), ("qa", &["tessera:env:qa:reveal"])]).await;
    let (writer, _) = s.token("staging", "writer", &["tessera:env:staging:write"]).await;
    let (revealer, _) = s.token("staging", "revealer", &["tessera:env:staging:reveal"]).await;
    let w = s.client_with(&writer);
    w.put_secret("staging", "k", &put("value-two-1234")).await.unwrap();
    let (status, p) = problem(w.reveal_secret("staging", "k").await);
    assert_eq!(status, 403, "write does not imply reveal: {p:?}");
    assert!(p.detail.contains("tessera:env:staging:reveal"));
    assert_eq!(s.client_with(&revealer).reveal_secret("staging", "k").await.unwrap().value, "value-two-1234");
    let (status, _) = problem(s.client_with(&revealer).reveal_secret("qa", "k").await);
    assert_eq!(status, 403, "the token's scopes name staging only");

    let before = s.audit_seq().await;
    let cases: Vec<(&str, PutSecret, &str, u16, &str)> = vec![
        ("empty", put(""), "k", 422, "empty"),
        ("oversized", put(&"x".repeat(9_000)), "k", 413, "at most 8192"),
        ("nul", put("a\0bcdef"), "k", 422, "NUL"),
        ("bad name", put("value-1234"), "Bad Name", 422, "invalid secret name"),
        (
            "bad period",
            PutSecret { rotation_period: Some("weekly".into()), ..put("value-1234") },
            "k",
            422,
            "rotation_period",
        ),
        ("empty hook", PutSecret { hook: Some(vec![]), ..put("value-1234") }, "k", 422, "hook"),
    ];
    for (name, req, secret, status, detail) in cases {
        let (got, p) = problem(c.put_secret("staging", secret, &req).await);
        assert_eq!(got, status, "{name}: {p:?}");
        assert!(p.detail.contains(detail), "{name}: {p:?}");
        assert!(!p.detail.contains("value-1234") && !p.detail.contains("xxxxxxxx"), "{name}: the value is quoted");
    }
    let (status, _) = problem(c.put_secret("nowhere", "k", &put("value-1234")).await);
    assert_eq!(status, 404);
    // A malformed body is refused without quoting it.
    let resp = s
        .http()
        .put(format!("{}/v1/secrets/staging/k", s.url))
        .bearer_auth(&s.root)
        .header("content-type", "application/json")
        .body(r#"{"value": 12345678, "secret": "sk_live_do_not_echo"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(!resp.text().await.unwrap().contains("sk_live_do_not_echo"));
    assert_eq!(s.audit_seq().await, before);
}

#[tokio::test]
async fn rotation_hooks_succeed_fail_and_time_out_without_half_applying() {
    let s = TestServer::start().await;
    s.env("staging").await;
    let c = s.root_client();
    let dir = tempfile::tempdir().unwrap();
    // The hook receives the old value on stdin and prints a new one.
    let good = script(
        dir.path(),
        "good.sh",
        r#"old=$(cat); printf 'rotated-%s-%s\n' "$(printf %s "$old" | wc -c | tr -d ' ')" "$$""#,
    );
    c.put_secret("staging", "api", &PutSecret { hook: Some(vec![good]), ..put("initial-value-1") }).await.unwrap();
    let v = c.rotate_secret("staging", "api").await.unwrap();
    assert_eq!(v.version, 2);
    let value = c.reveal_secret("staging", "api").await.unwrap().value;
    assert!(value.starts_with("rotated-15-"), "{value}");

    let failing = script(dir.path(), "fail.sh", "echo 'cannot reach vendor; old key was initial' >&2; exit 3");
    let slow = script(dir.path(), "slow.sh", "sleep 30; echo never");
    let empty = script(dir.path(), "empty.sh", "exit 0");
    for (name, hook, timeout, expected) in [
        ("failing", failing, None, "exited with status 3"),
        ("slow", slow, Some("1s"), "timed out after 1s"),
        ("empty", empty, None, "printed nothing"),
        ("missing", "/nonexistent/hook".to_owned(), None, "cannot start"),
    ] {
        let current = c.reveal_secret("staging", "api").await.unwrap().value;
        c.put_secret(
            "staging",
            "api",
            &PutSecret { hook: Some(vec![hook]), hook_timeout: timeout.map(Into::into), ..put(&current) },
        )
        .await
        .unwrap();
        let versions_before = c.secret_versions("staging", "api").await.unwrap().len();
        let (status, p) = problem(c.rotate_secret("staging", "api").await);
        assert_eq!(status, 409, "{name}: {p:?}");
        assert!(p.detail.contains(expected), "{name}: {p:?}");
        assert!(!p.detail.contains(&current), "{name}: the value leaks into the error");
        assert_eq!(c.secret_versions("staging", "api").await.unwrap().len(), versions_before, "{name}: half-applied");
        assert_eq!(c.reveal_secret("staging", "api").await.unwrap().value, current, "{name}");
    }
    let audit = c.audit(0, 1000).await.unwrap().entries;
    assert_eq!(audit.iter().filter(|e| e.action == "secret.rotate_failed").count(), 4);
    assert_eq!(audit.iter().filter(|e| e.action == "secret.rotate").count(), 1);
    let (status, _) = problem(c.rotate_secret("staging", "nothing").await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rewrap_then_restart_still_decrypts_every_version() {
    let s = TestServer::start().await;
    s.env("staging").await;
    let c = s.root_client();
    for i in 0..3 {
        c.put_secret("staging", "a", &put(&format!("value-a-{i}-xyz"))).await.unwrap();
    }
    c.put_secret("staging", "b", &put("value-b-xyz")).await.unwrap();
    c.create_client(&CreateClient {
        id: "jwt".into(),
        scopes: BTreeMap::from([("staging".into(), vec!["x".into()])]),
        token_format: Some("jwt".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let jwt = c
        .create_token(&CreateToken { env: "staging".into(), client: "jwt".into(), ..Default::default() })
        .await
        .unwrap();
    let old_key = std::fs::read_to_string(s.dir.path().join("master.key")).unwrap();
    let done = c.rewrap(&Rewrap::default()).await.unwrap();
    assert_ne!(done.old_fingerprint, done.new_fingerprint);
    assert_eq!(done.secret_versions, 4);
    assert!(done.signing_keys >= 2);
    let new_key = std::fs::read_to_string(s.dir.path().join("master.key")).unwrap();
    assert_ne!(old_key, new_key, "the key file holds the new key");
    // Still serving: values, tokens, new writes.
    assert_eq!(c.reveal_secret("staging", "a").await.unwrap().value, "value-a-2-xyz");
    c.put_secret("staging", "b", &put("value-b2-xyz")).await.unwrap();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let c = s.root_client();
    assert_eq!(c.reveal_secret("staging", "a").await.unwrap().value, "value-a-2-xyz");
    assert_eq!(c.reveal_secret("staging", "b").await.unwrap().value, "value-b2-xyz");
    assert_eq!(c.introspect(&jwt.token).await.unwrap().inactive_reason, None, "JWT signing keys were re-sealed too");
    let audit = c.audit(0, 1000).await.unwrap().entries;
    assert!(audit.iter().any(|e| e.action == "key.rewrap"));
    // The old key no longer opens anything.
    let dir = s.stop().await;
    std::fs::write(dir.path().join("master.key"), old_key).unwrap();
    let err = tessera_server::start(tessera_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path()))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not open this data"), "{err:#}");
}

#[tokio::test]
async fn drift_reports_missing_shared_and_stale_credentials() {
    let s = TestServer::start().await;
    let c = s.root_client();
    for (name, protected) in [("prod", true), ("staging", false), ("qa", false)] {
        c.create_environment(&CreateEnvironment { name: name.into(), protected, ..Default::default() }).await.unwrap();
    }
    c.put_secret("prod", "payments", &put("the-same-value-everywhere")).await.unwrap();
    c.put_secret("staging", "payments", &put("the-same-value-everywhere")).await.unwrap();
    c.put_secret("qa", "payments", &PutSecret { expires_in: Some("1s".into()), ..put("qa-only-value") }).await.unwrap();
    c.put_secret("staging", "search", &put("search-key-1")).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let report = loop {
        let r = c.drift().await.unwrap();
        let expired = r.credentials[0].holdings.iter().any(|h| h.expired);
        if expired || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let payments = report.credentials.iter().find(|e| e.name == "payments").unwrap();
    assert_eq!(payments.holdings.len(), 3);
    assert_eq!(payments.shared_across_protection, vec![vec!["prod".to_owned(), "staging".to_owned()]]);
    assert_eq!(payments.distinct_values, 2);
    assert!(payments.holdings.iter().any(|h| h.env == "qa" && h.expired));
    let search = report.credentials.iter().find(|e| e.name == "search").unwrap();
    assert_eq!(search.missing, ["prod", "qa"]);
    assert_eq!(report.problems, 1 + 1 + 2);
    assert!(!serde_json::to_string(&report).unwrap().contains("the-same-value"));
}
