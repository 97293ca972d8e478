//! The `users` table, and the checks that an access token is still current.

use deadpool_postgres::Client;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, StoreError};
use crate::auth::throttle::{ACCOUNT_MAX_FAILURES, ACCOUNT_WINDOW};
use crate::db::DbError;
use crate::domain::Email;

/// The unique index that makes addresses unique whatever their case (migration V1).
const EMAIL_UNIQUE: &str = "users_email_key";

/// A token is current when its account exists at the token's version and the token was
/// not logged out. `$1` user id, `$2` token version, `$3` token id.
macro_rules! token_is_current {
    () => {
        "u.id = $1 AND u.token_version = $2 \
         AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $3)"
    };
}

/// Seconds until a locked address may try again (NULL when not locked), from a
/// `login_failures f` row joined within its window. `$n` placeholders are given as
/// arguments: (max failures, window seconds).
macro_rules! lockout {
    ($max:literal, $window:literal) => {
        concat!(
            "CASE WHEN f.failures >= ",
            $max,
            " THEN greatest(1, ceil(extract(epoch FROM ",
            "f.window_started_at + make_interval(secs => ",
            $window,
            ") - now())))::int8 END"
        )
    };
}

const INSERT: &str = "INSERT INTO users (email, password_hash) VALUES ($1, $2) \
                      RETURNING id, email, created_at";

const OPEN_SESSION: &str = concat!(
    "SELECT set_config('taskapi.user_id', u.id::text, true) FROM users u WHERE ",
    token_is_current!()
);

const CURRENT_USER: &str = concat!(
    "SELECT u.id, u.email, u.created_at FROM users u WHERE ",
    token_is_current!()
);

// Always one row: the account (if any) and the address's lock-out (if any).
const LOGIN_LOOKUP: &str = concat!(
    "SELECT u.id, u.password_hash, u.token_version, coalesce(f.failures, 0), ",
    lockout!("$2", "$3"),
    " FROM (SELECT $1::text AS email) AS attempt \
     LEFT JOIN users u ON lower(u.email) = attempt.email \
     LEFT JOIN login_failures f ON f.email = attempt.email \
          AND f.window_started_at > now() - make_interval(secs => $3)"
);

const CALLER_SECRET: &str = concat!(
    "SELECT u.email, u.password_hash, ",
    lockout!("$4", "$5"),
    " FROM users u LEFT JOIN login_failures f ON f.email = u.email \
          AND f.window_started_at > now() - make_interval(secs => $5) \
     WHERE ",
    token_is_current!()
);

const REVOKE_TOKEN: &str = concat!(
    "INSERT INTO revoked_tokens (jti, expires_at) \
     SELECT $3, to_timestamp($4) FROM users u WHERE ",
    token_is_current!(),
    " ON CONFLICT (jti) DO NOTHING"
);
const PURGE_REVOKED: &str = "DELETE FROM revoked_tokens WHERE expires_at < now()";

const BUMP_TOKEN_VERSION: &str = concat!(
    "UPDATE users u SET token_version = token_version + 1 WHERE ",
    token_is_current!()
);

const CHANGE_PASSWORD: &str = "UPDATE users SET password_hash = $3, token_version = token_version + 1 \
     WHERE id = $1 AND token_version = $2";

const DELETE: &str = "DELETE FROM users WHERE id = $1 AND token_version = $2";

pub(super) const STATEMENTS: [&str; 10] = [
    INSERT,
    OPEN_SESSION,
    CURRENT_USER,
    LOGIN_LOOKUP,
    CALLER_SECRET,
    REVOKE_TOKEN,
    PURGE_REVOKED,
    BUMP_TOKEN_VERSION,
    CHANGE_PASSWORD,
    DELETE,
];

/// A user as the API shows it.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub created_at: OffsetDateTime,
}

impl TryFrom<tokio_postgres::Row> for UserRow {
    type Error = tokio_postgres::Error;

    fn try_from(row: tokio_postgres::Row) -> Result<Self, Self::Error> {
        Ok(Self {
            id: row.try_get(0)?,
            email: row.try_get(1)?,
            created_at: row.try_get(2)?,
        })
    }
}

/// What a login attempt needs to know about an address.
#[derive(Debug, Default)]
pub struct LoginLookup {
    /// The account's id, password hash and token version, if there is one.
    pub account: Option<(Uuid, String, i32)>,
    /// Failures counted in the current window.
    pub failures: i32,
    /// Set while the address is locked out.
    pub retry_after_secs: Option<i64>,
}

/// The caller's address and password hash, for a password confirmation.
#[derive(Debug)]
pub struct CallerSecret {
    pub email: String,
    pub password_hash: String,
    pub retry_after_secs: Option<i64>,
}

fn window_secs() -> f64 {
    ACCOUNT_WINDOW.as_secs_f64()
}

fn caller_params(caller: &Caller) -> [&(dyn tokio_postgres::types::ToSql + Sync); 3] {
    [&caller.user_id, &caller.token_version, &caller.token_id]
}

