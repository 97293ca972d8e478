//! How statements reach the server (`DATABASE_PREPARED_STATEMENTS`).
//!
//! By default every statement is prepared (named) once per connection, when the connection
//! opens: a request then sends only `Bind`/`Execute`, and the server parses and plans nothing.
//! A pooler in transaction mode that does not track prepared statements (PgBouncer before
//! 1.21, or with `max_prepared_statements = 0`) breaks that: a client's next transaction may
//! run on another server connection, where its names are unknown or name someone else's
//! statement. For such a pooler the statements are sent **unnamed** instead: `Parse`, `Bind`,
//! `Execute` and `Sync` in one message, with the parameter types given explicitly, so a
//! statement still costs no extra round trip (tokio-postgres's `query_typed`); the server
//! parses and plans it every time (docs/PERFORMANCE.md has the price).
//!
//! The parameter types are learned once, at start-up, by preparing every statement inside
//! one transaction (a transaction pooler keeps a transaction on one server connection) and
//! closing each before it commits, so nothing named is left behind on any server connection.

use std::collections::HashMap;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, Statement};

use super::DbError;

/// How statements are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// Named, prepared once per connection (the default).
    #[default]
    Prepared,
    /// Unnamed, parsed with every execution: for transaction poolers that do not keep
    /// prepared statements.
    Unnamed,
}

/// The parameter types of every statement the application issues, for unnamed sending.
#[derive(Debug, Default)]
pub struct ParameterTypes(HashMap<&'static str, Box<[Type]>>);

impl ParameterTypes {
    /// Learns the types of `statements` on `client`, in one transaction that leaves nothing
    /// behind. A statement that no longer matches the schema fails here, at start-up.
    pub async fn learn(
        client: &tokio_postgres::Client,
        statements: impl IntoIterator<Item = &'static str>,
    ) -> Result<Self, tokio_postgres::Error> {
        client.batch_execute("BEGIN").await?;
        let mut types = HashMap::new();
        let learned: Result<(), tokio_postgres::Error> = async {
            for sql in statements {
                // Dropped at the end of this iteration: its `Close` goes out before `COMMIT`.
                let statement = client.prepare(sql).await?;
                types.insert(sql, statement.params().into());
            }
            Ok(())
        }
        .await;
        let ended = client
            .batch_execute(if learned.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            })
            .await;
        learned?;
        ended?;
        Ok(Self(types))
    }

    fn get(&self, sql: &'static str) -> Option<&[Type]> {
        self.0.get(sql).map(|types| &types[..])
    }
}

/// A statement that can be sent at once, without a round trip to prepare it first.
#[derive(Debug)]
pub enum Ready<'a> {
    Named(Statement),
    Unnamed {
        sql: &'static str,
        types: &'a [Type],
    },
}

impl<'a> Ready<'a> {
    /// The unnamed form of `sql`, if its types were learned.
    pub fn unnamed(types: &'a ParameterTypes, sql: &'static str) -> Result<Self, DbError> {
        let types = types.get(sql).ok_or_else(|| {
            DbError::Other(format!(
                "statement not learned at start-up (add it to store::all_statements): {sql}"
            ))
        })?;
        Ok(Self::Unnamed { sql, types })
    }

    pub async fn query(
        &self,
        client: &tokio_postgres::Client,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        match self {
            Self::Named(statement) => Ok(client.query(statement, params).await?),
            Self::Unnamed { sql, types } => {
                Ok(client.query_typed(sql, &typed(sql, params, types)?).await?)
            }
        }
    }

    pub async fn query_opt(
        &self,
        client: &tokio_postgres::Client,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        match self {
            Self::Named(statement) => Ok(client.query_opt(statement, params).await?),
            Self::Unnamed { sql, types } => Ok(client
                .query_typed_opt(sql, &typed(sql, params, types)?)
                .await?),
        }
    }

    pub async fn query_one(
        &self,
        client: &tokio_postgres::Client,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        match self {
            Self::Named(statement) => Ok(client.query_one(statement, params).await?),
            Self::Unnamed { sql, types } => Ok(client
                .query_typed_one(sql, &typed(sql, params, types)?)
                .await?),
        }
    }

    pub async fn execute(
        &self,
        client: &tokio_postgres::Client,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        match self {
            Self::Named(statement) => Ok(client.execute(statement, params).await?),
            Self::Unnamed { sql, types } => Ok(client
                .execute_typed(sql, &typed(sql, params, types)?)
                .await?),
        }
    }
}

/// Each parameter beside its type. A count that does not match is a bug: refused here
/// rather than sent for the server to refuse.
fn typed<'p>(
    sql: &str,
    params: &[&'p (dyn ToSql + Sync)],
    types: &[Type],
) -> Result<Vec<(&'p (dyn ToSql + Sync), Type)>, DbError> {
    if params.len() != types.len() {
        return Err(DbError::Other(format!(
            "{} parameters given, {} expected: {sql}",
            params.len(),
            types.len()
        )));
    }
    Ok(params.iter().copied().zip(types.iter().cloned()).collect())
}
