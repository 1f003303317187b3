//! Benchmark: authtest cases per second against a loopback API, beside the raw request rate of
//! the same HTTP client (reqwest) on the same endpoints, in the same run.
//! `cargo run --release -p tessera-authtest --example bench [OPERATIONS] [CONCURRENCY]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tessera_authtest::matrix::Overrides;
use tessera_authtest::runner::{run, Settings};
use tessera_authtest::tokens::Source;
use tessera_authtest::Document;

const TOKEN: &str = "bench-valid-token-0001";

#[tokio::main]
async fn main() {
    let ops_n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let concurrency: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let app = Router::new().route(
        "/r/{id}",
        get(|h: HeaderMap| async move {
            if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}")) {
                (StatusCode::OK, [("content-type", "application/json")], "{\"ok\":true}").into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [
                        ("www-authenticate", "Bearer realm=\"b\", error=\"invalid_token\""),
                        ("content-type", "application/json"),
                    ],
                    "{\"error\":\"invalid_token\"}",
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let paths: String = (0..ops_n)
        .map(|i| format!("\"/r/{i}\": {{\"get\": {{\"operationId\": \"op{i}\"}}}}"))
        .collect::<Vec<_>>()
        .join(",");
    let spec = format!(
        r#"{{"openapi": "3.1.0", "info": {{"title": "bench", "version": "1"}},
            "components": {{"securitySchemes": {{"b": {{"type": "http", "scheme": "bearer"}}}}}},
            "security": [{{"b": []}}], "paths": {{{paths}}}}}"#
    );
    let ops = Document::parse(&spec).unwrap().operations().unwrap();
    let settings = Settings {
        base_url: base.clone(),
        concurrency,
        timeout: Duration::from_secs(10),
        only: vec![],
        skip: vec![],
        overrides: Overrides::default(),
        fail_fast: false,
        headers: vec![],
        label: "bench".into(),
    };
    // Warm up connections and code paths once.
    let _ = run(ops.clone(), Source::Given(TOKEN.into()), settings.clone(), |_| {}).await;
    let start = Instant::now();
    let report = run(ops, Source::Given(TOKEN.into()), settings, |_| {}).await;
    let elapsed = start.elapsed();
    let executed = report.summary.pass + report.summary.fail;
    assert_eq!(report.summary.fail, 0, "the bench API answers every case correctly");
    let cases_per_s = executed as f64 / elapsed.as_secs_f64();

    // Raw: the same client, same concurrency, same endpoints, same number of requests.
    let http = reqwest::Client::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(executed);
    for i in 0..executed {
        let (http, sem, url) = (http.clone(), sem.clone(), format!("{base}/r/{}", i % ops_n));
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
            r.bytes().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let raw_per_s = executed as f64 / start.elapsed().as_secs_f64();
    println!(
        "operations {ops_n}, concurrency {concurrency}, cases executed {executed} (issuer-free cases; {} skipped)",
        report.summary.skip
    );
    println!("authtest: {cases_per_s:.0} cases/s ({:.1} ms for the run)", elapsed.as_secs_f64() * 1000.0);
    println!("raw reqwest on the same endpoints: {raw_per_s:.0} requests/s");
    println!("ratio: {:.2}x (target >= 0.5x)", cases_per_s / raw_per_s);
}
