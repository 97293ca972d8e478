//! The `tasks` table. Every statement names `owner_id` in its `WHERE` (or inserts it),
//! and `If-Match` is checked inside the very UPDATE or DELETE that writes, so of many
//! concurrent writers holding one version exactly one wins.

use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::idempotency::{self, KeyedCreate, Once, Route};
use super::{CallerTransaction, StoreError, exists_after_write, missing_or_stale};
use crate::db::DbError;
use crate::domain::etag::Precondition;
use crate::domain::listing::{Position, ProjectFilter, Sort, SortField, SortKey, TaskQuery};
use crate::domain::task::{NewTask, Priority, TaskChanges, TaskStatus};

/// The owner's foreign key (migration V1): violated when the caller was just deleted.
const OWNER_FKEY: &str = "tasks_owner_id_fkey";
/// The project's composite foreign key (migration V4): violated when `project_id` is not one
/// of the owner's projects, unknown or another user's alike.
const PROJECT_FKEY: &str = "tasks_project_fkey";

macro_rules! columns {
    () => {
        "id, title, description, status::text, priority::text, due_at, completed_at, version, \
         created_at, updated_at, project_id, labels"
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
         AND ($6::text IS NULL OR search @@ plainto_tsquery('simple', $6)) \
         AND ($7::uuid IS NULL OR project_id = $7) \
         AND (NOT $8::boolean OR project_id IS NULL) \
         AND ($9::text[] IS NULL OR labels @> $9::text[])"
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
            " LIMIT $10 OFFSET $11"
        )
    };
}

const COUNT: &str = concat!("SELECT count(*) FROM tasks WHERE ", filters!());
// Without filters, the trigger-kept count (migration V3): one row, whatever the account's size.
const COUNT_ALL: &str = "SELECT task_count::int8 FROM users WHERE id = $1";
// Filtered by one project or one label alone, that project's or label's trigger-kept count
// (migration V4); no row (not the caller's project, or no task has the label) is 0.
const COUNT_PROJECT: &str = "SELECT coalesce((SELECT task_count::int8 FROM projects \
     WHERE owner_id = $1 AND id = $2), 0)";
const COUNT_LABEL: &str = "SELECT coalesce((SELECT task_count::int8 FROM label_counts \
     WHERE owner_id = $1 AND label = $2), 0)";

// The common shapes, in the order an index gives (created_at, either way), have statements of
// their own: no filter, one project, one label. The general statement's `($n IS NULL OR …)`
// filters make PostgreSQL's generic plan (which it switches to after five executions when it
// estimates it no dearer) a bitmap scan of all the owner's tasks and a sort, so a page cost
// grew with the account (7 ms at 10,000 tasks, against 0.05 ms for the index scan these get,
// generic plan or not). Measured in docs/PERFORMANCE.md.
macro_rules! shaped_list {
    ($filter:literal, $order:literal, $page:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM tasks WHERE owner_id = $1",
            $filter,
            " ORDER BY ",
            $order,
            $page
        )
    };
}

const LIST_OWNER_NEWEST: &str = shaped_list!("", "created_at DESC, id DESC", " LIMIT $2 OFFSET $3");
const LIST_OWNER_OLDEST: &str = shaped_list!("", "created_at ASC, id ASC", " LIMIT $2 OFFSET $3");
const LIST_PROJECT_NEWEST: &str = shaped_list!(
    " AND project_id = $2",
    "created_at DESC, id DESC",
    " LIMIT $3 OFFSET $4"
);
const LIST_PROJECT_OLDEST: &str = shaped_list!(
    " AND project_id = $2",
    "created_at ASC, id ASC",
    " LIMIT $3 OFFSET $4"
);
const LIST_LABEL_NEWEST: &str = shaped_list!(
    " AND labels @> ARRAY[$2::text]",
    "created_at DESC, id DESC",
    " LIMIT $3 OFFSET $4"
);
const LIST_LABEL_OLDEST: &str = shaped_list!(
    " AND labels @> ARRAY[$2::text]",
    "created_at ASC, id ASC",
    " LIMIT $3 OFFSET $4"
);

