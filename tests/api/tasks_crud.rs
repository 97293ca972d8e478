//! Creating, reading, changing and deleting tasks (API.md "Tasks"), and the rule that
//! another user's task is indistinguishable from a missing one.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_invalid_fields, assert_problem, json_body};

fn path_of(task: &Value) -> String {
    format!("/tasks/{}", task["id"].as_str().unwrap())
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Value,
) -> reqwest::Response {
    app.send_json(method, path, Some(&user.token), &body).await
}

#[tokio::test]
async fn create_returns_201_with_location_etag_and_defaults() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let response = send(
        &app,
        Method::POST,
        "/tasks",
        &user,
        json!({"title": "  Write the report  "}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let task = json_body(response).await;
    assert_eq!(location, path_of(&task));
    let keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "completed_at",
            "created_at",
            "description",
            "due_at",
            "id",
            "labels",
            "priority",
            "project_id",
            "status",
            "title",
            "updated_at"
        ]
    );
    assert_eq!(task["title"], "Write the report");
    assert_eq!(task["status"], "todo");
    assert_eq!(task["priority"], "medium");
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["due_at"], Value::Null);
    assert_eq!(task["completed_at"], Value::Null);
    assert_eq!(task["created_at"], task["updated_at"]);

    let fetched = app.get(&location, Some(&user.token)).await;
    assert_eq!(fetched.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(json_body(fetched).await, task);
}

#[tokio::test]
async fn every_field_can_be_set_and_due_at_comes_back_in_utc() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app
        .create_task(
            &user,
            json!({
                "title": "Plan", "description": "Two pages", "status": "in_progress",
                "priority": "urgent", "due_at": "2026-12-01T19:00:00+02:00"
            }),
        )
        .await;
    assert_eq!(task["description"], "Two pages");
    assert_eq!(task["status"], "in_progress");
    assert_eq!(task["priority"], "urgent");
    assert_eq!(task["due_at"], "2026-12-01T17:00:00Z");
}

#[tokio::test]
async fn text_comes_back_byte_for_byte() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let title = "Ünïcødé ✓ 日本語 🚀 \u{200d} مرحبا";
    let description =
        "  leading and trailing spaces kept \n\t 100% _under_ 'quotes' \"double\" \\ ";
    let task = app
        .create_task(&user, json!({"title": title, "description": description}))
        .await;
    let fetched = json_body(app.get(&path_of(&task), Some(&user.token)).await).await;
    assert_eq!(fetched["title"], title);
    assert_eq!(fetched["description"], description);
}

#[tokio::test]
async fn invalid_fields_are_422_and_create_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (body, fields) in [
        (json!({}), vec!["title"]),
        (json!({"title": null}), vec!["title"]),
        (json!({"title": "   "}), vec!["title"]),
        (json!({"title": "x".repeat(201)}), vec!["title"]),
        (json!({"title": 5}), vec!["title"]),
        (
            json!({"title": "ok", "description": "d".repeat(10_001)}),
            vec!["description"],
        ),
        (json!({"title": "ok", "status": "later"}), vec!["status"]),
        (json!({"title": "ok", "status": null}), vec!["status"]),
        (
            json!({"title": "ok", "priority": "critical"}),
            vec!["priority"],
        ),
        (
            json!({"title": "ok", "due_at": "2026-12-01T17:00:00"}),
            vec!["due_at"],
        ),
        (json!({"title": "ok", "due_at": "tomorrow"}), vec!["due_at"]),
        (
            json!({"title": "", "priority": "x", "due_at": "y"}),
            vec!["title", "priority", "due_at"],
        ),
    ] {
        let response = send(&app, Method::POST, "/tasks", &user, body.clone()).await;
        assert_eq!(assert_invalid_fields(response).await, fields, "{body}");
    }
    // Exactly at the limits is fine.
    app.create_task(
        &user,
        json!({"title": "x".repeat(200), "description": "d".repeat(10_000)}),
    )
    .await;
    let list = json_body(app.get("/tasks", Some(&user.token)).await).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn server_managed_fields_cannot_be_set() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "mine"})).await;
    for field in [
        "id",
        "owner_id",
        "created_at",
        "updated_at",
        "completed_at",
        "version",
    ] {
        let mut body = json!({"title": "x"});
        body[field] = json!("00000000-0000-0000-0000-000000000000");
        let created = send(&app, Method::POST, "/tasks", &user, body.clone()).await;
        assert_eq!(assert_invalid_fields(created).await, [field]);
        let patched = send(&app, Method::PATCH, &path_of(&task), &user, body.clone()).await;
        assert_eq!(assert_invalid_fields(patched).await, [field]);
        let replaced = send(&app, Method::PUT, &path_of(&task), &user, body).await;
        assert_eq!(assert_invalid_fields(replaced).await, [field]);
    }
    let fetched = json_body(app.get(&path_of(&task), Some(&user.token)).await).await;
    assert_eq!(fetched, task);
}

