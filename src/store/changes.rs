//! The change feed's SQL (migration V5). Triggers append every task and project change to
//! the `changes` log at the transaction's counter value (taken by the writing session
//! statement, `store::users`); this module reads the feed (`store::purge` removes
//! superseded rows and expired tombstones).

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::projects::ProjectRow;
use super::tasks::TaskRow;
use super::{CallerTransaction, StoreError};
use crate::db::DbError;
use crate::domain::changes::{ChangeKind, FeedPosition};

// One statement, so one snapshot: the log rows and the objects they point at agree, and
// every change at or before the last one returned has committed (the counter's lock makes
// the counter order the commit order). A log row is shown only while it is its object's
// latest change: the object's `change_seq` still names it, or it is a tombstone. `$5`: leave
// out tombstones (a walk from the beginning, which only needs what exists).
const FEED: &str = "SELECT c.kind, c.deleted, c.id, c.seq, \
         t.id, t.title, t.description, t.status::text, t.priority::text, t.due_at, \
         t.completed_at, t.version, t.created_at, t.updated_at, t.project_id, t.labels, \
         p.id, p.name, p.version, p.created_at, p.updated_at \
     FROM changes c \
     LEFT JOIN tasks t ON c.kind = 'task' AND NOT c.deleted \
         AND t.owner_id = c.owner_id AND t.id = c.id AND t.change_seq = c.seq \
     LEFT JOIN projects p ON c.kind = 'project' AND NOT c.deleted \
         AND p.owner_id = c.owner_id AND p.id = c.id AND p.change_seq = c.seq \
     WHERE c.owner_id = $1 AND (c.seq, c.kind, c.id) > ($2, $3, $4) \
         AND CASE WHEN c.deleted THEN NOT $5 ELSE t.id IS NOT NULL OR p.id IS NOT NULL END \
     ORDER BY c.seq, c.kind, c.id \
     LIMIT $6";

pub(super) const STATEMENTS: [&str; 1] = [FEED];

/// One entry of the feed.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub position: FeedPosition,
    pub change: Change,
}

#[derive(Debug, Clone)]
pub enum Change {
    Task(TaskRow),
    Project(ProjectRow),
    Deleted,
}

/// Up to `limit` of the owner's changes after `after`, in counter order.
pub async fn feed(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    after: &FeedPosition,
    limit: i64,
    without_deletions: bool,
) -> Result<Vec<ChangeRow>, StoreError> {
    let kind = after.kind_text();
    let params: [&(dyn ToSql + Sync); 6] = [
        &owner,
        &after.seq,
        &kind,
        &after.id,
        &without_deletions,
        &limit,
    ];
    tx.query(FEED, &params)
        .await?
        .iter()
        .map(|row| {
            let kind: &str = row.try_get(0)?;
            let kind = ChangeKind::parse(kind).ok_or_else(|| {
                StoreError::Db(DbError::Unexpected(format!("change of kind {kind:?}")))
            })?;
            let deleted: bool = row.try_get(1)?;
            let position = FeedPosition {
                seq: row.try_get(3)?,
                kind: Some(kind),
                id: row.try_get(2)?,
            };
            let change = match kind {
                _ if deleted => Change::Deleted,
                ChangeKind::Task => Change::Task(TaskRow::read(row, 4)?),
                ChangeKind::Project => Change::Project(ProjectRow::read(row, 16)?),
            };
            Ok(ChangeRow { position, change })
        })
        .collect()
}