// The same shapes after a cursor's position `($k, $i)`: a row comparison on the columns of
// `tasks_owner_created_idx` / `tasks_owner_project_created_idx`, which PostgreSQL uses as an
// index condition, so a page starts where the position is (an index range scan, generic plan
// or not) instead of counting past the earlier tasks as `OFFSET` does.
const LIST_OWNER_NEWEST_AFTER: &str = shaped_list!(
    " AND (created_at, id) < ($2, $3)",
    "created_at DESC, id DESC",
    " LIMIT $4"
);
const LIST_OWNER_OLDEST_AFTER: &str = shaped_list!(
    " AND (created_at, id) > ($2, $3)",
    "created_at ASC, id ASC",
    " LIMIT $4"
);
const LIST_PROJECT_NEWEST_AFTER: &str = shaped_list!(
    " AND project_id = $2 AND (created_at, id) < ($3, $4)",
    "created_at DESC, id DESC",
    " LIMIT $5"
);
const LIST_PROJECT_OLDEST_AFTER: &str = shaped_list!(
    " AND project_id = $2 AND (created_at, id) > ($3, $4)",
    "created_at ASC, id ASC",
    " LIMIT $5"
);
const LIST_LABEL_NEWEST_AFTER: &str = shaped_list!(
    " AND labels @> ARRAY[$2::text] AND (created_at, id) < ($3, $4)",
    "created_at DESC, id DESC",
    " LIMIT $5"
);
const LIST_LABEL_OLDEST_AFTER: &str = shaped_list!(
    " AND labels @> ARRAY[$2::text] AND (created_at, id) > ($3, $4)",
    "created_at ASC, id ASC",
    " LIMIT $5"
);

/// The statements of one list shape in creation order: by offset or after a position,
/// newest or oldest first.
struct CreationOrder {
    newest: &'static str,
    oldest: &'static str,
    newest_after: &'static str,
    oldest_after: &'static str,
}

impl CreationOrder {
    fn statement(&self, query: &TaskQuery) -> &'static str {
        match (query.after.is_some(), query.sort.descending) {
            (false, true) => self.newest,
            (false, false) => self.oldest,
            (true, true) => self.newest_after,
            (true, false) => self.oldest_after,
        }
    }
}

const OWNER_SHAPE: CreationOrder = CreationOrder {
    newest: LIST_OWNER_NEWEST,
    oldest: LIST_OWNER_OLDEST,
    newest_after: LIST_OWNER_NEWEST_AFTER,
    oldest_after: LIST_OWNER_OLDEST_AFTER,
};
const PROJECT_SHAPE: CreationOrder = CreationOrder {
    newest: LIST_PROJECT_NEWEST,
    oldest: LIST_PROJECT_OLDEST,
    newest_after: LIST_PROJECT_NEWEST_AFTER,
    oldest_after: LIST_PROJECT_OLDEST_AFTER,
};
const LABEL_SHAPE: CreationOrder = CreationOrder {
    newest: LIST_LABEL_NEWEST,
    oldest: LIST_LABEL_OLDEST,
    newest_after: LIST_LABEL_NEWEST_AFTER,
    oldest_after: LIST_LABEL_OLDEST_AFTER,
};

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

// The general statements after a cursor's position: every filter, then "strictly after
// ($10 = the last task's key, $11 = its id)" in the statement's own order, written as the
// order is (same columns, same collation, same direction, ties by id), so the next page is
// exactly the rest of the list. Row comparisons compare element by element, by each
// element's type and collation: the enum's rank for priority, code points for `COLLATE "C"`.
macro_rules! list_after {
    ($after:literal, $order:literal, $limit:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM tasks WHERE ",
            filters!(),
            " AND (",
            $after,
            ") ORDER BY ",
            $order,
            " LIMIT ",
            $limit
        )
    };
}

