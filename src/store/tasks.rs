//! The `tasks` table. Every statement names `owner_id` in its `WHERE` (or inserts it),
//! and `If-Match` is checked inside the very UPDATE or DELETE that writes, so of many
//! concurrent writers holding one version exactly one wins.

use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{CallerTransaction, StoreError};
use crate::db::DbError;
use crate::domain::etag::Precondition;
use crate::domain::listing::{Sort, SortField, TaskQuery};
use crate::domain::task::{NewTask, Priority, TaskChanges, TaskStatus};

/// The owner's foreign key (migration V1): violated when the caller was just deleted.
const OWNER_FKEY: &str = "tasks_owner_id_fkey";

macro_rules! columns {
    () => {
        "id, title, description, status::text, priority::text, due_at, completed_at, version, \
         created_at, updated_at"
    };
}

// `$2`/`$3` are NULL for "any"; the text arrays are cast to the enum types in SQL so the
// driver only ever sends text.
macro_rules! filters {
    () => {
        "owner_id = $1 \
         AND ($2::text[] IS NULL OR status = ANY ($2::text[]::task_status[])) \
         AND ($3::text[] IS NULL OR priority = ANY ($3::text[]::task_priority[])) \
         AND ($4::timestamptz IS NULL OR due_at < $4) \
         AND ($5::timestamptz IS NULL OR due_at > $5) \
         AND ($6::text IS NULL OR search @@ plainto_tsquery('simple', $6))"
    };
}

macro_rules! list {
    ($order:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM tasks WHERE ",
            filters!(),
            " ORDER BY ",
            $order,
            " LIMIT $7 OFFSET $8"
        )
    };
}

const COUNT: &str = concat!("SELECT count(*) FROM tasks WHERE ", filters!());
// Without filters, the trigger-kept count (migration V3): one row, whatever the account's size.
const COUNT_ALL: &str = "SELECT task_count::int8 FROM users WHERE id = $1";

// One statement per sort order, so each is prepared once and planned well. Ties are broken
// by id in the same direction; tasks without a due date come last both ways.
const LIST_CREATED_ASC: &str = list!("created_at ASC, id ASC");
const LIST_CREATED_DESC: &str = list!("created_at DESC, id DESC");
const LIST_UPDATED_ASC: &str = list!("updated_at ASC, id ASC");
const LIST_UPDATED_DESC: &str = list!("updated_at DESC, id DESC");
const LIST_DUE_ASC: &str = list!("due_at ASC NULLS LAST, id ASC");
const LIST_DUE_DESC: &str = list!("due_at DESC NULLS LAST, id DESC");
// Qualified: a bare `priority` would name the `priority::text` output column and sort
// alphabetically instead of by the enum's rank.
const LIST_PRIORITY_ASC: &str = list!("tasks.priority ASC, id ASC");
const LIST_PRIORITY_DESC: &str = list!("tasks.priority DESC, id DESC");
// Code-point order, whatever the database's collation.
const LIST_TITLE_ASC: &str = list!("title COLLATE \"C\" ASC, id ASC");
const LIST_TITLE_DESC: &str = list!("title COLLATE \"C\" DESC, id DESC");

fn list_statement(sort: Sort) -> &'static str {
    match (sort.field, sort.descending) {
        (SortField::CreatedAt, false) => LIST_CREATED_ASC,
        (SortField::CreatedAt, true) => LIST_CREATED_DESC,
        (SortField::UpdatedAt, false) => LIST_UPDATED_ASC,
        (SortField::UpdatedAt, true) => LIST_UPDATED_DESC,
        (SortField::DueAt, false) => LIST_DUE_ASC,
        (SortField::DueAt, true) => LIST_DUE_DESC,
        (SortField::Priority, false) => LIST_PRIORITY_ASC,
        (SortField::Priority, true) => LIST_PRIORITY_DESC,
        (SortField::Title, false) => LIST_TITLE_ASC,
        (SortField::Title, true) => LIST_TITLE_DESC,
    }
}

