//! The trigger-kept counts (projects' and labels' task counts) agree with the tasks
//! themselves after every kind of write: creates, moves, label changes, renames, label and
//! project deletions, and task deletions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, json_body};

/// Fails with a description of the first disagreement between the counts and the truth.
async fn assert_counts_agree(app: &TestApp, owner: Uuid, step: &str) {
    let db = app.db().await;
    let label_diff = db
        .query(
            "WITH truth AS (SELECT l AS label, count(*)::int AS n FROM tasks, unnest(labels) l \
                            WHERE owner_id = $1 GROUP BY l), \
                  kept AS (SELECT label, task_count AS n FROM label_counts WHERE owner_id = $1) \
             SELECT coalesce(t.label, k.label), t.n, k.n FROM truth t \
             FULL JOIN kept k ON k.label = t.label WHERE t.n IS DISTINCT FROM k.n",
            &[&owner],
        )
        .await
        .unwrap();
    let labels: Vec<(String, Option<i32>, Option<i32>)> = label_diff
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert!(
        labels.is_empty(),
        "{step}: label counts (label, truth, kept): {labels:?}"
    );
    let project_diff = db
        .query(
            "SELECT p.id, p.task_count, (SELECT count(*)::int FROM tasks t \
                                         WHERE t.project_id = p.id) \
             FROM projects p WHERE p.owner_id = $1 \
               AND p.task_count <> (SELECT count(*) FROM tasks t WHERE t.project_id = p.id)",
            &[&owner],
        )
        .await
        .unwrap();
    assert!(
        project_diff.is_empty(),
        "{step}: {} project counts disagree",
        project_diff.len()
    );
}

async fn send(app: &TestApp, user: &TestUser, method: Method, path: &str, body: Value) -> Value {
    let response = app.send_json(method, path, Some(&user.token), &body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    if response.status() == StatusCode::NO_CONTENT {
        return Value::Null;
    }
    json_body(response).await
}

async fn delete(app: &TestApp, user: &TestUser, path: &str) {
    let response = app
        .request(Method::DELETE, path, Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
}

#[tokio::test]
async fn project_and_label_counts_follow_every_kind_of_write() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let home = send(
        &app,
        &user,
        Method::POST,
        "/projects",
        json!({"name": "Home"}),
    )
    .await;
    let work = send(
        &app,
        &user,
        Method::POST,
        "/projects",
        json!({"name": "Work"}),
    )
    .await;
    let (home, work) = (home["id"].as_str().unwrap(), work["id"].as_str().unwrap());

    let mut tasks = Vec::new();
    for (i, labels) in [
        json!(["a", "b"]),
        json!(["b", "c"]),
        json!(["a", "b", "c"]),
        json!([]),
        json!(["c"]),
    ]
    .into_iter()
    .enumerate()
    {
        let project = if i % 2 == 0 { json!(home) } else { json!(work) };
        let body = json!({"title": format!("t{i}"), "labels": labels, "project_id": project});
        tasks.push(
            app.create_task(&user, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_counts_agree(&app, user.id, "after creates").await;

    let path = |id: &str| format!("/tasks/{id}");
    send(
        &app,
        &user,
        Method::PATCH,
        &path(&tasks[0]),
        json!({"labels": ["b", "d"]}),
    )
    .await;
    send(
        &app,
        &user,
        Method::PATCH,
        &path(&tasks[1]),
        json!({"project_id": home}),
    )
    .await;
    send(
        &app,
        &user,
        Method::PATCH,
        &path(&tasks[2]),
        json!({"project_id": null}),
    )
    .await;
    send(
        &app,
        &user,
        Method::PATCH,
        &path(&tasks[3]),
        json!({"title": "only the title"}),
    )
    .await;
    let replaced = json!({"title": "replaced"});
    send(&app, &user, Method::PUT, &path(&tasks[4]), replaced).await;
    assert_counts_agree(&app, user.id, "after patches and a put").await;

    send(
        &app,
        &user,
        Method::PATCH,
        "/labels/b",
        json!({"name": "c"}),
    )
    .await;
    assert_counts_agree(&app, user.id, "after a rename that merges").await;
    send(
        &app,
        &user,
        Method::PATCH,
        "/labels/a",
        json!({"name": "z"}),
    )
    .await;
    assert_counts_agree(&app, user.id, "after a plain rename").await;
    delete(&app, &user, "/labels/c").await;
    assert_counts_agree(&app, user.id, "after a label deletion").await;

    delete(&app, &user, &path(&tasks[2])).await;
    assert_counts_agree(&app, user.id, "after a task deletion").await;
    delete(&app, &user, &format!("/projects/{home}")).await;
    assert_counts_agree(&app, user.id, "after a project deletion").await;
    delete(&app, &user, &format!("/projects/{work}")).await;
    assert_counts_agree(&app, user.id, "after the last project deletion").await;

    let listed = json_body(app.get("/tasks", Some(&user.token)).await).await;
    assert_eq!(listed["total"], listed["items"].as_array().unwrap().len());
}

#[tokio::test]
async fn tasks_gaining_the_same_labels_in_opposite_orders_at_once_all_succeed() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let labels: Vec<String> = (0..8).map(|i| format!("label {i}")).collect();
    let mut reversed = labels.clone();
    reversed.reverse();
    // The counts' rows exist, so every create below locks all of them.
    app.create_task(&user, json!({"title": "seed", "labels": labels}))
        .await;
    for round in 0..20 {
        let create = |labels: &[String]| {
            let body = json!({"title": format!("round {round}"), "labels": labels});
            app.request(Method::POST, "/tasks", Some(&user.token))
                .json(&body)
                .send()
        };
        let (forward, backward) = tokio::join!(create(&labels), create(&reversed));
        assert_eq!(
            forward.unwrap().status(),
            StatusCode::CREATED,
            "round {round}"
        );
        assert_eq!(
            backward.unwrap().status(),
            StatusCode::CREATED,
            "round {round}"
        );
    }
    assert_counts_agree(&app, user.id, "after concurrent creates").await;
}
