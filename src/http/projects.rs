//! `/projects`: the caller's projects, which group tasks. Handlers parse into domain types,
//! call the store (which scopes every statement to the caller) and shape the response.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::current_user::CurrentUser;
use super::error::{ApiError, PROBLEM_JSON, Problem};
use super::extract::{ApiJson, KeyedJson, PathId};
use super::idempotency::{self, IdempotencyHeader, IdempotencyKeyParam};
use super::resource;
use super::responses::{DatabaseUnavailable, JsonBodyErrors};
use crate::domain::listing::PageQuery;
use crate::domain::project::ProjectName;
use crate::domain::task::Field;
use crate::domain::timestamp;
use crate::state::AppState;
use crate::store::{self, StoreError, projects::ProjectRow};

/// A new project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// 1 to 100 characters after trimming (stored trimmed); unique among the caller's
    /// projects, compared case-insensitively.
    #[schema(value_type = String, min_length = 1, max_length = 100, example = "Home")]
    pub name: Field<String>,
}

/// A change to a project: only `name`; `{}` changes nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 100, example = "Home")]
    pub name: Field<String>,
}

/// A project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectResponse {
    pub id: Uuid,
    #[schema(example = "Home")]
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: timestamp::Utc,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: timestamp::Utc,
}

impl From<ProjectRow> for ProjectResponse {
    fn from(project: ProjectRow) -> Self {
        Self {
            id: project.id,
            name: project.name,
            created_at: timestamp::Utc(project.created_at),
            updated_at: timestamp::Utc(project.updated_at),
        }
    }
}

/// One page of projects, ordered by name (case-insensitively, ties by id).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectListResponse {
    pub items: Vec<ProjectResponse>,
    /// How many projects the caller has.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The query of `GET /projects`. Unknown parameters, and either given twice, are 422.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; it is parsed by domain::listing"
)]
pub struct ListProjectsQuery {
    /// Page size, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// Projects to skip, at least 0.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
}

fn project_response(status: StatusCode, project: ProjectRow) -> Response {
    let (id, version) = (project.id, project.version);
    let location = (status == StatusCode::CREATED).then(|| format!("/projects/{id}"));
    resource::tagged(
        status,
        axum::Json(ProjectResponse::from(project)),
        id,
        version,
        location,
    )
}

/// Create a project.
///
/// The name is trimmed; a name the caller already uses, in any case, is 409. The answer
/// carries the new project's `ETag` and its `Location`.
#[utoipa::path(
    post, path = "/projects", tag = "projects",
    security(("bearer" = [])),
    params(IdempotencyKeyParam),
    request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first response to this `Idempotency-Key`, replayed)", body = ProjectResponse,
         headers(("Location" = String, description = "/projects/{id}"), ("ETag" = String, description = "Strong tag of this version"),
                 ("Idempotent-Replayed" = String, description = "`true` when this is the replay of an earlier create with the same key and body"))),
        JsonBodyErrors,
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The caller already has a project of this name (in any case), or a request with this `Idempotency-Key` is still in progress", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid name, or an `Idempotency-Key` already used with a different body", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn create_project(
    State(state): State<AppState>,
    user: CurrentUser,
    key: IdempotencyHeader,
    KeyedJson { body, digest }: KeyedJson<CreateProjectRequest>,
) -> Result<Response, ApiError> {
    let name = body.name.required("name", |raw| ProjectName::parse(&raw))?;
    let client = state.database().await?;
    let created = |project: ProjectRow| project_response(StatusCode::CREATED, project);
    let Some(keyed) = key.keyed(digest) else {
        let project = store::as_writer(&client, &user.caller(), async |tx| {
            store::projects::insert(tx, user.id, &name).await
        })
        .await?;
        return Ok(created(project));
    };
    let outcome = store::as_writer(&client, &user.caller(), async |tx| {
        store::projects::insert_once(tx, user.id, &name, &keyed).await
    })
    .await?;
    idempotency::respond(outcome, created)
}