const INSERT: &str = concat!(
    "INSERT INTO tasks (owner_id, title, description, status, priority, due_at, completed_at) \
     VALUES ($1, $2, $3, $4::text::task_status, $5::text::task_priority, $6, \
             CASE WHEN $4::text = 'done' THEN now() END) \
     RETURNING ",
    columns!()
);

const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM tasks WHERE id = $1 AND owner_id = $2"
);

const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND owner_id = $2)";

// A field is changed when its parameter says so: `COALESCE` for the non-nullable ones
// (NULL = unchanged), an explicit flag for the nullable ones (NULL is a value there).
// `completed_at` follows the resulting status: kept while done, set on becoming done,
// cleared on leaving it.
const UPDATE: &str = concat!(
    "UPDATE tasks SET \
         title = COALESCE($4::text, title), \
         description = CASE WHEN $5::boolean THEN $6::text ELSE description END, \
         status = COALESCE($7::text::task_status, status), \
         priority = COALESCE($8::text::task_priority, priority), \
         due_at = CASE WHEN $9::boolean THEN $10::timestamptz ELSE due_at END, \
         completed_at = CASE WHEN COALESCE($7::text::task_status, status) = 'done' \
                             THEN COALESCE(completed_at, now()) END, \
         version = version + 1, \
         updated_at = now() \
     WHERE id = $1 AND owner_id = $2 AND ($3::int4[] IS NULL OR version = ANY ($3::int4[])) \
     RETURNING ",
    columns!()
);

const DELETE: &str = "DELETE FROM tasks \
     WHERE id = $1 AND owner_id = $2 AND ($3::int4[] IS NULL OR version = ANY ($3::int4[]))";

pub(super) fn statements() -> impl Iterator<Item = &'static str> {
    [
        COUNT,
        COUNT_ALL,
        LIST_CREATED_ASC,
        LIST_CREATED_DESC,
        LIST_UPDATED_ASC,
        LIST_UPDATED_DESC,
        LIST_DUE_ASC,
        LIST_DUE_DESC,
        LIST_PRIORITY_ASC,
        LIST_PRIORITY_DESC,
        LIST_TITLE_ASC,
        LIST_TITLE_DESC,
        INSERT,
        GET,
        EXISTS,
        UPDATE,
        DELETE,
    ]
    .into_iter()
}

/// A task as stored.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    pub due_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl TryFrom<Row> for TaskRow {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let status: &str = row.try_get(3)?;
        let priority: &str = row.try_get(4)?;
        let unexpected = |what: String| StoreError::Db(DbError::Unexpected(what));
        Ok(Self {
            id: row.try_get(0)?,
            title: row.try_get(1)?,
            description: row.try_get(2)?,
            status: TaskStatus::parse(status).map_err(unexpected)?,
            priority: Priority::parse(priority).map_err(unexpected)?,
            due_at: row.try_get(5)?,
            completed_at: row.try_get(6)?,
            version: row.try_get(7)?,
            created_at: row.try_get(8)?,
            updated_at: row.try_get(9)?,
        })
    }
}

fn owner_gone_or(error: StoreError) -> StoreError {
    match error {
        StoreError::Db(DbError::ForeignKeyViolation(constraint)) if constraint == OWNER_FKEY => {
            StoreError::AccountGone
        }
        other => other,
    }
}

pub async fn insert(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    task: &NewTask,
) -> Result<TaskRow, StoreError> {
    let row = tx
        .query_one(
            INSERT,
            &[
                &owner,
                &task.title.as_str(),
                &task.description.as_ref().map(|d| d.as_str()),
                &task.status.as_str(),
                &task.priority.as_str(),
                &task.due_at,
            ],
        )
        .await
        .map_err(owner_gone_or)?;
    row.try_into()
}

pub async fn get(tx: &CallerTransaction<'_>, owner: Uuid, id: Uuid) -> Result<TaskRow, StoreError> {
    match tx.query_opt(GET, &[&id, &owner]).await? {
        Some(row) => row.try_into(),
        None => Err(StoreError::NotFound),
    }
}

