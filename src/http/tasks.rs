//! `/tasks`: the caller's own tasks. Handlers parse into domain types, call the store
//! (which scopes every statement to the caller) and shape the response.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{ApiJson, KeyedJson, PathId};
use super::idempotency::{self, IdempotencyHeader, IdempotencyKeyParam};
use super::json_body::JsonBody;
use super::resource;
use super::responses::{DatabaseUnavailable, JsonBodyErrors};
use crate::domain::listing::{ListCursors, Position, TaskQuery};
use crate::domain::task::{Field, Priority, TaskInput, TaskStatus};
use crate::domain::timestamp;
use crate::http::current_user::CurrentUser;
use crate::http::error::{ApiError, PROBLEM_JSON, Problem};
use crate::state::AppState;
use crate::store::{self, StoreError, tasks::TaskRow};

// The document's views of the domain's `TaskStatus` and `Priority` (which stay free of
// OpenAPI), with the same values; `tests/api/openapi.rs` checks that they agree.

/// Where a task stands. `completed_at` is set exactly while it is `done`.
#[derive(ToSchema)]
#[schema(as = TaskStatus, rename_all = "snake_case")]
#[expect(dead_code, reason = "a schema only, never constructed")]
enum TaskStatusSchema {
    Todo,
    InProgress,
    Done,
}

/// How urgent a task is; the values are in rank order.
#[derive(ToSchema)]
#[schema(as = Priority, rename_all = "snake_case")]
#[expect(dead_code, reason = "a schema only, never constructed")]
enum PrioritySchema {
    Low,
    Medium,
    High,
    Urgent,
}

// The values of `GET /tasks?sort=` (parsed by `domain::listing::Sort`), inlined there.
#[derive(ToSchema)]
#[schema(default = "-created_at")]
#[expect(dead_code, reason = "a schema only, never constructed")]
enum TaskSortSchema {
    #[schema(rename = "created_at")]
    CreatedAt,
    #[schema(rename = "-created_at")]
    CreatedAtDesc,
    #[schema(rename = "updated_at")]
    UpdatedAt,
    #[schema(rename = "-updated_at")]
    UpdatedAtDesc,
    #[schema(rename = "due_at")]
    DueAt,
    #[schema(rename = "-due_at")]
    DueAtDesc,
    #[schema(rename = "priority")]
    Priority,
    #[schema(rename = "-priority")]
    PriorityDesc,
    #[schema(rename = "title")]
    Title,
    #[schema(rename = "-title")]
    TitleDesc,
}

/// A new task (POST), or the whole of a task (PUT: omitted optional fields take their
/// defaults).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// 1 to 200 characters after trimming surrounding whitespace (stored trimmed).
    #[schema(value_type = String, min_length = 1, max_length = 200, example = "Write the report")]
    pub title: Field<String>,
    /// At most 10,000 characters; stored exactly as sent.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Field<String>,
    /// Defaults to `todo`.
    #[serde(default)]
    #[schema(value_type = TaskStatusSchema, default = "todo")]
    pub status: Field<String>,
    /// Defaults to `medium`.
    #[serde(default)]
    #[schema(value_type = PrioritySchema, default = "medium")]
    pub priority: Field<String>,
    /// RFC 3339 with an explicit offset (`Z` or `±hh:mm`), or null.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T17:00:00Z")]
    pub due_at: Field<String>,
    /// One of the caller's projects, or null (the default: no project). Any other id is 422.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>, default = json!(null))]
    pub project_id: Field<String>,
    /// 0 to 20 labels, each 1 to 50 characters after trimming (stored trimmed), no two
    /// equal, case-sensitive, kept in order. Defaults to `[]`; null is 422.
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 20, default = json!([]), example = json!(["work", "writing"]))]
    pub labels: Field<Vec<String>>,
}

/// A partial change (PATCH): only the fields sent change; `null` clears `description` or
/// `due_at` (and is refused for `title`, `status` and `priority`); `{}` changes nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub title: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub description: Field<String>,
    #[serde(default)]
    #[schema(value_type = TaskStatusSchema)]
    pub status: Field<String>,
    #[serde(default)]
    #[schema(value_type = PrioritySchema)]
    pub priority: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Field<String>,
    /// Moves the task into one of the caller's projects; null takes it out of its project.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub project_id: Field<String>,
    /// Replaces the task's labels (`[]` clears them; null is 422).
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 20)]
    pub labels: Field<Vec<String>>,
}

