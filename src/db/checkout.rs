//! Connections checked out of the pool, counted per request, so that the request deadline
//! (`http::deadline`) never abandons a request while one of its statements may still
//! commit: a 503 then could hide a committed write. Statements themselves are bounded by
//! the server (`statement_timeout`, `lock_timeout`, set on every pooled connection), so
//! waiting for them is waiting a bounded time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::{Client, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::statements::{Ready, StatementMode};
use super::{DbError, Sending};

tokio::task_local! {
    static HELD: Arc<AtomicUsize>;
}

/// A pooled connection; while it exists, its request counts as holding one.
#[derive(Debug)]
pub struct Connection {
    client: Client,
    sending: Arc<Sending>,
    held: Option<Arc<AtomicUsize>>,
}

impl std::ops::Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(held) = &self.held {
            held.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Takes a connection from the pool (waiting at most the pool's wait timeout).
pub(super) async fn checkout(pool: &Pool, sending: &Arc<Sending>) -> Result<Connection, DbError> {
    let client = pool.get().await?;
    let held = HELD.try_with(Arc::clone).ok();
    if let Some(held) = &held {
        held.fetch_add(1, Ordering::SeqCst);
    }
    Ok(Connection {
        client,
        sending: sending.clone(),
        held,
    })
}

/// Statements by their text, sent the pool's way (`db::statements`): `sql` must be one of
/// the statements the pool was made with.
impl Connection {
    /// `sql`, ready to send without waiting, or `None` if it would need a round trip first
    /// (it was not prepared when the connection opened). Polling `prepare_cached` once is
    /// enough to know: a cached statement is returned on the first poll.
    pub fn ready_now(&self, sql: &'static str) -> Result<Option<Ready<'_>>, DbError> {
        match self.sending.mode {
            StatementMode::Prepared => {
                let mut prepare = std::pin::pin!(self.client.prepare_cached(sql));
                match prepare
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
                {
                    std::task::Poll::Ready(statement) => Ok(Some(Ready::Named(statement?))),
                    std::task::Poll::Pending => Ok(None),
                }
            }
            StatementMode::Unnamed => self.unnamed(sql).map(Some),
        }
    }

    /// `sql`, ready to send, prepared first if need be.
    pub async fn ready(&self, sql: &'static str) -> Result<Ready<'_>, DbError> {
        match self.sending.mode {
            StatementMode::Prepared => Ok(Ready::Named(self.client.prepare_cached(sql).await?)),
            StatementMode::Unnamed => self.unnamed(sql),
        }
    }

    /// Whether a transaction's statements go out gathered, closed by one `Sync`
    /// (`db::pipeline`): with prepared statements and no transaction pooler in between. A
    /// pooler's transactions need `begin`'s timeouts, and unnamed statements need their
    /// `Parse` and row description, which the gathered pipeline does not send.
    pub fn gathers(&self) -> bool {
        matches!(self.sending.pooled_begin.get(), Some(None))
    }

    /// The statements that open a transaction on this connection.
    pub fn begin(&self) -> &str {
        self.sending
            .pooled_begin
            .get()
            .and_then(Option::as_deref)
            .unwrap_or("BEGIN")
    }

    fn unnamed(&self, sql: &'static str) -> Result<Ready<'_>, DbError> {
        let types = self.sending.types.get().ok_or_else(|| {
            DbError::Other("unnamed statements used before Pool::ready_statements".into())
        })?;
        Ready::unnamed(types, sql)
    }

    pub async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.ready(sql).await?.query(&self.client, params).await
    }

    pub async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        self.ready(sql).await?.query_opt(&self.client, params).await
    }

    pub async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        self.ready(sql).await?.query_one(&self.client, params).await
    }

    pub async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        self.ready(sql).await?.execute(&self.client, params).await
    }
}

/// How many connections the future run by `tracked` holds right now.
#[derive(Debug, Clone, Default)]
pub struct Holdings(Arc<AtomicUsize>);

impl Holdings {
    pub fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// Runs `future` with its connections counted in the returned `Holdings`.
pub fn tracked<F: Future>(future: F) -> (impl Future<Output = F::Output>, Holdings) {
    let holdings = Holdings::default();
    (HELD.scope(holdings.0.clone(), future), holdings)
}