/// One page of the owner's tasks and the number of all that match, in one round trip.
pub async fn list(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    query: &TaskQuery,
) -> Result<(Vec<TaskRow>, i64), StoreError> {
    let statuses: Option<Vec<&str>> =
        (!query.statuses.is_empty()).then(|| query.statuses.iter().map(|s| s.as_str()).collect());
    let priorities: Option<Vec<&str>> = (!query.priorities.is_empty())
        .then(|| query.priorities.iter().map(|p| p.as_str()).collect());
    let filters: [&(dyn ToSql + Sync); 6] = [
        &owner,
        &statuses,
        &priorities,
        &query.due_before,
        &query.due_after,
        &query.q,
    ];
    let page: [&(dyn ToSql + Sync); 8] = [
        filters[0],
        filters[1],
        filters[2],
        filters[3],
        filters[4],
        filters[5],
        &query.limit,
        &query.offset,
    ];
    let (count_sql, count_params) = if query.has_filters() {
        (COUNT, &filters[..])
    } else {
        (COUNT_ALL, &filters[..1])
    };
    let (rows, count) = tokio::join!(
        biased;
        tx.query(list_statement(query.sort), &page),
        tx.query_one(count_sql, count_params)
    );
    let tasks = rows?
        .into_iter()
        .map(TaskRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((tasks, count?.try_get(0)?))
}

/// Applies `changes` when the precondition holds. When a version is required, the
/// owner-scoped existence check is pipelined after the UPDATE, in the same transaction, so
/// that when no row was written it tells a stale version (412) from a missing task (404)
/// without another round trip.
pub async fn update(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    id: Uuid,
    changes: &TaskChanges,
    precondition: &Precondition,
) -> Result<TaskRow, StoreError> {
    let description = changes.description.as_ref();
    let due_at = changes.due_at.as_ref();
    let versions = precondition.versions();
    let title = changes.title.as_ref().map(|t| t.as_str());
    let description_set = description.is_some();
    let description = description.and_then(|d| d.as_ref().map(|d| d.as_str()));
    let status = changes.status.map(TaskStatus::as_str);
    let priority = changes.priority.map(Priority::as_str);
    let due_at_set = due_at.is_some();
    let due_at = due_at.copied().flatten();
    let params: [&(dyn ToSql + Sync); 10] = [
        &id,
        &owner,
        &versions,
        &title,
        &description_set,
        &description,
        &status,
        &priority,
        &due_at_set,
        &due_at,
    ];
    let key: [&(dyn ToSql + Sync); 2] = [&id, &owner];
    let (row, existing) = tokio::join!(
        biased;
        tx.query_opt(UPDATE, &params),
        exists_after_write(tx, precondition, &key)
    );
    match row? {
        Some(row) => row.try_into(),
        None => Err(missing_or_stale(existing?)),
    }
}

/// Deletes the task when the precondition holds.
pub async fn delete(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    id: Uuid,
    precondition: &Precondition,
) -> Result<(), StoreError> {
    let versions = precondition.versions();
    let params: [&(dyn ToSql + Sync); 3] = [&id, &owner, &versions];
    let (deleted, existing) = tokio::join!(
        biased;
        tx.execute(DELETE, &params),
        exists_after_write(tx, precondition, &params[..2])
    );
    match deleted? {
        1 => Ok(()),
        _ => Err(missing_or_stale(existing?)),
    }
}

/// Whether the caller's task exists, checked in the same pipeline right after the write,
/// and only when a version was required: without one, a write that touched no row can
/// only mean the task is missing. `key` is (id, owner).
async fn exists_after_write(
    tx: &CallerTransaction<'_>,
    precondition: &Precondition,
    key: &[&(dyn ToSql + Sync)],
) -> Result<bool, StoreError> {
    if precondition.versions().is_none() {
        return Ok(false);
    }
    Ok(tx.query_one(EXISTS, key).await?.try_get(0)?)
}

/// After a write touched no row: the caller's task still exists only if its version
/// did not match (412); otherwise it is missing, or not the caller's (404).
fn missing_or_stale(still_exists: bool) -> StoreError {
    if still_exists {
        StoreError::PreconditionFailed
    } else {
        StoreError::NotFound
    }
}
