//! The `login_failures` table: login attempts per normalised address (see `auth::lockout`
//! for the policy). An attempt is counted *before* its password is checked, in the one
//! statement that also reads the account, and only while the count is under the limit, so
//! that "10 in 15 minutes" means ten at any concurrency: of any burst, ten are counted and
//! checked, the rest are refused before any hashing and change nothing. A success clears
//! the count. Rows whose window has passed are purged as failures arrive.

use uuid::Uuid;

use super::{Caller, StoreError};
use crate::auth::lockout::{ACCOUNT_MAX_FAILURES, ACCOUNT_WINDOW};
use crate::db::Connection;

/// Counts one attempt for the address (the first column of `$source`) within a window of
/// `$3` seconds, unless `$2` attempts are already counted in it (`store::count_in_window!`).
macro_rules! count_attempt {
    ($source:literal) => {
        count_in_window!(
            into "login_failures" ("email", "failures") from $source,
            limit "$2", window "$3", returning "failures"
        )
    };
}

/// When the attempt was not counted (the address is at its limit): the seconds until the
/// window of the row `f` (read from the statement's snapshot, as it was) ends.
macro_rules! retry_after {
    () => {
        "CASE WHEN NOT EXISTS (SELECT 1 FROM c) THEN coalesce(greatest(1, ceil(extract(epoch \
             FROM f.window_started_at + make_interval(secs => $3) - now())))::int8, 1) END"
    };
}

// Always one row: whether the attempt was counted, and the account, if there is one.
const COUNT_LOGIN: &str = concat!(
    "WITH c AS (",
    count_attempt!("VALUES ($1, 1, now())"),
    ") SELECT u.id, u.password_hash, u.token_version, ",
    retry_after!(),
    " FROM (SELECT $1::text AS email) AS attempt \
     LEFT JOIN users u ON lower(u.email) = attempt.email \
     LEFT JOIN login_failures f ON f.email = attempt.email"
);

// One row when the token (`$1` user id, `$4` token version, `$5` token id) is current.
const COUNT_CONFIRMATION: &str = concat!(
    "WITH me AS (SELECT u.email, u.password_hash FROM users u WHERE u.id = $1 \
         AND u.token_version = $4 \
         AND NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $5)), \
     c AS (",
    count_attempt!("SELECT me.email, 1, now() FROM me"),
    ") SELECT me.email, me.password_hash, ",
    retry_after!(),
    " FROM me LEFT JOIN login_failures f ON f.email = me.email"
);

const PURGE_EXPIRED: &str =
    "DELETE FROM login_failures WHERE window_started_at < now() - make_interval(secs => $1)";
const CLEAR: &str = "DELETE FROM login_failures WHERE email = $1";

pub(super) const STATEMENTS: [&str; 4] = [COUNT_LOGIN, COUNT_CONFIRMATION, PURGE_EXPIRED, CLEAR];

fn window_secs() -> f64 {
    ACCOUNT_WINDOW.as_secs_f64()
}

/// A login attempt, counted.
#[derive(Debug, Default)]
pub struct LoginAttempt {
    /// The account's id, password hash and token version, if there is one.
    pub account: Option<(Uuid, String, i32)>,
    /// Set when this attempt is past the limit: refuse it without checking the password.
    pub retry_after_secs: Option<i64>,
}

/// A password confirmation (password change, account deletion), counted like a login.
#[derive(Debug)]
pub struct ConfirmationAttempt {
    pub email: String,
    pub password_hash: String,
    pub retry_after_secs: Option<i64>,
}

/// Counts a login attempt for `normalized_email` and reads its account.
pub async fn count_login(
    client: &Connection,
    normalized_email: &str,
) -> Result<LoginAttempt, StoreError> {
    let row = client
        .query_one(
            COUNT_LOGIN,
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
    Ok(LoginAttempt {
        account,
        retry_after_secs: row.try_get(3)?,
    })
}

/// Counts a password confirmation by `caller`, if their token is still current.
pub async fn count_confirmation(
    client: &Connection,
    caller: &Caller,
) -> Result<ConfirmationAttempt, StoreError> {
    let row = client
        .query_opt(
            COUNT_CONFIRMATION,
            &[
                &caller.user_id,
                &ACCOUNT_MAX_FAILURES,
                &window_secs(),
                &caller.token_version,
                &caller.token_id,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(super::users::why_not_current(client, caller).await);
    };
    Ok(ConfirmationAttempt {
        email: row.try_get(0)?,
        password_hash: row.try_get(1)?,
        retry_after_secs: row.try_get(2)?,
    })
}

/// A wrong password: the attempt is already counted; expired windows are purged.
pub async fn purge_expired(client: &Connection) -> Result<(), StoreError> {
    client.execute(PURGE_EXPIRED, &[&window_secs()]).await?;
    Ok(())
}

/// A right password clears the address's count.
pub async fn clear(client: &Connection, email: &str) -> Result<(), StoreError> {
    client.execute(CLEAR, &[&email]).await?;
    Ok(())
}