/// List the caller's projects.
///
/// Ordered by name, case-insensitively (ties by id), and paged with `limit` and `offset`.
#[utoipa::path(
    get, path = "/projects", tag = "projects",
    security(("bearer" = [])),
    params(ListProjectsQuery),
    responses(
        (status = 200, description = "One page of the caller's projects", body = ProjectListResponse),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid, unknown or repeated query parameter", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn list_projects(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let page = PageQuery::parse(raw.as_deref().unwrap_or_default())?;
    let client = state.database().await?;
    let (projects, total) = store::as_caller(&client, &user.caller(), async |tx| {
        store::projects::list(tx, user.id, page.limit, page.offset).await
    })
    .await?;
    let body = ProjectListResponse {
        items: projects.into_iter().map(ProjectResponse::from).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    };
    Ok(axum::Json(body).into_response())
}

/// One of the caller's projects.
///
/// Another user's project is 404, exactly like a missing one.
#[utoipa::path(
    get, path = "/projects/{id}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client has (weak comparison; `*`: any): when one is current, 304 without a body"),
    ),
    responses(
        (status = 200, description = "The project", body = ProjectResponse,
         headers(("ETag" = String, description = "Strong tag of this version"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current version",
         headers(("ETag" = String, description = "Strong tag of the current version"))),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such project, or not the caller's, or not a UUID", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn get_project(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = state.database().await?;
    let project = store::as_caller(&client, &user.caller(), async |tx| {
        store::projects::get(tx, user.id, id).await
    })
    .await?;
    if let Some(not_modified) = resource::not_modified(&headers, project.id, project.version) {
        return Ok(not_modified);
    }
    Ok(project_response(StatusCode::OK, project))
}

/// Rename a project.
///
/// `{}` changes nothing (the ETag stays). With `If-Match`, nothing changes unless the
/// project still has one of the ETags named (412).
#[utoipa::path(
    patch, path = "/projects/{id}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-Match" = Option<String>, Header, description = "ETag the project must still have (`*`: any)"),
    ),
    request_body = UpdateProjectRequest,
    responses(
        (status = 200, description = "The project", body = ProjectResponse,
         headers(("ETag" = String, description = "Strong tag of the current version"))),
        JsonBodyErrors,
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such project, or not the caller's", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The caller already has another project of this name (in any case)", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match is stale: nothing changed", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid name", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn update_project(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateProjectRequest>,
) -> Result<Response, ApiError> {
    let name = body.name.optional("name", |raw| ProjectName::parse(&raw))?;
    let precondition = resource::precondition(&headers, id);
    let client = state.database().await?;
    let caller = user.caller();
    let project = match name {
        Some(name) => {
            store::as_writer(&client, &caller, async |tx| {
                store::projects::rename(tx, user.id, id, &name, &precondition).await
            })
            .await?
        }
        None => {
            // `{}` changes nothing, so the version (and ETag) stays; the precondition holds.
            let project = store::as_caller(&client, &caller, async |tx| {
                store::projects::get(tx, user.id, id).await
            })
            .await?;
            if !precondition.allows(project.version) {
                return Err(StoreError::PreconditionFailed.into());
            }
            project
        }
    };
    Ok(project_response(StatusCode::OK, project))
}

/// Delete a project and all its tasks.
///
/// The project and every task in it are deleted in one transaction. With `If-Match`, nothing
/// is deleted unless the project still has one of the ETags named (412).
#[utoipa::path(
    delete, path = "/projects/{id}", tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Project id"),
        ("If-Match" = Option<String>, Header, description = "ETag the project must still have (`*`: any)"),
    ),
    responses(
        (status = 204, description = "Deleted, with its tasks"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such project, or not the caller's", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match is stale: nothing deleted", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn delete_project(
    State(state): State<AppState>,
    user: CurrentUser,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let precondition = resource::precondition(&headers, id);
    let client = state.database().await?;
    store::as_writer(&client, &user.caller(), async |tx| {
        store::projects::delete(tx, user.id, id, &precondition).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
