//! `GET /metrics` in Prometheus text format: requests and latencies per route, tokens issued,
//! introspected (by result, including the inactive reason) and revoked.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssueLabels {
    env: String,
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViaLabels {
    via: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    issued: Family<IssueLabels, Counter>,
    introspected: Family<ResultLabels, Counter>,
    revoked: Family<ViaLabels, Counter>,
    /// Change records of other replicas applied to this server's caches.
    pub changes_followed: Counter,
    /// 1 while this server leads background work.
    pub leader: prometheus_client::metrics::gauge::Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 18)));
        let issued = Family::<IssueLabels, Counter>::default();
        let introspected = Family::<ResultLabels, Counter>::default();
        let revoked = Family::<ViaLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("tokens_issued", "Tokens issued by environment and format", issued.clone());
        registry.register(
            "tokens_introspected",
            "Introspections by result (active, or the inactive reason)",
            introspected.clone(),
        );
        registry.register("tokens_revoked", "Tokens revoked by route", revoked.clone());
        let changes_followed = Counter::default();
        registry.register(
            "changes_followed",
            "Changes committed by other replicas and applied to this server's caches",
            changes_followed.clone(),
        );
        let leader = prometheus_client::metrics::gauge::Gauge::default();
        registry.register("leader", "1 while this server leads background work", leader.clone());
        Self { registry, requests, latency, issued, introspected, revoked, changes_followed, leader }
    }

    pub fn token_issued(&self, env: &str, format: &str) {
        self.issued.get_or_create(&IssueLabels { env: env.to_owned(), format: format.to_owned() }).inc();
    }

    pub fn introspected(&self, result: &str) {
        self.introspected.get_or_create(&ResultLabels { result: result.to_owned() }).inc();
    }

    pub fn revoked(&self, via: &str, count: u64) {
        self.revoked.get_or_create(&ViaLabels { via: via.to_owned() }).inc_by(count);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Middleware recording every request's route, status and latency.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.latency.get_or_create(&RouteLabels { route: route.clone() }).observe(start.elapsed().as_secs_f64());
    m.requests.get_or_create(&RequestLabels { method, route, status: response.status().as_u16() }).inc();
    response
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}