const LIST_CREATED_ASC_AFTER: &str = list_after!(
    "(created_at, id) > ($10, $11)",
    "created_at ASC, id ASC",
    "$12"
);
const LIST_CREATED_DESC_AFTER: &str = list_after!(
    "(created_at, id) < ($10, $11)",
    "created_at DESC, id DESC",
    "$12"
);
const LIST_UPDATED_ASC_AFTER: &str = list_after!(
    "(updated_at, id) > ($10, $11)",
    "updated_at ASC, id ASC",
    "$12"
);
const LIST_UPDATED_DESC_AFTER: &str = list_after!(
    "(updated_at, id) < ($10, $11)",
    "updated_at DESC, id DESC",
    "$12"
);
// Undated tasks come last in both directions. After a dated task: the later (or, descending,
// earlier) dated ones, then every undated one; after an undated task, only undated ones
// remain, ordered by id alone (`$10` is then the id).
const LIST_DUE_ASC_AFTER_DATED: &str = list_after!(
    "(due_at, id) > ($10, $11) OR due_at IS NULL",
    "due_at ASC NULLS LAST, id ASC",
    "$12"
);
const LIST_DUE_ASC_AFTER_UNDATED: &str = list_after!(
    "due_at IS NULL AND id > $10",
    "due_at ASC NULLS LAST, id ASC",
    "$11"
);
const LIST_DUE_DESC_AFTER_DATED: &str = list_after!(
    "(due_at, id) < ($10, $11) OR due_at IS NULL",
    "due_at DESC NULLS LAST, id DESC",
    "$12"
);
const LIST_DUE_DESC_AFTER_UNDATED: &str = list_after!(
    "due_at IS NULL AND id < $10",
    "due_at DESC NULLS LAST, id DESC",
    "$11"
);
// The key travels as text, like the filters' enums, and is cast to the enum for its rank.
const LIST_PRIORITY_ASC_AFTER: &str = list_after!(
    "(tasks.priority, id) > ($10::text::task_priority, $11)",
    "tasks.priority ASC, id ASC",
    "$12"
);
const LIST_PRIORITY_DESC_AFTER: &str = list_after!(
    "(tasks.priority, id) < ($10::text::task_priority, $11)",
    "tasks.priority DESC, id DESC",
    "$12"
);
const LIST_TITLE_ASC_AFTER: &str = list_after!(
    "(title COLLATE \"C\", id) > ($10::text, $11)",
    "title COLLATE \"C\" ASC, id ASC",
    "$12"
);
const LIST_TITLE_DESC_AFTER: &str = list_after!(
    "(title COLLATE \"C\", id) < ($10::text, $11)",
    "title COLLATE \"C\" DESC, id DESC",
    "$12"
);

/// The general statement for `query`: by offset in its sort order, or after its position.
fn general_statement(query: &TaskQuery) -> &'static str {
    let Some(after) = &query.after else {
        return list_statement(query.sort);
    };
    match (&after.key, query.sort.descending) {
        (SortKey::CreatedAt(_), false) => LIST_CREATED_ASC_AFTER,
        (SortKey::CreatedAt(_), true) => LIST_CREATED_DESC_AFTER,
        (SortKey::UpdatedAt(_), false) => LIST_UPDATED_ASC_AFTER,
        (SortKey::UpdatedAt(_), true) => LIST_UPDATED_DESC_AFTER,
        (SortKey::DueAt(Some(_)), false) => LIST_DUE_ASC_AFTER_DATED,
        (SortKey::DueAt(None), false) => LIST_DUE_ASC_AFTER_UNDATED,
        (SortKey::DueAt(Some(_)), true) => LIST_DUE_DESC_AFTER_DATED,
        (SortKey::DueAt(None), true) => LIST_DUE_DESC_AFTER_UNDATED,
        (SortKey::Priority(_), false) => LIST_PRIORITY_ASC_AFTER,
        (SortKey::Priority(_), true) => LIST_PRIORITY_DESC_AFTER,
        (SortKey::Title(_), false) => LIST_TITLE_ASC_AFTER,
        (SortKey::Title(_), true) => LIST_TITLE_DESC_AFTER,
    }
}

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
    "INSERT INTO tasks (owner_id, title, description, status, priority, due_at, completed_at, \
                        project_id, labels) \
     VALUES ($1, $2, $3, $4::text::task_status, $5::text::task_priority, $6, \
             CASE WHEN $4::text = 'done' THEN now() END, $7, $8) \
     RETURNING ",
    columns!()
);

