//! Classifies driver and pool failures into what the API must answer: an outage (503),
//! a named constraint (409 and friends), or a bug (500).

use tokio_postgres::error::SqlState;

/// A database failure, classified.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or is shutting down: the client should retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unique constraint {0} violated")]
    UniqueViolation(String),
    #[error("foreign key {0} violated")]
    ForeignKeyViolation(String),
    /// A value PostgreSQL refused (class 22 data exception, or a CHECK): input the domain
    /// rules should have caught, reported as 422 rather than 500.
    #[error("invalid data: {0}")]
    InvalidData(String),
    #[error("database error: {0}")]
    Other(#[source] tokio_postgres::Error),
    /// A value read back that the schema should have made impossible.
    #[error("unexpected data from the database: {0}")]
    Unexpected(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        let Some(db) = error.as_db_error() else {
            // No server reply: the connection broke or never opened.
            let io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
            return if error.is_closed() || io {
                Self::Unavailable(error.to_string())
            } else {
                Self::Other(error)
            };
        };
        let constraint = db.constraint().unwrap_or_default().to_owned();
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            Self::UniqueViolation(constraint)
        } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
            Self::ForeignKeyViolation(constraint)
        } else if *code == SqlState::CHECK_VIOLATION || code.code().starts_with("22") {
            Self::InvalidData(db.message().to_owned())
        } else if is_outage(code) {
            Self::Unavailable(db.message().to_owned())
        } else {
            Self::Other(error)
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => match Self::from(error) {
                Self::Other(error) => Self::Unavailable(error.to_string()),
                classified => classified,
            },
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Connection exceptions (class 08), shutdowns and "too many connections".
fn is_outage(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::QUERY_CANCELED,
        ]
        .contains(code)
}
