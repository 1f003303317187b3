//! Runs the matrix: per operation the `valid` case first (it establishes that the request is
//! otherwise well formed), then every other case concurrently, bounded by `concurrency`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tessera_core::mask::Masker;
use tokio::sync::Semaphore;

use crate::matrix::{judge, Expectation, Observed, Overrides, CASES, NEEDS_INTROSPECTION};
use crate::openapi::{Operation, RequestTemplate, Security};
use crate::tokens::{tokens_for, Source};

/// Largest part of a response body that is read.
pub const BODY_CAP: usize = 64 * 1024;

/// How to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub base_url: String,
    pub concurrency: usize,
    pub timeout: Duration,
    /// Run only these cases (empty: all).
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub overrides: Overrides,
    pub fail_fast: bool,
    /// Extra headers on every request (`--header`).
    pub headers: Vec<(String, String)>,
    /// Called after each operation finishes (progress).
    pub label: String,
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    /// `pass`, `fail`, `skip` or `inconclusive`.
    pub outcome: String,
    pub reason: String,
    pub expected: Expectation,
    pub observed: Option<Observed>,
    /// `GET /orders?limit=5` (credentials not shown).
    pub request: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// One operation's results.
#[derive(Debug, Clone, Serialize)]
pub struct OperationResult {
    pub operation: String,
    pub operation_id: Option<String>,
    /// Why the operation was not tested (unsecured, no request could be built …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub cases: Vec<CaseResult>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub inconclusive: usize,
    pub warnings: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub operations: Vec<OperationResult>,
    pub summary: Summary,
}

impl Report {
    fn summarize(operations: Vec<OperationResult>) -> Report {
        let mut s = Summary::default();
        for c in operations.iter().flat_map(|o| &o.cases) {
            match c.outcome.as_str() {
                "pass" => s.pass += 1,
                "fail" => s.fail += 1,
                "skip" => s.skip += 1,
                _ => s.inconclusive += 1,
            }
            s.warnings += c.warnings.len();
        }
        Report { operations, summary: s }
    }
}

enum Auth {
    None,
    Header(String),
    Query(String),
}

fn auth_for(case: &str, token: &str) -> Auth {
    match case {
        "missing" => Auth::None,
        "malformed_header" => Auth::Header("Bearer".into()),
        "wrong_scheme" => Auth::Header(format!("Token {token}")),
        "token_in_query" => Auth::Query(token.to_owned()),
        _ => Auth::Header(format!("Bearer {token}")),
    }
}

fn describe(op: &Operation, req: &RequestTemplate, auth: &Auth) -> String {
    let mut q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if matches!(auth, Auth::Query(_)) {
        q.push("access_token=…".into());
    }
    let header = match auth {
        Auth::None | Auth::Query(_) => "no Authorization".to_owned(),
        Auth::Header(h) => format!(
            "Authorization: {}",
            h.split_once(' ').map_or(h.as_str(), |(s, _)| s).to_owned() + if h.contains(' ') { " …" } else { "" }
        ),
    };
    format!(
        "{} {}{} ({header})",
        op.method,
        req.path,
        if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }
    )
}