#[tokio::test]
async fn patch_changes_only_the_fields_sent_and_null_clears_nullable_ones() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app
        .create_task(&user, json!({"title": "A", "description": "d", "due_at": "2026-12-24T10:00:00Z", "priority": "high"}))
        .await;
    let path = path_of(&task);

    let patched =
        json_body(send(&app, Method::PATCH, &path, &user, json!({"title": " B "})).await).await;
    assert_eq!(patched["title"], "B");
    assert_eq!(patched["description"], "d");
    assert_eq!(patched["priority"], "high");
    assert_eq!(patched["due_at"], "2026-12-24T10:00:00Z");
    assert_eq!(patched["created_at"], task["created_at"]);
    assert!(patched["updated_at"].as_str() > task["updated_at"].as_str());

    let cleared = json_body(
        send(
            &app,
            Method::PATCH,
            &path,
            &user,
            json!({"description": null, "due_at": null}),
        )
        .await,
    )
    .await;
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["due_at"], Value::Null);
    assert_eq!(cleared["title"], "B");

    for field in ["title", "status", "priority"] {
        let response = send(&app, Method::PATCH, &path, &user, json!({ field: null })).await;
        assert_eq!(assert_invalid_fields(response).await, [field]);
    }
    let after = json_body(app.get(&path, Some(&user.token)).await).await;
    assert_eq!(after, cleared);
}

#[tokio::test]
async fn empty_patch_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let created = send(
        &app,
        Method::POST,
        "/tasks",
        &user,
        json!({"title": "same"}),
    )
    .await;
    let etag = created.headers()["etag"].clone();
    let task = json_body(created).await;
    let response = send(&app, Method::PATCH, &path_of(&task), &user, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], etag);
    assert_eq!(json_body(response).await, task);
}