impl From<CreateTaskRequest> for TaskInput {
    fn from(body: CreateTaskRequest) -> Self {
        Self {
            title: body.title,
            description: body.description,
            status: body.status,
            priority: body.priority,
            due_at: body.due_at,
            project_id: body.project_id,
            labels: body.labels,
        }
    }
}

impl From<UpdateTaskRequest> for TaskInput {
    fn from(body: UpdateTaskRequest) -> Self {
        Self {
            title: body.title,
            description: body.description,
            status: body.status,
            priority: body.priority,
            due_at: body.due_at,
            project_id: body.project_id,
            labels: body.labels,
        }
    }
}

/// A task.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskResponse {
    pub id: Uuid,
    #[schema(example = "Write the report")]
    pub title: String,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(value_type = TaskStatusSchema)]
    pub status: TaskStatus,
    #[schema(value_type = PrioritySchema)]
    pub priority: Priority,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub due_at: Option<timestamp::Utc>,
    /// Set when the task becomes `done`, cleared when it leaves `done`.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub completed_at: Option<timestamp::Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: timestamp::Utc,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: timestamp::Utc,
    /// The task's project, or null.
    #[schema(required = true)]
    pub project_id: Option<Uuid>,
    /// The task's labels, in the order they were given.
    #[schema(example = json!(["work", "writing"]))]
    pub labels: Vec<String>,
}

impl From<TaskRow> for TaskResponse {
    fn from(task: TaskRow) -> Self {
        Self {
            id: task.id,
            title: task.title,
            description: task.description,
            status: task.status,
            priority: task.priority,
            due_at: task.due_at.map(timestamp::Utc),
            completed_at: task.completed_at.map(timestamp::Utc),
            created_at: timestamp::Utc(task.created_at),
            updated_at: timestamp::Utc(task.updated_at),
            project_id: task.project_id,
            labels: task.labels,
        }
    }
}

/// Room for one task's JSON, to size buffers: a task with a short title and description, a
/// due date and two labels takes 318 bytes; longer ones grow the buffer once.
const TASK_JSON_BYTES: usize = 420;

/// `task` as `TaskResponse` serializes it, written by hand (`http::json_body`).
fn write_task(body: &mut JsonBody, task: &TaskRow) {
    body.raw("{\"id\":");
    body.uuid(task.id);
    body.raw(",\"title\":");
    body.string(&task.title);
    body.raw(",\"description\":");
    body.optional_string(task.description.as_deref());
    body.raw(",\"status\":\"");
    body.raw(task.status.as_str());
    body.raw("\",\"priority\":\"");
    body.raw(task.priority.as_str());
    body.raw("\",\"due_at\":");
    body.optional_timestamp(task.due_at.map(timestamp::Utc));
    body.raw(",\"completed_at\":");
    body.optional_timestamp(task.completed_at.map(timestamp::Utc));
    body.raw(",\"created_at\":");
    body.timestamp(timestamp::Utc(task.created_at));
    body.raw(",\"updated_at\":");
    body.timestamp(timestamp::Utc(task.updated_at));
    body.raw(",\"project_id\":");
    body.optional_uuid(task.project_id);
    body.raw(",\"labels\":");
    body.strings(&task.labels);
    body.raw("}");
}

/// A list page as `TaskListResponse` serializes it, written by hand.
fn write_task_list(
    tasks: &[TaskRow],
    total: i64,
    limit: i64,
    offset: i64,
    next_cursor: Option<&str>,
) -> JsonBody {
    let mut body = JsonBody::with_capacity(128 + tasks.len() * TASK_JSON_BYTES);
    body.raw("{\"items\":[");
    for (n, task) in tasks.iter().enumerate() {
        if n > 0 {
            body.raw(",");
        }
        write_task(&mut body, task);
    }
    body.raw("],\"total\":");
    body.integer(total);
    body.raw(",\"limit\":");
    body.integer(limit);
    body.raw(",\"offset\":");
    body.integer(offset);
    body.raw(",\"next_cursor\":");
    body.optional_string(next_cursor);
    body.raw("}");
    body
}

