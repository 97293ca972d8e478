//! The task fields `project_id` and `labels` (API.md "Tasks"): defaults, validation, the
//! same 422 for an unknown and another user's project, PATCH and PUT semantics, and the list
//! filters `project_id` (an id or `none`) and `label` (may repeat; all of them, exactly),
//! combined with the existing filters, sorting and paging.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_invalid_fields, assert_problem, json_body};
use crate::projects::{create_project, etag, fetch, task_path, write};

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn list(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Value {
    let raw = query(pairs);
    let path = if raw.is_empty() {
        "/tasks".to_owned()
    } else {
        format!("/tasks?{raw}")
    };
    let response = app.get(&path, Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    json_body(response).await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items is an array")
}

/// Titles of the tasks matching `pairs` (one page of 100), sorted; checks `total` agrees.
async fn titles(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut all = pairs.to_vec();
    all.push(("limit", "100"));
    let page = list(app, user, &all).await;
    let mut titles: Vec<String> = items(&page)
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(page["total"], titles.len(), "total of {pairs:?}");
    titles.sort();
    titles
}

fn sorted(titles: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = titles.iter().map(|t| (*t).to_owned()).collect();
    v.sort();
    v
}

async fn send(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    app.send_json(method, path, Some(&user.token), &body).await
}

// ---------------------------------------------------------------------------------------
// The fields.

#[tokio::test]
async fn every_task_response_carries_project_id_null_and_labels_empty_by_default() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let created = app.create_task(&user, json!({"title": "plain"})).await;
    assert_eq!(created["project_id"], Value::Null);
    assert_eq!(created["labels"], json!([]));
    assert!(created.as_object().unwrap().contains_key("project_id"));
    let path = task_path(&created);

    let (fetched, _) = fetch(&app, &user, &path).await;
    assert_eq!(fetched, created);
    let page = list(&app, &user, &[]).await;
    assert_eq!(items(&page)[0], created);
    let patched =
        json_body(send(&app, &user, Method::PATCH, &path, json!({"title": "p"})).await).await;
    assert_eq!(
        (patched["project_id"].clone(), patched["labels"].clone()),
        (Value::Null, json!([]))
    );
    let put = json_body(send(&app, &user, Method::PUT, &path, json!({"title": "q"})).await).await;
    assert_eq!(
        (put["project_id"].clone(), put["labels"].clone()),
        (Value::Null, json!([]))
    );
    let mut keys: Vec<&str> = put
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
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
}

#[tokio::test]
async fn a_task_is_created_in_a_project_with_labels_trimmed_in_order_and_case_sensitive() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = create_project(&app, &user, "Home").await;
    let task = app
        .create_task(
            &user,
            json!({"title": "t", "project_id": project["id"], "labels": ["  zeta ", "Home", "home", "alpha", "日本"]}),
        )
        .await;
    assert_eq!(task["project_id"], project["id"]);
    assert_eq!(
        task["labels"],
        json!(["zeta", "Home", "home", "alpha", "日本"])
    );
    let (fetched, _) = fetch(&app, &user, &task_path(&task)).await;
    assert_eq!(fetched, task);
}

#[tokio::test]
async fn labels_at_the_limits_are_accepted() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let twenty: Vec<String> = (0..20).map(|n| format!("l{n}")).collect();
    let task = app
        .create_task(&user, json!({"title": "t", "labels": twenty}))
        .await;
    assert_eq!(task["labels"], json!(twenty));
    let fifty = "x".repeat(50);
    let task = app
        .create_task(
            &user,
            json!({"title": "t", "labels": [format!("  {fifty}\t"), "y"]}),
        )
        .await;
    assert_eq!(task["labels"], json!([fifty, "y"]));
    let task = app
        .create_task(&user, json!({"title": "t", "labels": []}))
        .await;
    assert_eq!(task["labels"], json!([]));
}

