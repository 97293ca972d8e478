//! The request deadline: a request that takes longer than its deadline (a hung
//! dependency) gets a 503 problem instead of a hang, but never while it holds a database
//! connection. A statement in flight may still commit, and a 503 must mean that nothing
//! was; the server's own `statement_timeout` and `lock_timeout` end such statements well
//! before (their rollback is then the request's 503), so waiting for them is bounded.

use std::pin::pin;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::db::checkout;

/// The default: longer than any database path (a 2 s pool wait, then statements bounded by
/// the server's timeouts).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The middleware (`from_fn_with_state`), with the deadline as its state.
pub async fn enforce(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let (run, holdings) = checkout::tracked(next.run(request));
    let mut run = pin!(run);
    tokio::select! {
        biased;
        response = &mut run => return response,
        () = tokio::time::sleep(timeout) => {}
    }
    if holdings.any() {
        // Its outcome, committed or rolled back, is the truthful answer.
        return run.await;
    }
    ApiError::RequestTimedOut.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    #[tokio::test]
    async fn a_request_past_its_deadline_gets_a_problem_503_with_retry_after() {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late"
        }
        let router =
            Router::new()
                .route("/slow", get(slow))
                .layer(axum::middleware::from_fn_with_state(
                    Duration::from_millis(50),
                    enforce,
                ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let response = reqwest::get(format!("http://{address}/slow"))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(
            response.headers()["content-type"],
            crate::http::error::PROBLEM_JSON
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], 503);
    }
}