/// Creates an account; `EmailTaken` when the address (in any case) is registered.
pub async fn insert(
    client: &Client,
    email: &Email,
    password_hash: &str,
) -> Result<UserRow, StoreError> {
    let statement = client.prepare_cached(INSERT).await?;
    match client
        .query_one(&statement, &[&email.as_str(), &password_hash])
        .await
    {
        Ok(row) => Ok(UserRow::try_from(row)?),
        Err(error) => match DbError::from(error) {
            DbError::UniqueViolation(constraint) if constraint == EMAIL_UNIQUE => {
                Err(StoreError::EmailTaken)
            }
            other => Err(other.into()),
        },
    }
}

/// Checks the caller's token is current and, if so, sets the row-level-security identity
/// for the current transaction. `false`: the token is no longer current.
pub(super) async fn open_session(client: &Client, caller: &Caller) -> Result<bool, StoreError> {
    let statement = client.prepare_cached(OPEN_SESSION).await?;
    let rows = client.query(&statement, &caller_params(caller)).await?;
    Ok(!rows.is_empty())
}

/// The caller's account, if their token is still current.
pub async fn current(client: &Client, caller: &Caller) -> Result<UserRow, StoreError> {
    let statement = client.prepare_cached(CURRENT_USER).await?;
    match client.query_opt(&statement, &caller_params(caller)).await? {
        Some(row) => Ok(UserRow::try_from(row)?),
        None => Err(StoreError::CallerGone),
    }
}

/// The account behind a normalised address, and the address's lock-out.
pub async fn login_lookup(
    client: &Client,
    normalized_email: &str,
) -> Result<LoginLookup, StoreError> {
    let statement = client.prepare_cached(LOGIN_LOOKUP).await?;
    let row = client
        .query_one(
            &statement,
            &[&normalized_email, &ACCOUNT_MAX_FAILURES, &window_secs()],
        )
        .await?;
    let id: Option<Uuid> = row.try_get(0)?;
    let hash: Option<String> = row.try_get(1)?;
    let version: Option<i32> = row.try_get(2)?;
    let account = match (id, hash, version) {
        (Some(id), Some(hash), Some(version)) => Some((id, hash, version)),
        _ => None,
    };
    Ok(LoginLookup {
        account,
        failures: row.try_get(3)?,
        retry_after_secs: row.try_get(4)?,
    })
}

/// The caller's address, hash and lock-out, if their token is still current.
pub async fn caller_secret(client: &Client, caller: &Caller) -> Result<CallerSecret, StoreError> {
    let statement = client.prepare_cached(CALLER_SECRET).await?;
    let [id, version, jti] = caller_params(caller);
    let row = client
        .query_opt(
            &statement,
            &[id, version, jti, &ACCOUNT_MAX_FAILURES, &window_secs()],
        )
        .await?
        .ok_or(StoreError::CallerGone)?;
    Ok(CallerSecret {
        email: row.try_get(0)?,
        password_hash: row.try_get(1)?,
        retry_after_secs: row.try_get(2)?,
    })
}

/// Logs out one token: remembered as revoked until it would have expired. Expired
/// revocations are purged in the same round trip.
pub async fn revoke_token(
    client: &Client,
    caller: &Caller,
    expires_at: i64,
) -> Result<(), StoreError> {
    let (revoke, purge) = tokio::join!(
        client.prepare_cached(REVOKE_TOKEN),
        client.prepare_cached(PURGE_REVOKED)
    );
    let (revoke, purge) = (revoke?, purge?);
    let [id, version, jti] = caller_params(caller);
    let expires_at = expires_at as f64;
    let params = [id, version, jti, &expires_at];
    let (revoked, purged) = tokio::join!(
        client.execute(&revoke, &params),
        client.execute(&purge, &[])
    );
    purged?;
    match revoked? {
        1 => Ok(()),
        _ => Err(StoreError::CallerGone),
    }
}

/// Logs out every token issued so far.
pub async fn bump_token_version(client: &Client, caller: &Caller) -> Result<(), StoreError> {
    let statement = client.prepare_cached(BUMP_TOKEN_VERSION).await?;
    match client.execute(&statement, &caller_params(caller)).await? {
        1 => Ok(()),
        _ => Err(StoreError::CallerGone),
    }
}

/// Sets a new password hash and logs out every token issued so far.
pub async fn change_password(
    client: &Client,
    caller: &Caller,
    password_hash: &str,
) -> Result<(), StoreError> {
    let statement = client.prepare_cached(CHANGE_PASSWORD).await?;
    let changed = client
        .execute(
            &statement,
            &[&caller.user_id, &caller.token_version, &password_hash],
        )
        .await?;
    match changed {
        1 => Ok(()),
        _ => Err(StoreError::CallerGone),
    }
}

/// Deletes the account; its tasks go with it (ON DELETE CASCADE), in the same statement.
pub async fn delete(client: &Client, caller: &Caller) -> Result<(), StoreError> {
    let statement = client.prepare_cached(DELETE).await?;
    match client
        .execute(&statement, &[&caller.user_id, &caller.token_version])
        .await?
    {
        1 => Ok(()),
        _ => Err(StoreError::CallerGone),
    }
}
