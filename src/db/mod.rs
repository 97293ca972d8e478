//! The database: connection pool, embedded migrations, error classification, and the
//! private PostgreSQL started when no `DATABASE_URL` is configured.

pub mod error;
pub mod private;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use error::DbError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a request waits for a connection (or for a new one to open) before the
/// database counts as unavailable: a quick 503, never a hang (API.md "Conventions").
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A pool of connections. Recycling is `Fast` (no ping on every return): a broken
/// connection is noticed by its next statement and replaced.
pub fn pool(mut config: tokio_postgres::Config, max_size: usize) -> Result<Pool, DbError> {
    config.connect_timeout(ACQUIRE_TIMEOUT);
    config.keepalives(true);
    config.application_name("taskapi");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(ACQUIRE_TIMEOUT))
        .create_timeout(Some(ACQUIRE_TIMEOUT))
        .recycle_timeout(Some(ACQUIRE_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Opens one connection outside the pool (migrations, database creation).
pub async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "database connection closed with an error");
        }
    });
    Ok(client)
}

/// Applies the embedded migrations. An advisory lock serialises instances that start
/// together against one database.
pub async fn migrate(config: &tokio_postgres::Config) -> Result<usize, MigrateError> {
    const MIGRATION_LOCK: i64 = 0x7461_736b_6170_6931; // "taskapi1"
    let mut client = connect(config).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from)?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await;
    // The lock goes with the session; unlock anyway so a long-lived caller is not blocked.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    Ok(report?.applied_migrations().len())
}

/// Creates database `name` unless it exists (private-server mode, where we own the cluster).
pub async fn ensure_database(
    maintenance: &tokio_postgres::Config,
    name: &str,
) -> Result<(), DbError> {
    let client = connect(maintenance).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = name.replace('"', "\"\"");
        client
            .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
            .await?;
    }
    Ok(())
}

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}
