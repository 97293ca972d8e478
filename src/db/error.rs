//! Classifies driver and pool failures into what the API must answer: an outage (503),
//! a named constraint (409 and friends), or a bug (500). Every variant keeps the cause
//! as text fit for a log: SQLSTATE, the server's message and the source chain, never a
//! statement's parameters (nor the server's DETAIL line, which can quote them).

use tokio_postgres::error::SqlState;

/// A database failure, classified.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or is shutting down: the client should retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server gave up on a statement (`lock_timeout`, `statement_timeout`, a deadlock
    /// or serialization conflict): its transaction was rolled back, so nothing it did was
    /// committed, and a retry may well succeed.
    #[error("database timed out: {0}")]
    TimedOut(String),
    #[error("unique constraint {0} violated")]
    UniqueViolation(String),
    #[error("foreign key {0} violated")]
    ForeignKeyViolation(String),
    /// A value PostgreSQL refused (class 22 data exception, or a CHECK): input the domain
    /// rules should have caught, reported as 422 rather than 500.
    #[error("invalid data: {0}")]
    InvalidData(String),
    #[error("database error: {0}")]
    Other(String),
    /// A value read back that the schema should have made impossible.
    #[error("unexpected data from the database: {0}")]
    Unexpected(String),
}

/// What went wrong, for a log line: `SQLSTATE 42501 (ERROR): permission denied for table
/// tasks`, or the driver's error and its sources (`error connecting to server: Connection
/// refused (os error 111)`).
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!(
                "SQLSTATE {} ({}): {}",
                db.code().code(),
                db.severity(),
                db.message()
            );
            if let Some(constraint) = db.constraint() {
                text.push_str(&format!(" [constraint {constraint}]"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        None => chain(error),
    }
}

/// An error and its sources, `: `-separated, each once.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        let Some(db) = error.as_db_error() else {
            // No server reply: the connection broke or never opened.
            let io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
            return if error.is_closed() || io {
                Self::Unavailable(describe(&error))
            } else {
                Self::Other(describe(&error))
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
        } else if [
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            // Transient conflicts the server resolved by rolling this transaction back.
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ]
        .contains(code)
        {
            Self::TimedOut(describe(&error))
        } else if is_outage(code) {
            Self::Unavailable(describe(&error))
        } else {
            Self::Other(describe(&error))
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => match Self::from(error) {
                Self::Other(error) => Self::Unavailable(error),
                classified => classified,
            },
            other => Self::Unavailable(chain(&other)),
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
        ]
        .contains(code)
}
