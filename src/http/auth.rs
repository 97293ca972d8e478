//! `/auth/*`: registration, login, and the caller's own account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::client_address::ClientAddress;
use super::extract::ApiJson;
use super::responses::{DatabaseUnavailable, JsonBodyErrors};
use crate::auth::password::HashError;
use crate::domain::{Email, Password, ValidationErrors, timestamp};
use crate::http::current_user::CurrentUser;
use crate::http::error::{ApiError, PROBLEM_JSON, Problem};
use crate::metrics::LoginRejection;
use crate::state::AppState;
use crate::store::address_attempts::{self, AddressLimit, Attempt, Refused};
use crate::store::{self, users::UserRow};

/// Credentials, for registration and login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Trimmed and compared case-insensitively; at most 254 characters.
    #[schema(format = Email, example = "alice@example.com", max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(example = "correct horse battery", min_length = 8, max_length = 128)]
    pub password: String,
}

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    #[schema(format = Email, example = "alice@example.com")]
    pub email: String,
    #[schema(value_type = String, format = DateTime, example = "2026-11-24T13:00:00Z")]
    pub created_at: timestamp::Utc,
}

impl From<UserRow> for UserResponse {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id,
            email: user.email,
            created_at: timestamp::Utc(user.created_at),
        }
    }
}

/// A fresh access token. There is no refresh token: log in again when it expires.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(value_type = TokenTypeSchema, inline)]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 1800)]
    pub expires_in: i64,
}

/// Always `bearer`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "a schema only, never constructed")]
enum TokenTypeSchema {
    Bearer,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 8 to 128 characters, not among the most common passwords.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// The password that confirms an account deletion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    pub password: String,
}

fn hashing_failed(error: HashError) -> ApiError {
    match error {
        HashError::QueueFull => ApiError::Busy,
        other => ApiError::Internal(other.to_string()),
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

fn too_many(retry_after_secs: i64) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: u64::try_from(retry_after_secs).unwrap_or(1).max(1),
    }
}

/// An attempt from `address` counted against `limit`: 429 when the address is at it. Every
/// attempt counted here goes on to hash, so a full hashing queue refuses it first (503),
/// before the database is asked anything: under a login storm most attempts end here.
async fn count_attempt(
    state: &AppState,
    limit: AddressLimit,
    address: std::net::IpAddr,
) -> Result<Attempt, ApiError> {
    if state.hasher.is_full() {
        return Err(ApiError::Busy);
    }
    match address_attempts::count(&state.pool, limit, address).await {
        Ok(attempt) => Ok(attempt),
        Err(Refused::AtLimit { retry_after_secs }) => Err(ApiError::TooManyRequests {
            retry_after_secs: retry_after_secs.max(1),
        }),
        Err(Refused::Store(error)) => Err(error.into()),
    }
}

/// Checks a password confirmation (password change, account deletion) like a login: the
/// account's and the address's counts are taken first (past a limit: 429, no hashing),
/// a wrong password keeps them, a right one clears the account's and gives the address's
/// attempt back.
async fn confirm_password(
    state: &AppState,
    user: &CurrentUser,
    address: std::net::IpAddr,
    password: String,
) -> Result<(), ApiError> {
    let address_attempt = count_attempt(state, state.login_limit, address).await?;
    let client = state.database().await?;
    let attempt = store::login_failures::count_confirmation(&client, &user.caller()).await?;
    drop(client);
    if let Some(retry) = attempt.retry_after_secs {
        // Not a failure of this address's: given back before the answer, not after it.
        address_attempt.give_back().await?;
        return Err(too_many(retry));
    }
    let verified = state
        .hasher
        .verify(Password::offered(password), Some(attempt.password_hash))
        .await
        .map_err(hashing_failed)?;
    let client = state.database().await?;
    if !verified {
        address_attempt.keep();
        store::login_failures::purge_expired(&client).await?;
        return Err(ApiError::Unauthorized("the password is incorrect"));
    }
    store::login_failures::clear(&client, &attempt.email).await?;
    drop(client);
    address_attempt.give_back().await?;
    Ok(())
}