// The create of a keyed request (`store::idempotency`): only when this request holds the
// key's claim, and it stores the created row in the key's `response`.
const INSERT_CLAIMED: &str = super::idempotency::insert_claimed!(
    "INSERT INTO tasks (owner_id, title, description, status, priority, due_at, \
                        completed_at, project_id, labels) \
     SELECT $1::uuid, $2::text, $3::text, $4::text::task_status, $5::text::task_priority, \
            $6::timestamptz, CASE WHEN $4::text = 'done' THEN now() END, $7::uuid, $8::text[]",
    "tasks",
    "$9",
    "$10",
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
         project_id = CASE WHEN $11::boolean THEN $12::uuid ELSE project_id END, \
         labels = COALESCE($13::text[], labels), \
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
        COUNT_PROJECT,
        COUNT_LABEL,
        LIST_OWNER_NEWEST,
        LIST_OWNER_OLDEST,
        LIST_PROJECT_NEWEST,
        LIST_PROJECT_OLDEST,
        LIST_LABEL_NEWEST,
        LIST_LABEL_OLDEST,
        LIST_OWNER_NEWEST_AFTER,
        LIST_OWNER_OLDEST_AFTER,
        LIST_PROJECT_NEWEST_AFTER,
        LIST_PROJECT_OLDEST_AFTER,
        LIST_LABEL_NEWEST_AFTER,
        LIST_LABEL_OLDEST_AFTER,
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
        LIST_CREATED_ASC_AFTER,
        LIST_CREATED_DESC_AFTER,
        LIST_UPDATED_ASC_AFTER,
        LIST_UPDATED_DESC_AFTER,
        LIST_DUE_ASC_AFTER_DATED,
        LIST_DUE_ASC_AFTER_UNDATED,
        LIST_DUE_DESC_AFTER_DATED,
        LIST_DUE_DESC_AFTER_UNDATED,
        LIST_PRIORITY_ASC_AFTER,
        LIST_PRIORITY_DESC_AFTER,
        LIST_TITLE_ASC_AFTER,
        LIST_TITLE_DESC_AFTER,
        INSERT,
        INSERT_CLAIMED,
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
    pub project_id: Option<Uuid>,
    pub labels: Vec<String>,
}

impl TaskRow {
    /// This task's value of `field`: where a list sorted by it stands after this task.
    pub fn sort_key(&self, field: SortField) -> SortKey {
        match field {
            SortField::CreatedAt => SortKey::CreatedAt(self.created_at),
            SortField::UpdatedAt => SortKey::UpdatedAt(self.updated_at),
            SortField::DueAt => SortKey::DueAt(self.due_at),
            SortField::Priority => SortKey::Priority(self.priority),
            SortField::Title => SortKey::Title(self.title.clone()),
        }
    }

    /// The task in `row`'s columns from `at` on, in the order of `columns!()`.
    pub(super) fn read(row: &Row, at: usize) -> Result<Self, StoreError> {
        let status: &str = row.try_get(at + 3)?;
        let priority: &str = row.try_get(at + 4)?;
        let unexpected = |what: String| StoreError::Db(DbError::Unexpected(what));
        Ok(Self {
            id: row.try_get(at)?,
            title: row.try_get(at + 1)?,
            description: row.try_get(at + 2)?,
            status: TaskStatus::parse(status).map_err(unexpected)?,
            priority: Priority::parse(priority).map_err(unexpected)?,
            due_at: row.try_get(at + 5)?,
            completed_at: row.try_get(at + 6)?,
            version: row.try_get(at + 7)?,
            created_at: row.try_get(at + 8)?,
            updated_at: row.try_get(at + 9)?,
            project_id: row.try_get(at + 10)?,
            labels: row.try_get(at + 11)?,
        })
    }
}