// Written by `write_task_list`; the derived `Serialize` is the reference its tests compare
// with (and the feed's, `http::changes`, for `TaskResponse`).
/// One page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskListResponse {
    pub items: Vec<TaskResponse>,
    /// How many of the caller's tasks match the filters, over all pages.
    pub total: i64,
    pub limit: i64,
    /// The `offset` asked for; 0 on a page asked for by `cursor`.
    pub offset: i64,
    /// Opaque. Send it back as `cursor` (with the same `sort` and filters, any `limit`, no
    /// `offset`) for the page that follows this one; null on the last page. Offset pages
    /// carry one too.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The query of `GET /tasks`. Unknown parameters, and any given twice that cannot repeat,
/// are 422.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; it is parsed by domain::listing"
)]
pub struct ListTasksQuery {
    /// Page size, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// Tasks to skip, at least 0. Not with `cursor`.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
    /// The `next_cursor` of the previous page: this page starts right after it. Only with
    /// the `sort` and filters it was given out for (`limit` may change), and without
    /// `offset`; anything else, and any cursor that is not exactly one this API gave out to
    /// the caller, is a 422 naming `cursor`. Unlike `offset`, a walk by cursor stays exact
    /// while tasks are created, changed and deleted: every task that exists throughout with
    /// an unchanged sort key comes exactly once, and none comes twice unless its sort key
    /// changed.
    #[param(min_length = 1)]
    cursor: Option<String>,
    /// Only these statuses; repeat the parameter for several.
    #[param(value_type = Option<Vec<TaskStatusSchema>>, explode = true, style = Form)]
    status: Option<Vec<String>>,
    /// Only these priorities; repeat the parameter for several.
    #[param(value_type = Option<Vec<PrioritySchema>>, explode = true, style = Form)]
    priority: Option<Vec<String>>,
    /// Only tasks due strictly before this instant (RFC 3339); undated tasks never match.
    #[param(value_type = Option<String>, format = DateTime)]
    due_before: Option<String>,
    /// Only tasks due strictly after this instant (RFC 3339); undated tasks never match.
    #[param(value_type = Option<String>, format = DateTime)]
    due_after: Option<String>,
    /// Words that must all appear (case-insensitively, as whole words) in the title or
    /// description. `%` and `_` are ordinary characters.
    q: Option<String>,
    /// `created_at`, `updated_at`, `due_at`, `priority` (rank low < medium < high < urgent)
    /// or `title`, optionally prefixed by `-` for descending. Ties are broken by id in the
    /// same direction; undated tasks sort last either way.
    #[param(value_type = Option<TaskSortSchema>, inline)]
    sort: Option<String>,
    /// A project id: that project's tasks (an id that is not one of the caller's projects
    /// matches nothing); `none`: tasks in no project.
    #[param(value_type = Option<String>, example = "none")]
    project_id: Option<String>,
    /// Only tasks carrying this label, exactly (case-sensitive, not trimmed); repeat the
    /// parameter for several: tasks carrying every one of them.
    #[param(value_type = Option<Vec<String>>, explode = true, style = Form)]
    label: Option<Vec<String>>,
}

fn task_response(status: StatusCode, task: TaskRow) -> Response {
    let location = (status == StatusCode::CREATED).then(|| format!("/tasks/{}", task.id));
    let mut body = JsonBody::with_capacity(TASK_JSON_BYTES);
    write_task(&mut body, &task);
    resource::tagged(status, body, task.id, task.version, location)
}

/// Create a task.
///
/// Only `title` is required: `status` defaults to `todo`, `priority` to `medium`, and
/// `description` and `due_at` to null. The answer carries the new task's `ETag` and its
/// `Location`.
#[utoipa::path(
    post, path = "/tasks", tag = "tasks",
    security(("bearer" = [])),
    params(IdempotencyKeyParam),
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first response to this `Idempotency-Key`, replayed)", body = TaskResponse,
         headers(("Location" = String, description = "/tasks/{id}"), ("ETag" = String, description = "Strong tag of this version"),
                 ("Idempotent-Replayed" = String, description = "`true` when this is the replay of an earlier create with the same key and body"))),
        JsonBodyErrors,
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "A request with this `Idempotency-Key` is still in progress", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid fields, or an `Idempotency-Key` already used with a different body", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn create_task(
    State(state): State<AppState>,
    user: CurrentUser,
    key: IdempotencyHeader,
    KeyedJson { body, digest }: KeyedJson<CreateTaskRequest>,
) -> Result<Response, ApiError> {
    let task = TaskInput::from(body).into_new_task()?;
    let client = state.database().await?;
    let caller = user.caller();
    let created = |task: TaskRow| task_response(StatusCode::CREATED, task);
    let Some(keyed) = key.keyed(digest) else {
        let task = store::as_writer(&client, &caller, async |tx| {
            store::tasks::insert(tx, user.id, &task).await
        })
        .await?;
        return Ok(created(task));
    };
    let outcome = store::as_writer(&client, &caller, async |tx| {
        store::tasks::insert_once(tx, user.id, &task, &keyed).await
    })
    .await?;
    idempotency::respond(outcome, created)
}

