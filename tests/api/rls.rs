//! Row-level security, the second wall (issue 3; OWASP API1:2023 Broken Object Level
//! Authorization, ASVS 5.0 V8.2): even SQL that forgot its owner filter, run as the API's
//! role, sees only the caller's tasks, and that role cannot take the wall down.

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, database, json_body};

/// A connection as the API's own role (not the superuser the other checks use).
async fn app_role() -> tokio_postgres::Client {
    let client = taskapi::db::connect(&database().await.config)
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    let (superuser, bypass): (bool, bool) = (row.get(0), row.get(1));
    assert!(
        !superuser && !bypass,
        "the API's role must be neither superuser nor BYPASSRLS (with DATABASE_URL, use the app role)"
    );
    client
}

/// Opens a transaction as a request would, with `caller` as the RLS identity (if any).
async fn begin_as(client: &tokio_postgres::Client, caller: Option<Uuid>) {
    client.batch_execute("BEGIN").await.unwrap();
    if let Some(caller) = caller {
        client
            .execute(
                "SELECT set_config('taskapi.user_id', $1, true)",
                &[&caller.to_string()],
            )
            .await
            .unwrap();
    }
}

async fn owners_seen(client: &tokio_postgres::Client, caller: Option<Uuid>) -> Vec<Uuid> {
    begin_as(client, caller).await;
    // Deliberately no owner filter: only the policy stands between rows and the caller.
    let rows = client
        .query("SELECT owner_id FROM tasks", &[])
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn a_statement_without_an_owner_filter_sees_only_the_callers_rows() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    app.create_task(&alice, json!({"title": "a1"})).await;
    app.create_task(&alice, json!({"title": "a2"})).await;
    app.create_task(&bob, json!({"title": "b1"})).await;

    let client = app_role().await;
    let seen = owners_seen(&client, Some(alice.id)).await;
    assert_eq!(seen, [alice.id, alice.id]);
    let seen = owners_seen(&client, Some(bob.id)).await;
    assert_eq!(seen, [bob.id]);
}

#[tokio::test]
async fn with_no_caller_set_nothing_is_visible_even_after_a_callers_transaction() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    app.create_task(&alice, json!({"title": "hidden"})).await;
    let client = app_role().await;
    assert!(owners_seen(&client, None).await.is_empty());

    owners_seen(&client, Some(alice.id)).await;
    // The setting was transaction-local: it reads back as '' and matches nothing.
    let after: Option<String> = client
        .query_one("SELECT current_setting('taskapi.user_id', true)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after.as_deref(), Some(""));
    assert!(owners_seen(&client, None).await.is_empty());
    let count: i64 = client
        .query_one("SELECT count(*) FROM tasks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn one_requests_identity_never_leaks_into_the_next_on_the_same_connection() {
    let config = database().await.config.clone();
    // One connection: every request reuses it.
    let app = TestApp::spawn_with(config, |settings| settings.database_pool_size = 1).await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    app.create_task(&alice, json!({"title": "alice's"})).await;
    for _ in 0..3 {
        let alices = json_body(app.get("/tasks", Some(&alice.token)).await).await;
        assert_eq!(alices["total"], 1);
        let bobs = json_body(app.get("/tasks", Some(&bob.token)).await).await;
        assert_eq!(bobs["total"], 0, "bob must not inherit alice's identity");
    }
}

#[tokio::test]
async fn rows_cannot_be_written_for_another_owner_even_by_sql_without_filters() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    app.create_task(&bob, json!({"title": "bob's"})).await;
    let client = app_role().await;
    begin_as(&client, Some(alice.id)).await;
    let forged = client
        .execute(
            "INSERT INTO tasks (owner_id, title) VALUES ($1, 'planted')",
            &[&bob.id],
        )
        .await;
    assert!(forged.is_err(), "WITH CHECK refuses rows for another owner");
    client.batch_execute("ROLLBACK").await.unwrap();

    begin_as(&client, Some(alice.id)).await;
    let touched = client
        .execute("UPDATE tasks SET title = 'mine now'", &[])
        .await
        .unwrap();
    let deleted = client.execute("DELETE FROM tasks", &[]).await.unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!((touched, deleted), (0, 0));
    let response = app.get("/tasks", Some(&bob.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["items"][0]["title"], "bob's");
}

#[tokio::test]
async fn the_api_role_cannot_alter_or_drop_the_tables_nor_turn_security_off() {
    let client = app_role().await;
    for statement in [
        "ALTER TABLE tasks DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tasks_owner_only ON tasks",
        "CREATE POLICY everything ON tasks USING (true)",
        "DROP TABLE tasks",
        "ALTER TABLE users ADD COLUMN is_admin boolean",
        "TRUNCATE tasks",
        "CREATE TABLE sneaky (id int)",
        "SET ROLE taskapi_owner",
        "SET row_security = off; SELECT count(*) FROM tasks",
        "UPDATE users SET email = 'x@example.com'",
    ] {
        let result = client.batch_execute(statement).await;
        assert!(result.is_err(), "the API role could run: {statement}");
    }
}
