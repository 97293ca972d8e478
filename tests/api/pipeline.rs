//! `tokio_postgres::Pipeline` (added in vendor/tokio-postgres): statements closed by one
//! `Sync` run as one implicit transaction, committed at the `Sync`, on a real PostgreSQL.

use tokio_postgres::{Client, Pipeline, PipelineOutcome};

use crate::helpers::TestApp;

/// A server's database (the owner's connection), with a temporary table made by `ddl` and
/// `insert` prepared on it.
async fn with_table(ddl: &str, insert: &str) -> (TestApp, Client, tokio_postgres::Statement) {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    db.batch_execute(ddl).await.unwrap();
    let insert = db.prepare(insert).await.unwrap();
    (app, db, insert)
}

const NUMBERS: &str = "CREATE TEMP TABLE p (n int PRIMARY KEY)";
const INSERT_NUMBER: &str = "INSERT INTO p VALUES ($1)";

async fn numbers(db: &Client, table: &str) -> Vec<i32> {
    db.query(&format!("SELECT n FROM {table} ORDER BY n"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn done(outcome: &PipelineOutcome) -> (&[tokio_postgres::Row], u64) {
    match outcome {
        PipelineOutcome::Done {
            rows,
            rows_affected,
        } => (rows, *rows_affected),
        PipelineOutcome::Failed(error) => panic!("the statement failed: {error}"),
        PipelineOutcome::Skipped => panic!("the statement was skipped"),
    }
}

#[tokio::test]
async fn a_pipeline_runs_in_order_as_one_transaction_and_commits_at_its_sync() {
    let (_app, db, insert) = with_table(NUMBERS, INSERT_NUMBER).await;
    let set = db
        .prepare("SELECT set_config('pipeline_test.who', $1, true)")
        .await
        .unwrap();
    let read = db
        .prepare("SELECT current_setting('pipeline_test.who'), (SELECT count(*) FROM p)")
        .await
        .unwrap();
    let mut pipeline = Pipeline::new();
    pipeline.push(&insert, &[&1i32]).unwrap();
    pipeline.push(&set, &[&"someone"]).unwrap();
    pipeline.push(&read, &[]).unwrap();
    pipeline.push(&insert, &[&2i32]).unwrap();
    assert_eq!(pipeline.len(), 4);

    let results = db.run_pipeline(pipeline).await.unwrap();
    assert!(results.commit_error.is_none());
    assert_eq!(results.outcomes.len(), 4);
    assert_eq!(done(&results.outcomes[0]).1, 1);
    // A transaction-local setting made by one statement is seen by the next, as is the
    // row the first inserted.
    let (rows, _) = done(&results.outcomes[2]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "someone");
    assert_eq!(rows[0].get::<_, i64>(1), 1);
    assert_eq!(done(&results.outcomes[3]).1, 1);

    // Committed, and the setting ended with the transaction.
    assert_eq!(numbers(&db, "p").await, [1, 2]);
    let after: Option<String> = db
        .query_one(
            "SELECT nullif(current_setting('pipeline_test.who', true), '')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, None);
}

#[tokio::test]
async fn a_failing_statement_rolls_its_pipeline_back_and_the_rest_is_skipped() {
    let (_app, db, insert) = with_table(NUMBERS, INSERT_NUMBER).await;
    let mut pipeline = Pipeline::new();
    pipeline.push(&insert, &[&3i32]).unwrap();
    pipeline.push(&insert, &[&3i32]).unwrap();
    pipeline.push(&insert, &[&4i32]).unwrap();

    let results = db.run_pipeline(pipeline).await.unwrap();
    assert!(results.commit_error.is_none());
    assert_eq!(done(&results.outcomes[0]).1, 1);
    match &results.outcomes[1] {
        PipelineOutcome::Failed(error) => assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        ),
        _ => panic!("the duplicate insert should fail"),
    }
    assert!(matches!(results.outcomes[2], PipelineOutcome::Skipped));
    // Nothing committed, not even the insert that ran, and the connection is usable
    // (not left in a failed transaction).
    assert_eq!(numbers(&db, "p").await, Vec::<i32>::new());
}

#[tokio::test]
async fn a_commit_that_fails_at_the_sync_is_reported_and_commits_nothing() {
    let (_app, db, insert) = with_table(
        "CREATE TEMP TABLE d (n int UNIQUE DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO d VALUES ($1)",
    )
    .await;
    let mut pipeline = Pipeline::new();
    pipeline.push(&insert, &[&1i32]).unwrap();
    pipeline.push(&insert, &[&1i32]).unwrap();

    let results = db.run_pipeline(pipeline).await.unwrap();
    // Both ran; the deferred check fails at the commit.
    assert_eq!(done(&results.outcomes[0]).1, 1);
    assert_eq!(done(&results.outcomes[1]).1, 1);
    let error = results.commit_error.expect("the commit fails");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    assert_eq!(numbers(&db, "d").await, Vec::<i32>::new());
}

#[tokio::test]
async fn a_statement_given_the_wrong_parameters_is_refused_before_anything_is_sent() {
    let (_app, db, insert) = with_table(NUMBERS, INSERT_NUMBER).await;
    let mut pipeline = Pipeline::new();
    pipeline.push(&insert, &[&5i32]).unwrap();
    // Too many parameters, then a text for an int: refused, and the pipeline keeps only
    // what was pushed well.
    assert!(pipeline.push(&insert, &[&6i32, &7i32]).is_err());
    assert!(pipeline.push(&insert, &[&"eight"]).is_err());
    assert_eq!(pipeline.len(), 1);
    let results = db.run_pipeline(pipeline).await.unwrap();
    assert_eq!(results.outcomes.len(), 1);
    assert_eq!(done(&results.outcomes[0]).1, 1);
    assert_eq!(numbers(&db, "p").await, [5]);
}

/// The server's own pool, straight to PostgreSQL, gathers a caller's statements under one
/// `Sync`: the rest of the suite passes on either path, so only this says which one runs.
#[tokio::test]
async fn a_pool_straight_to_the_server_gathers_a_callers_statements() {
    let pool = taskapi::db::pool(
        crate::helpers::database().await.config.clone(),
        2,
        Default::default(),
        Vec::new(),
        crate::helpers::statement_mode(),
    )
    .expect("a pool");
    pool.ready_statements().await.expect("ready");
    let connection = pool.checkout().await.expect("a connection");
    assert_eq!(
        connection.gathers(),
        crate::helpers::statement_mode() == taskapi::db::StatementMode::Prepared
    );
}
