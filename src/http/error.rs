//! `ApiError`: every failure a handler can meet, rendered as `application/problem+json`
//! (RFC 9457, API.md "Conventions"). Bodies never carry SQL, hashes, tokens or traces.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::domain::ValidationErrors;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response. Handlers return `Result<_, ApiError>` and use `?`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// A request header that cannot be used (400), e.g. a malformed `Idempotency-Key`.
    #[error("malformed header: {0}")]
    MalformedHeader(String),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("precondition failed")]
    PreconditionFailed,
    /// What the request points at is no longer kept (410), e.g. an expired feed cursor.
    #[error("gone: {0}")]
    Gone(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many attempts")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("validation failed")]
    Validation(ValidationErrors),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database gave up on a statement (a lock or statement timeout): rolled back.
    #[error("database timed out: {0}")]
    DatabaseTimedOut(String),
    /// The password-hashing queue is full: refused at once rather than queued for long.
    #[error("password hashing queue full")]
    Busy,
    /// The request deadline passed while no statement was in flight (`http::deadline`).
    #[error("request timed out")]
    RequestTimedOut,
    #[error("internal error: {0}")]
    Internal(String),
}

/// One invalid field in a problem's `errors`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The input field (body member or query parameter) at fault.
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/validation-failed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Only on validation failures (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldErrorBody>>,
}

impl Problem {
    /// The generic problem for a status, with the status's reason phrase as its title.
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self {
            kind: format!("/problems/{}", slug(title)),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }

    pub fn into_response_with_status(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

fn slug(title: &str) -> String {
    title
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedBody(_) | Self::MalformedHeader(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_)
            | Self::DatabaseTimedOut(_)
            | Self::Busy
            | Self::RequestTimedOut => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        match self {
            Self::MalformedBody(detail) | Self::MalformedHeader(detail) => {
                Problem::for_status(status, detail.clone())
            }
            Self::Gone(detail) => Problem::for_status(status, *detail),
            Self::Unauthorized(detail) => Problem::for_status(status, *detail),
            Self::NotFound => Problem::for_status(status, "no such resource"),
            Self::Conflict(detail) => Problem::for_status(status, *detail),
            Self::PreconditionFailed => Problem::for_status(
                status,
                "If-Match does not match the task's current ETag; fetch it again and retry",
            ),
            Self::PayloadTooLarge => {
                Problem::for_status(status, "the request body is larger than 64 KiB")
            }
            Self::UnsupportedMediaType => Problem::for_status(
                status,
                "a request body must be sent with Content-Type: application/json",
            ),
            Self::TooManyRequests { retry_after_secs } => Problem::for_status(
                status,
                format!("too many failed attempts; try again in {retry_after_secs} seconds"),
            ),
            Self::Validation(errors) => Problem {
                kind: "/problems/validation-failed".to_owned(),
                title: "Validation failed".to_owned(),
                status: status.as_u16(),
                detail: "the request has invalid fields; see errors".to_owned(),
                errors: Some(
                    errors
                        .0
                        .iter()
                        .map(|e| FieldErrorBody {
                            field: e.field.clone(),
                            message: e.message.clone(),
                        })
                        .collect(),
                ),
            },
            Self::Unavailable(_) => {
                Problem::for_status(status, "the database is unavailable; try again shortly")
            }
            Self::DatabaseTimedOut(_) => Problem::for_status(
                status,
                "the database did not finish in time (another request holds the row); \
                 nothing was changed, so the request can be retried",
            ),
            Self::Busy => Problem::for_status(
                status,
                "too many logins are being checked right now; try again shortly",
            ),
            Self::RequestTimedOut => Problem::for_status(
                status,
                "the request took too long and was abandoned before it changed anything; \
                 try again shortly",
            ),
            Self::Internal(_) => Problem::for_status(status, "an unexpected error occurred"),
        }
    }
}

/// Why a request failed on the server's side: attached to a 5xx response for the access
/// log (`http::access_log`), which logs it once, with the request id. Never sent.
#[derive(Debug, Clone)]
pub struct FailureCause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.problem().into_response_with_status();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            // Every 503: the outage, the timeout or the queue is usually gone in a second.
            Self::Unavailable(_)
            | Self::DatabaseTimedOut(_)
            | Self::Busy
            | Self::RequestTimedOut => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        match self {
            Self::Internal(cause) | Self::Unavailable(cause) | Self::DatabaseTimedOut(cause) => {
                response.extensions_mut().insert(FailureCause(cause));
            }
            Self::Busy | Self::RequestTimedOut => {
                let cause = FailureCause(self.to_string());
                response.extensions_mut().insert(cause);
            }
            _ => {}
        }
        if response.status() == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: tell the client how to authenticate.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"taskapi\""),
            );
        }
        response
    }
}

/// The last resort for a handler that panicked (a bug: no client input may lead here):
/// a problem+json 500, with the panic's message kept for the access log only.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = crate::telemetry::panic_message(panic.as_ref());
    let mut response = ApiError::Internal(String::new()).into_response();
    response
        .extensions_mut()
        .insert(FailureCause(format!("handler panicked: {message}")));
    response
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(detail) => Self::Unavailable(detail),
            DbError::TimedOut(detail) => Self::DatabaseTimedOut(detail),
            DbError::InvalidData(_) => Self::Validation(ValidationErrors::single(
                "body",
                "contains a value the database cannot store",
            )),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        DbError::from(error).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AccountGone => Self::Unauthorized("the token's account no longer exists"),
            StoreError::TokenRevoked => Self::Unauthorized(
                "the access token has been revoked (logged out, or the password was changed); \
                 log in again",
            ),
            StoreError::Pipeline(what) => Self::Internal(what),
            StoreError::NotFound => Self::NotFound,
            StoreError::PreconditionFailed => Self::PreconditionFailed,
            StoreError::EmailTaken => Self::Conflict("an account with this email already exists"),
            StoreError::ProjectNameTaken => {
                Self::Conflict("you already have a project with this name (in any case)")
            }
            StoreError::UnknownProject => Self::Validation(ValidationErrors::single(
                "project_id",
                crate::domain::task::UNKNOWN_PROJECT,
            )),
            StoreError::Db(error) => error.into(),
        }
    }
}
