//! One transaction's statements, gathered while their futures are first polled and sent
//! together with a single `Sync` (`tokio_postgres::Pipeline`, the one addition in
//! `vendor/tokio-postgres`). Without a `BEGIN`, PostgreSQL runs everything up to that `Sync`
//! as one implicit transaction, commits it at the `Sync` and answers in one write; if a
//! statement fails, it skips the rest and rolls back.
//!
//! Against the driver's own pipelining (a `Sync` after every statement, inside an explicit
//! `BEGIN` … `COMMIT`), a request costs the server no `BEGIN` or `COMMIT` to parse and run
//! and one answer instead of one per statement: measured in docs/PERFORMANCE.md
//! ("One `Sync` per transaction").

use std::sync::Mutex;

use tokio::sync::oneshot;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Pipeline, PipelineOutcome, Row, Statement};

use super::DbError;

/// What a statement of the pipeline did.
#[derive(Debug)]
pub struct Ran {
    pub rows: Vec<Row>,
    pub rows_affected: u64,
}

type Outcome = Result<Ran, DbError>;

/// The statements gathered so far, and who waits for each one's outcome.
pub struct Gathering {
    state: Mutex<Option<Gathered>>,
}

impl std::fmt::Debug for Gathering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gathering").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Gathered {
    pipeline: Pipeline,
    waiting: Vec<oneshot::Sender<Outcome>>,
}

/// A new, unsent pipeline (no state at all means "already sent").
impl Default for Gathering {
    fn default() -> Self {
        Self {
            state: Mutex::new(Some(Gathered::default())),
        }
    }
}

impl Gathering {
    /// Adds `statement` with `params` (encoded now) and waits for its outcome, which comes
    /// once `send` has had the whole pipeline's answer.
    pub async fn run(
        &self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Ran, DbError> {
        let waiting = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let gathered = state.as_mut().ok_or_else(|| {
                DbError::Other("a statement was added after its pipeline was sent".into())
            })?;
            gathered.pipeline.push(statement, params)?;
            let (sender, receiver) = oneshot::channel();
            gathered.waiting.push(sender);
            receiver
        };
        waiting
            .await
            .map_err(|_| DbError::Other("the pipeline was dropped before it was sent".into()))?
    }

    /// Sends what was gathered, with one `Sync`, and hands every statement its outcome.
    /// `Err` when the connection failed (every statement gets the same error) or the commit
    /// at the `Sync` did; a statement's own failure is that statement's outcome alone.
    pub async fn send(&self, client: &tokio_postgres::Client) -> Result<(), DbError> {
        let taken = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(Gathered { pipeline, waiting }) = taken else {
            return Err(DbError::Other("a pipeline was sent twice".into()));
        };
        let results = match client.run_pipeline(pipeline).await {
            Ok(results) => results,
            Err(error) => {
                let error = DbError::from(error);
                for waiter in waiting {
                    let _ = waiter.send(Err(error.clone()));
                }
                return Err(error);
            }
        };
        for (waiter, outcome) in waiting.into_iter().zip(results.outcomes) {
            let outcome = match outcome {
                PipelineOutcome::Done {
                    rows,
                    rows_affected,
                } => Ok(Ran {
                    rows,
                    rows_affected,
                }),
                PipelineOutcome::Failed(error) => Err(error.into()),
                // As PostgreSQL answers a statement in a transaction that has already
                // failed: an error, never taken for "no rows".
                PipelineOutcome::Skipped => Err(DbError::Other(
                    "not run: an earlier statement of its transaction failed".into(),
                )),
            };
            // A waiter that is gone has no one to tell.
            let _ = waiter.send(outcome);
        }
        match results.commit_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

impl Ran {
    /// The one row a statement that returns at most one gave, if any.
    pub fn into_opt(self) -> Result<Option<Row>, DbError> {
        let mut rows = self.rows.into_iter();
        match (rows.next(), rows.next()) {
            (row, None) => Ok(row),
            (_, Some(_)) => Err(DbError::Unexpected(
                "more than one row from a statement that returns at most one".into(),
            )),
        }
    }

    /// The one row a statement that always returns exactly one gave.
    pub fn into_one(self) -> Result<Row, DbError> {
        self.into_opt()?.ok_or_else(|| {
            DbError::Unexpected("no row from a statement that always returns one".into())
        })
    }
}
