//! `/labels`: the labels on the caller's tasks, seen and changed across all of them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::current_user::CurrentUser;
use super::error::{ApiError, PROBLEM_JSON, Problem};
use super::extract::{ApiJson, PathLabel};
use super::responses::{DatabaseUnavailable, JsonBodyErrors};
use crate::domain::label::Label;
use crate::domain::task::Field;
use crate::state::AppState;
use crate::store::{self, labels::LabelCount};

/// A label and how many of the caller's tasks carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelResponse {
    #[schema(example = "work")]
    pub name: String,
    #[schema(example = 3, minimum = 0)]
    pub task_count: i64,
}

impl From<LabelCount> for LabelResponse {
    fn from(label: LabelCount) -> Self {
        Self {
            name: label.name,
            task_count: label.task_count,
        }
    }
}

/// Every label on at least one of the caller's tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelListResponse {
    /// Sorted by name, in code-point order.
    pub items: Vec<LabelResponse>,
}

/// A label's new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameLabelRequest {
    /// 1 to 50 characters after trimming (stored trimmed).
    #[schema(value_type = String, min_length = 1, max_length = 50, example = "writing")]
    pub name: Field<String>,
}

/// List the labels on the caller's tasks.
///
/// Every label carried by at least one of the caller's tasks, with how many carry it, sorted
/// by name in code-point order.
#[utoipa::path(
    get, path = "/labels", tag = "labels",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's labels", body = LabelListResponse),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn list_labels(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    let client = state.database().await?;
    let labels = store::as_caller(&client, &user.caller(), async |tx| {
        store::labels::list(tx, user.id).await
    })
    .await?;
    let body = LabelListResponse {
        items: labels.into_iter().map(LabelResponse::from).collect(),
    };
    Ok(axum::Json(body).into_response())
}

/// Rename a label on every task that carries it.
///
/// A task that already carries the new name keeps it once, where it was. Every task changed
/// gets a new `ETag` and `updated_at`. The answer counts the tasks carrying the new name.
#[utoipa::path(
    patch, path = "/labels/{name}", tag = "labels",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The label, percent-encoded")),
    request_body = RenameLabelRequest,
    responses(
        (status = 200, description = "Renamed", body = LabelResponse),
        JsonBodyErrors,
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "None of the caller's tasks carries this label", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid new name", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn rename_label(
    State(state): State<AppState>,
    user: CurrentUser,
    PathLabel(old): PathLabel,
    ApiJson(body): ApiJson<RenameLabelRequest>,
) -> Result<Response, ApiError> {
    let new = body.name.required("name", |raw| Label::parse(&raw))?;
    let client = state.database().await?;
    let renamed = store::as_writer(&client, &user.caller(), async |tx| {
        store::labels::rename(tx, user.id, &old, &new).await
    })
    .await?;
    Ok(axum::Json(LabelResponse::from(renamed)).into_response())
}

/// Remove a label from every task that carries it.
///
/// Every task changed gets a new `ETag` and `updated_at`.
#[utoipa::path(
    delete, path = "/labels/{name}", tag = "labels",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The label, percent-encoded")),
    responses(
        (status = 204, description = "Removed from every task that carried it"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "None of the caller's tasks carries this label", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn delete_label(
    State(state): State<AppState>,
    user: CurrentUser,
    PathLabel(label): PathLabel,
) -> Result<StatusCode, ApiError> {
    let client = state.database().await?;
    store::as_writer(&client, &user.caller(), async |tx| {
        store::labels::delete(tx, user.id, &label).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