impl TryFrom<Row> for TaskRow {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        Self::read(&row, 0)
    }
}

/// A foreign key refused the write: the caller's account is gone, or the project is not one
/// of the caller's.
fn foreign_key_or(error: StoreError) -> StoreError {
    match error {
        StoreError::Db(DbError::ForeignKeyViolation(constraint)) if constraint == OWNER_FKEY => {
            StoreError::AccountGone
        }
        StoreError::Db(DbError::ForeignKeyViolation(constraint)) if constraint == PROJECT_FKEY => {
            StoreError::UnknownProject
        }
        other => other,
    }
}

/// A new task's values, as `INSERT` and `INSERT_CLAIMED` take them (`$1` to `$8`).
struct NewTaskValues<'a> {
    owner: Uuid,
    task: &'a NewTask,
    title: &'a str,
    description: Option<&'a str>,
    status: &'static str,
    priority: &'static str,
    labels: Vec<&'a str>,
}

impl<'a> NewTaskValues<'a> {
    fn new(owner: Uuid, task: &'a NewTask) -> Self {
        Self {
            owner,
            task,
            title: task.title.as_str(),
            description: task.description.as_ref().map(|d| d.as_str()),
            status: task.status.as_str(),
            priority: task.priority.as_str(),
            labels: task.labels.to_vec(),
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.owner,
            &self.title,
            &self.description,
            &self.status,
            &self.priority,
            &self.task.due_at,
            &self.task.project_id,
            &self.labels,
        ]
    }
}

pub async fn insert(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    task: &NewTask,
) -> Result<TaskRow, StoreError> {
    let values = NewTaskValues::new(owner, task);
    tx.query_one(INSERT, &values.params())
        .await
        .map_err(foreign_key_or)?
        .try_into()
}

/// Creates the task once for its key: see `store::idempotency`.
pub async fn insert_once(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    task: &NewTask,
    keyed: &KeyedCreate,
) -> Result<Once<TaskRow>, StoreError> {
    let values = NewTaskValues::new(owner, task);
    let key = keyed.key.as_str();
    let mut params = values.params();
    params.extend([&key as &(dyn ToSql + Sync), &keyed.claim]);
    let create = async {
        tx.query_opt(INSERT_CLAIMED, &params)
            .await
            .map_err(foreign_key_or)
    };
    idempotency::create_once(tx, owner, Route::Tasks, keyed, create, TaskRow::read).await
}

pub async fn get(tx: &CallerTransaction<'_>, owner: Uuid, id: Uuid) -> Result<TaskRow, StoreError> {
    match tx.query_opt(GET, &[&id, &owner]).await? {
        Some(row) => row.try_into(),
        None => Err(StoreError::NotFound),
    }
}

/// One page of the owner's tasks.
#[derive(Debug)]
pub struct TaskPage {
    pub tasks: Vec<TaskRow>,
    /// How many tasks match, over all pages.
    pub total: i64,
    /// Whether more tasks follow the last one of `tasks`.
    pub more: bool,
}