/// List the caller's tasks: filtered, sorted, paged.
///
/// Only the caller's own tasks. The filters combine (all must hold); `status` and
/// `priority` can repeat (any of the values given). The order is `sort` (newest first by
/// default) with ties broken by id; `total` counts every match over all pages. Page with
/// `offset`, or, exactly even while tasks change, with `cursor` (each page's
/// `next_cursor`).
#[utoipa::path(
    get, path = "/tasks", tag = "tasks",
    security(("bearer" = [])),
    params(ListTasksQuery),
    responses(
        (status = 200, description = "One page of the caller's tasks", body = TaskListResponse),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid, unknown or repeated query parameter; or a `cursor` not given out to the caller for this `sort` and these filters, or sent with `offset`", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let cursors = ListCursors::new(&state.cursors, user.id);
    let query = TaskQuery::parse(raw.as_deref().unwrap_or_default(), cursors)?;
    let client = state.database().await?;
    let caller = user.caller();
    let page = store::as_caller(&client, &caller, async |tx| {
        store::tasks::list(tx, user.id, &query).await
    })
    .await?;
    let next_cursor = match page.tasks.last() {
        Some(last) if page.more => {
            let position = Position {
                key: last.sort_key(query.sort.field),
                id: last.id,
            };
            Some(cursors.after(&query, &position))
        }
        _ => None,
    };
    let body = write_task_list(
        &page.tasks,
        page.total,
        query.limit,
        query.offset,
        next_cursor.as_deref(),
    );
    Ok(body.into_response())
}

/// One of the caller's tasks.
///
/// Another account's task is a 404, like one that does not exist. The `ETag` names this
/// version of the task, for `If-Match` on a later change.
#[utoipa::path(
    get, path = "/tasks/{id}", tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client has (weak comparison; `*`: any): when one is current, 304 without a body"),
    ),
    responses(
        (status = 200, description = "The task", body = TaskResponse,
         headers(("ETag" = String, description = "Strong tag of this version"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current version",
         headers(("ETag" = String, description = "Strong tag of the current version"))),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such task, or not the caller's, or not a UUID", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn get_task(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = state.database().await?;
    let caller = user.caller();
    let task = store::as_caller(&client, &caller, async |tx| {
        store::tasks::get(tx, user.id, id).await
    })
    .await?;
    if let Some(not_modified) = resource::not_modified(&headers, task.id, task.version) {
        return Ok(not_modified);
    }
    Ok(task_response(StatusCode::OK, task))
}

/// Change some fields of a task.
///
/// Only the fields sent change; `null` clears `description` or `due_at`; `{}` changes
/// nothing. With `If-Match`, nothing changes unless the task still has one of the ETags
/// named (412). The answer carries the task's new `ETag`.
#[utoipa::path(
    patch, path = "/tasks/{id}", tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag the task must still have (`*`: any)"),
    ),
    request_body = UpdateTaskRequest,
    responses(
        (status = 200, description = "The changed task", body = TaskResponse,
         headers(("ETag" = String, description = "Strong tag of the new version"))),
        JsonBodyErrors,
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such task, or not the caller's", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match is stale: nothing changed", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn update_task(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateTaskRequest>,
) -> Result<Response, ApiError> {
    let changes = TaskInput::from(body).into_changes()?;
    let precondition = resource::precondition(&headers, id);
    let client = state.database().await?;
    let caller = user.caller();
    let task = if changes.is_empty() {
        // `{}` changes nothing, so the version (and ETag) stays; the precondition still holds.
        let task = store::as_caller(&client, &caller, async |tx| {
            store::tasks::get(tx, user.id, id).await
        })
        .await?;
        if !precondition.allows(task.version) {
            return Err(StoreError::PreconditionFailed.into());
        }
        task
    } else {
        store::as_writer(&client, &caller, async |tx| {
            store::tasks::update(tx, user.id, id, &changes, &precondition).await
        })
        .await?
    };
    Ok(task_response(StatusCode::OK, task))
}

/// Replace a task entirely.
///
/// Every field is set, as at creation: omitted optional fields take their defaults. With
/// `If-Match`, nothing changes unless the task still has one of the ETags named (412). The
/// answer carries the task's new `ETag`.
#[utoipa::path(
    put, path = "/tasks/{id}", tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag the task must still have (`*`: any)"),
    ),
    request_body = CreateTaskRequest,
    responses(
        (status = 200, description = "The replaced task", body = TaskResponse,
         headers(("ETag" = String, description = "Strong tag of the new version"))),
        JsonBodyErrors,
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such task, or not the caller's", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match is stale: nothing changed", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid fields", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn replace_task(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateTaskRequest>,
) -> Result<Response, ApiError> {
    let changes = TaskInput::from(body).into_new_task()?.into();
    let precondition = resource::precondition(&headers, id);
    let client = state.database().await?;
    let caller = user.caller();
    let task = store::as_writer(&client, &caller, async |tx| {
        store::tasks::update(tx, user.id, id, &changes, &precondition).await
    })
    .await?;
    Ok(task_response(StatusCode::OK, task))
}