/// Sends one request; retries only when the connection fails. Reads at most [`BODY_CAP`].
async fn send(
    http: &reqwest::Client,
    s: &Settings,
    op: &Operation,
    req: &RequestTemplate,
    auth: &Auth,
) -> Result<Observed, String> {
    let method = reqwest::Method::from_bytes(op.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 0..3 {
        let mut url = reqwest::Url::parse(&format!("{}{}", s.base_url.trim_end_matches('/'), req.path))
            .map_err(|e| e.to_string())?;
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &req.query {
                pairs.append_pair(k, v);
            }
            if let Auth::Query(t) = auth {
                pairs.append_pair("access_token", t);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut r = http.request(method.clone(), url).timeout(s.timeout);
        for (k, v) in req.headers.iter().chain(&s.headers) {
            r = r.header(k, v);
        }
        if let Auth::Header(h) = auth {
            r = r.header("authorization", h);
        }
        if let Some(body) = &req.body {
            r = r.body(body.to_string());
        }
        match r.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let www = resp
                    .headers()
                    .get_all("www-authenticate")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .collect();
                let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let mut body = Vec::new();
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let Ok(chunk) = chunk else { break };
                    body.extend_from_slice(&chunk[..chunk.len().min(BODY_CAP - body.len())]);
                    if body.len() >= BODY_CAP {
                        break;
                    }
                }
                return Ok(Observed {
                    status,
                    www_authenticate: www,
                    content_type,
                    body_excerpt: String::from_utf8_lossy(&body).into_owned(),
                });
            }
            Err(e) if e.is_timeout() => return Err(format!("no answer within {:?}", s.timeout)),
            Err(e) if e.is_connect() && attempt < 2 => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
            Err(e) => return Err(format!("request failed: {}", tessera_client::root_cause(&e))),
        }
    }
    Err(format!("cannot connect: {last}"))
}

fn wanted(s: &Settings, case: &str) -> bool {
    (s.only.is_empty() || s.only.iter().any(|c| c == case)) && !s.skip.iter().any(|c| c == case)
}

/// Runs every case against every operation. `progress` is told about each finished operation.
pub async fn run(
    ops: Vec<Operation>,
    source: Source,
    settings: Settings,
    progress: impl Fn(&OperationResult) + Send + Sync + 'static,
) -> Report {
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("HTTP client builds");
    let limit = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let settings = Arc::new(settings);
    let progress = Arc::new(progress);
    let mut tasks = Vec::new();
    for op in ops {
        let (http, limit, stop, settings, source, progress) =
            (http.clone(), limit.clone(), stop.clone(), settings.clone(), source.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let result = run_operation(&http, &limit, &stop, &settings, &source, op).await;
            progress(&result);
            result
        }));
    }
    let mut operations = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            operations.push(r);
        }
    }
    Report::summarize(operations)
}

