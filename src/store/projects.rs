//! The `projects` table. Every statement names `owner_id` in its `WHERE` (or inserts it), and
//! `If-Match` is checked inside the very UPDATE or DELETE that writes, as for tasks.
//! Deleting a project deletes its tasks in the same statement (the tasks' foreign key
//! cascades), hence in one transaction.

use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::idempotency::{self, KeyedCreate, Once, Route};
use super::{CallerTransaction, StoreError, exists_after_write, missing_or_stale};
use crate::db::DbError;
use crate::domain::etag::Precondition;
use crate::domain::project::ProjectName;

/// The unique index on `(owner_id, lower(name))` (migration V4): the 409.
const NAME_UNIQUE: &str = "projects_owner_name_key";
/// The owner's foreign key: violated when the caller was just deleted.
const OWNER_FKEY: &str = "projects_owner_id_fkey";

macro_rules! columns {
    () => {
        "id, name, version, created_at, updated_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO projects (owner_id, name) VALUES ($1, $2) RETURNING ",
    columns!()
);

// The create of a keyed request (`store::idempotency`), as for tasks.
const INSERT_CLAIMED: &str = super::idempotency::insert_claimed!(
    "INSERT INTO projects (owner_id, name) SELECT $1::uuid, $2::text",
    "projects",
    "$3",
    "$4",
    columns!()
);

const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM projects WHERE id = $1 AND owner_id = $2"
);

// Ordered by name in any case, in code-point order (the unique index's order); names are
// unique per owner in any case, so `id` only makes the order total on paper.
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM projects WHERE owner_id = $1 \
     ORDER BY lower(name) COLLATE \"C\", id LIMIT $2 OFFSET $3"
);

const COUNT: &str = "SELECT count(*) FROM projects WHERE owner_id = $1";

const RENAME: &str = concat!(
    "UPDATE projects SET name = $4, version = version + 1, updated_at = now() \
     WHERE id = $1 AND owner_id = $2 AND ($3::int4[] IS NULL OR version = ANY ($3::int4[])) \
     RETURNING ",
    columns!()
);

const DELETE: &str = "DELETE FROM projects \
     WHERE id = $1 AND owner_id = $2 AND ($3::int4[] IS NULL OR version = ANY ($3::int4[]))";

const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1 AND owner_id = $2)";

pub(super) const STATEMENTS: [&str; 8] = [
    INSERT,
    INSERT_CLAIMED,
    GET,
    LIST,
    COUNT,
    RENAME,
    DELETE,
    EXISTS,
];

/// A project as stored.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub id: Uuid,
    pub name: String,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl TryFrom<Row> for ProjectRow {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        Self::read(&row, 0)
    }
}

impl ProjectRow {
    /// The project in `row`'s columns from `at` on, in the order of `columns!()`.
    pub(super) fn read(row: &Row, at: usize) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get(at)?,
            name: row.try_get(at + 1)?,
            version: row.try_get(at + 2)?,
            created_at: row.try_get(at + 3)?,
            updated_at: row.try_get(at + 4)?,
        })
    }
}

fn name_taken_or(error: StoreError) -> StoreError {
    match error {
        StoreError::Db(DbError::UniqueViolation(constraint)) if constraint == NAME_UNIQUE => {
            StoreError::ProjectNameTaken
        }
        StoreError::Db(DbError::ForeignKeyViolation(constraint)) if constraint == OWNER_FKEY => {
            StoreError::AccountGone
        }
        other => other,
    }
}

pub async fn insert(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    name: &ProjectName,
) -> Result<ProjectRow, StoreError> {
    tx.query_one(INSERT, &[&owner, &name.as_str()])
        .await
        .map_err(name_taken_or)?
        .try_into()
}

/// Creates the project once for its key: see `store::idempotency`.
pub async fn insert_once(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    name: &ProjectName,
    keyed: &KeyedCreate,
) -> Result<Once<ProjectRow>, StoreError> {
    let params: [&(dyn ToSql + Sync); 4] =
        [&owner, &name.as_str(), &keyed.key.as_str(), &keyed.claim];
    let create = async {
        tx.query_opt(INSERT_CLAIMED, &params)
            .await
            .map_err(name_taken_or)
    };
    idempotency::create_once(tx, owner, Route::Projects, keyed, create, ProjectRow::read).await
}

pub async fn get(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    id: Uuid,
) -> Result<ProjectRow, StoreError> {
    match tx.query_opt(GET, &[&id, &owner]).await? {
        Some(row) => row.try_into(),
        None => Err(StoreError::NotFound),
    }
}

/// One page of the owner's projects and how many they have, in one round trip.
pub async fn list(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ProjectRow>, i64), StoreError> {
    let params: [&(dyn ToSql + Sync); 3] = [&owner, &limit, &offset];
    let (rows, count) = tokio::join!(
        biased;
        tx.query(LIST, &params),
        tx.query_one(COUNT, &params[..1])
    );
    let projects = rows?
        .into_iter()
        .map(ProjectRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((projects, count?.try_get(0)?))
}

/// Renames the project when the precondition holds (412 and 404 told apart as for tasks).
pub async fn rename(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    id: Uuid,
    name: &ProjectName,
    precondition: &Precondition,
) -> Result<ProjectRow, StoreError> {
    let versions = precondition.versions();
    let params: [&(dyn ToSql + Sync); 4] = [&id, &owner, &versions, &name.as_str()];
    let (row, existing) = tokio::join!(
        biased;
        tx.query_opt(RENAME, &params),
        exists_after_write(tx, EXISTS, precondition, &params[..2])
    );
    match row.map_err(name_taken_or)? {
        Some(row) => row.try_into(),
        None => Err(missing_or_stale(existing?)),
    }
}

/// Deletes the project and, by cascade in the same statement, all its tasks.
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