/// Delete a task.
///
/// With `If-Match`, nothing is deleted unless the task still has one of the ETags named
/// (412).
#[utoipa::path(
    delete, path = "/tasks/{id}", tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "ETag the task must still have (`*`: any)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such task, or not the caller's", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match is stale: nothing deleted", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn delete_task(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let precondition = resource::precondition(&headers, id);
    let client = state.database().await?;
    let caller = user.caller();
    store::as_writer(&client, &caller, async |tx| {
        store::tasks::delete(tx, user.id, id, &precondition).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn tasks() -> Vec<TaskRow> {
        let plain = TaskRow {
            id: Uuid::new_v4(),
            title: "Write the report".to_owned(),
            description: None,
            status: TaskStatus::Todo,
            priority: Priority::Medium,
            due_at: None,
            completed_at: None,
            version: 1,
            created_at: datetime!(2026-12-01 17:00:00 UTC),
            updated_at: datetime!(2026-12-01 17:00:00.000001 UTC),
            project_id: None,
            labels: Vec::new(),
        };
        let tricky = TaskRow {
            id: Uuid::new_v4(),
            title: "\"quoted\" \\ back\nslash \u{1} é 🦀 \u{2028}".to_owned(),
            description: Some("line\r\nbreak\ttab".to_owned()),
            status: TaskStatus::InProgress,
            priority: Priority::Urgent,
            due_at: Some(datetime!(9999-12-31 23:59:59.999999 UTC)),
            completed_at: Some(datetime!(0000-01-01 00:00:00 UTC)),
            version: 7,
            created_at: datetime!(1999-12-31 23:59:59 +02:00),
            updated_at: datetime!(2026-02-28 23:30:00 -01:00),
            project_id: Some(Uuid::new_v4()),
            labels: vec!["work".to_owned(), "\"x\"".to_owned()],
        };
        let done = TaskRow {
            status: TaskStatus::Done,
            priority: Priority::Low,
            ..plain.clone()
        };
        vec![plain, tricky, done]
    }

    #[test]
    fn a_task_is_written_exactly_as_serde_writes_its_response() {
        for task in tasks() {
            let mut body = JsonBody::with_capacity(0);
            write_task(&mut body, &task);
            let expected = serde_json::to_string(&TaskResponse::from(task)).unwrap();
            assert_eq!(String::from_utf8(body.into_bytes()).unwrap(), expected);
        }
    }

    #[test]
    fn a_list_page_is_written_exactly_as_serde_writes_it() {
        for (tasks, cursor) in [(tasks(), Some("abc-_123")), (Vec::new(), None)] {
            let written = write_task_list(&tasks, 42, 20, 3, cursor).into_bytes();
            let expected = serde_json::to_string(&TaskListResponse {
                items: tasks.into_iter().map(TaskResponse::from).collect(),
                total: 42,
                limit: 20,
                offset: 3,
                next_cursor: cursor.map(str::to_owned),
            })
            .unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), expected);
        }
    }
}
