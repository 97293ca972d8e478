//! All SQL lives here: plain async functions per table. Every task statement filters by
//! owner in its own `WHERE`, so a row that is not the caller's looks exactly like a
//! missing one. Statements are prepared once per connection and cached.

pub mod tasks;
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

/// Runs `operation` for an authenticated caller, with the check that the caller's account
/// still exists sent in the same round trip (tokio-postgres pipelines statements issued
/// together on one connection). Both replies are drained before the connection is reused.
pub async fn as_caller<T>(
    client: &Client,
    caller: Uuid,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let (exists, result) = tokio::join!(users::exists(client, caller), operation);
    if !exists? {
        return Err(StoreError::CallerGone);
    }
    result
}

/// Every statement the application issues. Preparing them all at start-up makes a
/// statement that no longer matches the schema stop the boot, not fail a request.
pub fn all_statements() -> impl Iterator<Item = &'static str> {
    users::STATEMENTS.iter().copied().chain(tasks::statements())
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
