//! `/health` (readiness: is the database answering?) and `/livez` (liveness: is the
//! process serving, whatever the database?).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::responses::DatabaseUnavailable;
use crate::http::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(value_type = HealthStatusSchema, inline)]
    pub status: &'static str,
}

/// Always `ok`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "a schema only, never constructed")]
enum HealthStatusSchema {
    Ok,
}

/// Readiness: is the database answering?
///
/// Public: no token needed. 200 while the database answers a trivial query, 503 when it
/// does not.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    security(),
    responses(
        (status = 200, description = "The database answers", body = HealthResponse),
        DatabaseUnavailable,
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    crate::store::health::ping(&state.pool).await?;
    Ok(axum::Json(HealthResponse { status: "ok" }).into_response())
}

/// Liveness: is the process serving?
///
/// Public: no token needed. 200 while the process serves requests, whatever the state of
/// the database (for an orchestrator's restart decision; readiness is `/health`).
#[utoipa::path(
    get, path = "/livez", tag = "operations",
    security(),
    responses(
        (status = 200, description = "The process is serving", body = HealthResponse),
    )
)]
pub async fn livez() -> Response {
    axum::Json(HealthResponse { status: "ok" }).into_response()
}
