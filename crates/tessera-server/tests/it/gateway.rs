//! The gateway against real upstream servers on loopback that record what they received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::routing::any;
use axum::Router;
use serde_json::json;
use tessera_client::api::{AddFault, CreateEnvironment, CreateToken, PutSecret, PutUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{problem, TestServer};

const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A fake third-party API: records every request; `/v1/echo` echoes the request (including
/// the injected key), `/v1/hang` never answers, `/v1/big` streams 4 MB.
async fn upstream() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    async fn handle(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> axum::response::Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 64 << 20).await.unwrap().to_vec();
        let path = parts.uri.path().to_owned();
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        match path.as_str() {
            "/v1/hang" => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                axum::response::IntoResponse::into_response("late")
            }
            "/v1/big" => {
                let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
                let stream = futures_util::stream::iter((0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
                axum::response::Response::new(axum::body::Body::from_stream(stream))
            }
            _ => {
                let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                let answer = json!({"path": path, "auth": auth, "query": parts.uri.query(), "echo": String::from_utf8_lossy(&body)});
                let mut resp = axum::response::IntoResponse::into_response(axum::Json(answer));
                resp.headers_mut().insert("x-echo-key", auth.parse().unwrap());
                // Repeated headers: both must reach the caller, each masked.
                resp.headers_mut().append("set-cookie", "session=abc; Path=/".parse().unwrap());
                resp.headers_mut().append("set-cookie", format!("k={auth}").parse().unwrap());
                resp
            }
        }
    }
    let app = Router::new().fallback(any(handle)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

struct Gw {
    s: TestServer,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// A token with scope gw:payments in staging.
    token: String,
    token_id: String,
}

async fn gateway() -> Gw {
    let s = TestServer::start().await;
    s.env("staging").await;
    let (url, seen) = upstream().await;
    let c = s.root_client();
    c.put_secret("staging", "payments-key", &PutSecret { value: KEY.into(), ..Default::default() }).await.unwrap();
    c.put_upstream(&PutUpstream {
        name: "payments".into(),
        env: "staging".into(),
        url,
        secret: "payments-key".into(),
        inject: Some("header:Authorization=Bearer {secret}".into()),
        allow_paths: vec!["/v1/".into()],
        timeout: Some("1s".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    s.client("suite", &[("staging", &["gw:payments", "orders:read"])]).await;
    let (token, token_id) = s.token("staging", "suite", &["gw:payments"]).await;
    Gw { s, seen, token, token_id }
}

impl Gw {
    fn url(&self, path: &str) -> String {
        format!("{}/gw/payments{path}", self.s.url)
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

#[tokio::test]
async fn the_key_is_injected_and_the_callers_token_never_forwarded() {
    let g = gateway().await;
    let resp =
        g.s.http()
            .post(g.url("/v1/charges?amount=5&access_token=leak"))
            .bearer_auth(&g.token)
            .header("x-custom", "kept")
            .header("connection", "x-hop, keep-alive")
            .header("x-hop", "dropped")
            .body("amount=5")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = g.last();
    assert_eq!(seen.path, "/v1/charges");
    assert_eq!(seen.query, "amount=5", "the caller's query credential is dropped");
    let auths: Vec<&str> = seen.headers.get_all("authorization").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(auths, [format!("Bearer {KEY}")], "exactly one Authorization: the injected key");
    assert!(
        !format!("{:?}{}", seen.headers, seen.query).contains(&g.token[4..]),
        "the caller's token reached the upstream"
    );
    assert_eq!(seen.headers["x-custom"], "kept");
    assert!(!seen.headers.contains_key("x-hop"), "headers named in Connection are hop-by-hop");
    assert_eq!(seen.body, b"amount=5");
    // The upstream echoed the key in a header and the body: the caller sees it masked.
    assert!(!resp.headers()["x-echo-key"].to_str().unwrap().contains(KEY));
    let cookies: Vec<&str> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies.len(), 2, "every value of a repeated header is forwarded: {cookies:?}");
    assert_eq!(cookies[0], "session=abc; Path=/");
    assert!(cookies[1].starts_with("k=Bearer ") && !cookies[1].contains(KEY), "{cookies:?}");
    let body = resp.text().await.unwrap();
    assert!(!body.contains(KEY), "{body}");
    assert!(body.contains(&"*".repeat(KEY.len())), "{body}");
}

#[tokio::test]
async fn a_new_secret_value_is_injected_and_masked_from_the_next_request() {
    let g = gateway().await;
    let get = || g.s.http().get(g.url("/v1/echo")).bearer_auth(&g.token).send();
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(g.last().headers["authorization"], format!("Bearer {KEY}"));
    let new_key = "sk_test_rotated_Zx81Kq0pLm3Nv7Rt";
    let c = g.s.root_client();
    c.put_secret("staging", "payments-key", &PutSecret { value: new_key.into(), ..Default::default() }).await.unwrap();
    let resp = get().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(g.last().headers["authorization"], format!("Bearer {new_key}"));
    assert!(!resp.headers()["x-echo-key"].to_str().unwrap().contains(new_key));
    let body = resp.text().await.unwrap();
    assert!(!body.contains(new_key), "{body}");
    assert!(body.contains(&"*".repeat(new_key.len())), "{body}");
}

#[tokio::test]
async fn query_injection_and_streaming_bodies() {
    let g = gateway().await;
    let c = g.s.root_client();
    let mut up = c.upstream("staging", "payments").await.unwrap();
    c.put_upstream(&PutUpstream {
        name: up.name.clone(),
        env: up.env.clone(),
        url: std::mem::take(&mut up.url),
        secret: up.secret.clone(),
        inject: Some("query:api_key".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let resp = g.s.http().get(g.url("/v1/items?api_key=mine&x=1")).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = g.last();
    assert_eq!(seen.query, format!("x=1&api_key={KEY}"));
    assert!(!seen.headers.contains_key("authorization"));
    // 4 MB upload and download stream through.
    let upload = vec![b'z'; 4 << 20];
    let resp = g.s.http().put(g.url("/v1/upload")).bearer_auth(&g.token).body(upload.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(g.last().body.len(), upload.len());
    let big = g.s.http().get(g.url("/v1/big")).bearer_auth(&g.token).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(big.len(), 4 << 20);
}

#[tokio::test]
async fn bad_requests_are_refused_before_reaching_the_upstream() {
    let g = gateway().await;
    g.s.env("qa").await;
    g.s.client("qa-suite", &[("qa", &["gw:payments"])]).await;
    let (qa_token, _) = g.s.token("qa", "qa-suite", &["gw:payments"]).await;
    g.s.client("other", &[("staging", &["orders:read"])]).await;
    let (no_scope, _) = g.s.token("staging", "other", &["orders:read"]).await;
    let http = g.s.http();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("no token", http.get(g.url("/v1/x")), 401, "bearer token"),
        ("garbage token", http.get(g.url("/v1/x")).bearer_auth("nope"), 401, "unknown token"),
        ("wrong scope", http.get(g.url("/v1/x")).bearer_auth(&no_scope), 403, "gw:payments"),
        ("wrong environment", http.get(g.url("/v1/x")).bearer_auth(&qa_token), 404, "in environment qa"),
        (
            "unknown upstream (no scope for it)",
            http.get(format!("{}/gw/nope/v1/x", g.s.url)).bearer_auth(&g.token),
            403,
            "gw:nope",
        ),
        (
            "outside allowed paths",
            http.get(g.url("/admin/users")).bearer_auth(&g.token),
            403,
            "outside the allowed prefixes",
        ),
    ];
    for (name, req, status, detail) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{name}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(detail), "{name}: {text}");
        assert!(!text.contains(KEY), "{name}");
    }
    // Clients normalise dot segments away, so these go over a raw connection.
    for path in ["/v1/%2e%2e/admin", "/v1/..%2fadmin", "/v1/a%2f..%2f..%2fadmin", "/v1/../admin"] {
        let answer = raw_request(
            &g.s.url,
            &format!(
                "GET /gw/payments{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                g.token
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    assert!(g.seen.lock().unwrap().is_empty(), "nothing reached the upstream");
}

async fn raw_request(base: &str, raw: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn request_smuggling_and_host_tricks_do_not_pass() {
    let g = gateway().await;
    let addr = g.s.url.trim_start_matches("http://").to_owned();
    let raw = format!(
        "POST /gw/payments/v1/charges HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /gw/payments/v1/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        g.token
    );
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    // RFC 9112 §6.3: with both headers, Transfer-Encoding wins and the connection must close
    // afterwards, so the bytes after the chunked body are never read as a request.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(
        answer.starts_with("HTTP/1.1 400") || answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(g.seen.lock().unwrap().iter().all(|s| s.path != "/v1/smuggled"), "a smuggled request reached the upstream");
    // The Host header is the upstream's, never the caller's.
    g.s.http().get(g.url("/v1/host")).bearer_auth(&g.token).header("host", "evil.example").send().await.unwrap();
    let host = g.last().headers["host"].to_str().unwrap().to_owned();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
}

#[tokio::test]
async fn hanging_and_dead_upstreams_get_504_and_502() {
    let g = gateway().await;
    let resp = g.s.http().get(g.url("/v1/hang")).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("did not answer within 1s"));
    let c = g.s.root_client();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    c.put_upstream(&PutUpstream {
        name: "dead".into(),
        env: "staging".into(),
        url: format!("http://{dead}"),
        secret: "payments-key".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    g.s.client("dead-suite", &[("staging", &["gw:dead"])]).await;
    let (t, _) = g.s.token("staging", "dead-suite", &["gw:dead"]).await;
    let resp = g.s.http().get(format!("{}/gw/dead/x", g.s.url)).bearer_auth(&t).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.text().await.unwrap().contains("unreachable"));
}

#[tokio::test]
async fn faults_fail_revoke_rotate_and_slow_down_on_purpose() {
    let g = gateway().await;
    let c = g.s.root_client();
    let http = g.s.http();
    let get = |token: String| {
        let req = http.get(g.url("/v1/ping")).bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    // fail_after 3: requests 1 and 2 pass, then 401 invalid_token.
    let f = c
        .add_fault(&AddFault {
            env: "staging".into(),
            upstream: "payments".into(),
            token: Some(g.token_id.clone()),
            fail_after: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(get(g.token.clone()).await.status(), 200);
    assert_eq!(get(g.token.clone()).await.status(), 200);
    let resp = get(g.token.clone()).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(c.faults().await.unwrap()[0].id, f.id);
    c.clear_faults(Some("staging"), None).await.unwrap();
    assert_eq!(get(g.token.clone()).await.status(), 200, "cleared");

    // revoke_after 2: the token really is revoked after its second request.
    let (t2, t2_id) = g.s.token("staging", "suite", &["gw:payments"]).await;
    c.add_fault(&AddFault {
        env: "staging".into(),
        upstream: "payments".into(),
        token: Some(t2_id.clone()),
        revoke_after: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(get(t2.clone()).await.status(), 200);
    assert_eq!(get(t2.clone()).await.status(), 200);
    let resp = get(t2.clone()).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("revoked"));
    assert_eq!(c.token(&t2_id).await.unwrap().inactive_reason.as_deref(), Some("revoked"));

    // rotate_after: the token is rotated with no grace once the time has passed.
    let (t3, t3_id) = g.s.token("staging", "suite", &["gw:payments"]).await;
    c.add_fault(&AddFault {
        env: "staging".into(),
        upstream: "payments".into(),
        token: Some(t3_id.clone()),
        rotate_after: Some("0s".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(get(t3.clone()).await.status(), 401);
    assert_eq!(c.token(&t3_id).await.unwrap().inactive_reason.as_deref(), Some("rotated"));

    // latency
    let (t4, t4_id) = g.s.token("staging", "suite", &["gw:payments"]).await;
    c.add_fault(&AddFault {
        env: "staging".into(),
        upstream: "payments".into(),
        token: Some(t4_id),
        latency: Some("1s".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let start = std::time::Instant::now();
    assert_eq!(get(t4).await.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(900));

    // Audited; refused in protected environments; exactly one kind.
    let audit = c.audit(0, 1000).await.unwrap().entries;
    assert!(audit.iter().filter(|e| e.action == "gateway.fault_add").count() >= 4);
    assert!(audit.iter().any(|e| e.action == "gateway.fault_clear"));
    c.create_environment(&CreateEnvironment { name: "prod".into(), protected: true, ..Default::default() })
        .await
        .unwrap();
    let (status, _) = problem(
        c.add_fault(&AddFault {
            env: "prod".into(),
            upstream: "payments".into(),
            fail_after: Some(1),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(status, 403);
    let (status, _) = problem(
        c.add_fault(&AddFault {
            env: "staging".into(),
            upstream: "payments".into(),
            fail_after: Some(1),
            latency: Some("1s".into()),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(status, 422);
}

#[tokio::test]
async fn gateway_use_is_counted_and_recorded_in_batches() {
    let g = gateway().await;
    for _ in 0..5 {
        g.s.http().get(g.url("/v1/ping")).bearer_auth(&g.token).send().await.unwrap();
    }
    let view = g.s.root_client().token(&g.token_id).await.unwrap();
    assert_eq!(view.uses, 5);
    // A run-bound token is not needed for the record; the flush happens in the background.
    let dir_url = g.s.url.clone();
    let _ = dir_url;
    let dir = g.s.stop().await;
    let store = tessera_store::open(&format!("sqlite://{}", dir.path().join("tessera.db").display())).await.unwrap();
    let uses = store.gateway_uses(None, 100).await.unwrap();
    assert_eq!(uses.len(), 5);
    assert!(uses.iter().all(|u| u.upstream == "payments" && u.status == 200 && u.token_id == g.token_id));
    let _ = CreateToken::default();
}
