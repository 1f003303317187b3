//! The runner against a fake API on loopback: hanging endpoints time out per request, huge
//! bodies are read only up to the cap, and a failing `valid` case makes the rest inconclusive.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tessera_authtest::matrix::Overrides;
use tessera_authtest::runner::{run, Settings, BODY_CAP};
use tessera_authtest::tokens::Source;
use tessera_authtest::Document;

async fn fake_api() -> String {
    fn authorized(h: &HeaderMap) -> bool {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good-token-123")
    }
    let reject = || {
        (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer error=\"invalid_token\""), ("content-type", "application/json")],
            "{}",
        )
            .into_response()
    };
    let app = Router::new()
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/huge",
            get(move |h: HeaderMap| async move {
                if !authorized(&h) {
                    return reject();
                }
                "x".repeat(10 << 20).into_response()
            }),
        )
        .route("/broken", get(|| async { (StatusCode::UNAUTHORIZED, "no") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

const SPEC: &str = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
  "components": {"securitySchemes": {"b": {"type": "http", "scheme": "bearer"}}},
  "security": [{"b": []}],
  "paths": {"/hang": {"get": {}}, "/huge": {"get": {}}, "/broken": {"get": {}}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_caps_and_inconclusive_operations() {
    let base = fake_api().await;
    let ops = Document::parse(SPEC).unwrap().operations().unwrap();
    let settings = Settings {
        base_url: base,
        concurrency: 4,
        timeout: Duration::from_millis(500),
        only: vec!["valid".into(), "missing".into(), "garbage".into()],
        skip: vec![],
        overrides: Overrides::default(),
        fail_fast: false,
        headers: vec![],
        label: "t".into(),
    };
    let started = Instant::now();
    let report = run(ops, Source::Given("good-token-123".into()), settings, |_| {}).await;
    assert!(started.elapsed() < Duration::from_secs(10), "a hanging endpoint must not hang the run");
    let op = |name: &str| report.operations.iter().find(|o| o.operation == name).unwrap();
    let hang = op("GET /hang");
    assert_eq!(hang.cases[0].outcome, "fail");
    assert!(hang.cases[0].reason.contains("no answer within"), "{:?}", hang.cases[0]);
    assert!(hang.cases[1..].iter().all(|c| c.outcome == "inconclusive"), "{:?}", hang.cases);
    let huge = op("GET /huge");
    assert_eq!(huge.cases[0].outcome, "pass", "{:?}", huge.cases[0]);
    assert!(huge.cases[0].observed.as_ref().unwrap().body_excerpt.len() <= BODY_CAP);
    assert!(huge.cases[1..].iter().all(|c| c.outcome == "pass"), "{:?}", huge.cases);
    let broken = op("GET /broken");
    assert_eq!(broken.cases[0].outcome, "fail", "the valid case is refused");
    assert!(broken.cases[1..].iter().all(|c| c.outcome == "inconclusive"));
    assert_eq!(report.summary.inconclusive, 4);
}
