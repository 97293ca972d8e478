//! The background purge of what is no longer needed: change-log rows that a later change of
//! the same object supersedes (or whose account is gone), tombstones older than
//! `CHANGES_RETENTION_DAYS`, and idempotency keys older than 24 hours. It runs with no
//! caller: `taskapi.purging` lets it see the change log's keys and the expired idempotency
//! keys of every account (the policies of migration V5). Tombstones and keys go in small batches, each its own short
//! transaction, so no request waits on it for long.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use crate::db::{Connection, DbError};

const BATCH: u64 = 1000;

/// The purge's statements, prepared with all others (`store::all_statements`).
pub const STATEMENTS: &[&str] = &[TOMBSTONES, SUPERSEDED, ORPHANED, IDEMPOTENCY_KEYS];

// No `FOR UPDATE SKIP LOCKED`: under row-level security a locking read needs an UPDATE
// policy, which the purge has no business having. A request rarely touches an expired row
// (a deleted object stays deleted; a key past 24 hours is claimed again only by a retry
// that late), and then one of the two waits for the other's short transaction.
// An expired tombstone goes with every earlier row of its object (nothing comes after it).
const TOMBSTONES: &str = "DELETE FROM changes WHERE (owner_id, kind, id) IN ( \
         SELECT owner_id, kind, id FROM changes WHERE deleted AND changed_at < $1 LIMIT 1000)";

// A log row is superseded by a later row of the same object. One pass over the log (an
// aggregate and a hash join, not a probe per row), not in batches: no request waits on these
// rows (requests only append, and touch a row again only within the transaction that appended
// it, which the minute of grace leaves alone). A second statement takes the rows of accounts
// that no longer exist.
const SUPERSEDED: &str = "DELETE FROM changes c USING ( \
         SELECT owner_id, kind, id, max(seq) AS latest FROM changes \
         GROUP BY owner_id, kind, id) m \
     WHERE c.owner_id = m.owner_id AND c.kind = m.kind AND c.id = m.id AND c.seq < m.latest \
       AND c.changed_at < now() - interval '1 minute'";

const ORPHANED: &str = "DELETE FROM changes c \
     WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.owner_id)";

const IDEMPOTENCY_KEYS: &str = "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY( \
         SELECT ctid FROM idempotency_keys WHERE claimed_at < now() - interval '24 hours' \
         LIMIT 1000))";

/// Deletes the tombstones older than `retention`, and an hour more: a transaction's `now()`
/// (a tombstone's `changed_at`) is when it began, not when it committed. How many went.
pub async fn tombstones(client: &Connection, retention: Duration) -> Result<u64, DbError> {
    let cutoff = OffsetDateTime::now_utc() - (retention + Duration::from_secs(3600));
    in_batches(client, TOMBSTONES, &[&cutoff]).await
}

/// Deletes the change-log rows later changes supersede, and those of deleted accounts.
pub async fn superseded_changes(client: &Connection) -> Result<u64, DbError> {
    let superseded = purging(client, SUPERSEDED, &[]).await?;
    Ok(superseded + purging(client, ORPHANED, &[]).await?)
}

/// Deletes the idempotency keys (and the responses they keep) older than 24 hours.
pub async fn idempotency_keys(client: &Connection) -> Result<u64, DbError> {
    in_batches(client, IDEMPOTENCY_KEYS, &[]).await
}

/// Runs a batch statement (`LIMIT 1000` inside) until a batch comes back short.
async fn in_batches(
    client: &Connection,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, DbError> {
    let mut purged = 0;
    loop {
        let deleted = purging(client, sql, params).await?;
        purged += deleted;
        if deleted < BATCH {
            return Ok(purged);
        }
    }
}

/// Runs one purge statement in its own transaction, with the purging flag set; how many rows
/// it deleted.
async fn purging(
    client: &Connection,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, DbError> {
    client
        .batch_execute("BEGIN; SELECT set_config('taskapi.purging', 'on', true)")
        .await?;
    let deleted = client.execute(sql, params).await;
    // After a failed DELETE this is a rollback.
    let ended = client.batch_execute("COMMIT").await;
    let deleted = deleted?;
    ended?;
    Ok(deleted)
}