#[tokio::test]
async fn invalid_labels_are_422_naming_labels_on_post_patch_and_put() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app
        .create_task(&user, json!({"title": "t", "labels": ["keep"]}))
        .await;
    let path = task_path(&task);
    let twenty_one: Vec<String> = (0..21).map(|n| format!("l{n}")).collect();
    for labels in [
        json!(null),
        json!("work"),
        json!({"work": true}),
        json!(5),
        json!(twenty_one),
        json!([""]),
        json!(["   "]),
        json!(["ok", " \t "]),
        json!(["x".repeat(51)]),
        json!([format!(" {} ", "x".repeat(51))]),
        json!(["a", "a"]),
        json!([" a", "a "]),
        json!(["Home", "x", "Home"]),
        json!([1]),
        json!([null]),
        json!(["ok", 2]),
        json!([["nested"]]),
        json!([{"name": "x"}]),
    ] {
        let body = json!({"title": "t", "labels": labels});
        let created = send(&app, &user, Method::POST, "/tasks", body.clone()).await;
        assert_eq!(
            assert_invalid_fields(created).await,
            ["labels"],
            "POST {body}"
        );
        let patched = send(&app, &user, Method::PATCH, &path, json!({"labels": labels})).await;
        assert_eq!(
            assert_invalid_fields(patched).await,
            ["labels"],
            "PATCH {labels}"
        );
        let replaced = send(&app, &user, Method::PUT, &path, body.clone()).await;
        assert_eq!(
            assert_invalid_fields(replaced).await,
            ["labels"],
            "PUT {body}"
        );
    }
    let (after, _) = fetch(&app, &user, &path).await;
    assert_eq!(after, task);
    assert_eq!(list(&app, &user, &[]).await["total"], 1);
}

#[tokio::test]
async fn project_ids_that_are_not_uuid_strings_are_422_naming_project_id() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "t"})).await;
    let path = task_path(&task);
    for project_id in [
        json!("not-a-uuid"),
        json!(""),
        json!("none"),
        json!(5),
        json!(true),
        json!([]),
        json!({}),
        json!("00000000-0000-0000-0000-00000000000g"),
    ] {
        let body = json!({"title": "t", "project_id": project_id});
        let created = send(&app, &user, Method::POST, "/tasks", body.clone()).await;
        assert_eq!(
            assert_invalid_fields(created).await,
            ["project_id"],
            "POST {body}"
        );
        let patched = send(
            &app,
            &user,
            Method::PATCH,
            &path,
            json!({"project_id": project_id}),
        )
        .await;
        assert_eq!(
            assert_invalid_fields(patched).await,
            ["project_id"],
            "PATCH {project_id}"
        );
        let replaced = send(&app, &user, Method::PUT, &path, body.clone()).await;
        assert_eq!(
            assert_invalid_fields(replaced).await,
            ["project_id"],
            "PUT {body}"
        );
    }
    assert_eq!(fetch(&app, &user, &path).await.0, task);
    assert_eq!(list(&app, &user, &[]).await["total"], 1);
}

#[tokio::test]
async fn an_unknown_project_and_another_users_project_give_the_same_422() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let bobs = create_project(&app, &bob, "Bob's").await;
    let mine = create_project(&app, &alice, "Mine").await;
    let task = app
        .create_task(&alice, json!({"title": "t", "project_id": mine["id"]}))
        .await;
    let path = task_path(&task);
    let unknown = json!(Uuid::new_v4().to_string());
    for (method, target) in [
        (Method::POST, "/tasks"),
        (Method::PATCH, path.as_str()),
        (Method::PUT, path.as_str()),
    ] {
        let mut bodies = Vec::new();
        for project_id in [&bobs["id"], &unknown] {
            let response = send(
                &app,
                &alice,
                method.clone(),
                target,
                json!({"title": "t", "project_id": project_id}),
            )
            .await;
            let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, ["project_id"], "{method} {body}");
            bodies.push(body);
        }
        assert_eq!(
            bodies[0], bodies[1],
            "{method}: the foreign project must look unknown"
        );
    }
    assert_eq!(fetch(&app, &alice, &path).await.0, task);
    assert_eq!(list(&app, &alice, &[]).await["total"], 1);
    // Bob's project gained nothing.
    assert_eq!(
        list(&app, &bob, &[("project_id", bobs["id"].as_str().unwrap())]).await["total"],
        0
    );
}

