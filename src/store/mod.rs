//! All SQL lives here: plain async functions per table. Every task statement filters by
//! owner in its own `WHERE`, so a row that is not the caller's looks exactly like a
//! missing one. Statements are prepared once per connection and cached.

/// Counts one attempt in a fixed window (`login_failures`, `address_attempts`): the row of
/// `$key` gets one more in `$count` while its window of `$window` seconds lasts (a new window,
/// and a count of 1, once it has passed), unless `$limit` attempts are already counted in it:
/// then the row is left as it is and nothing is returned. The row lock taken by `ON CONFLICT
/// DO UPDATE` serialises concurrent attempts, so each sees the count the one before it left:
/// a limit of ten means ten at any concurrency, on any number of instances.
macro_rules! count_in_window {
    (into $table:literal ($key:literal, $count:literal) from $source:literal,
     limit $limit:literal, window $window:literal, returning $returning:literal) => {
        concat!(
            "INSERT INTO ", $table, " AS w (", $key, ", ", $count, ", window_started_at) ",
            $source,
            " ON CONFLICT (", $key, ") DO UPDATE SET ",
            $count, " = CASE WHEN w.window_started_at > now() - make_interval(secs => ", $window,
            ") THEN w.", $count, " + 1 ELSE 1 END, \
             window_started_at = CASE WHEN w.window_started_at > now() - make_interval(secs => ",
            $window, ") THEN w.window_started_at ELSE now() END \
             WHERE w.", $count, " < ", $limit,
            " OR w.window_started_at <= now() - make_interval(secs => ", $window, ") \
             RETURNING ", $returning
        )
    };
}

pub mod address_attempts;
pub mod changes;
pub mod health;
pub mod idempotency;
pub mod labels;
pub mod login_failures;
pub mod projects;
pub mod purge;
pub mod tasks;
pub mod users;

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::pipeline::{Gathering, Ran};
use crate::db::statements::Ready;
use crate::db::{Connection, DbError};

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The token is valid but its account has been deleted.
    #[error("the caller's account no longer exists")]
    AccountGone,
    /// The token was logged out, or superseded (logout-all, a password change).
    #[error("the caller's token has been revoked")]
    TokenRevoked,
    /// No such row among the caller's.
    #[error("not found")]
    NotFound,
    /// The row exists but its version is not one the caller named.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("email taken")]
    EmailTaken,
    /// A task's `project_id` is not one of the caller's projects.
    #[error("unknown project")]
    UnknownProject,
    /// A project name the caller already uses (in any case).
    #[error("project name taken")]
    ProjectNameTaken,
    /// A statement was refused before it was sent, because it would not have run inside
    /// the caller's transaction (a bug, caught here instead of run without an identity).
    #[error("statement refused: {0}")]
    Pipeline(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

/// Who makes a request, as their access token says.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: Uuid,
    pub token_version: i32,
    pub token_id: Uuid,
}

/// The statements of one `as_caller` transaction. Only `as_caller` makes one, and the
/// operation can reach the database only through it, so every statement it issues is
/// checked, before it is sent, to be (a) ready to send at once (prepared on the connection,
/// or its types known for unnamed sending), rather than after a `Parse` round trip, and
/// (b) issued before the pipelined `COMMIT`. A statement that fails either check is refused
/// with `StoreError::Pipeline` and never runs outside the transaction (where it would have
/// no RLS identity).
#[derive(Debug)]
pub struct CallerTransaction<'c> {
    client: &'c Connection,
    committing: AtomicBool,
    /// Where the statements go when the connection gathers them (`Connection::gathers`):
    /// sent with one `Sync` once all are issued. `None`: each is sent as it is issued.
    gathering: Option<Gathering>,
}

impl CallerTransaction<'_> {
    /// The statement for `sql`, without waiting: ready now, or refused.
    fn statement(&self, sql: &'static str) -> Result<Ready<'_>, StoreError> {
        if self.committing.load(Ordering::SeqCst) {
            return Err(StoreError::Pipeline(format!(
                "issued after COMMIT was sent (await only once, on statements issued \
                 together): {sql}"
            )));
        }
        self.client.ready_now(sql)?.ok_or_else(|| {
            StoreError::Pipeline(format!(
                "not prepared when the connection opened (add it to store::all_statements): \
                 {sql}"
            ))
        })
    }

    /// `sql` with `params` gathered into the pipeline, and what it did once the pipeline
    /// was answered; `None` when statements are sent one by one.
    async fn gathered(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Option<Result<Ran, StoreError>> {
        let gathering = self.gathering.as_ref()?;
        let statement = match self.statement(sql) {
            Ok(Ready::Named(statement)) => statement,
            Ok(Ready::Unnamed { .. }) => {
                return Some(Err(StoreError::Pipeline(format!(
                    "an unnamed statement cannot be gathered: {sql}"
                ))));
            }
            Err(error) => return Some(Err(error)),
        };
        Some(gathering.run(&statement, params).await.map_err(Into::into))
    }

    pub async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        if let Some(ran) = self.gathered(sql, params).await {
            return Ok(ran?.rows);
        }
        let statement = self.statement(sql)?;
        Ok(statement.query(self.client, params).await?)
    }

    pub async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        if let Some(ran) = self.gathered(sql, params).await {
            return Ok(ran?.into_opt()?);
        }
        let statement = self.statement(sql)?;
        Ok(statement.query_opt(self.client, params).await?)
    }

    pub async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        if let Some(ran) = self.gathered(sql, params).await {
            return Ok(ran?.into_one()?);
        }
        let statement = self.statement(sql)?;
        Ok(statement.query_one(self.client, params).await?)
    }

    pub async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        if let Some(ran) = self.gathered(sql, params).await {
            return Ok(ran?.rows_affected);
        }
        let statement = self.statement(sql)?;
        Ok(statement.execute(self.client, params).await?)
    }
}

