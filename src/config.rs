//! Typed settings from the environment (or a `.env` file), validated at start-up.
//! Secrets are wrapped so that they cannot be printed by accident.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use clap::{Args, Parser, Subcommand};

use crate::db::private;

const MIN_SECRET_BYTES: usize = 32;

/// The command line: `taskapi` (or `taskapi serve`) serves the API; `taskapi migrate`
/// applies the migrations and exits.
#[derive(Debug, Parser)]
#[command(name = "taskapi", version, about = "The taskapi REST API server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    #[command(flatten)]
    pub settings: RawSettings,
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum CliCommand {
    /// Serve the API (the default).
    Serve,
    /// Apply the database migrations, then exit.
    Migrate,
}

/// Settings as given, before validation. Every flag can also come from the environment.
#[derive(Debug, Args)]
pub struct RawSettings {
    /// PostgreSQL to use; unset, a private server is started under the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A connection with the schema owner's rights, used for migrations (optional: without
    /// it, DATABASE_URL runs them, when any are pending).
    #[arg(long, env = "DATABASE_OWNER_URL", hide_env_values = true)]
    pub database_owner_url: Option<String>,
    /// JWT signing key, at least 32 bytes. Required with DATABASE_URL; otherwise generated
    /// once and kept in the data directory.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Access token lifetime, in minutes.
    #[arg(long, env = "ACCESS_TOKEN_EXPIRE_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=525_600))]
    pub access_token_expire_minutes: u32,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,
    /// Where the private PostgreSQL and the generated secret key live.
    #[arg(long, env = "TASKAPI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Maximum number of database connections.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub database_pool_size: u16,
    /// Origins allowed to call the API from a browser (comma-separated). Empty: CORS is
    /// closed (no cross-origin access).
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_allowed_origins: Vec<String>,
    /// Failed logins allowed per client address in 15 minutes (each account also locks
    /// after 10).
    #[arg(long, env = "LOGIN_FAILURES_PER_ADDRESS", default_value_t = 300)]
    pub login_failures_per_address: u32,
    /// Registrations allowed per client address in 15 minutes.
    #[arg(long, env = "REGISTRATIONS_PER_ADDRESS", default_value_t = 10_000)]
    pub registrations_per_address: u32,
    /// Proxies whose `X-Forwarded-For` is believed (comma-separated IP addresses or CIDR
    /// ranges such as 10.0.0.0/8). Empty: the client address is always the peer address.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,
    /// The request deadline (milliseconds): past it a request gets a 503, unless it holds a
    /// database connection (then its statement's real outcome is awaited: a statement that
    /// may commit is never abandoned).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,
    /// How long the change feed remembers deletions (days); a `since` cursor older than
    /// this is 410 Gone.
    #[arg(long, env = "CHANGES_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub changes_retention_days: u32,
    /// Longest time the database may spend on one statement before it gives up and rolls
    /// back (milliseconds).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=10_000))]
    pub database_statement_timeout_ms: u64,
    /// Longest time a statement may wait for a row lock held by a concurrent writer
    /// (milliseconds); then 503, and nothing changed.
    #[arg(long, env = "DATABASE_LOCK_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub database_lock_timeout_ms: u64,
    /// `false` when DATABASE_URL points at a pooler in transaction mode that does not keep
    /// prepared statements (PgBouncer before 1.21, or `max_prepared_statements = 0`):
    /// statements are then sent unnamed, parsed by the server each time.
    #[arg(long, env = "DATABASE_PREPARED_STATEMENTS", default_value_t = true,
          action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub database_prepared_statements: bool,
    /// Serve even when the database role is a superuser or has BYPASSRLS, which disables
    /// the row-level-security wall. For development only.
    #[arg(long, env = "ALLOW_RLS_BYPASS", default_value_t = false,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_rls_bypass: bool,
    /// `text` (human-readable; coloured only on a terminal) or `json` (one JSON object per
    /// line, for log shippers).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which PostgreSQL to use.
#[derive(Debug, Clone)]
pub enum Database {
    /// A server of the operator's: `DATABASE_URL` (the API's role) and optionally
    /// `DATABASE_OWNER_URL` (the schema owner, for migrations).
    External {
        app: Box<tokio_postgres::Config>,
        owner: Option<Box<tokio_postgres::Config>>,
    },
    /// The private server under the data directory.
    Private(private::Options),
}

/// The JWT signing key. Its `Debug` is redacted.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, ConfigError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::WeakSecret);
        }
        Ok(Self(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Validated settings for serving.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: Database,
    pub secret_key: SecretKey,
    pub access_token_expire_minutes: u32,
    pub host: String,
    pub port: u16,
    pub database_pool_size: usize,
    pub cors_allowed_origins: Vec<axum::http::HeaderValue>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub login_failures_per_address: u32,
    pub registrations_per_address: u32,
    pub database_timeouts: crate::db::SessionTimeouts,
    /// How statements are sent (`DATABASE_PREPARED_STATEMENTS`).
    pub statement_mode: crate::db::StatementMode,
    pub request_timeout: std::time::Duration,
    pub allow_rls_bypass: bool,
    /// How long the change feed remembers deletions (`CHANGES_RETENTION_DAYS`).
    pub changes_retention: std::time::Duration,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "DATABASE_URL (or DATABASE_OWNER_URL) is not a valid PostgreSQL connection string: {0}"
    )]
    DatabaseUrl(String),
    #[error("SECRET_KEY is required when DATABASE_URL is set (at least 32 bytes)")]
    MissingSecret,
    #[error("SECRET_KEY must be at least 32 bytes long")]
    WeakSecret,
    #[error("CORS_ALLOWED_ORIGINS holds an invalid origin: {0:?}")]
    CorsOrigin(String),
    #[error("TRUSTED_PROXIES holds something that is not an IP address or CIDR range: {0:?}")]
    TrustedProxy(String),
    #[error("cannot read or create the secret key file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RawSettings {
    /// The database to use, without the other settings (enough for `taskapi migrate`).
    pub fn database(&self) -> Result<Database, ConfigError> {
        match &self.database_url {
            Some(url) => Ok(Database::External {
                app: Box::new(parse_database_url(url)?),
                owner: self
                    .database_owner_url
                    .as_deref()
                    .map(parse_database_url)
                    .transpose()?
                    .map(Box::new),
            }),
            None => Ok(Database::Private(private::Options::new(
                self.data_dir.clone(),
                false,
            ))),
        }
    }

    /// Validates everything; in private mode, creates the secret key file on first use.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let database = self.database()?;
        let secret_key = match (&self.secret_key, &database) {
            (Some(key), _) => SecretKey::new(key.as_bytes().to_vec())?,
            (None, Database::External { .. }) => return Err(ConfigError::MissingSecret),
            (None, Database::Private(_)) => load_or_create_secret(&self.data_dir)?,
        };
        let cors_allowed_origins = non_empty(&self.cors_allowed_origins)
            .map(|origin| {
                axum::http::HeaderValue::from_str(origin)
                    .ok()
                    .filter(|_| origin.starts_with("http://") || origin.starts_with("https://"))
                    .ok_or_else(|| ConfigError::CorsOrigin(origin.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        let trusted_proxies = non_empty(&self.trusted_proxies)
            .map(|proxy| {
                proxy
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| proxy.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::TrustedProxy(proxy.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Settings {
            database,
            secret_key,
            access_token_expire_minutes: self.access_token_expire_minutes,
            host: self.host,
            port: self.port,
            database_pool_size: usize::from(self.database_pool_size),
            cors_allowed_origins,
            trusted_proxies,
            login_failures_per_address: self.login_failures_per_address,
            registrations_per_address: self.registrations_per_address,
            database_timeouts: crate::db::SessionTimeouts {
                statement: std::time::Duration::from_millis(self.database_statement_timeout_ms),
                lock: std::time::Duration::from_millis(self.database_lock_timeout_ms),
            },
            statement_mode: if self.database_prepared_statements {
                crate::db::StatementMode::Prepared
            } else {
                crate::db::StatementMode::Unnamed
            },
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms),
            allow_rls_bypass: self.allow_rls_bypass,
            changes_retention: std::time::Duration::from_secs(
                u64::from(self.changes_retention_days) * 86_400,
            ),
        })
    }
}

fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, ConfigError> {
    tokio_postgres::Config::from_str(url).map_err(|e| ConfigError::DatabaseUrl(e.to_string()))
}

fn non_empty(items: &[String]) -> impl Iterator<Item = &str> {
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
}

/// `<data>/secret_key`: 32 random bytes, hex-encoded, mode 0600, generated once and kept
/// so tokens stay valid across restarts.
fn load_or_create_secret(data_dir: &Path) -> Result<SecretKey, ConfigError> {
    let path = data_dir.join("secret_key");
    let file_error = |source| ConfigError::SecretFile {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => return SecretKey::new(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(e)),
    }
    fs::create_dir_all(data_dir).map_err(file_error)?;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(file_error)?;
    file.write_all(hex.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(file_error)?;
    SecretKey::new(hex.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        assert!(SecretKey::new(vec![b'a'; 31]).is_err());
        assert!(SecretKey::new(vec![b'a'; 32]).is_ok());
    }

    #[test]
    fn generated_secret_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("taskapi-secret-{}", uuid::Uuid::new_v4()));
        let first = load_or_create_secret(&dir).unwrap();
        let second = load_or_create_secret(&dir).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert_eq!(first.expose().len(), 64);
        let mode = fs::metadata(dir.join("secret_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lists_are_comma_separated_and_validated() {
        let cli = Cli::try_parse_from([
            "taskapi",
            "--secret-key",
            &"k".repeat(32),
            "--cors-allowed-origins",
            "https://app.example.com, http://localhost:3000",
            "--trusted-proxies",
            "10.0.0.1,::1,192.168.0.0/16",
        ]);
        let settings = cli.unwrap().settings.validate().unwrap();
        assert_eq!(settings.cors_allowed_origins.len(), 2);
        assert_eq!(settings.trusted_proxies.len(), 3);
        let key = "k".repeat(32);
        let bad = Cli::try_parse_from([
            "taskapi",
            "--secret-key",
            &key,
            "--trusted-proxies",
            "proxy.local",
        ]);
        assert!(matches!(
            bad.unwrap().settings.validate(),
            Err(ConfigError::TrustedProxy(_))
        ));
    }

    #[test]
    fn secret_is_required_with_an_external_database() {
        let cli = Cli::try_parse_from(["taskapi", "--database-url", "postgres://u@localhost/db"]);
        let mut raw = cli.unwrap().settings;
        raw.secret_key = None;
        assert!(matches!(raw.validate(), Err(ConfigError::MissingSecret)));
    }
}