/// Create an account.
///
/// Public: no token needed. The email is trimmed and lower-cased and must not be registered
/// yet in any case; the password must be 8 to 128 characters and not among the most common
/// passwords. Registrations from one client address are limited (429 with `Retry-After`).
/// No token comes back: log in next.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    security(),
    request_body = CredentialsRequest,
    responses(
        (status = 201, description = "Account created", body = UserResponse),
        JsonBodyErrors,
        (status = 409, description = "Email already registered (in any case)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Invalid email, or a password too short, too long or too common", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many registrations from this address", body = Problem, content_type = PROBLEM_JSON,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        DatabaseUnavailable,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::parse_new(body.password));
    let (Some(email), Some(password)) = (email, password) else {
        return Err(errors.into());
    };
    let address_attempt = count_attempt(&state, state.registration_limit, address).await?;
    let hash = state.hasher.hash(password).await.map_err(hashing_failed)?;
    address_attempt.keep();
    let client = state.database().await?;
    let user = store::users::insert(&client, &email, &hash).await?;
    Ok((StatusCode::CREATED, axum::Json(UserResponse::from(user))).into_response())
}

/// Exchange email and password for an access token.
///
/// Public: no token needed. The answer is a bearer JWT that works for `expires_in` seconds
/// (there is no refresh token). An unknown email and a wrong password get the same 401 in
/// the same time. Too many failed logins for the account (10 in 15 minutes) or from the
/// client address are refused with 429 and `Retry-After`, without checking the password.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    security(),
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        JsonBodyErrors,
        (status = 401, description = "Unknown email or wrong password (the same answer, in the same time)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Missing or mistyped fields", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed logins for this account (10 in 15 minutes) or from this address; the password is not checked", body = Problem, content_type = PROBLEM_JSON,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        DatabaseUnavailable,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<CredentialsRequest>,
) -> Result<Response, ApiError> {
    // Both counts first (API.md "Account security"): past either limit the answer is 429,
    // whether or not the password is right, and no hash is computed.
    let rejected = |reason| state.metrics.login_rejected(reason);
    let address_attempt = count_attempt(&state, state.login_limit, address)
        .await
        .inspect_err(|error| match error {
            ApiError::TooManyRequests { .. } => rejected(LoginRejection::AddressThrottled),
            ApiError::Busy => rejected(LoginRejection::HashingBusy),
            _ => {}
        })?;
    let email = Email::normalize_for_lookup(&body.email);
    // An address PostgreSQL cannot even store (NUL) can have no account: it gets the same
    // Argon2 work and the same 401 as any unknown one, without touching the database.
    let storable = !email.contains('\0');
    let attempt = if storable {
        let client = state.database().await?;
        // The connection goes back to the pool before hashing, at the end of this block.
        store::login_failures::count_login(&client, &email).await?
    } else {
        store::login_failures::LoginAttempt::default()
    };
    if let Some(retry) = attempt.retry_after_secs {
        rejected(LoginRejection::AccountLocked);
        // Not a failure of this address's: given back before the answer, not after it.
        address_attempt.give_back().await?;
        return Err(too_many(retry));
    }
    let (account, hash) = match attempt.account {
        Some((id, hash, version)) => (Some((id, version)), Some(hash)),
        None => (None, None),
    };
    let verified = state
        .hasher
        .verify(Password::offered(body.password), hash)
        .await
        .map_err(|error| {
            if matches!(error, HashError::QueueFull) {
                rejected(LoginRejection::HashingBusy);
            }
            hashing_failed(error)
        })?;
    let (user_id, token_version) = match account {
        Some(account) if verified => account,
        _ => {
            rejected(match account {
                Some(_) => LoginRejection::WrongPassword,
                None => LoginRejection::UnknownAccount,
            });
            address_attempt.keep();
            if storable {
                let client = state.database().await?;
                store::login_failures::purge_expired(&client).await?;
            }
            return Err(ApiError::Unauthorized("incorrect email or password"));
        }
    };
    let client = state.database().await?;
    store::login_failures::clear(&client, &email).await?;
    drop(client);
    address_attempt.give_back().await?;
    let issued = state
        .tokens
        .issue(user_id, token_version)
        .map_err(internal)?;
    let body = TokenResponse {
        access_token: issued.token,
        token_type: "bearer",
        expires_in: issued.expires_in,
    };
    Ok(axum::Json(body).into_response())
}

/// The caller's own account.
///
/// The account the bearer token was issued to.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token, or a deleted account", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn get_me(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    let client = state.database().await?;
    let account = store::users::current(&client, &user.caller()).await?;
    Ok(axum::Json(UserResponse::from(account)).into_response())
}

/// Log out: the token presented stops working at once.
///
/// Only this token is revoked: the caller's other tokens keep working until they expire
/// (`POST /auth/logout-all` revokes them all).
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<StatusCode, ApiError> {
    let client = state.database().await?;
    store::users::revoke_token(&client, &user.caller(), user.expires_at).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere: every token issued to the caller so far stops working.
///
/// The token presented is revoked too; log in again for a new one.
#[utoipa::path(
    post, path = "/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every token issued so far is revoked"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = Problem, content_type = PROBLEM_JSON),
        DatabaseUnavailable,
    )
)]
pub async fn logout_all(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<StatusCode, ApiError> {
    let client = state.database().await?;
    store::users::bump_token_version(&client, &user.caller()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password; every earlier token stops working (log in again).
///
/// The current password is checked like a login: a wrong one counts as a failed login, and
/// the account's and the address's lock-outs apply (429 with `Retry-After`). The new password
/// follows the registration rules. On success every token issued so far is revoked, the
/// presented one included.
#[utoipa::path(
    post, path = "/auth/password", tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; every earlier token is revoked"),
        JsonBodyErrors,
        (status = 401, description = "Bad token, or a wrong current password (counted as a failed login)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "The new password is too short, too long or too common", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = PROBLEM_JSON,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        DatabaseUnavailable,
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let new_password = Password::parse_new(body.new_password)
        .map_err(|message| ValidationErrors::single("new_password", message))?;
    confirm_password(&state, &user, address, body.current_password).await?;
    let hash = state
        .hasher
        .hash(new_password)
        .await
        .map_err(hashing_failed)?;
    let client = state.database().await?;
    store::users::change_password(&client, &user.caller(), &hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the caller's account and all its tasks (password-confirmed).
///
/// The password is checked like a login: a wrong one counts as a failed login, and the
/// lock-outs apply (429 with `Retry-After`). On success the account and every one of its
/// tasks are gone, and its tokens stop working.
#[utoipa::path(
    delete, path = "/auth/me", tag = "auth",
    security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "The account and all its tasks are gone"),
        JsonBodyErrors,
        (status = 401, description = "Bad token, or a wrong password (counted as a failed login)", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Missing or mistyped password", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = PROBLEM_JSON,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        DatabaseUnavailable,
    )
)]
pub async fn delete_me(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<DeleteAccountRequest>,
) -> Result<StatusCode, ApiError> {
    confirm_password(&state, &user, address, body.password).await?;
    let client = state.database().await?;
    store::users::delete(&client, &user.caller()).await?;
    Ok(StatusCode::NO_CONTENT)
}
