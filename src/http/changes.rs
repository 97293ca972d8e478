//! `GET /changes`: the caller's change feed (API.md "Sync: the change feed"). The order,
//! coalescing and tombstones come from the database (`store::changes`, migration V5); this
//! handler opens and seals the cursor and shapes the page.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::current_user::CurrentUser;
use super::error::{ApiError, PROBLEM_JSON, Problem};
use super::projects::ProjectResponse;
use super::responses::DatabaseUnavailable;
use super::tasks::TaskResponse;
use crate::domain::ValidationErrors;
use crate::domain::changes::{ChangeKind, FeedCursor, FeedPosition, FeedQuery};
use crate::state::AppState;
use crate::store::{self, changes::Change};

/// What changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKindBody {
    Task,
    Project,
}

/// How it changed: created or changed (`upsert`, with its current state in `data`), or
/// deleted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Upsert,
    Delete,
}

/// The object's state, as `GET /tasks/{id}` or `GET /projects/{id}` returns it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ChangeData {
    Task(TaskResponse),
    Project(ProjectResponse),
}

/// One object's latest change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeBody {
    pub kind: ChangeKindBody,
    pub op: ChangeOp,
    pub id: Uuid,
    /// On upserts only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub data: Option<ChangeData>,
}

/// One page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesResponse {
    /// In commit order; each object at most once, at its latest change.
    pub changes: Vec<ChangeBody>,
    /// Pass as `since` for what comes next (also when nothing came: it is then equivalent
    /// to the `since` given).
    pub cursor: String,
    /// More changes are ready now: ask again with `cursor` at once.
    pub has_more: bool,
}

/// The query of `GET /changes`. Unknown parameters, and either given twice, are 422.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; it is parsed by domain::changes"
)]
pub struct ChangesQuery {
    /// A `cursor` from an earlier response; without it, the feed starts from the beginning
    /// (every task and project the caller has, as upserts).
    since: Option<String>,
    /// Changes per page, 1 to 1000.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// The caller's changes since a cursor.
///
/// Each object changed after `since` appears once, at the place of its latest change, in
/// commit order; deletions are `delete` changes (deleting a project reports each of its
/// tasks; renaming or deleting a label, each task it changed). Read page after page, each
/// `cursor` passed as the next `since`, until `has_more` is false: applying the changes in
/// order then gives exactly the caller's tasks and projects at that moment, even while other
/// writes commit. Deletions are remembered for `CHANGES_RETENTION_DAYS` (30 by default): an
/// older cursor is 410, and the client syncs again from the beginning.
#[utoipa::path(
    get, path = "/changes", tag = "sync",
    security(("bearer" = [])),
    params(ChangesQuery),
    responses(
        (status = 200, description = "One page of the caller's changes", body = ChangesResponse),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 410, description = "The cursor is older than the retention: sync again from the beginning", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid, unknown or repeated query parameter, or a `since` that is not a cursor issued to the caller", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn list_changes(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = FeedQuery::parse(raw.as_deref().unwrap_or_default())?;
    let since = match &query.since {
        None => None,
        Some(text) => Some(
            FeedCursor::open(&state.cursors, user.id, text).ok_or_else(|| {
                ApiError::Validation(ValidationErrors::single(
                    "since",
                    "is not a cursor this feed gave to you",
                ))
            })?,
        ),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let retention = i64::try_from(state.changes_retention.as_secs()).unwrap_or(i64::MAX);
    if since.is_some_and(|cursor| cursor.has_expired(now, retention)) {
        return Err(ApiError::Gone(
            "this cursor is older than the feed remembers deletions; sync again from the \
             beginning (without since)",
        ));
    }
    let after = since.map_or(FeedPosition::START, |cursor| cursor.position);
    let client = state.database().await?;
    let mut rows = store::as_caller(&client, &user.caller(), async |tx| {
        store::changes::feed(tx, user.id, &after, query.limit + 1, since.is_none()).await
    })
    .await?;
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    let position = rows.last().map_or(after, |row| row.position);
    let cursor = FeedCursor::after_page(since.as_ref(), position, has_more, now)
        .seal(&state.cursors, user.id);
    let changes = rows
        .into_iter()
        .map(|row| {
            let kind = match row.position.kind {
                Some(ChangeKind::Project) => ChangeKindBody::Project,
                _ => ChangeKindBody::Task,
            };
            let (op, data) = match row.change {
                Change::Task(task) => (ChangeOp::Upsert, Some(ChangeData::Task(task.into()))),
                Change::Project(project) => {
                    (ChangeOp::Upsert, Some(ChangeData::Project(project.into())))
                }
                Change::Deleted => (ChangeOp::Delete, None),
            };
            ChangeBody {
                kind,
                op,
                id: row.position.id,
                data,
            }
        })
        .collect();
    Ok(axum::Json(ChangesResponse {
        changes,
        cursor,
        has_more,
    })
    .into_response())
}
