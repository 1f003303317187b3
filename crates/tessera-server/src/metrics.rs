//! `GET /metrics` in Prometheus text format: requests and latencies per route, tokens issued,
//! introspected (by result, including the inactive reason) and revoked.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

use crate::state::AppState;

// Request labels are built on every request: they share the route template (an `Arc`) and
// the method instead of copying them into new strings.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteLabel,
}

/// The matched route template, or `unmatched`.
#[derive(Clone, Debug)]
struct RouteLabel(Option<MatchedPath>);

impl RouteLabel {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl Hash for RouteLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MethodLabel(Method);

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(self.0.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssueLabels {
    env: String,
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
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

    pub fn introspected(&self, result: &'static str) {
        self.introspected.get_or_create(&ResultLabels { result }).inc();
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

/// Records every request's route, status and latency: a plain tower layer rather than
/// `axum::middleware::from_fn`, which clones and boxes the inner service and boxes a future for
/// every request.
#[derive(Clone, Debug)]
pub struct TrackLayer(AppState);

impl TrackLayer {
    pub fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner, state: self.0.clone() }
    }
}

/// The service of [`TrackLayer`].
#[derive(Clone, Debug)]
pub struct Track<S> {
    inner: S,
    state: AppState,
}

impl<S, E> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = RouteLabel(req.extensions().get::<MatchedPath>().cloned());
        let method = MethodLabel(req.method().clone());
        let start = Instant::now();
        TrackFuture { inner: self.inner.call(req), state: self.state.clone(), labels: Some((route, method)), start }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Track`]: records the request when the response is ready.
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        state: AppState,
        labels: Option<(RouteLabel, MethodLabel)>,
        start: Instant,
    }
}

impl<F, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some((route, method))) = (&result, this.labels.take()) {
            let m = &this.state.metrics;
            m.latency.get_or_create(&RouteLabels { route: route.clone() }).observe(this.start.elapsed().as_secs_f64());
            m.requests.get_or_create(&RequestLabels { method, route, status: response.status().as_u16() }).inc();
        }
        Poll::Ready(result)
    }
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}