/// One page of the owner's tasks and the number of all that match, in one round trip.
pub async fn list(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    query: &TaskQuery,
) -> Result<TaskPage, StoreError> {
    let statuses: Option<Vec<&str>> =
        (!query.statuses.is_empty()).then(|| query.statuses.iter().map(|s| s.as_str()).collect());
    let priorities: Option<Vec<&str>> = (!query.priorities.is_empty())
        .then(|| query.priorities.iter().map(|p| p.as_str()).collect());
    let project = match query.project {
        ProjectFilter::Is(id) => Some(id),
        ProjectFilter::Any | ProjectFilter::NoProject => None,
    };
    let no_project = query.project == ProjectFilter::NoProject;
    let labels = (!query.labels.is_empty()).then_some(&query.labels);
    let filters: [&(dyn ToSql + Sync); 9] = [
        &owner,
        &statuses,
        &priorities,
        &query.due_before,
        &query.due_after,
        &query.q,
        &project,
        &no_project,
        &labels,
    ];
    let only_project = query.only_project();
    let only_label = query.only_label();
    // One row more than the page: whether it comes back tells whether another page follows.
    let fetch = query.limit + 1;
    // A priority key travels as text (the keyset statements cast it to `task_priority`).
    let priority_key = match &query.after {
        Some(Position {
            key: SortKey::Priority(priority),
            ..
        }) => Some(priority.as_str()),
        _ => None,
    };
    // After the filters, every list statement takes where its page starts, then its size:
    // `OFFSET` last for offset pages; the last task's key (none for an undated task's due
    // date) and id first for cursor pages.
    let page: Vec<&(dyn ToSql + Sync)> = match &query.after {
        None => vec![&fetch, &query.offset],
        Some(after) => {
            let key: Option<&(dyn ToSql + Sync)> = match &after.key {
                SortKey::CreatedAt(instant)
                | SortKey::UpdatedAt(instant)
                | SortKey::DueAt(Some(instant)) => Some(instant),
                SortKey::DueAt(None) => None,
                SortKey::Priority(_) => priority_key.as_ref().map(|key| key as _),
                SortKey::Title(title) => Some(title),
            };
            key.into_iter()
                .chain([&after.id as _, &fetch as _])
                .collect()
        }
    };
    let (count_sql, count_params): (_, Vec<&(dyn ToSql + Sync)>) =
        match (&only_project, &only_label) {
            (Some(project), _) => (COUNT_PROJECT, vec![&owner, project]),
            (_, Some(label)) => (COUNT_LABEL, vec![&owner, label]),
            _ if query.has_filters() => (COUNT, filters.to_vec()),
            _ => (COUNT_ALL, vec![&owner]),
        };
    let (list_sql, mut list_params): (_, Vec<&(dyn ToSql + Sync)>) =
        match (&only_project, &only_label) {
            _ if query.sort.field != SortField::CreatedAt => {
                (general_statement(query), filters.to_vec())
            }
            (Some(project), _) => (PROJECT_SHAPE.statement(query), vec![&owner, project]),
            (_, Some(label)) => (LABEL_SHAPE.statement(query), vec![&owner, label]),
            _ if query.has_filters() => (general_statement(query), filters.to_vec()),
            _ => (OWNER_SHAPE.statement(query), vec![&owner]),
        };
    list_params.extend(page);
    let (rows, count) = tokio::join!(
        biased;
        tx.query(list_sql, &list_params),
        tx.query_one(count_sql, &count_params)
    );
    let mut tasks = rows?
        .into_iter()
        .map(TaskRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let more = tasks.len() > usize::try_from(query.limit).unwrap_or(usize::MAX);
    tasks.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    Ok(TaskPage {
        tasks,
        total: count?.try_get(0)?,
        more,
    })
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
    let project_set = changes.project_id.is_some();
    let project = changes.project_id.flatten();
    let labels = changes.labels.as_ref().map(|labels| labels.to_vec());
    let params: [&(dyn ToSql + Sync); 13] = [
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
        &project_set,
        &project,
        &labels,
    ];
    let key: [&(dyn ToSql + Sync); 2] = [&id, &owner];
    let (row, existing) = tokio::join!(
        biased;
        tx.query_opt(UPDATE, &params),
        exists_after_write(tx, EXISTS, precondition, &key)
    );
    match row.map_err(foreign_key_or)? {
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
        exists_after_write(tx, EXISTS, precondition, &params[..2])
    );
    match deleted? {
        1 => Ok(()),
        _ => Err(missing_or_stale(existing?)),
    }
}
