//! One access-log line per request (target `taskapi::access`): method, matched route,
//! status, latency and request id; never a token, a body or a password. A 5xx is logged
//! here, once, at error level with its cause (`FailureCause`, attached by whoever made
//! the response); everything a request logs on the way happens inside its span. The same
//! measurement feeds the request metrics, so there is one timing layer, not two.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::FailureCause;
use crate::metrics::Metrics;

/// The middleware. Runs inside the layer that sets `x-request-id`.
pub async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Reference-counted clones, not copies: this runs on every request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let id_header = request.headers().get("x-request-id").cloned();
    let route = matched.as_ref().map_or("(no route)", MatchedPath::as_str);
    let request_id = id_header
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!("request", id = %request_id);
    let response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed();
    metrics.record_request(
        &method,
        matched.as_ref().map(MatchedPath::as_str),
        response.status(),
        elapsed,
    );
    let status = response.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        let cause = response
            .extensions()
            .get::<FailureCause>()
            .map_or("no cause recorded", |cause| cause.0.as_str());
        tracing::error!(
            target: "taskapi::access",
            %method, %route, status, latency_ms, request_id, cause,
            "request failed"
        );
    } else {
        tracing::info!(
            target: "taskapi::access",
            %method, %route, status, latency_ms, request_id,
            "request"
        );
    }
    response
}
