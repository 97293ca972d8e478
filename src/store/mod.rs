//! All SQL lives here: plain async functions per table. Every task statement filters by
//! owner in its own `WHERE`, so a row that is not the caller's looks exactly like a
//! missing one. Statements are prepared once per connection and cached.

pub mod tasks;
pub mod throttle;
pub mod users;

use std::future::Future;

use deadpool_postgres::Client;
use uuid::Uuid;

use crate::db::DbError;

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The token is valid but its account has been deleted.
    #[error("the caller's account no longer exists")]
    CallerGone,
    /// No such row among the caller's.
    #[error("not found")]
    NotFound,
    /// The row exists but its version is not one the caller named.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("email taken")]
    EmailTaken,
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

/// Runs `operation` as `caller`, in one transaction and one round trip: `BEGIN`, the
/// statement that checks the token is still current and sets the row-level-security
/// identity (`taskapi.user_id`, transaction-local), the operation's statements, `COMMIT`,
/// all sent together (tokio-postgres pipelines statements issued together; every
/// statement is prepared when the connection opens, so nothing waits in between).
///
/// If the token is no longer current the identity is never set, so under row-level
/// security the operation sees and changes nothing; the answer is `CallerGone`. If a
/// statement fails, PostgreSQL turns the `COMMIT` into a rollback. `join!` (not
/// `try_join!`) drains every reply before the connection goes back to the pool.
pub async fn as_caller<T>(
    client: &Client,
    caller: &Caller,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let (begin, session, result, commit) = tokio::join!(
        client.batch_execute("BEGIN"),
        users::open_session(client, caller),
        operation,
        client.batch_execute("COMMIT"),
    );
    begin?;
    let current = session?;
    commit?;
    if !current {
        return Err(StoreError::CallerGone);
    }
    result
}

/// Every statement the application issues. Preparing them all at start-up makes a
/// statement that no longer matches the schema stop the boot, not fail a request.
pub fn all_statements() -> impl Iterator<Item = &'static str> {
    users::STATEMENTS
        .iter()
        .chain(throttle::STATEMENTS.iter())
        .copied()
        .chain(tasks::statements())
}

/// Prepares (and caches) every statement on `client`.
pub async fn prepare_all(client: &Client) -> Result<usize, DbError> {
    let mut count = 0;
    for sql in all_statements() {
        client.prepare_cached(sql).await?;
        count += 1;
    }
    Ok(count)
}
