//! What the change feed and the idempotency keys rest on, checked in the database itself:
//! one counter value per writing transaction, the counter's lock keeping one account's
//! writers from deadlocking, the second wall on the new tables, and the purge.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, database};

/// The API's own role, as the server connects.
async fn as_api_role() -> tokio_postgres::Client {
    taskapi::db::connect(&database().await.config)
        .await
        .expect("the API's role connects")
}

#[tokio::test]
async fn one_transaction_stamps_every_row_it_changes_with_one_counter_value() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for n in 0..3 {
        app.create_task(&user, json!({"title": format!("t{n}"), "labels": ["old"]}))
            .await;
    }
    let db = app.db().await;
    let before = counter(&db, user.id).await;
    let renamed = app
        .send_json(
            Method::PATCH,
            "/labels/old",
            Some(&user.token),
            &json!({"name": "new"}),
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(
        counter(&db, user.id).await,
        before + 1,
        "one value per transaction"
    );
    let stamped: Vec<i64> = db
        .query(
            "SELECT change_seq FROM tasks WHERE owner_id = $1",
            &[&user.id],
        )
        .await
        .expect("tasks")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        stamped,
        vec![before + 1; 3],
        "every renamed task at that value"
    );
    let logged: i64 = db
        .query_one(
            "SELECT count(*) FROM changes WHERE owner_id = $1 AND seq = $2 AND kind = 'task'",
            &[&user.id, &(before + 1)],
        )
        .await
        .expect("log")
        .get(0);
    assert_eq!(logged, 3, "one log row per renamed task, at that value");
}

async fn counter(db: &tokio_postgres::Client, user: Uuid) -> i64 {
    db.query_one("SELECT change_seq FROM users WHERE id = $1", &[&user])
        .await
        .expect("counter")
        .get(0)
}

/// A label rename locks many of an account's tasks; a PATCH locks one; both take the
/// account's counter (its row lock). Every one of them must succeed: a deadlock or a lock
/// timeout would be a 503. The counter is taken first in every writing transaction so the
/// lock order is the same for all. Honest note: with the counter taken only by the
/// (AFTER, end-of-statement) triggers this test still passed three runs out of three, so it
/// guards the behaviour rather than proving that ordering is what provides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_accounts_renames_and_patches_at_once_all_succeed() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut paths = Vec::new();
    for n in 0..12 {
        let task = app
            .create_task(
                &user,
                json!({"title": format!("t{n}"), "labels": ["a", "b"]}),
            )
            .await;
        paths.push(format!("/tasks/{}", task["id"].as_str().unwrap()));
    }
    for round in 0..4 {
        let mut requests = Vec::new();
        let (from, to) = if round % 2 == 0 {
            ("a", "c")
        } else {
            ("c", "a")
        };
        requests.push(
            app.request(Method::PATCH, &format!("/labels/{from}"), Some(&user.token))
                .json(&json!({"name": to})),
        );
        // Patches in the reverse of the rename's likely order.
        for path in paths.iter().rev() {
            requests.push(
                app.request(Method::PATCH, path, Some(&user.token))
                    .json(&json!({"priority": "high", "labels": ["a", "b", "c"]})),
            );
        }
        let statuses = futures_statuses(requests).await;
        for status in statuses {
            assert!(
                status.is_success() || status == StatusCode::NOT_FOUND,
                "round {round}: {status} (a deadlock or a lock timeout)"
            );
        }
    }
}

async fn futures_statuses(requests: Vec<reqwest::RequestBuilder>) -> Vec<StatusCode> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|request| tokio::spawn(async move { request.send().await.expect("sent").status() }))
        .collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.expect("joined"));
    }
    statuses
}

