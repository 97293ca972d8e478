//! `/health` (readiness: is the database answering?) and `/livez` (liveness: is the
//! process serving, whatever the database?).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, PROBLEM_JSON, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Readiness: 200 when the database answers, else 503.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = HealthResponse),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    crate::store::health::ping(&state.pool).await?;
    Ok(axum::Json(HealthResponse { status: "ok" }).into_response())
}

/// Liveness: 200 while the process serves requests, whatever the database's state.
#[utoipa::path(
    get, path = "/livez", tag = "operations",
    responses(
        (status = 200, description = "The process is serving", body = HealthResponse),
    )
)]
pub async fn livez() -> Response {
    axum::Json(HealthResponse { status: "ok" }).into_response()
}