#[tokio::test]
async fn completed_at_is_set_on_done_kept_while_done_and_cleared_on_leaving() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "finish"})).await;
    let path = path_of(&task);

    let done =
        json_body(send(&app, Method::PATCH, &path, &user, json!({"status": "done"})).await).await;
    let completed_at = done["completed_at"]
        .as_str()
        .expect("set on becoming done")
        .to_owned();

    let still = json_body(
        send(
            &app,
            Method::PATCH,
            &path,
            &user,
            json!({"status": "done", "title": "again"}),
        )
        .await,
    )
    .await;
    assert_eq!(still["completed_at"], completed_at.as_str());
    let replaced = json_body(
        send(
            &app,
            Method::PUT,
            &path,
            &user,
            json!({"title": "put", "status": "done"}),
        )
        .await,
    )
    .await;
    assert_eq!(replaced["completed_at"], completed_at.as_str());

    let reopened = json_body(
        send(
            &app,
            Method::PATCH,
            &path,
            &user,
            json!({"status": "in_progress"}),
        )
        .await,
    )
    .await;
    assert_eq!(reopened["completed_at"], Value::Null);

    let created_done = app
        .create_task(&user, json!({"title": "born done", "status": "done"}))
        .await;
    assert!(created_done["completed_at"].is_string());
    let client_set = send(
        &app,
        Method::PATCH,
        &path,
        &user,
        json!({"completed_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    assert_invalid_fields(client_set).await;
}

#[tokio::test]
async fn put_replaces_the_whole_task_and_omitted_fields_take_defaults() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app
        .create_task(&user, json!({"title": "full", "description": "d", "status": "done", "priority": "urgent", "due_at": "2027-01-01T00:00:00Z"}))
        .await;
    let response = send(
        &app,
        Method::PUT,
        &path_of(&task),
        &user,
        json!({"title": "bare"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("etag"));
    let replaced = json_body(response).await;
    assert_eq!(replaced["id"], task["id"]);
    assert_eq!(replaced["title"], "bare");
    assert_eq!(replaced["description"], Value::Null);
    assert_eq!(replaced["status"], "todo");
    assert_eq!(replaced["priority"], "medium");
    assert_eq!(replaced["due_at"], Value::Null);
    assert_eq!(replaced["completed_at"], Value::Null);
    assert_eq!(replaced["created_at"], task["created_at"]);

    let missing_title = send(
        &app,
        Method::PUT,
        &path_of(&task),
        &user,
        json!({"status": "done"}),
    )
    .await;
    assert_eq!(assert_invalid_fields(missing_title).await, ["title"]);
}

#[tokio::test]
async fn delete_returns_204_and_the_task_is_gone() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "bye"})).await;
    let path = path_of(&task);
    let response = app
        .request(Method::DELETE, &path, Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_problem(
        app.get(&path, Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let again = app
        .request(Method::DELETE, &path, Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn path_ids_that_are_not_uuids_are_404() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for id in [
        "42",
        "not-a-uuid",
        "00000000-0000-0000-0000-00000000000g",
        "%20",
    ] {
        let path = format!("/tasks/{id}");
        assert_problem(
            app.get(&path, Some(&user.token)).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let patched = send(&app, Method::PATCH, &path, &user, json!({"title": "x"})).await;
        assert_problem(patched, StatusCode::NOT_FOUND).await;
        let deleted = app
            .request(Method::DELETE, &path, Some(&user.token))
            .send()
            .await
            .unwrap();
        assert_problem(deleted, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn another_users_task_is_indistinguishable_from_a_missing_one_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.new_user().await;
    let intruder = app.new_user().await;
    let task = app.create_task(&owner, json!({"title": "private"})).await;
    let theirs = path_of(&task);
    let missing = format!("/tasks/{}", uuid::Uuid::new_v4());
    let etag = app.get(&theirs, Some(&owner.token)).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();

    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"title": "hijacked"}))),
        (Method::PATCH, Some(json!({}))),
        (Method::PUT, Some(json!({"title": "hijacked"}))),
        (Method::DELETE, None),
    ] {
        let mut bodies = Vec::new();
        for path in [&theirs, &missing] {
            for if_match in [None, Some(etag.as_str()), Some("*"), Some("\"stale\"")] {
                let mut request = app.request(method.clone(), path, Some(&intruder.token));
                if let Some(body) = &body {
                    request = request.json(body);
                }
                if let Some(tag) = if_match {
                    request = request.header("if-match", tag);
                }
                let response = request.send().await.unwrap();
                assert!(!response.headers().contains_key("etag"));
                let mut problem = assert_problem(response, StatusCode::NOT_FOUND).await;
                problem.as_object_mut().unwrap().remove("instance");
                bodies.push(problem);
            }
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "{method}: {bodies:?}"
        );
    }
    let list = json_body(app.get("/tasks", Some(&intruder.token)).await).await;
    assert_eq!(list["total"], 0);
    let untouched = json_body(app.get(&theirs, Some(&owner.token)).await).await;
    assert_eq!(untouched, task);
}

#[tokio::test]
async fn tasks_require_a_token() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::GET, "/tasks".to_owned()),
        (Method::POST, "/tasks".to_owned()),
        (Method::GET, format!("/tasks/{id}")),
        (Method::PATCH, format!("/tasks/{id}")),
        (Method::PUT, format!("/tasks/{id}")),
        (Method::DELETE, format!("/tasks/{id}")),
    ] {
        let response = app
            .request(method, &path, None)
            .json(&json!({"title": "x"}))
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn deleting_a_user_deletes_their_tasks_in_the_database() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "one"})).await;
    app.create_task(&user, json!({"title": "two"})).await;
    let db = app.db().await;
    db.execute("DELETE FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap();
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM tasks WHERE owner_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_schema_refuses_bad_rows_even_from_a_direct_client() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let db = app.db().await;
    let insert = "INSERT INTO tasks (owner_id, title, status, completed_at) VALUES ($1, $2, $3::text::task_status, $4)";
    let now = Some(time::OffsetDateTime::now_utc());
    let none: Option<time::OffsetDateTime> = None;
    for (title, status, completed_at) in [
        ("", "todo", none),
        (" padded ", "todo", none),
        ("done without completion", "done", none),
        ("completed but todo", "todo", now),
    ] {
        let result = db
            .execute(insert, &[&user.id, &title, &status, &completed_at])
            .await;
        assert!(result.is_err(), "{title:?} should be refused");
    }
    let long = "x".repeat(201);
    assert!(
        db.execute(insert, &[&user.id, &long, &"todo", &none])
            .await
            .is_err()
    );
    let orphan = db
        .execute(insert, &[&uuid::Uuid::new_v4(), &"orphan", &"todo", &none])
        .await;
    assert!(orphan.is_err());
    let upper = db
        .execute(
            "INSERT INTO users (email, password_hash) VALUES ('UP@example.com', '$argon2id$x')",
            &[],
        )
        .await;
    assert!(upper.is_err());
}