#[tokio::test]
async fn patch_moves_a_task_between_projects_and_null_takes_it_out() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let first = create_project(&app, &user, "First").await;
    let second = create_project(&app, &user, "Second").await;
    let response = send(
        &app,
        &user,
        Method::POST,
        "/tasks",
        json!({"title": "mover", "project_id": first["id"], "labels": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut tag = etag(&response);
    let task = json_body(response).await;
    let path = task_path(&task);

    let response = send(
        &app,
        &user,
        Method::PATCH,
        &path,
        json!({"project_id": second["id"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let new_tag = etag(&response);
    assert_ne!(new_tag, tag);
    tag = new_tag;
    let moved = json_body(response).await;
    assert_eq!(moved["project_id"], second["id"]);
    assert_eq!(
        moved["labels"],
        json!(["a", "b"]),
        "labels untouched by a move"
    );
    assert_eq!(moved["title"], "mover");
    assert!(moved["updated_at"].as_str() > task["updated_at"].as_str());

    let response = send(&app, &user, Method::PATCH, &path, json!({"labels": ["c"]})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let new_tag = etag(&response);
    assert_ne!(new_tag, tag);
    tag = new_tag;
    let relabelled = json_body(response).await;
    assert_eq!(relabelled["labels"], json!(["c"]));
    assert_eq!(
        relabelled["project_id"], second["id"],
        "project untouched by a relabel"
    );

    let response = send(
        &app,
        &user,
        Method::PATCH,
        &path,
        json!({"project_id": null, "labels": []}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(etag(&response), tag);
    let out = json_body(response).await;
    assert_eq!(out["project_id"], Value::Null);
    assert_eq!(out["labels"], json!([]));
    let (fetched, _) = fetch(&app, &user, &path).await;
    assert_eq!(fetched, out);

    let response = send(&app, &user, Method::PATCH, &path, json!({"labels": ["z"]})).await;
    let back = json_body(response).await;
    let response = send(&app, &user, Method::PATCH, &path, json!({"labels": []})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = json_body(response).await;
    assert_eq!(back["labels"], json!(["z"]));
    assert_eq!(cleared["labels"], json!([]));

    assert_eq!(
        titles(
            &app,
            &user,
            &[("project_id", first["id"].as_str().unwrap())]
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[("project_id", second["id"].as_str().unwrap())]
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, &user, &[("project_id", "none")]).await,
        ["mover"]
    );
}

#[tokio::test]
async fn empty_patch_keeps_project_and_labels_and_the_etag() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = create_project(&app, &user, "P").await;
    let response = send(
        &app,
        &user,
        Method::POST,
        "/tasks",
        json!({"title": "t", "project_id": project["id"], "labels": ["a"]}),
    )
    .await;
    let tag = etag(&response);
    let task = json_body(response).await;
    let response = send(&app, &user, Method::PATCH, &task_path(&task), json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), tag);
    assert_eq!(json_body(response).await, task);
}

#[tokio::test]
async fn put_without_project_id_or_labels_resets_them_and_with_them_sets_them() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = create_project(&app, &user, "P").await;
    let other = create_project(&app, &user, "Q").await;
    let task = app
        .create_task(
            &user,
            json!({"title": "t", "project_id": project["id"], "labels": ["a", "b"]}),
        )
        .await;
    let path = task_path(&task);
    let response = send(&app, &user, Method::PUT, &path, json!({"title": "bare"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bare = json_body(response).await;
    assert_eq!(bare["project_id"], Value::Null);
    assert_eq!(bare["labels"], json!([]));
    assert_eq!(
        titles(
            &app,
            &user,
            &[("project_id", project["id"].as_str().unwrap())]
        )
        .await,
        Vec::<String>::new()
    );

    let response = send(
        &app,
        &user,
        Method::PUT,
        &path,
        json!({"title": "full", "project_id": other["id"], "labels": [" c ", "d"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let full = json_body(response).await;
    assert_eq!(full["project_id"], other["id"]);
    assert_eq!(full["labels"], json!(["c", "d"]));
    assert_eq!(fetch(&app, &user, &path).await.0, full);

    let response = send(
        &app,
        &user,
        Method::PUT,
        &path,
        json!({"title": "explicit", "project_id": null, "labels": []}),
    )
    .await;
    let explicit = json_body(response).await;
    assert_eq!(
        (explicit["project_id"].clone(), explicit["labels"].clone()),
        (Value::Null, json!([]))
    );
}

// ---------------------------------------------------------------------------------------
// The filters.

/// Alice's tasks: in Home, in Work, and in no project, with assorted labels; Bob has a
/// project and labels too.
struct Fixture {
    alice: TestUser,
    bob: TestUser,
    home: Value,
    work: Value,
    bobs: Value,
}

async fn fixture(app: &TestApp) -> Fixture {
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let home = create_project(app, &alice, "Home").await;
    let work = create_project(app, &alice, "Work").await;
    let bobs = create_project(app, &bob, "Home").await;
    for (title, project, labels, status) in [
        ("h1", Some(&home), json!(["urgent", "Errand"]), "todo"),
        ("h2", Some(&home), json!(["errand"]), "done"),
        ("h3", Some(&home), json!([]), "todo"),
        ("w1", Some(&work), json!(["urgent", "call"]), "in_progress"),
        (
            "w2",
            Some(&work),
            json!(["call", "urgent", "Errand"]),
            "todo",
        ),
        ("n1", None, json!(["urgent"]), "todo"),
        (
            "n2",
            None,
            json!(["a&b", "100%", "日本", "with space"]),
            "done",
        ),
        ("n3", None, json!([]), "todo"),
    ] {
        let project_id = project.map(|p| p["id"].clone()).unwrap_or(Value::Null);
        app.create_task(
            &alice,
            json!({"title": title, "project_id": project_id, "labels": labels, "status": status}),
        )
        .await;
    }
    app.create_task(
        &bob,
        json!({"title": "b1", "project_id": bobs["id"], "labels": ["urgent"]}),
    )
    .await;
    app.create_task(&bob, json!({"title": "b2", "labels": ["urgent"]}))
        .await;
    Fixture {
        alice,
        bob,
        home,
        work,
        bobs,
    }
}

fn id(project: &Value) -> &str {
    project["id"].as_str().unwrap()
}

#[tokio::test]
async fn project_id_filter_selects_that_projects_tasks_and_none_the_tasks_in_no_project() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    assert_eq!(
        titles(&app, &f.alice, &[("project_id", id(&f.home))]).await,
        sorted(&["h1", "h2", "h3"])
    );
    assert_eq!(
        titles(&app, &f.alice, &[("project_id", id(&f.work))]).await,
        sorted(&["w1", "w2"])
    );
    assert_eq!(
        titles(&app, &f.alice, &[("project_id", "none")]).await,
        sorted(&["n1", "n2", "n3"])
    );
    assert_eq!(
        titles(&app, &f.bob, &[("project_id", id(&f.bobs))]).await,
        ["b1"]
    );
    assert_eq!(
        titles(&app, &f.bob, &[("project_id", "none")]).await,
        ["b2"]
    );
    // Every item carries the project it was filtered by.
    let page = list(&app, &f.alice, &[("project_id", id(&f.home))]).await;
    assert!(items(&page).iter().all(|t| t["project_id"] == f.home["id"]));
    let page = list(&app, &f.alice, &[("project_id", "none")]).await;
    assert!(items(&page).iter().all(|t| t["project_id"].is_null()));
    // An uppercase spelling of the same id is the same id.
    let upper = id(&f.work).to_uppercase();
    assert_eq!(
        titles(&app, &f.alice, &[("project_id", &upper)]).await,
        sorted(&["w1", "w2"])
    );
}

#[tokio::test]
async fn project_id_filter_with_an_unknown_or_another_users_project_is_an_empty_200() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let unknown = Uuid::new_v4().to_string();
    for project in [id(&f.bobs), unknown.as_str()] {
        let page = list(&app, &f.alice, &[("project_id", project)]).await;
        assert_eq!(page["total"], 0);
        assert!(items(&page).is_empty());
    }
    let page = list(&app, &f.bob, &[("project_id", id(&f.home))]).await;
    assert_eq!(page["total"], 0);
    assert!(items(&page).is_empty());
}

#[tokio::test]
async fn project_id_filters_that_are_neither_an_id_nor_none_are_422() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "t"})).await;
    for raw in [
        "project_id=",
        "project_id=abc",
        "project_id=None",
        "project_id=NONE",
        "project_id=null",
        "project_id=%20none",
        "project_id=00000000-0000-0000-0000-00000000000g",
        "project_id=42",
    ] {
        let response = app.get(&format!("/tasks?{raw}"), Some(&user.token)).await;
        let mut fields = assert_invalid_fields(response).await;
        fields.dedup();
        assert_eq!(fields, ["project_id"], "{raw}");
    }
}

#[tokio::test]
async fn label_filters_may_repeat_and_select_tasks_carrying_every_label_exactly() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let a = &f.alice;
    assert_eq!(
        titles(&app, a, &[("label", "urgent")]).await,
        sorted(&["h1", "w1", "w2", "n1"])
    );
    assert_eq!(
        titles(&app, a, &[("label", "urgent"), ("label", "call")]).await,
        sorted(&["w1", "w2"])
    );
    assert_eq!(
        titles(
            &app,
            a,
            &[("label", "call"), ("label", "urgent"), ("label", "Errand")]
        )
        .await,
        ["w2"]
    );
    // Case-sensitive.
    assert_eq!(
        titles(&app, a, &[("label", "Errand")]).await,
        sorted(&["h1", "w2"])
    );
    assert_eq!(titles(&app, a, &[("label", "errand")]).await, ["h2"]);
    assert_eq!(
        titles(&app, a, &[("label", "ERRAND")]).await,
        Vec::<String>::new()
    );
    // Exactly: no trimming, no prefix or substring match.
    assert_eq!(
        titles(&app, a, &[("label", " urgent")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, a, &[("label", "urgent ")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, a, &[("label", "urg")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, a, &[("label", "urgen%")]).await,
        Vec::<String>::new()
    );
    // A label nobody has, together with one many have: nothing.
    assert_eq!(
        titles(&app, a, &[("label", "urgent"), ("label", "nope")]).await,
        Vec::<String>::new()
    );
    // Repeating the same label is the same filter.
    assert_eq!(
        titles(&app, a, &[("label", "call"), ("label", "call")]).await,
        sorted(&["w1", "w2"])
    );
    // Characters that mean something in a query string or to SQL.
    for label in ["a&b", "100%", "日本", "with space"] {
        assert_eq!(
            titles(&app, a, &[("label", label)]).await,
            ["n2"],
            "{label}"
        );
    }
    // Another user's labels: only their own tasks.
    assert_eq!(
        titles(&app, &f.bob, &[("label", "urgent")]).await,
        sorted(&["b1", "b2"])
    );
}

#[tokio::test]
async fn project_and_label_filters_combine_with_status_q_sort_and_paging() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let a = &f.alice;
    assert_eq!(
        titles(&app, a, &[("project_id", id(&f.home)), ("label", "urgent")]).await,
        ["h1"]
    );
    assert_eq!(
        titles(&app, a, &[("project_id", "none"), ("label", "urgent")]).await,
        ["n1"]
    );
    assert_eq!(
        titles(&app, a, &[("project_id", id(&f.home)), ("status", "todo")]).await,
        sorted(&["h1", "h3"])
    );
    assert_eq!(
        titles(
            &app,
            a,
            &[
                ("project_id", "none"),
                ("status", "todo"),
                ("status", "done")
            ]
        )
        .await,
        sorted(&["n1", "n2", "n3"])
    );
    assert_eq!(
        titles(&app, a, &[("label", "urgent"), ("status", "todo")]).await,
        sorted(&["h1", "w2", "n1"])
    );
    assert_eq!(
        titles(&app, a, &[("label", "urgent"), ("q", "w2")]).await,
        ["w2"]
    );
    assert_eq!(
        titles(&app, a, &[("project_id", id(&f.work)), ("q", "h1")]).await,
        Vec::<String>::new()
    );

    // Sorted by title, paged by two: every match once, in order, total matching the filters.
    let mut walked = Vec::new();
    for offset in ["0", "2", "4"] {
        let page = list(
            &app,
            a,
            &[
                ("label", "urgent"),
                ("sort", "title"),
                ("limit", "2"),
                ("offset", offset),
            ],
        )
        .await;
        assert_eq!(
            page["total"], 4,
            "total counts every match, not just the page"
        );
        walked.extend(
            items(&page)
                .iter()
                .map(|t| t["title"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(walked, ["h1", "n1", "w1", "w2"]);
    let page = list(
        &app,
        a,
        &[
            ("project_id", id(&f.home)),
            ("sort", "-title"),
            ("limit", "1"),
        ],
    )
    .await;
    assert_eq!(page["total"], 3);
    assert_eq!(items(&page)[0]["title"], "h3");
}

#[tokio::test]
async fn a_moved_or_relabelled_task_follows_the_filters() {
    let app = TestApp::spawn().await;
    let f = fixture(&app).await;
    let a = &f.alice;
    let n3 = items(&list(&app, a, &[("q", "n3")]).await)[0].clone();
    let response = write(
        &app,
        a,
        Method::PATCH,
        &task_path(&n3),
        None,
        Some(&json!({"project_id": f.work["id"], "labels": ["call"]})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        titles(&app, a, &[("project_id", id(&f.work))]).await,
        sorted(&["w1", "w2", "n3"])
    );
    assert_eq!(
        titles(&app, a, &[("project_id", "none")]).await,
        sorted(&["n1", "n2"])
    );
    assert_eq!(
        titles(&app, a, &[("label", "call")]).await,
        sorted(&["w1", "w2", "n3"])
    );
    let response = write(&app, a, Method::DELETE, &task_path(&n3), None, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        titles(&app, a, &[("project_id", id(&f.work))]).await,
        sorted(&["w1", "w2"])
    );
    assert_eq!(
        titles(&app, a, &[("label", "call")]).await,
        sorted(&["w1", "w2"])
    );
    let _ = assert_problem(
        app.get(&task_path(&n3), Some(&a.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

/// The project and label filters in creation order (each has a statement of its own) page
/// through every matching task once, both ways, ties on `created_at` broken by id.
#[tokio::test]
async fn project_and_label_filters_page_in_creation_order_both_ways() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = create_project(&app, &user, "Paged").await;
    let project_id = id(&project).to_owned();
    for n in 0..9 {
        let mut body = json!({"title": format!("t{n}")});
        if n % 2 == 0 {
            body["project_id"] = json!(project_id);
        }
        if n % 3 == 0 {
            body["labels"] = json!(["x"]);
        }
        app.create_task(&user, body).await;
    }
    // Three tasks share one creation time, so the order among them is the id's.
    app.db()
        .await
        .execute(
            "UPDATE tasks SET created_at = '2026-01-01T00:00:00Z' \
             WHERE owner_id = $1 AND title IN ('t0', 't3', 't6')",
            &[&user.id],
        )
        .await
        .expect("created_at tied");
    let everything = list(&app, &user, &[("limit", "100")]).await;
    for (filter, value) in [("project_id", project_id.as_str()), ("label", "x")] {
        for sort in ["created_at", "-created_at"] {
            let mut expected: Vec<Value> = items(&everything)
                .iter()
                .filter(|task| match filter {
                    "project_id" => task["project_id"] == json!(value),
                    _ => task["labels"].as_array().unwrap().contains(&json!(value)),
                })
                .cloned()
                .collect();
            let key = |task: &Value| {
                let created: time::OffsetDateTime = time::OffsetDateTime::parse(
                    task["created_at"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                (created, task["id"].as_str().unwrap().to_owned())
            };
            expected.sort_by_key(key);
            if sort.starts_with('-') {
                expected.reverse();
            }
            let mut seen = Vec::new();
            for offset in (0..expected.len() + 2).step_by(2) {
                let offset = offset.to_string();
                let page = list(
                    &app,
                    &user,
                    &[
                        (filter, value),
                        ("sort", sort),
                        ("limit", "2"),
                        ("offset", &offset),
                    ],
                )
                .await;
                assert_eq!(page["total"], expected.len(), "{filter} {sort}");
                seen.extend(items(&page).iter().map(|t| t["title"].clone()));
            }
            let expected: Vec<Value> = expected.iter().map(|t| t["title"].clone()).collect();
            assert_eq!(seen, expected, "{filter}={value} sort={sort}");
        }
    }
}
