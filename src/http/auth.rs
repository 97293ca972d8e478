//! `/auth/*`: registration, login, and the caller's own account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::ApiJson;
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::domain::{Email, Password, ValidationErrors, timestamp};
use crate::error::{ApiError, Problem};
use crate::store::{self, users::UserRow};

/// Credentials, for registration and login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Trimmed and compared case-insensitively; at most 254 characters.
    #[schema(example = "alice@example.com", max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(example = "correct horse battery", min_length = 8, max_length = 128)]
    pub password: String,
}

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    #[schema(example = "alice@example.com")]
    pub email: String,
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T13:00:00Z")]
    pub created_at: String,
}

impl From<UserRow> for UserResponse {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id,
            email: user.email,
            created_at: timestamp::format(user.created_at),
        }
    }
}

/// A fresh access token. There is no refresh token: log in again when it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 1800)]
    pub expires_in: i64,
}

/// Create an account.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = CredentialsRequest,
    responses(
        (status = 201, description = "Account created", body = UserResponse),
        (status = 400, description = "Unparseable body", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered (in any case)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email or password", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::parse_new(body.password));
    let (Some(email), Some(password)) = (email, password) else {
        return Err(errors.into());
    };
    let hash = state
        .hasher
        .hash(password)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let client = state.pool.get().await?;
    let user = store::users::insert(&client, &email, &hash).await?;
    Ok((StatusCode::CREATED, axum::Json(UserResponse::from(user))).into_response())
}

/// Exchange email and password for an access token.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Unparseable body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown email or wrong password (the same answer, in the same time)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or mistyped fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let client = state.pool.get().await?;
    let account =
        store::users::credentials_by_email(&client, &Email::normalize_for_lookup(&body.email))
            .await?;
    // The connection is not needed while hashing: give it back to the pool.
    drop(client);
    let (user_id, hash) = account.unzip();
    let verified = state
        .hasher
        .verify(Password::offered(body.password), hash)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user_id = match user_id {
        Some(id) if verified => id,
        _ => return Err(ApiError::Unauthorized("incorrect email or password")),
    };
    let issued = state
        .tokens
        .issue(user_id)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = TokenResponse {
        access_token: issued.token,
        token_type: "bearer",
        expires_in: issued.expires_in,
    };
    Ok(axum::Json(body).into_response())
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserResponse),
        (status = 401, description = "Missing, invalid or expired token, or a deleted account", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_me(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    let client = state.pool.get().await?;
    let account = store::users::by_id(&client, user.id)
        .await?
        .ok_or(ApiError::Unauthorized(
            "the token's account no longer exists",
        ))?;
    Ok(axum::Json(UserResponse::from(account)).into_response())
}
