//! The readiness probe's query.

use crate::db::{DbError, Pool};

/// Whether the database answers a trivial query on a pooled connection. Any failure,
/// acquiring the connection included, means the database is not serving.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let client = pool.checkout().await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|error| DbError::Unavailable(crate::db::error::describe(&error)))?;
    Ok(())
}
