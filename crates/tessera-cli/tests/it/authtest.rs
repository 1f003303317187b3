//! `tessera authtest` against the example orders API: clean, every case passes; with each bug
//! switch, exactly the cases that bug breaks fail.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::{Server, BIN};

/// Every case where a correct API refuses the request.
fn rejections() -> BTreeSet<String> {
    tessera_authtest::matrix::CASES
        .iter()
        .filter(|c| !matches!(**c, "valid" | "rotated_within_grace"))
        .map(|c| c.to_string())
        .collect()
}

struct Setup {
    server: Server,
    api_secret: String,
}

fn setup(dir: &std::path::Path) -> Setup {
    let server = Server::start(dir);
    server.ok(&["env", "create", "staging"]);
    server.ok(&["env", "create", "qa"]);
    server.ok(&[
        "client",
        "create",
        "orders-tests",
        "--token-format",
        "jwt",
        "--scopes",
        "staging=orders:read,orders:write",
        "--scopes",
        "qa=orders:read,orders:write",
    ]);
    let api = server.json(&["client", "create", "orders-api", "--scopes", "staging=introspect"]);
    Setup { api_secret: api["client_secret"].as_str().unwrap().to_owned(), server }
}

async fn orders_api(s: &Setup, bugs: &[&str]) -> orders_api::Running {
    let config = orders_api::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        issuer: format!("{}/env/staging", s.server.url),
        introspect_url: format!("{}/oauth2/introspect", s.server.url),
        client_id: "orders-api".into(),
        client_secret: s.api_secret.clone(),
        audience: "orders-api".into(),
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
    };
    orders_api::start(config).await.unwrap()
}

async fn authtest(s: &Setup, api: &orders_api::Running, extra: &[&str]) -> (Option<i32>, Value, String) {
    let base = format!("http://{}", api.addr);
    let spec = format!("{base}/openapi.json");
    let mut args = vec![
        "authtest",
        "--spec",
        &spec,
        "--base-url",
        &base,
        "--env",
        "staging",
        "--client",
        "orders-tests",
        "--audience",
        "orders-api",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = tokio::process::Command::new(BIN)
        .args(&args)
        .env("TESSERA_URL", &s.server.url)
        .env("TESSERA_TOKEN", &s.server.root)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (out.status.code(), report, stderr)
}

fn failing(report: &Value) -> BTreeSet<String> {
    report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["cases"].as_array().unwrap().iter())
        .filter(|c| c["outcome"] == "fail")
        .map(|c| c["case"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_api_passes_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let api = orders_api(&s, &[]).await;
    let (code, report, stderr) = authtest(&s, &api, &[]).await;
    assert_eq!(failing(&report), BTreeSet::new(), "{report:#}\n{stderr}");
    assert_eq!(code, Some(0));
    let summary = &report["summary"];
    assert_eq!(summary["pass"], 3 * 19, "{summary}");
    assert_eq!(summary["skip"], 0);
    let ops: Vec<&str> =
        report["operations"].as_array().unwrap().iter().map(|o| o["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["GET /health", "GET /orders", "POST /orders", "GET /orders/{id}"]);
    let health = &report["operations"][0];
    assert!(health["note"].as_str().unwrap().contains("opts out of the document's global security"), "{health}");
    let first = &report["operations"][1]["cases"][5];
    assert_eq!(first["case"], "expired");
    assert_eq!(first["expected"]["status"], serde_json::json!([401]));
    assert_eq!(first["observed"]["status"], 401);
    api.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_bug_fails_exactly_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let token_rejections: BTreeSet<String> = [
        "garbage",
        "expired",
        "not_yet_valid",
        "revoked",
        "wrong_audience",
        "wrong_environment",
        "tampered_signature",
        "alg_none",
        "unknown_key",
        "rotated_after_grace",
        "idle_expired",
        "exhausted",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let table: Vec<(&str, BTreeSet<String>)> = vec![
        ("accept-expired", ["expired"].iter().map(|s| s.to_string()).collect()),
        ("missing-403", ["missing", "token_in_query"].iter().map(|s| s.to_string()).collect()),
        ("no-www-authenticate", rejections()),
        ("ignore-scopes", ["insufficient_scope"].iter().map(|s| s.to_string()).collect()),
        ("accept-alg-none", ["alg_none"].iter().map(|s| s.to_string()).collect()),
        ("echo-token", token_rejections),
        (
            "ignore-revocation",
            ["revoked", "idle_expired", "exhausted", "rotated_after_grace"].iter().map(|s| s.to_string()).collect(),
        ),
    ];
    for (bug, expected) in table {
        let api = orders_api(&s, &[bug]).await;
        let junit = dir.path().join(format!("{bug}.xml"));
        let (code, report, stderr) = authtest(&s, &api, &["--junit", junit.to_str().unwrap()]).await;
        assert_eq!(failing(&report), expected, "{bug}: {stderr}");
        assert_eq!(code, Some(1), "{bug}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("<failure"), "{bug}");
        let text = serde_json::to_string(&report).unwrap();
        assert!(!text.contains("eyJ"), "{bug}: a token leaked into the report");
        if bug == "ignore-revocation" {
            assert!(text.contains("introspect"), "the report explains the remedy");
        }
        api.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_server_only_issuer_free_cases_run_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let api = orders_api(&s, &[]).await;
    let token =
        s.server.ok(&["token", "create", "--env", "staging", "--client", "orders-tests", "--audience", "orders-api"]);
    let base = format!("http://{}", api.addr);
    let spec = format!("{base}/openapi.json");
    let out = tokio::process::Command::new(BIN)
        .args([
            "authtest",
            "--spec",
            &spec,
            "--base-url",
            &base,
            "--token",
            token.trim(),
            "--include",
            "listOrders",
            "-o",
            "json",
        ])
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let cases = report["operations"][0]["cases"].as_array().unwrap();
    assert_eq!(report["operations"][0]["operation"], "GET /orders");
    assert_eq!(report["operations"].as_array().unwrap().len(), 1, "--include filters");
    let skipped: Vec<&Value> = cases.iter().filter(|c| c["outcome"] == "skip").collect();
    assert_eq!(skipped.len(), 10);
    assert!(skipped[0]["reason"].as_str().unwrap().contains("needs a Tessera server"));
    // Bad input: a broken document, an unreachable API, an unknown case.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, r#"{"openapi": "2.0", "paths": {}}"#).unwrap();
    for (args, needle) in [
        (
            vec!["--spec", broken.to_str().unwrap(), "--base-url", &base, "--token", "x"],
            "/openapi: version 2.0 is not supported",
        ),
        (vec!["--spec", &spec, "--base-url", "http://127.0.0.1:9", "--token", "x"], "cannot reach the API"),
        (vec!["--spec", &spec, "--base-url", &base, "--token", "x", "--only", "expird"], "unknown case \"expird\""),
    ] {
        let out = tokio::process::Command::new(BIN).arg("authtest").args(&args).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{}", String::from_utf8_lossy(&out.stderr));
    }
    api.task.abort();
}