async fn run_operation(
    http: &reqwest::Client,
    limit: &Arc<Semaphore>,
    stop: &AtomicBool,
    s: &Arc<Settings>,
    source: &Source,
    op: Operation,
) -> OperationResult {
    let name = op.name();
    let mut result =
        OperationResult { operation: name.clone(), operation_id: op.operation_id.clone(), note: None, cases: vec![] };
    let scopes = match &op.security {
        Security::Bearer { scopes, .. } => scopes.clone(),
        Security::None { overrides_global: true } => {
            result.note =
                Some("unsecured: opts out of the document's global security with `security: []` — intended?".into());
            return result;
        }
        Security::None { .. } => {
            result.note = Some("unsecured (no security requirement)".into());
            return result;
        }
        Security::Other { schemes } => {
            result.note = Some(format!("secured only by schemes authtest does not test: {}", schemes.join(", ")));
            return result;
        }
    };
    let req = match &op.request {
        Ok(r) => r.clone(),
        Err(e) => {
            result.note = Some(format!("no valid request could be built: {e}"));
            return result;
        }
    };
    let tokens = match tokens_for(source, &scopes, &s.label).await {
        Ok(t) => t,
        Err(e) => {
            result.note = Some(e);
            return result;
        }
    };
    let case_result = |case: &str,
                       outcome: &str,
                       reason: String,
                       observed: Option<Observed>,
                       request: String,
                       warnings: Vec<String>| {
        let remedy = (outcome == "fail" && NEEDS_INTROSPECTION.contains(&case)).then(|| {
            "an API that validates JWTs locally cannot see revocation, idle expiry, use limits or rotation: introspect \
             tokens (POST /oauth2/introspect) or keep TTLs short"
                .to_owned()
        });
        CaseResult {
            case: case.into(),
            outcome: outcome.into(),
            reason,
            expected: s.overrides.expectation(&name, case),
            observed,
            request,
            warnings,
            remedy,
        }
    };
    // `valid` always runs first: without it, a rejection proves nothing.
    let valid_token = tokens.get("valid").cloned().unwrap_or(Err("no valid token".into()));
    let valid_ok = match &valid_token {
        Err(e) => {
            result.cases.push(case_result("valid", "skip", e.clone(), None, String::new(), vec![]));
            false
        }
        Ok(t) => {
            let auth = auth_for("valid", t);
            let _permit = limit.acquire().await.expect("semaphore open");
            let answer = send(http, s, &op, &req, &auth).await;
            let request = describe(&op, &req, &auth);
            match answer {
                Err(e) => {
                    result.cases.push(case_result("valid", "fail", e, None, request, vec![]));
                    false
                }
                Ok(o) => {
                    let v = judge("valid", &s.overrides.expectation(&name, "valid"), &o, Some(t));
                    let ok = v.outcome == "pass";
                    let observed = mask(o, t);
                    if wanted(s, "valid") {
                        result.cases.push(case_result(
                            "valid",
                            &v.outcome,
                            v.reason,
                            Some(observed),
                            request,
                            v.warnings,
                        ));
                    }
                    ok
                }
            }
        }
    };
    let mut pending = Vec::new();
    for case in CASES.iter().copied().filter(|c| *c != "valid" && wanted(s, c)) {
        if !valid_ok {
            result.cases.push(case_result(
                case,
                "inconclusive",
                "the valid case of this operation failed".into(),
                None,
                String::new(),
                vec![],
            ));
            continue;
        }
        let token = match tokens.get(case).cloned().unwrap_or(Err("not available".into())) {
            Ok(t) => t,
            Err(why) => {
                result.cases.push(case_result(case, "skip", why, None, String::new(), vec![]));
                continue;
            }
        };
        let (http, limit, s2, op2, req2, name2) =
            (http.clone(), limit.clone(), s.clone(), op.clone(), req.clone(), name.clone());
        let stopped = stop.load(Ordering::Acquire);
        pending.push(async move {
            if stopped {
                return (case, Err("not run: --fail-fast stopped after a failure".to_owned()), String::new(), token);
            }
            let auth = auth_for(case, &token);
            let _permit = limit.acquire().await.expect("semaphore open");
            if case == "exhausted" {
                // Spend the token's single use, so the case request is its second.
                let _ = send(&http, &s2, &op2, &req2, &Auth::Header(format!("Bearer {token}"))).await;
            }
            let _ = &name2;
            let answer = send(&http, &s2, &op2, &req2, &auth).await;
            (case, answer, describe(&op2, &req2, &auth), token)
        });
    }
    for (case, answer, request, token) in futures_util::future::join_all(pending).await {
        match answer {
            Err(e) if e.starts_with("not run") => {
                result.cases.push(case_result(case, "skip", e, None, request, vec![]))
            }
            Err(e) => {
                stop.store(s.fail_fast, Ordering::Release);
                result.cases.push(case_result(case, "fail", e, None, request, vec![]));
            }
            Ok(o) => {
                let v = judge(
                    case,
                    &s.overrides.expectation(&name, case),
                    &o,
                    (!token.is_empty()).then_some(token.as_str()),
                );
                if v.outcome == "fail" && s.fail_fast {
                    stop.store(true, Ordering::Release);
                }
                result.cases.push(case_result(case, &v.outcome, v.reason, Some(mask(o, &token)), request, v.warnings));
            }
        }
    }
    result.cases.sort_by_key(|c| CASES.iter().position(|x| *x == c.case));
    result
}

/// Reports never show a credential, even one the API echoed.
fn mask(mut o: Observed, token: &str) -> Observed {
    if token.len() >= 4 {
        let m = Masker::new([token.as_bytes()]);
        o.body_excerpt = String::from_utf8_lossy(&m.mask_all(o.body_excerpt.as_bytes())).into_owned();
        o.www_authenticate = o
            .www_authenticate
            .iter()
            .map(|h| String::from_utf8_lossy(&m.mask_all(h.as_bytes())).into_owned())
            .collect();
    }
    o.body_excerpt = o.body_excerpt.chars().take(500).collect();
    o
}
