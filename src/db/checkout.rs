//! Connections checked out of the pool, counted per request, so that the request deadline
//! (`http::deadline`) never abandons a request while one of its statements may still
//! commit: a 503 then could hide a committed write. Statements themselves are bounded by
//! the server (`statement_timeout`, `lock_timeout`, set on every pooled connection), so
//! waiting for them is waiting a bounded time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::{Client, Pool};

use super::DbError;

tokio::task_local! {
    static HELD: Arc<AtomicUsize>;
}

/// A pooled connection; while it exists, its request counts as holding one.
#[derive(Debug)]
pub struct Connection {
    client: Client,
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
pub async fn checkout(pool: &Pool) -> Result<Connection, DbError> {
    let client = pool.get().await?;
    let held = HELD.try_with(Arc::clone).ok();
    if let Some(held) = &held {
        held.fetch_add(1, Ordering::SeqCst);
    }
    Ok(Connection { client, held })
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
