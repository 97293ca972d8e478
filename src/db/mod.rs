//! The database: connection pool, embedded migrations, error classification, and the
//! private PostgreSQL started when no `DATABASE_URL` is configured.

pub mod checkout;
pub mod error;
pub mod private;

use std::time::Duration;

use deadpool_postgres::{HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use postgres_protocol::escape::escape_identifier;
use tokio_postgres::NoTls;

pub use checkout::{Connection, checkout};
pub use error::DbError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a request waits for a connection (or for a new one to open) before the
/// database counts as unavailable: a quick 503, never a hang (API.md "Conventions").
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The role that owns the schema and runs migrations.
pub const OWNER_ROLE: &str = "taskapi_owner";
/// The role the API connects as: owns nothing, no superuser, no BYPASSRLS.
pub const APP_ROLE: &str = "taskapi_app";

/// How long the server may spend on one request's statements before it gives up (and
/// rolls back): set on every pooled connection, so that the database always gives up
/// before HTTP does and a timeout's 503 never hides a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// `statement_timeout`: any one statement.
    pub statement: Duration,
    /// `lock_timeout`: waiting for a row lock (a concurrent writer of the same row).
    pub lock: Duration,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(5),
            lock: Duration::from_secs(2),
        }
    }
}

impl SessionTimeouts {
    /// The `SET` statements, sent once when a connection opens. An idle transaction is
    /// ended too (a request's transaction is never idle: it is sent in one pipeline).
    fn set_statements(&self) -> String {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; \
             SET idle_in_transaction_session_timeout = {}",
            self.statement.as_millis(),
            self.lock.as_millis(),
            (self.statement * 2).as_millis()
        )
    }
}

/// A pool of connections. Recycling is `Fast` (no ping on every return): a broken
/// connection is noticed by its next statement and replaced. Every new connection sets
/// its `timeouts` and prepares `statements` first, so requests never wait on a prepare,
/// and a pipeline of statements (see `store::as_caller`) is always sent in one go.
pub fn pool(
    mut config: tokio_postgres::Config,
    max_size: usize,
    timeouts: SessionTimeouts,
    statements: Vec<&'static str>,
) -> Result<Pool, DbError> {
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
    let statements: std::sync::Arc<[&'static str]> = statements.into();
    Pool::builder(manager)
        .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
            let statements = statements.clone();
            Box::pin(async move {
                client
                    .batch_execute(&timeouts.set_statements())
                    .await
                    .map_err(HookError::Backend)?;
                for sql in statements.iter() {
                    client
                        .prepare_cached(sql)
                        .await
                        .map_err(HookError::Backend)?;
                }
                Ok(())
            })
        }))
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

/// Whether every embedded migration is recorded as applied. Any doubt (no history
/// table, no right to read it) counts as "no".
pub async fn is_up_to_date(config: &tokio_postgres::Config) -> bool {
    let Ok(client) = connect(config).await else {
        return false;
    };
    let Ok(rows) = client
        .query("SELECT version FROM refinery_schema_history", &[])
        .await
    else {
        return false;
    };
    let applied: Vec<i32> = rows.iter().filter_map(|row| row.try_get(0).ok()).collect();
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .all(|migration| i32::try_from(migration.version()).is_ok_and(|v| applied.contains(&v)))
}

/// Applies the embedded migrations, as `as_role` when given (the connection's user must
/// be a member of it), so that what they create is owned by that role. An advisory lock
/// serialises instances that start together against one database.
pub async fn migrate(
    config: &tokio_postgres::Config,
    as_role: Option<&str>,
) -> Result<usize, MigrateError> {
    const MIGRATION_LOCK: i64 = 0x7461_736b_6170_6931; // "taskapi1"
    let mut client = connect(config).await?;
    if let Some(role) = as_role {
        client
            .batch_execute(&format!("SET ROLE {}", escape_identifier(role)))
            .await
            .map_err(DbError::from)?;
    }
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

/// Private-server mode, where we own the cluster: creates the owner and app roles and
/// database `name` (owned by the owner role) unless they exist.
pub async fn ensure_roles_and_database(
    superuser: &tokio_postgres::Config,
    name: &str,
) -> Result<(), DbError> {
    let client = connect(superuser).await?;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN \
                 CREATE ROLE {OWNER_ROLE} NOLOGIN; \
               END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN \
                 CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
               END IF; \
             END $$"
        ))
        .await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} OWNER {OWNER_ROLE}",
                escape_identifier(name)
            ))
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
