//! The `users` table.

use deadpool_postgres::Client;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::db::DbError;
use crate::domain::Email;

/// The unique index that makes addresses unique whatever their case (migration V1).
const EMAIL_UNIQUE: &str = "users_email_key";

const INSERT: &str = "INSERT INTO users (email, password_hash) VALUES ($1, $2) \
                      RETURNING id, email, created_at";
const BY_ID: &str = "SELECT id, email, created_at FROM users WHERE id = $1";
const CREDENTIALS_BY_EMAIL: &str = "SELECT id, password_hash FROM users WHERE lower(email) = $1";
const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";

pub(super) const STATEMENTS: [&str; 4] = [INSERT, BY_ID, CREDENTIALS_BY_EMAIL, EXISTS];

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

pub async fn by_id(client: &Client, id: Uuid) -> Result<Option<UserRow>, StoreError> {
    let statement = client.prepare_cached(BY_ID).await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    Ok(row.map(UserRow::try_from).transpose()?)
}

/// The id and password hash of the account with this (normalised) address.
pub async fn credentials_by_email(
    client: &Client,
    normalized_email: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    let statement = client.prepare_cached(CREDENTIALS_BY_EMAIL).await?;
    let row = client.query_opt(&statement, &[&normalized_email]).await?;
    Ok(row
        .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?)
}

pub async fn exists(client: &Client, id: Uuid) -> Result<bool, StoreError> {
    let statement = client.prepare_cached(EXISTS).await?;
    Ok(client.query_one(&statement, &[&id]).await?.try_get(0)?)
}
