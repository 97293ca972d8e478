//! Where and how to connect: tokio-postgres's settings, the TLS policy and its connector,
//! and the setting they came from (`DATABASE_URL`, …), so that a failure can say which
//! one to fix, never showing the password.

use std::fmt;
use std::str::FromStr;

use super::DbError;
use super::tls::{self, TlsConnector, TlsPolicy};

/// A database to connect to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its `ssl_mode` is always `policy.driver_mode()`.
    pub(super) config: tokio_postgres::Config,
    policy: TlsPolicy,
    pub(super) connector: TlsConnector,
    origin: &'static str,
}

/// A connection string that cannot be used, naming its variable.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{variable} is not a valid PostgreSQL connection string: {reason}")]
    Syntax {
        variable: &'static str,
        reason: String,
    },
    #[error("{variable}: {source}")]
    Encoding {
        variable: &'static str,
        source: tls::BadEncoding,
    },
    #[error("{variable}: {source}")]
    Tls {
        variable: &'static str,
        source: tls::TlsConfigError,
    },
    #[error("{variable}: {source}")]
    Roots {
        variable: &'static str,
        source: tls::RootsError,
    },
}

impl Endpoint {
    /// Parses a connection string in either of libpq's forms (`postgres://…?sslmode=…`
    /// or `host=… sslmode=…`) given in `variable`, and loads its `sslrootcert`.
    pub fn parse(conninfo: &str, variable: &'static str) -> Result<Self, EndpointError> {
        let (rest, params) =
            tls::split(conninfo).map_err(|source| EndpointError::Encoding { variable, source })?;
        let policy = TlsPolicy::parse(params.sslmode.as_deref(), params.sslrootcert.as_deref())
            .map_err(|source| EndpointError::Tls { variable, source })?;
        let config =
            tokio_postgres::Config::from_str(&rest).map_err(|error| EndpointError::Syntax {
                variable,
                reason: error.to_string(),
            })?;
        Self::new(config, policy, variable)
            .map_err(|source| EndpointError::Roots { variable, source })
    }

    /// `config` with `policy` (which decides its `ssl_mode`); `origin` names it in messages.
    pub fn new(
        mut config: tokio_postgres::Config,
        policy: TlsPolicy,
        origin: &'static str,
    ) -> Result<Self, tls::RootsError> {
        config.ssl_mode(policy.driver_mode());
        Ok(Self {
            connector: TlsConnector::new(&policy)?,
            config,
            policy,
            origin,
        })
    }

    /// Plaintext, for the private server's Unix socket (PostgreSQL has no TLS there).
    pub fn plaintext(config: tokio_postgres::Config, origin: &'static str) -> Self {
        Self::new(config, TlsPolicy::DISABLED, origin)
            .expect("sslmode=disable loads no certificate")
    }

    /// tokio-postgres's settings (without our TLS parameters).
    pub fn driver_config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// To change who or where to connect; the TLS mode stays the policy's.
    pub fn driver_config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    pub fn policy(&self) -> &TlsPolicy {
        &self.policy
    }

    /// A failure to open a connection, prefixed with where the settings came from and
    /// their TLS policy: `DATABASE_URL (sslmode=require): …`.
    pub fn opening_failed(&self, error: impl Into<DbError>) -> DbError {
        match error.into() {
            DbError::Unavailable(why) => DbError::Unavailable(format!("{self}: {why}")),
            DbError::Other(why) => DbError::Other(format!("{self}: {why}")),
            other => other,
        }
    }
}

impl From<tokio_postgres::Config> for Endpoint {
    /// As libpq would treat a connection string with this `sslmode` and no
    /// `sslrootcert`: `prefer` and `require` encrypt without verifying the certificate.
    fn from(config: tokio_postgres::Config) -> Self {
        let policy = TlsPolicy::from_driver_mode(config.get_ssl_mode());
        Self::new(config, policy, "the connection settings")
            .expect("a policy without sslrootcert loads no certificate")
    }
}

impl fmt::Display for Endpoint {
    /// `DATABASE_URL (sslmode=verify-full sslrootcert=/etc/ca.pem)`: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.origin, self.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_give_the_same_settings_and_policy() {
        let ca = std::env::temp_dir().join(format!("taskapi-no-such-{}.pem", uuid::Uuid::new_v4()));
        for conninfo in [
            "postgres://app:pw@db.example.com:5433/tasks?sslmode=require".to_owned(),
            "host=db.example.com port=5433 user=app password=pw dbname=tasks sslmode=require"
                .to_owned(),
        ] {
            let endpoint = Endpoint::parse(&conninfo, "DATABASE_URL").unwrap();
            let config = endpoint.driver_config();
            assert_eq!(config.get_user(), Some("app"));
            assert_eq!(config.get_password(), Some(&b"pw"[..]));
            assert_eq!(config.get_dbname(), Some("tasks"));
            assert_eq!(config.get_ports(), [5433]);
            assert_eq!(
                config.get_ssl_mode(),
                tokio_postgres::config::SslMode::Require
            );
            assert_eq!(endpoint.to_string(), "DATABASE_URL (sslmode=require)");
        }
        // verify-full reaches tokio-postgres as require, and its sslrootcert is read now.
        let error = Endpoint::parse(
            &format!(
                "postgres://app:pw@localhost/db?sslmode=verify-full&sslrootcert={}",
                ca.display()
            ),
            "DATABASE_OWNER_URL",
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("DATABASE_OWNER_URL: cannot read sslrootcert"),
            "{text}"
        );
    }

    #[test]
    fn the_default_is_prefer() {
        let endpoint = Endpoint::parse("postgres://app@localhost/db", "DATABASE_URL").unwrap();
        assert_eq!(
            endpoint.driver_config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert_eq!(endpoint.policy().mode(), tls::SslMode::Prefer);
    }

    #[test]
    fn refusals_name_the_variable_and_never_the_password() {
        for (conninfo, expected) in [
            (
                "postgres://app:hunter2@localhost/db?sslmode=verify-all",
                "sslmode=\"verify-all\"",
            ),
            (
                "host=localhost password=hunter2 sslmode=allow",
                "sslmode=\"allow\"",
            ),
            (
                "postgres://app:hunter2@localhost/db?sslmode=verify-ca",
                "needs sslrootcert",
            ),
            (
                "postgres://app:hunter2@localhost/db?port=x",
                "not a valid PostgreSQL",
            ),
            (
                "postgres://app:hunter2@localhost/db?sslnope=1",
                "not a valid PostgreSQL",
            ),
        ] {
            let text = Endpoint::parse(conninfo, "DATABASE_URL")
                .unwrap_err()
                .to_string();
            assert!(text.starts_with("DATABASE_URL"), "{text}");
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("taskapi-empty-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = Endpoint::parse(
            &format!(
                "host=localhost sslmode=verify-ca sslrootcert={}",
                path.display()
            ),
            "DATABASE_URL",
        )
        .unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.to_string().contains("holds no usable CA certificate"),
            "{error}"
        );
    }
}
