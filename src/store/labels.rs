//! Labels across the caller's tasks. They live on `tasks.labels`; `label_counts` (kept by a
//! trigger, migration V4) says how many tasks carry each. Renaming or deleting a label is a
//! write to exactly the tasks that carry it: each gets a new version and `updated_at`, in one
//! statement.

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{CallerTransaction, StoreError};
use crate::domain::label::Label;

const LIST: &str = "SELECT label, task_count::int8 FROM label_counts WHERE owner_id = $1 \
     ORDER BY label COLLATE \"C\"";

// A task that already carries the new name keeps it once, where it was: the old one is
// removed; otherwise the old one is replaced in place.
const RENAME: &str = "UPDATE tasks SET \
         labels = CASE WHEN $3::text = ANY (labels) THEN array_remove(labels, $2::text) \
                       ELSE array_replace(labels, $2::text, $3::text) END, \
         version = version + 1, \
         updated_at = now() \
     WHERE owner_id = $1 AND labels @> ARRAY[$2::text] AND $2::text <> $3::text";

const DELETE: &str = "UPDATE tasks SET \
         labels = array_remove(labels, $2::text), \
         version = version + 1, \
         updated_at = now() \
     WHERE owner_id = $1 AND labels @> ARRAY[$2::text]";

// After a rename in the same transaction: the trigger has already counted it.
const COUNT: &str = "SELECT coalesce((SELECT task_count::int8 FROM label_counts \
     WHERE owner_id = $1 AND label = $2), 0)";

pub(super) const STATEMENTS: [&str; 4] = [LIST, RENAME, DELETE, COUNT];

/// A label and how many of the caller's tasks carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCount {
    pub name: String,
    pub task_count: i64,
}

/// Every label on at least one of the owner's tasks, in code-point order.
pub async fn list(tx: &CallerTransaction<'_>, owner: Uuid) -> Result<Vec<LabelCount>, StoreError> {
    tx.query(LIST, &[&owner])
        .await?
        .into_iter()
        .map(|row| {
            Ok(LabelCount {
                name: row.try_get(0)?,
                task_count: row.try_get(1)?,
            })
        })
        .collect()
}

/// Renames `old` to `new` on every task of the owner's that carries it; how many carry
/// `new` afterwards. `NotFound` when no task carries `old`.
pub async fn rename(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    old: &str,
    new: &Label,
) -> Result<LabelCount, StoreError> {
    let new = new.as_str();
    let params: [&(dyn ToSql + Sync); 3] = [&owner, &old, &new];
    let count_params = [params[0], params[2]];
    let (renamed, count) = tokio::join!(
        biased;
        tx.execute(RENAME, &params),
        tx.query_one(COUNT, &count_params)
    );
    let (renamed, task_count): (u64, i64) = (renamed?, count?.try_get(0)?);
    // Renaming a label to itself changes nothing; it exists if any task carries it.
    let exists = if old == new {
        task_count > 0
    } else {
        renamed > 0
    };
    if !exists {
        return Err(StoreError::NotFound);
    }
    Ok(LabelCount {
        name: new.to_owned(),
        task_count,
    })
}

/// Removes `label` from every task of the owner's that carries it. `NotFound` when none does.
pub async fn delete(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    label: &str,
) -> Result<(), StoreError> {
    match tx.execute(DELETE, &[&owner, &label]).await? {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}
