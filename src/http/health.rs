//! `/health`: is the database answering?

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::db::DbError;
use crate::error::{ApiError, PROBLEM_JSON, Problem};

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

/// Liveness and database readiness.
///
/// Public: no token needed. 200 while the database answers a trivial query, 503 when it
/// does not.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    security(),
    responses(
        (status = 200, description = "The database answers", body = HealthResponse),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    let client = state.pool.get().await?;
    client
        .simple_query("SELECT 1")
        .await
        // Any failure of `SELECT 1` means the database is not serving.
        .map_err(|e| ApiError::Unavailable(DbError::from(e).to_string()))?;
    Ok(axum::Json(HealthResponse { status: "ok" }).into_response())
}
