//! `/labels` (API.md "Labels"): the caller's labels with their task counts in code-point
//! order; renaming one across every task that carries it (merging into an existing label
//! keeps it once, where it was); deleting one; 404 for a label none of the caller's tasks
//! carries; percent-encoded names in the path; ETags of changed and unchanged tasks.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_invalid_fields, assert_problem, json_body};
use crate::projects::{etag, fetch, task_path, write};

/// `name` percent-encoded for a path segment: everything but the unreserved characters.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn label_path(name: &str) -> String {
    format!("/labels/{}", encode(name))
}

async fn labels(app: &TestApp, user: &TestUser) -> Value {
    let response = app.get("/labels", Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    json_body(response).await
}

/// Creates a task with `labels`; returns it and its ETag.
async fn tagged_task(
    app: &TestApp,
    user: &TestUser,
    title: &str,
    labels: Value,
) -> (Value, String) {
    let response = app
        .send_json(
            Method::POST,
            "/tasks",
            Some(&user.token),
            &json!({"title": title, "labels": labels}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tag = etag(&response);
    (json_body(response).await, tag)
}

async fn rename(app: &TestApp, user: &TestUser, from: &str, to: Value) -> reqwest::Response {
    write(
        app,
        user,
        Method::PATCH,
        &label_path(from),
        None,
        Some(&json!({"name": to})),
    )
    .await
}

async fn delete(app: &TestApp, user: &TestUser, name: &str) -> reqwest::Response {
    write(app, user, Method::DELETE, &label_path(name), None, None).await
}

#[tokio::test]
async fn the_label_list_counts_the_callers_tasks_per_label_in_code_point_order() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    assert_eq!(labels(&app, &alice).await, json!({"items": []}));
    tagged_task(&app, &alice, "1", json!(["a", "B", "work"])).await;
    tagged_task(&app, &alice, "2", json!(["work", "Work", "é", "日本"])).await;
    tagged_task(&app, &alice, "3", json!(["work", "z", "10", "9"])).await;
    tagged_task(&app, &alice, "4", json!([])).await;
    tagged_task(&app, &bob, "b", json!(["work", "bobs-only", "A"])).await;

    assert_eq!(
        labels(&app, &alice).await,
        json!({"items": [
            {"name": "10", "task_count": 1},
            {"name": "9", "task_count": 1},
            {"name": "B", "task_count": 1},
            {"name": "Work", "task_count": 1},
            {"name": "a", "task_count": 1},
            {"name": "work", "task_count": 3},
            {"name": "z", "task_count": 1},
            {"name": "é", "task_count": 1},
            {"name": "日本", "task_count": 1},
        ]})
    );
    assert_eq!(
        labels(&app, &bob).await,
        json!({"items": [
            {"name": "A", "task_count": 1},
            {"name": "bobs-only", "task_count": 1},
            {"name": "work", "task_count": 1},
        ]})
    );
}

#[tokio::test]
async fn the_label_list_follows_task_changes_and_deletions() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (one, _) = tagged_task(&app, &user, "1", json!(["x", "y"])).await;
    let (two, _) = tagged_task(&app, &user, "2", json!(["x"])).await;
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &task_path(&one),
        None,
        Some(&json!({"labels": ["y", "z"]})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        labels(&app, &user).await,
        json!({"items": [{"name": "x", "task_count": 1}, {"name": "y", "task_count": 1}, {"name": "z", "task_count": 1}]})
    );
    let response = write(
        &app,
        &user,
        Method::PUT,
        &task_path(&one),
        None,
        Some(&json!({"title": "reset"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = write(&app, &user, Method::DELETE, &task_path(&two), None, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(labels(&app, &user).await, json!({"items": []}));
}

#[tokio::test]
async fn renaming_a_label_changes_every_task_carrying_it_and_only_those() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let (first, first_tag) = tagged_task(&app, &alice, "first", json!(["old", "keep"])).await;
    let (second, second_tag) = tagged_task(&app, &alice, "second", json!(["a", "old"])).await;
    let (other, other_tag) = tagged_task(&app, &alice, "other", json!(["keep"])).await;
    let (bare, bare_tag) = tagged_task(&app, &alice, "bare", json!([])).await;
    let (bobs, bobs_tag) = tagged_task(&app, &bob, "bob's", json!(["old"])).await;

    let response = rename(&app, &alice, "old", json!("fresh")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({"name": "fresh", "task_count": 2})
    );

    let (first_now, first_now_tag) = fetch(&app, &alice, &task_path(&first)).await;
    assert_eq!(first_now["labels"], json!(["fresh", "keep"]));
    assert_ne!(first_now_tag, first_tag);
    assert!(first_now["updated_at"].as_str() > first["updated_at"].as_str());
    let (second_now, second_now_tag) = fetch(&app, &alice, &task_path(&second)).await;
    assert_eq!(second_now["labels"], json!(["a", "fresh"]));
    assert_ne!(second_now_tag, second_tag);
    assert!(second_now["updated_at"].as_str() > second["updated_at"].as_str());
    // Nothing else about the changed tasks moved.
    let mut expected = first.clone();
    expected["labels"] = json!(["fresh", "keep"]);
    expected["updated_at"] = first_now["updated_at"].clone();
    assert_eq!(first_now, expected);

    // Unchanged tasks keep their ETag and updated_at.
    assert_eq!(
        fetch(&app, &alice, &task_path(&other)).await,
        (other, other_tag)
    );
    assert_eq!(
        fetch(&app, &alice, &task_path(&bare)).await,
        (bare, bare_tag)
    );
    // Another user's task with the same label is not touched.
    assert_eq!(fetch(&app, &bob, &task_path(&bobs)).await, (bobs, bobs_tag));

    assert_eq!(
        labels(&app, &alice).await,
        json!({"items": [
            {"name": "a", "task_count": 1},
            {"name": "fresh", "task_count": 2},
            {"name": "keep", "task_count": 2},
        ]})
    );
    assert_eq!(
        labels(&app, &bob).await,
        json!({"items": [{"name": "old", "task_count": 1}]})
    );
    // The old name is gone: renaming or deleting it again is 404.
    assert_problem(
        rename(&app, &alice, "old", json!("again")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(delete(&app, &alice, "old").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn renaming_onto_an_existing_label_keeps_it_once_at_its_original_position() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (both, both_tag) = tagged_task(&app, &user, "both", json!(["x", "old", "new"])).await;
    let (new_first, new_first_tag) =
        tagged_task(&app, &user, "new first", json!(["new", "y", "old"])).await;
    let (only_old, only_old_tag) = tagged_task(&app, &user, "only old", json!(["old", "y"])).await;
    let (only_new, only_new_tag) = tagged_task(&app, &user, "only new", json!(["z", "new"])).await;
    let (neither, neither_tag) = tagged_task(&app, &user, "neither", json!(["y"])).await;

    let response = rename(&app, &user, "old", json!("new")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({"name": "new", "task_count": 4})
    );

    for (task, tag, labels) in [
        (&both, &both_tag, json!(["x", "new"])),
        (&new_first, &new_first_tag, json!(["new", "y"])),
        (&only_old, &only_old_tag, json!(["new", "y"])),
    ] {
        let (now, now_tag) = fetch(&app, &user, &task_path(task)).await;
        assert_eq!(now["labels"], labels, "{}", task["title"]);
        assert_ne!(&now_tag, tag, "{} changed: a new ETag", task["title"]);
        assert!(now["updated_at"].as_str() > task["updated_at"].as_str());
    }
    assert_eq!(
        fetch(&app, &user, &task_path(&only_new)).await,
        (only_new, only_new_tag)
    );
    assert_eq!(
        fetch(&app, &user, &task_path(&neither)).await,
        (neither, neither_tag)
    );
    assert_eq!(
        labels(&app, &user).await,
        json!({"items": [
            {"name": "new", "task_count": 4},
            {"name": "x", "task_count": 1},
            {"name": "y", "task_count": 3},
            {"name": "z", "task_count": 1},
        ]})
    );
}

#[tokio::test]
async fn renaming_a_label_to_itself_is_200_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (one, one_tag) = tagged_task(&app, &user, "1", json!(["same", "other"])).await;
    let (two, two_tag) = tagged_task(&app, &user, "2", json!(["same"])).await;
    let response = rename(&app, &user, "same", json!("same")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({"name": "same", "task_count": 2})
    );
    assert_eq!(fetch(&app, &user, &task_path(&one)).await, (one, one_tag));
    assert_eq!(fetch(&app, &user, &task_path(&two)).await, (two, two_tag));
}

#[tokio::test]
async fn the_new_name_is_trimmed_and_case_matters() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = tagged_task(&app, &user, "t", json!(["work", "Work"])).await;
    // Renaming "work" to "WORK" is a real change, distinct from "Work".
    let response = rename(&app, &user, "work", json!("  WORK  ")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({"name": "WORK", "task_count": 1})
    );
    let (now, now_tag) = fetch(&app, &user, &task_path(&task)).await;
    assert_eq!(now["labels"], json!(["WORK", "Work"]));
    assert_ne!(now_tag, tag);
    // Only an exact, case-sensitive name finds a label.
    assert_problem(
        rename(&app, &user, "work", json!("x")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(delete(&app, &user, "wORK").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn an_invalid_new_name_is_422_naming_name_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = tagged_task(&app, &user, "t", json!(["valid"])).await;
    for body in [
        json!({}),
        json!({"name": null}),
        json!({"name": 5}),
        json!({"name": ["x"]}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(51)}),
        json!({"name": format!(" {} ", "x".repeat(51))}),
    ] {
        let response = write(
            &app,
            &user,
            Method::PATCH,
            &label_path("valid"),
            None,
            Some(&body),
        )
        .await;
        assert_eq!(assert_invalid_fields(response).await, ["name"], "{body}");
    }
    let unknown_field = write(
        &app,
        &user,
        Method::PATCH,
        &label_path("valid"),
        None,
        Some(&json!({"name": "ok", "colour": "red"})),
    )
    .await;
    assert_problem(unknown_field, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fetch(&app, &user, &task_path(&task)).await, (task, tag));
    // Fifty characters, once trimmed, is fine.
    let fifty = "y".repeat(50);
    let response = rename(&app, &user, "valid", json!(format!(" {fifty} "))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        json!({"name": fifty, "task_count": 1})
    );
}

#[tokio::test]
async fn a_label_none_of_the_callers_tasks_carries_is_404_even_if_another_user_has_it() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let (bobs, bobs_tag) = tagged_task(&app, &bob, "b", json!(["bobs", "shared"])).await;
    tagged_task(&app, &alice, "a", json!(["shared"])).await;
    let mut bodies = Vec::new();
    for name in ["bobs", "nobody-has-this", " shared", "shared ", "SHARED"] {
        let renamed = rename(&app, &alice, name, json!("mine")).await;
        bodies.push(assert_problem(renamed, StatusCode::NOT_FOUND).await);
        let deleted = delete(&app, &alice, name).await;
        bodies.push(assert_problem(deleted, StatusCode::NOT_FOUND).await);
    }
    // Bob's label looks exactly like one nobody has.
    assert_eq!(bodies[0], bodies[2], "PATCH");
    assert_eq!(bodies[1], bodies[3], "DELETE");
    assert_eq!(fetch(&app, &bob, &task_path(&bobs)).await, (bobs, bobs_tag));
    assert_eq!(
        labels(&app, &bob).await,
        json!({"items": [{"name": "bobs", "task_count": 1}, {"name": "shared", "task_count": 1}]})
    );
    assert_eq!(
        labels(&app, &alice).await,
        json!({"items": [{"name": "shared", "task_count": 1}]})
    );

    // A user with no tasks at all.
    let carol = app.new_user().await;
    assert_problem(
        rename(&app, &carol, "shared", json!("x")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(delete(&app, &carol, "shared").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn deleting_a_label_removes_it_from_every_task_that_had_it() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let (first, first_tag) = tagged_task(&app, &alice, "first", json!(["a", "gone", "b"])).await;
    let (second, second_tag) = tagged_task(&app, &alice, "second", json!(["gone"])).await;
    let (other, other_tag) = tagged_task(&app, &alice, "other", json!(["a"])).await;
    let (bobs, bobs_tag) = tagged_task(&app, &bob, "bob's", json!(["gone"])).await;

    let response = delete(&app, &alice, "gone").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());

    for (task, tag, labels) in [
        (&first, &first_tag, json!(["a", "b"])),
        (&second, &second_tag, json!([])),
    ] {
        let (now, now_tag) = fetch(&app, &alice, &task_path(task)).await;
        assert_eq!(now["labels"], labels);
        assert_ne!(&now_tag, tag);
        assert!(now["updated_at"].as_str() > task["updated_at"].as_str());
    }
    assert_eq!(
        fetch(&app, &alice, &task_path(&other)).await,
        (other, other_tag)
    );
    assert_eq!(fetch(&app, &bob, &task_path(&bobs)).await, (bobs, bobs_tag));
    assert_eq!(
        labels(&app, &alice).await,
        json!({"items": [{"name": "a", "task_count": 2}, {"name": "b", "task_count": 1}]})
    );
    let filtered = json_body(app.get("/tasks?label=gone", Some(&alice.token)).await).await;
    assert_eq!(filtered["total"], 0);

    assert_problem(delete(&app, &alice, "gone").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn label_names_in_the_path_are_percent_decoded() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let names = [
        "with space",
        "a/b",
        "100%",
        "why?",
        "#1",
        "a+b",
        "ünïcødé",
        "日本",
        "semi;colon",
        "%2F",
    ];
    let (task, _) = tagged_task(&app, &user, "t", json!(names)).await;
    for name in names {
        let renamed_to = format!("{name} renamed");
        let response = rename(&app, &user, name, json!(renamed_to)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "PATCH {}",
            label_path(name)
        );
        assert_eq!(
            json_body(response).await,
            json!({"name": renamed_to, "task_count": 1})
        );
    }
    let (now, _) = fetch(&app, &user, &task_path(&task)).await;
    let expected: Vec<String> = names.iter().map(|n| format!("{n} renamed")).collect();
    assert_eq!(now["labels"], json!(expected));
    for name in &expected {
        let response = delete(&app, &user, name).await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "DELETE {}",
            label_path(name)
        );
    }
    assert_eq!(
        fetch(&app, &user, &task_path(&task)).await.0["labels"],
        json!([])
    );
    assert_eq!(labels(&app, &user).await, json!({"items": []}));
}

#[tokio::test]
async fn a_plus_in_the_path_is_a_plus_and_an_encoded_space_is_a_space() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, _) = tagged_task(&app, &user, "t", json!(["a b"])).await;
    // "a+b" is a different label, which nobody has.
    let response = write(&app, &user, Method::DELETE, "/labels/a+b", None, None).await;
    assert_problem(response, StatusCode::NOT_FOUND).await;
    let response = write(&app, &user, Method::DELETE, "/labels/a%20b", None, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        fetch(&app, &user, &task_path(&task)).await.0["labels"],
        json!([])
    );
}

/// Every label's count on `/labels`, and every `label=` and `project_id=` total, agree with
/// the caller's tasks as `GET /tasks` shows them.
async fn assert_counts_agree(app: &TestApp, user: &TestUser, step: &str) {
    let all = json_body(app.get("/tasks?limit=100", Some(&user.token)).await).await;
    let tasks = all["items"].as_array().expect("items").clone();
    assert_eq!(all["total"], tasks.len(), "{step}");
    let mut per_label: std::collections::BTreeMap<String, usize> = Default::default();
    let mut per_project: std::collections::BTreeMap<String, usize> = Default::default();
    for task in &tasks {
        for label in task["labels"].as_array().expect("labels") {
            *per_label
                .entry(label.as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let project = task["project_id"].as_str().unwrap_or("none").to_owned();
        *per_project.entry(project).or_default() += 1;
    }
    // BTreeMap<String> orders by bytes, which for UTF-8 is code-point order.
    let expected: Vec<Value> = per_label
        .iter()
        .map(|(name, count)| json!({"name": name, "task_count": count}))
        .collect();
    assert_eq!(
        labels(app, user).await,
        json!({ "items": expected }),
        "{step}"
    );
    for (label, count) in &per_label {
        let path = format!("/tasks?label={}&limit=1", encode(label));
        let page = json_body(app.get(&path, Some(&user.token)).await).await;
        assert_eq!(page["total"], *count, "{step}: {path}");
    }
    let projects = json_body(app.get("/projects?limit=100", Some(&user.token)).await).await;
    let mut ids: Vec<String> = projects["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.push("none".to_owned());
    for id in ids {
        let page = json_body(
            app.get(
                &format!("/tasks?project_id={id}&limit=1"),
                Some(&user.token),
            )
            .await,
        )
        .await;
        let expected = per_project.get(&id).copied().unwrap_or(0);
        assert_eq!(page["total"], expected, "{step}: project_id={id}");
    }
}

#[tokio::test]
async fn label_counts_and_filtered_totals_agree_with_the_tasks_after_every_kind_of_change() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let bystander = app.new_user().await;
    tagged_task(&app, &bystander, "theirs", json!(["a", "b", "c"])).await;
    let p = crate::projects::create_project(&app, &user, "P").await;
    let q = crate::projects::create_project(&app, &user, "Q").await;
    let mut ids = Vec::new();
    for (title, project, labels) in [
        ("t1", &p["id"], json!(["a", "b"])),
        ("t2", &p["id"], json!(["b"])),
        ("t3", &q["id"], json!(["a"])),
        ("t4", &Value::Null, json!(["c", "b"])),
    ] {
        let task = app
            .create_task(
                &user,
                json!({"title": title, "project_id": project, "labels": labels}),
            )
            .await;
        ids.push(task_path(&task));
    }
    assert_counts_agree(&app, &user, "created").await;

    let patch = |path: &str, body: Value| {
        let path = path.to_owned();
        let app = &app;
        let user = &user;
        async move {
            let response = write(app, user, Method::PATCH, &path, None, Some(&body)).await;
            assert_eq!(response.status(), StatusCode::OK, "PATCH {path} {body}");
        }
    };
    patch(&ids[0], json!({"labels": ["b", "c"]})).await;
    assert_counts_agree(&app, &user, "t1 relabelled").await;
    patch(&ids[1], json!({"project_id": q["id"]})).await;
    assert_counts_agree(&app, &user, "t2 moved").await;
    patch(
        &ids[1],
        json!({"project_id": q["id"], "labels": ["b", "d"]}),
    )
    .await;
    assert_counts_agree(&app, &user, "t2 relabelled in place").await;
    let response = write(
        &app,
        &user,
        Method::PUT,
        &ids[2],
        None,
        Some(&json!({"title": "t3"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_counts_agree(&app, &user, "t3 replaced").await;
    let response = rename(&app, &user, "b", json!("c")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_counts_agree(&app, &user, "b merged into c").await;
    let response = rename(&app, &user, "d", json!("e")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_counts_agree(&app, &user, "d renamed e").await;
    let response = delete(&app, &user, "c").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_counts_agree(&app, &user, "c deleted").await;
    let response = write(&app, &user, Method::DELETE, &ids[3], None, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_counts_agree(&app, &user, "t4 deleted").await;
    let response = write(
        &app,
        &user,
        Method::DELETE,
        &crate::projects::project_path(&q),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_counts_agree(&app, &user, "project Q deleted").await;
    patch(&ids[0], json!({"project_id": null, "labels": ["z"]})).await;
    assert_counts_agree(&app, &user, "t1 out of P").await;

    assert_eq!(
        labels(&app, &bystander).await,
        json!({"items": [
            {"name": "a", "task_count": 1},
            {"name": "b", "task_count": 1},
            {"name": "c", "task_count": 1},
        ]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_task_writes_keep_label_counts_and_project_totals_exact() {
    const WRITERS: usize = 10;
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = crate::projects::create_project(&app, &user, "Busy").await;

    let race = |requests: Vec<reqwest::RequestBuilder>| async move {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
        let mut set = tokio::task::JoinSet::new();
        for request in requests {
            let barrier = std::sync::Arc::clone(&barrier);
            set.spawn(async move {
                barrier.wait().await;
                let response = request.send().await.expect("request sent");
                let status = response.status();
                (status, response.text().await.unwrap())
            });
        }
        set.join_all().await
    };

    let creates = (0..WRITERS)
        .map(|n| {
            app.request(Method::POST, "/tasks", Some(&user.token))
                .json(&json!({"title": format!("t{n}"), "labels": ["shared", format!("own{n}")]}))
        })
        .collect();
    let created = race(creates).await;
    let mut paths = Vec::new();
    for (status, body) in &created {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        paths.push(task_path(&serde_json::from_str(body).unwrap()));
    }
    assert_counts_agree(&app, &user, "created concurrently").await;

    let moves = paths
        .iter()
        .map(|path| {
            app.request(Method::PATCH, path, Some(&user.token))
                .json(&json!({"project_id": project["id"], "labels": ["shared"]}))
        })
        .collect();
    for (status, body) in race(moves).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_counts_agree(&app, &user, "moved concurrently").await;
    assert_eq!(
        labels(&app, &user).await,
        json!({"items": [{"name": "shared", "task_count": WRITERS}]})
    );

    let clears = paths
        .iter()
        .map(|path| {
            app.request(Method::PATCH, path, Some(&user.token))
                .json(&json!({"labels": []}))
        })
        .collect();
    for (status, body) in race(clears).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_counts_agree(&app, &user, "cleared concurrently").await;
    assert_eq!(labels(&app, &user).await, json!({"items": []}));
}

#[tokio::test]
async fn a_nul_in_a_label_is_422_and_never_a_500() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = tagged_task(&app, &user, "t", json!(["x"])).await;
    let created = app
        .send_json(
            Method::POST,
            "/tasks",
            Some(&user.token),
            &json!({"title": "t", "labels": ["a\u{0}b"]}),
        )
        .await;
    assert_eq!(assert_invalid_fields(created).await, ["labels"]);
    let patched = write(
        &app,
        &user,
        Method::PATCH,
        &task_path(&task),
        None,
        Some(&json!({"labels": ["ok", "\u{0}"]})),
    )
    .await;
    assert_eq!(assert_invalid_fields(patched).await, ["labels"]);
    let renamed = rename(&app, &user, "x", json!("x\u{0}")).await;
    assert_eq!(assert_invalid_fields(renamed).await, ["name"]);
    // No task can carry such a label.
    assert_problem(
        rename(&app, &user, "x\u{0}", json!("y")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(delete(&app, &user, "x\u{0}").await, StatusCode::NOT_FOUND).await;
    let filtered = app.get("/tasks?label=x%00", Some(&user.token)).await;
    assert_eq!(assert_invalid_fields(filtered).await, ["label"]);
    assert_eq!(fetch(&app, &user, &task_path(&task)).await, (task, tag));
}

#[tokio::test]
async fn label_lengths_count_characters_not_bytes() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let fifty = "日".repeat(50);
    let (task, _) = tagged_task(&app, &user, "t", json!([fifty, "é".repeat(50)])).await;
    assert_eq!(task["labels"][0], fifty);
    let response = app
        .send_json(
            Method::POST,
            "/tasks",
            Some(&user.token),
            &json!({"title": "t", "labels": ["é".repeat(51)]}),
        )
        .await;
    assert_eq!(assert_invalid_fields(response).await, ["labels"]);
    let response = rename(&app, &user, &fifty, json!("🚀".repeat(50))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = rename(&app, &user, &"🚀".repeat(50), json!("🚀".repeat(51))).await;
    assert_eq!(assert_invalid_fields(response).await, ["name"]);
}

#[tokio::test]
async fn renaming_a_label_away_and_back_gives_the_tasks_new_etags_each_time() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, original) = tagged_task(&app, &user, "t", json!(["home"])).await;
    assert_eq!(
        rename(&app, &user, "home", json!("away")).await.status(),
        StatusCode::OK
    );
    let (_, away) = fetch(&app, &user, &task_path(&task)).await;
    assert_eq!(
        rename(&app, &user, "away", json!("home")).await.status(),
        StatusCode::OK
    );
    let (back, back_tag) = fetch(&app, &user, &task_path(&task)).await;
    assert_eq!(back["labels"], json!(["home"]));
    assert!(
        back_tag != original && back_tag != away,
        "{original} {away} {back_tag}"
    );
    let stale = write(
        &app,
        &user,
        Method::PATCH,
        &task_path(&task),
        Some(&original),
        Some(&json!({"title": "late"})),
    )
    .await;
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_renames_of_one_label_exactly_one_wins_and_the_rest_find_it_gone() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut paths = Vec::new();
    for n in 0..6 {
        let (task, _) = tagged_task(&app, &user, &format!("t{n}"), json!(["x", "contested"])).await;
        paths.push(task_path(&task));
    }
    let requests = (0..6)
        .map(|n| {
            app.request(Method::PATCH, &label_path("contested"), Some(&user.token))
                .json(&json!({"name": format!("winner{n}")}))
        })
        .collect();
    let outcomes = crate::projects::race(requests).await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == StatusCode::OK)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:#?}");
    for (status, body) in &outcomes {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::NOT_FOUND,
            "{status}: {body}"
        );
    }
    let winner = format!("winner{}", winners[0]);
    let won: Value = serde_json::from_str(&outcomes[winners[0]].1).unwrap();
    assert_eq!(won, json!({"name": winner, "task_count": 6}));
    for path in &paths {
        let (task, _) = fetch(&app, &user, path).await;
        assert_eq!(task["labels"], json!(["x", winner]));
    }
    assert_counts_agree(&app, &user, "after the race").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_label_from_its_last_two_tasks_at_once_succeeds_for_both() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for round in 0..20 {
        let label = format!("pair{round}");
        let (first, _) = tagged_task(&app, &user, "first", json!([label, "kept"])).await;
        let (second, _) = tagged_task(&app, &user, "second", json!([label])).await;
        // Half the rounds clear the labels, half delete the tasks: both drop the count twice.
        let requests = [&first, &second]
            .iter()
            .map(|task| {
                if round % 2 == 0 {
                    app.request(Method::PATCH, &task_path(task), Some(&user.token))
                        .json(&json!({"labels": []}))
                } else {
                    app.request(Method::DELETE, &task_path(task), Some(&user.token))
                }
            })
            .collect();
        for (status, body) in crate::projects::race(requests).await {
            assert!(status.is_success(), "round {round}: {status} {body}");
        }
        assert_counts_agree(&app, &user, &format!("round {round}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_and_removing_a_label_at_once_keeps_its_count_exact() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for round in 0..20 {
        let label = format!("flip{round}");
        let (holder, _) = tagged_task(&app, &user, "holder", json!([label])).await;
        let (other, _) = tagged_task(&app, &user, "other", json!(["x"])).await;
        let requests = vec![
            app.request(Method::PATCH, &task_path(&holder), Some(&user.token))
                .json(&json!({"labels": []})),
            app.request(Method::PATCH, &task_path(&other), Some(&user.token))
                .json(&json!({"labels": ["x", label]})),
            app.request(Method::POST, "/tasks", Some(&user.token))
                .json(&json!({"title": "newcomer", "labels": [label]})),
        ];
        for (status, body) in crate::projects::race(requests).await {
            assert!(status.is_success(), "round {round}: {status} {body}");
        }
        assert_counts_agree(&app, &user, &format!("round {round}")).await;
    }
}
