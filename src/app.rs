//! Start-up: the database (private or configured), migrations, the pool, the shared
//! state, and the bound listener. `Application::build` binds before serving, so tests
//! learn the port and never sleep waiting for a server.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::lockout::{ACCOUNT_WINDOW, AddressThrottle};
use crate::auth::{PasswordHasher, TokenService};
use crate::config::{Database, Settings};
use crate::db::{self, DbError, MigrateError, private};
use crate::domain::cursor::CursorKey;
use crate::listener::{LingeringListener, Peer};
use crate::state::{AppState, Shared};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    PrivatePostgres(#[from] private::StartError),
    #[error("cannot reach the database: {0}")]
    Database(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("a statement does not match the database schema: {0}")]
    Statements(DbError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("start-up task failed: {0}")]
    Internal(String),
    #[error(
        "the database role {role:?} {why}, so row-level security would not bind it and the \
         second wall between users would be gone. Connect as a role without these rights \
         (see the README, \"In production\"), or set ALLOW_RLS_BYPASS=true for development only"
    )]
    RlsBypassed { role: String, why: &'static str },
}

/// Refuses a connection whose role is a superuser or has `BYPASSRLS`: row-level security
/// (FORCEd on every user table) does not apply to such roles.
async fn refuse_rls_bypass(client: &db::Connection) -> Result<(), StartupError> {
    // Unnamed (`query_typed`): fit for a transaction pooler whatever the statement mode.
    let row = client
        .query_typed_one(
            "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles \
             WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(DbError::from)?;
    let (role, superuser, bypass): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
    let why = match (superuser, bypass) {
        (true, _) => "is a superuser",
        (false, true) => "has BYPASSRLS",
        (false, false) => return Ok(()),
    };
    Err(StartupError::RlsBypassed { role, why })
}

/// A database ready for use, and the private server behind it, if any.
#[derive(Debug)]
pub struct ReadyDatabase {
    /// How the API connects (the app role).
    pub config: tokio_postgres::Config,
    /// A connection with the rights to run migrations (the owner, or in private mode the
    /// superuser): for `taskapi migrate` and for tests that look behind the API's back.
    pub admin_config: tokio_postgres::Config,
    pub server: Option<private::PrivatePostgres>,
}

impl ReadyDatabase {
    /// Starts the private server if needed (with its roles and database), and applies
    /// pending migrations as the owner.
    pub async fn prepare(database: &Database) -> Result<Self, StartupError> {
        let ready = match database {
            Database::External { app, owner } => {
                let admin_config = owner.as_deref().unwrap_or(app).clone();
                // The app role may not read or run migrations; only try when needed.
                if owner.is_some() || !db::is_up_to_date(app).await {
                    log_applied(db::migrate(&admin_config, None).await?);
                }
                Self {
                    config: app.as_ref().clone(),
                    admin_config,
                    server: None,
                }
            }
            Database::Private(options) => {
                let options = options.clone();
                let server =
                    tokio::task::spawn_blocking(move || private::PrivatePostgres::start(&options))
                        .await
                        .map_err(|e| StartupError::Internal(e.to_string()))??;
                db::ensure_roles_and_database(&server.config("postgres"), private::DATABASE_NAME)
                    .await?;
                let admin_config = server.config(private::DATABASE_NAME);
                log_applied(db::migrate(&admin_config, Some(db::OWNER_ROLE)).await?);
                Self {
                    config: server.config_as(db::APP_ROLE, private::DATABASE_NAME),
                    admin_config,
                    server: Some(server),
                }
            }
        };
        Ok(ready)
    }

    /// Stops the private server (if any) and waits for it.
    pub async fn shutdown(self) {
        if let Some(mut server) = self.server {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
    }
}

fn log_applied(applied: usize) {
    if applied > 0 {
        tracing::info!(applied, "migrations applied");
    }
}

/// A bound, ready-to-serve application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    database: ReadyDatabase,
    cors_origins: Vec<axum::http::HeaderValue>,
    request_timeout: std::time::Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let database = ReadyDatabase::prepare(&settings.database).await?;
        Self::build_on(settings, database).await
    }

    /// Like `build`, on a database already prepared.
    pub async fn build_on(
        settings: Settings,
        database: ReadyDatabase,
    ) -> Result<Self, StartupError> {
        let statements = crate::store::all_statements().collect();
        let pool = db::pool(
            database.config.clone(),
            settings.database_pool_size,
            settings.database_timeouts,
            statements,
            settings.statement_mode,
        )?;
        let client = pool.checkout().await?;
        if !settings.allow_rls_bypass {
            refuse_rls_bypass(&client).await?;
        }
        drop(client);
        pool.ready_statements()
            .await
            .map_err(StartupError::Statements)?;

        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let hasher = PasswordHasher::new(cores)
            .await
            .map_err(|e| StartupError::Internal(e.to_string()))?;
        let openapi_json = crate::http::openapi()
            .to_pretty_json()
            .map_err(|e| StartupError::Internal(e.to_string()))?;
        let state = AppState(Arc::new(Shared {
            pool,
            tokens: TokenService::new(&settings.secret_key, settings.access_token_expire_minutes),
            cursors: CursorKey::derive(settings.secret_key.expose()),
            changes_retention: settings.changes_retention,
            hasher,
            openapi_json: Arc::new(openapi_json),
            login_throttle: AddressThrottle::new(
                settings.login_failures_per_address,
                ACCOUNT_WINDOW,
            ),
            registration_throttle: AddressThrottle::new(
                settings.registrations_per_address,
                ACCOUNT_WINDOW,
            ),
            trusted_proxies: settings.trusted_proxies.clone().into(),
        }));

        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        Ok(Self {
            listener,
            state,
            database,
            cors_origins: settings.cors_allowed_origins,
            request_timeout: settings.request_timeout,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish, then closes the
    /// pool and stops the private database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router =
            crate::http::router(self.state.clone(), &self.cors_origins, self.request_timeout);
        let purger = tokio::spawn(purge_expired(
            self.state.pool.clone(),
            self.state.changes_retention,
        ));
        let service = router.into_make_service_with_connect_info::<Peer>();
        let served = axum::serve(LingeringListener::new(self.listener), service)
            .with_graceful_shutdown(shutdown)
            .await;
        purger.abort();
        self.state.pool.close();
        self.database.shutdown().await;
        served
    }
}

/// How often expired tombstones and idempotency keys are purged.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Purges superseded change-log rows, expired tombstones and idempotency keys now and
/// every `PURGE_EVERY`, in small
/// batches on one pooled connection at a time (`store::purge`). A failure (the database
/// away) is logged and tried again next time.
async fn purge_expired(pool: db::Pool, retention: std::time::Duration) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        let Ok(client) = pool.checkout().await else {
            continue;
        };
        let purged = async {
            let superseded = crate::store::purge::superseded_changes(&client).await?;
            let tombstones = crate::store::purge::tombstones(&client, retention).await?;
            let keys = crate::store::purge::idempotency_keys(&client).await?;
            Ok::<_, DbError>((superseded, tombstones, keys))
        };
        match purged.await {
            Ok((0, 0, 0)) => {}
            Ok((superseded, tombstones, keys)) => {
                tracing::info!(superseded, tombstones, keys, "purged rows no longer needed")
            }
            Err(error) => tracing::warn!(error = %error, "purge failed; trying again later"),
        }
    }
}
