//! The database: connection pool, embedded migrations, error classification, and the
//! private PostgreSQL started when no `DATABASE_URL` is configured.

pub mod checkout;
pub mod endpoint;
pub mod error;
pub mod pipeline;
pub mod private;
pub mod statements;
pub mod tls;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{HookError, Manager, ManagerConfig, RecyclingMethod, Runtime};
use postgres_protocol::escape::escape_identifier;

pub use checkout::Connection;
pub use endpoint::{Endpoint, EndpointError};
pub use error::DbError;
use statements::ParameterTypes;
pub use statements::StatementMode;

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

/// The connection pool, and how its connections send statements.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    sending: Arc<Sending>,
}

/// What every connection of a pool shares: the mode, the statements the application issues
/// and, in unnamed mode, their parameter types (learned by `Pool::ready_statements`).
#[derive(Debug)]
pub(crate) struct Sending {
    pub(crate) mode: StatementMode,
    /// Set by `Pool::ready_statements`. `Some`: the connections lead to a transaction pooler,
    /// or statements are unnamed (which is what such poolers need), and this is the `BEGIN`
    /// that also sets the timeouts for its transaction alone: a pooler's server connections
    /// do not keep the session settings this connection sent when it opened, so each
    /// transaction sets them itself, in the same message as its `BEGIN` (no extra round
    /// trip). `None`: a plain `BEGIN`, and a caller's statements go out gathered under one
    /// `Sync` (`Connection::gathers`).
    pub(crate) pooled_begin: OnceLock<Option<Box<str>>>,
    timeouts: SessionTimeouts,
    statements: Arc<[&'static str]>,
    pub(crate) types: OnceLock<ParameterTypes>,
}

impl SessionTimeouts {
    /// `BEGIN`, and the timeouts for this transaction alone.
    fn begin_statements(&self) -> String {
        format!(
            "BEGIN; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
            self.statement.as_millis(),
            self.lock.as_millis()
        )
    }
}

/// A pool of connections. Recycling is `Fast` (no ping on every return): a broken
/// connection is noticed by its next statement and replaced. Every new connection sets
/// its `timeouts` and, with prepared statements, prepares `statements` first, so requests
/// never wait on a prepare, and a pipeline of statements (see `store::as_caller`) is always
/// sent in one go. With unnamed statements, `Pool::ready_statements` must run before use.
/// Connections use the endpoint's TLS policy.
pub fn pool(
    endpoint: Endpoint,
    max_size: usize,
    timeouts: SessionTimeouts,
    statements: Vec<&'static str>,
    mode: StatementMode,
) -> Result<Pool, DbError> {
    let mut config = endpoint.config;
    config.connect_timeout(ACQUIRE_TIMEOUT);
    config.keepalives(true);
    // One given in the URL is the operator's choice (it tells instances apart).
    if config.get_application_name().is_none() {
        config.application_name("taskapi");
    }
    let manager = Manager::from_config(
        config,
        endpoint.connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let statements: Arc<[&'static str]> = statements.into();
    let prepared = match mode {
        StatementMode::Prepared => statements.clone(),
        StatementMode::Unnamed => Arc::new([]),
    };
    let inner = deadpool_postgres::Pool::builder(manager)
        .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
            let prepared = prepared.clone();
            Box::pin(async move {
                client
                    .batch_execute(&timeouts.set_statements())
                    .await
                    .map_err(HookError::Backend)?;
                for sql in prepared.iter() {
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
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    Ok(Pool {
        inner,
        sending: Arc::new(Sending {
            mode,
            pooled_begin: OnceLock::new(),
            timeouts,
            statements,
            types: OnceLock::new(),
        }),
    })
}

impl Pool {
    /// Takes a connection (waiting at most the pool's wait timeout).
    pub async fn checkout(&self) -> Result<Connection, DbError> {
        checkout::checkout(&self.inner, &self.sending).await
    }

    /// Readies every statement on one connection, so that one that no longer matches the
    /// schema stops the start-up rather than fail a request: prepared (and cached) on it,
    /// or, in unnamed mode, its parameter types learned for every connection. How many.
    pub async fn ready_statements(&self) -> Result<usize, DbError> {
        let connection = self.checkout().await?;
        match self.sending.mode {
            StatementMode::Prepared => {
                for sql in self.sending.statements.iter() {
                    connection.prepare_cached(sql).await?;
                }
            }
            StatementMode::Unnamed => {
                let types =
                    ParameterTypes::learn(&connection, self.sending.statements.iter().copied())
                        .await?;
                // A second call learns the same types again; the first answer stands.
                let _ = self.sending.types.set(types);
            }
        }
        drop(connection);
        let pooled = self.sending.mode == StatementMode::Unnamed
            || (self.inner.status().max_size >= 2 && self.leads_to_a_transaction_pooler().await?);
        if pooled {
            tracing::info!(
                "the database connections share server processes (a transaction pooler) or \
                 send unnamed statements: each transaction sets its own timeouts"
            );
        }
        let _ = self
            .sending
            .pooled_begin
            .set(pooled.then(|| self.sending.timeouts.begin_statements().into_boxed_str()));
        Ok(self.sending.statements.len())
    }

    /// Whether two of this pool's connections run on one server process, which only a
    /// pooler in transaction (or statement) mode does (see `shares_server_processes`).
    async fn leads_to_a_transaction_pooler(&self) -> Result<bool, DbError> {
        let (first, second) = tokio::try_join!(self.checkout(), self.checkout())?;
        shares_server_processes(&first, &second).await
    }

    /// Size, idle and waiting counts (deadpool's view).
    pub fn status(&self) -> deadpool_postgres::Status {
        self.inner.status()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Closes the pool: no more connections are handed out, idle ones are closed.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// Opens one connection outside the pool (migrations, database creation). A failure
/// names the endpoint's origin and TLS policy.
pub async fn connect(endpoint: &Endpoint) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = endpoint
        .config
        .connect(endpoint.connector.clone())
        .await
        .map_err(|error| endpoint.opening_failed(error))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "database connection closed with an error");
        }
    });
    Ok(client)
}

/// Whether every embedded migration is recorded as applied. Any doubt (no history
/// table, no right to read it) counts as "no".
pub async fn is_up_to_date(config: &Endpoint) -> bool {
    let Ok(client) = connect(config).await else {
        return false;
    };
    // The simple protocol: no named statement, so this is safe through any pooler.
    let Ok(messages) = client
        .simple_query("SELECT version FROM refinery_schema_history")
        .await
    else {
        return false;
    };
    let applied: Vec<i32> = messages
        .iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .collect();
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .all(|migration| i32::try_from(migration.version()).is_ok_and(|v| applied.contains(&v)))
}

/// Applies the embedded migrations, as `as_role` when given (the connection's user must
/// be a member of it), so that what they create is owned by that role. An advisory lock
/// serialises instances that start together against one database.
pub async fn migrate(config: &Endpoint, as_role: Option<&str>) -> Result<usize, MigrateError> {
    const MIGRATION_LOCK: i64 = 0x7461_736b_6170_6931; // "taskapi1"
    refuse_transaction_pooler(config).await?;
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

/// Refuses a connection string that leads to a pooler in transaction or statement mode
/// (PgBouncer, Odyssey, pgcat …), where a migration's session state (its advisory lock,
/// `SET ROLE`) would not follow it from one transaction to the next. Two sessions of a direct
/// connection never share a server process; behind such a pooler, the second session's
/// statement runs on the server process the first one has just released (PgBouncer reuses
/// the most recently released one). A pooler in session mode passes, as it should.
async fn refuse_transaction_pooler(config: &Endpoint) -> Result<(), MigrateError> {
    let (first, second) = tokio::try_join!(connect(config), connect(config))?;
    if shares_server_processes(&first, &second).await? {
        return Err(MigrateError::ThroughTransactionPooler);
    }
    Ok(())
}

/// Whether two client sessions ran statements on one server process, three tries: never
/// so on a direct connection (or through a pooler in session mode); behind a pooler in
/// transaction mode, the second session's statement runs on the server process the first
/// has just released (PgBouncer reuses the most recently released one).
async fn shares_server_processes(
    first: &tokio_postgres::Client,
    second: &tokio_postgres::Client,
) -> Result<bool, DbError> {
    async fn backend_pid(client: &tokio_postgres::Client) -> Result<String, DbError> {
        let rows = client.simple_query("SELECT pg_backend_pid()").await?;
        Ok(rows
            .iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap_or_default())
    }
    for _ in 0..3 {
        if backend_pid(first).await? == backend_pid(second).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Private-server mode, where we own the cluster: creates the owner and app roles and
/// database `name` (owned by the owner role) unless they exist.
pub async fn ensure_roles_and_database(superuser: &Endpoint, name: &str) -> Result<(), DbError> {
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
    #[error(
        "migrations need a direct connection to PostgreSQL, and this one goes through a \
         pooler in transaction (or statement) mode: two of its sessions ran on one server \
         process, so the migration lock and SET ROLE would not hold. Point \
         DATABASE_OWNER_URL (or the URL given to `taskapi migrate`) at PostgreSQL itself"
    )]
    ThroughTransactionPooler,
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}
