//! Statements sent together and closed by one `Sync` (added to this copy of tokio-postgres;
//! see `vendor/README.md` in the taskapi repository).
//!
//! `Client::query` and friends close every statement with its own `Sync`, so a pipeline of
//! n statements costs the server n `ReadyForQuery` messages, n socket writes, and (outside
//! an explicit transaction) n transactions. A `Pipeline` sends `Bind`/`Execute` for each of
//! its statements and a single `Sync` after the last: the server runs them, in order, as
//! one implicit transaction (unless the pipeline itself holds `BEGIN`/`COMMIT`), commits it
//! at the `Sync`, and answers in one write. If a statement fails, the server skips the rest
//! up to the `Sync` and rolls the implicit transaction back.

use crate::client::{Client, Responses};
use crate::codec::FrontendMessage;
use crate::connection::RequestMessages;
use crate::query::{encode_bind, extract_row_affected};
use crate::types::ToSql;
use crate::{Error, Row, Statement};
use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

/// Prepared statements and their parameters, to be sent with one `Sync`.
#[derive(Default)]
pub struct Pipeline {
    buf: BytesMut,
    statements: Vec<Statement>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// Adds `statement` with `params` (encoded now: nothing stays borrowed). Its position in
    /// the pipeline, which is its outcome's index in `Client::run_pipeline`'s answer.
    pub fn push(
        &mut self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<usize, Error> {
        let mark = self.buf.len();
        let encoded = encode_bind(statement, params.iter().copied(), "", &mut self.buf)
            .and_then(|()| frontend::execute("", 0, &mut self.buf).map_err(Error::encode));
        if let Err(error) = encoded {
            // Nothing half-written stays behind for the statements after this one.
            self.buf.truncate(mark);
            return Err(error);
        }
        self.statements.push(statement.clone());
        Ok(self.statements.len() - 1)
    }

    /// How many statements it holds.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// What became of one statement of a pipeline.
pub enum PipelineOutcome {
    /// It ran.
    Done {
        /// The rows it returned.
        rows: Vec<Row>,
        /// The count in its command tag (0 for a command without one).
        rows_affected: u64,
    },
    /// It failed; the server skipped every statement after it.
    Failed(Error),
    /// An earlier statement failed, so this one did not run.
    Skipped,
}

/// The answer to a whole pipeline.
pub struct PipelineResults {
    /// One outcome per statement, in the order they were pushed.
    pub outcomes: Vec<PipelineOutcome>,
    /// An error the server reported after the last statement ran: the implicit commit at the
    /// `Sync` failed, and nothing was committed.
    pub commit_error: Option<Error>,
}

impl Client {
    /// Sends `pipeline` with one `Sync` and reads its answer up to `ReadyForQuery`. `Err`
    /// only when the connection failed (or the server's answer made no sense): then whether
    /// the implicit transaction committed is unknown, as with a lost `COMMIT`.
    pub async fn run_pipeline(&self, pipeline: Pipeline) -> Result<PipelineResults, Error> {
        let Pipeline {
            mut buf,
            statements,
        } = pipeline;
        frontend::sync(&mut buf);
        let mut responses = self
            .inner()
            .send(RequestMessages::Single(FrontendMessage::Raw(buf.freeze())))?;
        read_answer(&mut responses, &statements).await
    }
}

async fn read_answer(
    responses: &mut Responses,
    statements: &[Statement],
) -> Result<PipelineResults, Error> {
    let mut outcomes = Vec::with_capacity(statements.len());
    let mut commit_error = None;
    let mut rows = Vec::new();
    loop {
        match responses.next().await {
            Ok(Message::BindComplete) => rows = Vec::new(),
            Ok(Message::DataRow(body)) => {
                let statement = statements
                    .get(outcomes.len())
                    .ok_or_else(Error::unexpected_message)?;
                rows.push(Row::new(statement.clone(), body)?);
            }
            Ok(Message::CommandComplete(body)) => outcomes.push(PipelineOutcome::Done {
                rows: std::mem::take(&mut rows),
                rows_affected: extract_row_affected(&body)?,
            }),
            Ok(Message::EmptyQueryResponse) => outcomes.push(PipelineOutcome::Done {
                rows: Vec::new(),
                rows_affected: 0,
            }),
            Ok(Message::ReadyForQuery(_)) => break,
            Err(error) if error.as_db_error().is_some() => {
                if outcomes.len() < statements.len() {
                    outcomes.push(PipelineOutcome::Failed(error));
                } else {
                    commit_error = Some(error);
                }
            }
            Err(error) => return Err(error),
            Ok(_) => return Err(Error::unexpected_message()),
        }
        if outcomes.len() > statements.len() {
            return Err(Error::unexpected_message());
        }
    }
    while outcomes.len() < statements.len() {
        outcomes.push(PipelineOutcome::Skipped);
    }
    Ok(PipelineResults {
        outcomes,
        commit_error,
    })
}