/// Runs `operation` as `caller`, in one transaction and one round trip: the statement that
/// checks the token is still current and sets the row-level-security identity
/// (`taskapi.user_id`, transaction-local), then the operation's statements, all sent
/// together. A statement is issued when its future is first polled, and `join!(biased; …)`
/// polls them in this order; the last branch sends them, closed by one `Sync`, which makes
/// them one implicit transaction (`db::pipeline`). Where the connection does not gather
/// statements (`Connection::gathers`: unnamed statements, a transaction pooler), each goes
/// out as it is issued, between `BEGIN` and `COMMIT`, in the same single round trip.
///
/// If the token is no longer current the identity is never set, so under row-level
/// security the operation sees and changes nothing; the answer is `AccountGone` or
/// `TokenRevoked`. If a statement fails, PostgreSQL skips the rest (or turns the `COMMIT`
/// into a rollback) and nothing is committed. `join!` (not `try_join!`) drains every reply
/// before the connection goes back to the pool.
pub async fn as_caller<T>(
    client: &Connection,
    caller: &Caller,
    operation: impl AsyncFnOnce(&CallerTransaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    in_transaction(client, caller, false, operation).await
}

/// Like `as_caller`, for an operation that writes tasks or projects: the statement that
/// sets the identity also takes the account's change counter (migration V5), which locks
/// the account's row until the transaction ends. The change feed needs the counter (its order is
/// the commit order); taking it first also gives every writer of one account the same lock
/// order (account row, then the rows it writes), so two of them never deadlock.
pub async fn as_writer<T>(
    client: &Connection,
    caller: &Caller,
    operation: impl AsyncFnOnce(&CallerTransaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    in_transaction(client, caller, true, operation).await
}

async fn in_transaction<T>(
    client: &Connection,
    caller: &Caller,
    writes: bool,
    operation: impl AsyncFnOnce(&CallerTransaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let transaction = CallerTransaction {
        client,
        committing: AtomicBool::new(false),
        gathering: client.gathers().then(Gathering::default),
    };
    let (current, result) = match &transaction.gathering {
        Some(gathering) => {
            let send = async {
                transaction.committing.store(true, Ordering::SeqCst);
                gathering.send(client).await
            };
            let (session, result, sent) = tokio::join!(
                biased;
                users::open_session(&transaction, caller, writes),
                operation(&transaction),
                send,
            );
            let current = session?;
            sent?;
            (current, result)
        }
        None => {
            let commit = async {
                transaction.committing.store(true, Ordering::SeqCst);
                client.batch_execute("COMMIT").await
            };
            let (begin, session, result, commit) = tokio::join!(
                biased;
                client.batch_execute(client.begin()),
                users::open_session(&transaction, caller, writes),
                operation(&transaction),
                commit,
            );
            begin?;
            let current = session?;
            commit?;
            (current, result)
        }
    };
    if !current {
        return Err(users::why_not_current(client, caller).await);
    }
    result
}

/// Whether the caller's row still exists (`exists_sql`, with `key` = (id, owner)), checked
/// in the same pipeline right after a conditional write, and only when a version was
/// required: without one, a write that touched no row can only mean the row is missing.
pub(super) async fn exists_after_write(
    tx: &CallerTransaction<'_>,
    exists_sql: &'static str,
    precondition: &crate::domain::etag::Precondition,
    key: &[&(dyn ToSql + Sync)],
) -> Result<bool, StoreError> {
    if precondition.versions().is_none() {
        return Ok(false);
    }
    Ok(tx.query_one(exists_sql, key).await?.try_get(0)?)
}

/// After a write touched no row: the caller's row still exists only if its version did
/// not match (412); otherwise it is missing, or not the caller's (404).
pub(super) fn missing_or_stale(still_exists: bool) -> StoreError {
    if still_exists {
        StoreError::PreconditionFailed
    } else {
        StoreError::NotFound
    }
}

/// Every statement the application issues. Preparing them all at start-up makes a
/// statement that no longer matches the schema stop the boot, not fail a request.
pub fn all_statements() -> impl Iterator<Item = &'static str> {
    users::STATEMENTS
        .iter()
        .chain(login_failures::STATEMENTS.iter())
        .chain(address_attempts::STATEMENTS.iter())
        .chain(projects::STATEMENTS.iter())
        .chain(labels::STATEMENTS.iter())
        .chain(changes::STATEMENTS.iter())
        .chain(idempotency::STATEMENTS.iter())
        .chain(purge::STATEMENTS.iter())
        .copied()
        .chain(tasks::statements())
}
