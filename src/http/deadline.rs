//! The request deadline: a request that takes longer than `REQUEST_TIMEOUT` (a hung
//! dependency) gets a 503 problem instead of a hang, but never while it holds a database
//! connection. A statement in flight may still commit, and a 503 must mean that nothing
//! was; the server's own `statement_timeout` and `lock_timeout` end such statements well
//! before (their rollback is then the request's 503), so waiting for them is bounded.

use std::pin::pin;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::db::checkout;

/// Longer than any database path (pool wait, then statements bounded by the server).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The middleware.
pub async fn enforce(request: Request, next: Next) -> Response {
    let (run, holdings) = checkout::tracked(next.run(request));
    let mut run = pin!(run);
    tokio::select! {
        biased;
        response = &mut run => return response,
        () = tokio::time::sleep(REQUEST_TIMEOUT) => {}
    }
    if holdings.any() {
        // Its outcome, committed or rolled back, is the truthful answer.
        return run.await;
    }
    ApiError::RequestTimedOut.into_response()
}