#[tokio::test]
async fn the_api_role_sees_no_changes_or_keys_without_a_caller() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let response = app
        .request(Method::POST, "/tasks", Some(&user.token))
        .header("Idempotency-Key", "wall")
        .json(&json!({"title": "behind the wall"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    let owner_sees: i64 = app
        .db()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM changes WHERE owner_id = $1) \
                  + (SELECT count(*) FROM idempotency_keys WHERE owner_id = $1)",
            &[&user.id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(owner_sees, 2, "the owner's view: one change, one key");
    let mut api = as_api_role().await;
    for table in ["changes", "idempotency_keys"] {
        let seen: i64 = api
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(seen, 0, "{table} without a caller");
        // Purging opens the log's keys (to find superseded rows) and, of the idempotency
        // keys, only the expired: nothing of this user's.
        let transaction = api.transaction().await.expect("transaction");
        transaction
            .execute("SELECT set_config('taskapi.purging', 'on', true)", &[])
            .await
            .expect("purging");
        let seen: i64 = transaction
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE owner_id = $1"),
                &[&user.id],
            )
            .await
            .expect("count")
            .get(0);
        let expected = if table == "changes" { 1 } else { 0 };
        assert_eq!(seen, expected, "{table} while purging");
    }
    let refused = api
        .execute(
            "INSERT INTO changes (owner_id, kind, id, seq) VALUES ($1, 'task', $2, 1)",
            &[&user.id, &Uuid::new_v4()],
        )
        .await;
    assert!(
        refused.is_err(),
        "the API's role cannot write the feed itself"
    );
}

#[tokio::test]
async fn the_purge_takes_expired_tombstones_and_keys_and_nothing_else() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut tasks = Vec::new();
    for title in ["old", "recent", "kept"] {
        let response = app
            .request(Method::POST, "/tasks", Some(&user.token))
            .header("Idempotency-Key", title)
            .json(&json!({"title": title}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::CREATED);
        tasks.push(crate::helpers::json_body(response).await);
    }
    for task in &tasks[..2] {
        let path = format!("/tasks/{}", task["id"].as_str().unwrap());
        let deleted = app
            .request(Method::DELETE, &path, Some(&user.token))
            .send()
            .await
            .expect("sent");
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    }
    let db = app.db().await;
    let old: Uuid = tasks[0]["id"].as_str().unwrap().parse().unwrap();
    let kept: Uuid = tasks[2]["id"].as_str().unwrap().parse().unwrap();
    // Ages set behind the API's back: one deleted task's rows past 30 days (and the hour of
    // margin), the other's not; the surviving task's own row very old (its latest change:
    // never purged); the first key past 24 hours.
    db.batch_execute(&format!(
        "UPDATE changes SET changed_at = now() - interval '31 days 2 hours' WHERE id IN ('{old}', '{kept}'); \
         UPDATE changes SET changed_at = now() - interval '29 days' WHERE owner_id = '{owner}' AND id NOT IN ('{old}', '{kept}'); \
         UPDATE idempotency_keys SET claimed_at = now() - interval '25 hours' WHERE owner_id = '{owner}' AND key = 'old';",
        owner = user.id
    ))
    .await
    .expect("aged");

    // The purge runs on a pooled connection of the API's role, as the server's purger does.
    let pool = taskapi::db::pool(
        database().await.config.clone(),
        1,
        Default::default(),
        taskapi::store::all_statements().collect(),
        Default::default(),
    )
    .expect("a pool");
    let api = pool.checkout().await.expect("the API's role connects");
    let retention = Duration::from_secs(30 * 86_400);
    // Other tests' servers purge too (each purges when it starts), so which call deletes these
    // rows is not ours to count: the state left is what is checked.
    taskapi::store::purge::superseded_changes(&api)
        .await
        .expect("purged");
    taskapi::store::purge::tombstones(&api, retention)
        .await
        .expect("purged");
    taskapi::store::purge::idempotency_keys(&api)
        .await
        .expect("purged");

    let left: Vec<(Uuid, bool)> = db
        .query(
            "SELECT id, deleted FROM changes WHERE owner_id = $1 ORDER BY deleted, id",
            &[&user.id],
        )
        .await
        .expect("changes")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        left.len(),
        2,
        "the live task's creation and the recent tombstone (the creations the tombstones \
         supersede, and the expired tombstone with its object's rows, are gone): {left:?}"
    );
    assert!(left.contains(&(kept, false)));
    assert!(
        !left.iter().any(|(id, _)| *id == old),
        "the expired tombstone is gone"
    );
    let keys_left: Vec<String> = db
        .query(
            "SELECT key FROM idempotency_keys WHERE owner_id = $1 ORDER BY key",
            &[&user.id],
        )
        .await
        .expect("keys")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(keys_left, ["kept", "recent"]);
}
