//! The `users` table, and the checks that an access token is still current.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, CallerTransaction, StoreError};
use crate::db::{Connection, DbError};
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

const INSERT: &str = "INSERT INTO users (email, password_hash) VALUES ($1, $2) \
                      RETURNING id, email, created_at";

const OPEN_SESSION: &str = concat!(
    "SELECT set_config('taskapi.user_id', u.id::text, true) FROM users u WHERE ",
    token_is_current!()
);

// For a transaction that writes tasks or projects: the same check and identity, and the
// account's change counter taken (its row locked until the transaction ends) and remembered
// for the triggers, in the same statement (migration V5).
const OPEN_WRITING_SESSION: &str = concat!(
    "UPDATE users u SET change_seq = u.change_seq + 1 WHERE ",
    token_is_current!(),
    " RETURNING set_config('taskapi.user_id', u.id::text, true), \
       set_config('taskapi.change_seq', u.id::text || '/' || u.change_seq, true)"
);

const CURRENT_USER: &str = concat!(
    "SELECT u.id, u.email, u.created_at FROM users u WHERE ",
    token_is_current!()
);

// Asked only after a token was found not current: was its account deleted, or the token
// revoked? Either way the answer is a 401; its detail says which.
const ACCOUNT_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";

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
    OPEN_WRITING_SESSION,
    CURRENT_USER,
    ACCOUNT_EXISTS,
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

fn caller_params(caller: &Caller) -> [&(dyn tokio_postgres::types::ToSql + Sync); 3] {
    [&caller.user_id, &caller.token_version, &caller.token_id]
}

/// Creates an account; `EmailTaken` when the address (in any case) is registered.
pub async fn insert(
    client: &Connection,
    email: &Email,
    password_hash: &str,
) -> Result<UserRow, StoreError> {
    match client
        .query_one(INSERT, &[&email.as_str(), &password_hash])
        .await
    {
        Ok(row) => Ok(UserRow::try_from(row)?),
        Err(DbError::UniqueViolation(constraint)) if constraint == EMAIL_UNIQUE => {
            Err(StoreError::EmailTaken)
        }
        Err(other) => Err(other.into()),
    }
}

/// Checks the caller's token is current and, if so, sets the row-level-security identity
/// for the current transaction. `false`: the token is no longer current.
pub(super) async fn open_session(
    transaction: &CallerTransaction<'_>,
    caller: &Caller,
    writes: bool,
) -> Result<bool, StoreError> {
    let sql = if writes {
        OPEN_WRITING_SESSION
    } else {
        OPEN_SESSION
    };
    let rows = transaction.query(sql, &caller_params(caller)).await?;
    Ok(!rows.is_empty())
}

/// Why the caller's token is not current: its account is gone, or the token was revoked.
/// (A failure to find out is reported as such.)
pub async fn why_not_current(client: &Connection, caller: &Caller) -> StoreError {
    let exists = async {
        let row = client.query_one(ACCOUNT_EXISTS, &[&caller.user_id]).await?;
        Ok::<_, StoreError>(row.try_get::<_, bool>(0)?)
    };
    match exists.await {
        Ok(true) => StoreError::TokenRevoked,
        Ok(false) => StoreError::AccountGone,
        Err(error) => error,
    }
}

/// The caller's account, if their token is still current.
pub async fn current(client: &Connection, caller: &Caller) -> Result<UserRow, StoreError> {
    match client
        .query_opt(CURRENT_USER, &caller_params(caller))
        .await?
    {
        Some(row) => Ok(UserRow::try_from(row)?),
        None => Err(why_not_current(client, caller).await),
    }
}

/// Logs out one token: remembered as revoked until it would have expired. Expired
/// revocations are purged in the same round trip.
pub async fn revoke_token(
    client: &Connection,
    caller: &Caller,
    expires_at: i64,
) -> Result<(), StoreError> {
    let [id, version, jti] = caller_params(caller);
    let expires_at = expires_at as f64;
    let params = [id, version, jti, &expires_at];
    let (revoked, purged) = tokio::join!(
        client.execute(REVOKE_TOKEN, &params),
        client.execute(PURGE_REVOKED, &[])
    );
    purged?;
    match revoked? {
        1 => Ok(()),
        _ => Err(why_not_current(client, caller).await),
    }
}

/// Logs out every token issued so far.
pub async fn bump_token_version(client: &Connection, caller: &Caller) -> Result<(), StoreError> {
    match client
        .execute(BUMP_TOKEN_VERSION, &caller_params(caller))
        .await?
    {
        1 => Ok(()),
        _ => Err(why_not_current(client, caller).await),
    }
}

/// Sets a new password hash and logs out every token issued so far.
pub async fn change_password(
    client: &Connection,
    caller: &Caller,
    password_hash: &str,
) -> Result<(), StoreError> {
    let changed = client
        .execute(
            CHANGE_PASSWORD,
            &[&caller.user_id, &caller.token_version, &password_hash],
        )
        .await?;
    match changed {
        1 => Ok(()),
        _ => Err(why_not_current(client, caller).await),
    }
}

/// Deletes the account; its tasks go with it (ON DELETE CASCADE), in the same statement.
pub async fn delete(client: &Connection, caller: &Caller) -> Result<(), StoreError> {
    match client
        .execute(DELETE, &[&caller.user_id, &caller.token_version])
        .await?
    {
        1 => Ok(()),
        _ => Err(why_not_current(client, caller).await),
    }
}
