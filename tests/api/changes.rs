//! The change feed (API.md "Sync: the change feed"): `GET /changes` gives the caller's
//! tasks and projects as they change: each object's latest state once (coalesced), in
//! commit order, deletions as `op: delete` (a project's deletion reporting its tasks'
//! too, a label rename or deletion reporting every task it changed), paged by `limit`
//! (1..1000, default 100) with `cursor` passed back as `since` until `has_more` is false;
//! a cursor that is malformed or another user's is 422 naming `since`; one older than
//! `CHANGES_RETENTION_DAYS` is 410; other users' changes never show. And the promise that
//! makes it a sync protocol: reading page after page while others write, then applying
//! the changes in order, yields exactly the caller's tasks and projects.
//!
//! Readings of the contract written down here:
//! - `data` is absent from a delete (not `null`): a delete is exactly
//!   `{"kind", "op", "id"}`; an upsert exactly `{"kind", "op", "id", "data"}`, with
//!   `data` equal, member for member, to what `GET /tasks/{id}` or `GET /projects/{id}`
//!   returns at that moment (when nothing changed since).
//! - "Appears once" holds within one response: no page names an object twice. Across
//!   pages an object may reappear if it changed again after the earlier page was read.
//! - An object created and deleted after `since` is a change after `since`: it appears
//!   once, as a delete (harmless to a client that never saw it).
//! - Without `since` the feed may also carry deletes of objects deleted before (a
//!   client applies them harmlessly), but its upserts are exactly the existing objects.
//! - Several changes committed in one transaction (a project's deletion with its tasks)
//!   may come in any order among themselves.
//! - `has_more` is true whenever more changes than `limit` are waiting; a full page with
//!   nothing after it may say either (the walk then ends on an empty page).
//! - A write that changes nothing (refused: 412, 422, 404, 409, 400; or an idempotent
//!   replay) commits nothing, so it reports no change.
//! - An empty `since=` is a malformed cursor (422), not an absent one.
//! - A bad `limit` is a validation failure like those of `GET /tasks`: a 422 whose
//!   `errors` name `limit`. An unknown or repeated parameter is 422 naming it, as on
//!   `GET /tasks` (the project's convention, not spelled out in the feed's section; that
//!   test stands apart so that its failure reads as such).
//! - "No change is ever skipped" allows a feed to hold back changes committed after a
//!   transaction still in flight (until it ends); what it forbids is a reader moving past
//!   a change that commits later. The late-commit test holds a real COMMIT (through a
//!   PostgreSQL proxy) to check exactly that, without requiring either design.
//! - In the concurrency test a write answered 503 (a deadlock or lock timeout between
//!   writers, rolled back) is sent again: the feed is under test, not the lock order.
//! - "A cursor older than `CHANGES_RETENTION_DAYS`" is one issued longer ago than the
//!   retention; the test makes it true under either reading (issue time, or a position
//!   before deletions that have since been forgotten): it deletes a task after taking
//!   the cursor, waits past the retention and writes again before using it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::IF_MATCH;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::helpers::{
    TestApp, TestUser, assert_invalid_fields, assert_problem, database, json_body,
};
use crate::idempotency::{DbProxy, Trap, post_keyed};
use crate::projects::{create_project, fetch, project_path, task_path, write};

/// One page of the feed.
#[derive(Debug, Clone)]
struct Page {
    changes: Vec<Value>,
    cursor: String,
    has_more: bool,
}

/// `(kind, id)`: what a change is about.
type Key = (String, String);
/// A client's copy of the caller's objects.
type State = BTreeMap<Key, Value>;

fn key_of(change: &Value) -> Key {
    (
        change["kind"].as_str().expect("a kind").to_owned(),
        change["id"].as_str().expect("an id").to_owned(),
    )
}

/// `GET /changes` with these query parameters (encoded).
async fn feed(app: &TestApp, user: &TestUser, query: &[(&str, &str)]) -> Response {
    app.request(Method::GET, "/changes", Some(&user.token))
        .query(query)
        .send()
        .await
        .expect("request sent")
}

/// Checks one change's shape.
fn check_change(change: &Value) {
    let object = change.as_object().expect("a change is an object");
    let kind = change["kind"].as_str().expect("kind is a string");
    assert!(kind == "task" || kind == "project", "kind {kind:?}");
    let id = change["id"].as_str().expect("id is a string");
    assert!(id.parse::<uuid::Uuid>().is_ok(), "id {id:?} is a UUID");
    let mut members: Vec<&str> = object.keys().map(String::as_str).collect();
    members.sort_unstable();
    match change["op"].as_str().expect("op is a string") {
        "upsert" => {
            assert_eq!(members, ["data", "id", "kind", "op"], "an upsert: {change}");
            assert_eq!(
                change["data"]["id"], id,
                "data is the object named: {change}"
            );
            let field = if kind == "task" { "title" } else { "name" };
            assert!(
                change["data"][field].is_string(),
                "data is a {kind}: {change}"
            );
        }
        "delete" => assert_eq!(members, ["id", "kind", "op"], "a delete: {change}"),
        other => panic!("op {other:?}"),
    }
}

/// One page, checked: its shape, at most `limit` changes (100 by default), no object twice.
async fn page(app: &TestApp, user: &TestUser, since: Option<&str>, limit: Option<u32>) -> Page {
    let limit_text = limit.map(|l| l.to_string());
    let mut query = Vec::new();
    if let Some(since) = since {
        query.push(("since", since));
    }
    if let Some(limit) = &limit_text {
        query.push(("limit", limit.as_str()));
    }
    let response = feed(app, user, &query).await;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.text().await.unwrap_or_default();
        panic!("GET /changes {query:?}: {status} {body}");
    }
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = json_body(response).await;
    let changes = body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("changes is an array: {body}"))
        .clone();
    let cursor = body["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("cursor is a string: {body}"))
        .to_owned();
    assert!(!cursor.is_empty(), "a cursor");
    let has_more = body["has_more"]
        .as_bool()
        .unwrap_or_else(|| panic!("has_more is a boolean: {body}"));
    assert!(
        changes.len() <= limit.unwrap_or(100) as usize,
        "{} changes on a page of {limit:?}",
        changes.len()
    );
    let mut seen = HashSet::new();
    for change in &changes {
        check_change(change);
        assert!(
            seen.insert(key_of(change)),
            "{change} appears twice in one response"
        );
    }
    if changes.len() < limit.unwrap_or(100) as usize {
        // Unless the server caps pages below `limit`, a short page is the last.
        assert!(!has_more, "a short page says has_more: {body}");
    }
    Page {
        changes,
        cursor,
        has_more,
    }
}

/// Reads page after page from `since` until `has_more` is false: every change in order,
/// the last cursor, and the pages' sizes.
async fn sync(
    app: &TestApp,
    user: &TestUser,
    since: Option<&str>,
    limit: Option<u32>,
) -> (Vec<Value>, String, Vec<usize>) {
    let mut since = since.map(str::to_owned);
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..10_000 {
        let page = page(app, user, since.as_deref(), limit).await;
        sizes.push(page.changes.len());
        all.extend(page.changes);
        since = Some(page.cursor);
        if !page.has_more {
            return (all, since.unwrap(), sizes);
        }
    }
    panic!("has_more never became false");
}

fn apply(state: &mut State, changes: &[Value]) {
    for change in changes {
        let key = key_of(change);
        match change["op"].as_str().unwrap() {
            "upsert" => {
                state.insert(key, change["data"].clone());
            }
            _ => {
                state.remove(&key);
            }
        }
    }
}

/// The caller's tasks and projects, as the lists show them (every page).
async fn truth(app: &TestApp, user: &TestUser) -> State {
    let mut state = State::new();
    for (route, kind) in [("/tasks", "task"), ("/projects", "project")] {
        let mut offset = 0;
        loop {
            let response = app
                .get(
                    &format!("{route}?limit=100&offset={offset}"),
                    Some(&user.token),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            let body = json_body(response).await;
            let items = body["items"].as_array().unwrap();
            for item in items {
                let id = item["id"].as_str().unwrap().to_owned();
                assert!(
                    state.insert((kind.to_owned(), id), item.clone()).is_none(),
                    "{route} lists {item} twice"
                );
            }
            offset += items.len();
            if items.is_empty() || offset as i64 >= body["total"].as_i64().unwrap() {
                break;
            }
        }
    }
    state
}

/// The changes as `(kind, op, id)`, for order comparisons.
fn summary(changes: &[Value]) -> Vec<(String, String, String)> {
    changes
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["op"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn upsert(kind: &str, object: &Value) -> (String, String, String) {
    (
        kind.to_owned(),
        "upsert".to_owned(),
        object["id"].as_str().unwrap().to_owned(),
    )
}

fn delete(kind: &str, object: &Value) -> (String, String, String) {
    (
        kind.to_owned(),
        "delete".to_owned(),
        object["id"].as_str().unwrap().to_owned(),
    )
}

/// The cursor at the current end of the feed.
async fn end_cursor(app: &TestApp, user: &TestUser) -> String {
    sync(app, user, None, Some(1000)).await.1
}

async fn patch(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let response = write(app, user, Method::PATCH, path, None, Some(&body)).await;
    assert_eq!(response.status(), StatusCode::OK, "PATCH {path} {body}");
    json_body(response).await
}

async fn remove(app: &TestApp, user: &TestUser, path: &str) {
    let response = write(app, user, Method::DELETE, path, None, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "DELETE {path}");
}

/// Asserts that each upsert's data is what `GET` returns now.
async fn assert_data_is_what_get_returns(app: &TestApp, user: &TestUser, changes: &[Value]) {
    for change in changes.iter().filter(|c| c["op"] == "upsert") {
        let path = match change["kind"].as_str().unwrap() {
            "task" => task_path(&change["data"]),
            _ => project_path(&change["data"]),
        };
        let (now, _) = fetch(app, user, &path).await;
        assert_eq!(
            change["data"], now,
            "the data of {path} is what GET returns"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The shape of a change.

#[tokio::test]
async fn a_change_is_kind_op_id_and_on_upserts_only_the_data_get_returns() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = create_project(&app, &user, "Everything").await;
    let task = app
        .create_task(
            &user,
            json!({
                "title": "Full",
                "description": "All fields",
                "status": "done",
                "priority": "urgent",
                "due_at": "2030-01-02T03:04:05Z",
                "project_id": project["id"],
                "labels": ["b", "a"],
            }),
        )
        .await;
    let (changes, cursor, _) = sync(&app, &user, None, None).await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    let mut expected = vec![upsert("project", &project), upsert("task", &task)];
    expected.sort();
    let mut got = summary(&changes);
    got.sort();
    assert_eq!(got, expected);
    assert_data_is_what_get_returns(&app, &user, &changes).await;
    let task_change = changes.iter().find(|c| c["kind"] == "task").unwrap();
    assert_eq!(task_change["data"], task, "the data is the task as created");

    remove(&app, &user, &task_path(&task)).await;
    let page = page(&app, &user, Some(&cursor), None).await;
    assert_eq!(
        page.changes,
        vec![json!({"kind": "task", "op": "delete", "id": task["id"]})]
    );
    assert!(!page.has_more);
}

#[tokio::test]
async fn every_kind_of_write_is_an_upsert_carrying_the_new_state() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let home = create_project(&app, &user, "Home").await;
    let work = create_project(&app, &user, "Work").await;
    let task = app
        .create_task(&user, json!({"title": "Move me", "project_id": home["id"]}))
        .await;
    let path = task_path(&task);
    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            path.clone(),
            json!({"project_id": work["id"]}),
        ),
        (Method::PATCH, path.clone(), json!({"status": "done"})),
        (
            Method::PATCH,
            path.clone(),
            json!({"status": "todo", "due_at": null}),
        ),
        (
            Method::PUT,
            path.clone(),
            json!({"title": "Replaced", "labels": ["x"]}),
        ),
        (Method::PATCH, project_path(&home), json!({"name": "House"})),
    ];
    let mut cursor = end_cursor(&app, &user).await;
    for (method, target, body) in writes {
        let response = write(&app, &user, method.clone(), &target, None, Some(&body)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{method} {target} {body}"
        );
        let written = json_body(response).await;
        let page = page(&app, &user, Some(&cursor), None).await;
        let kind = if target.starts_with("/tasks") {
            "task"
        } else {
            "project"
        };
        assert_eq!(
            summary(&page.changes),
            vec![upsert(kind, &written)],
            "{body}"
        );
        assert_eq!(page.changes[0]["data"], written, "{method} {target} {body}");
        assert_data_is_what_get_returns(&app, &user, &page.changes).await;
        cursor = page.cursor;
    }
}

// ---------------------------------------------------------------------------------------
// From the beginning; limit; paging.

#[tokio::test]
async fn without_since_the_feed_is_every_task_and_project_as_upserts() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let gone_project = create_project(&app, &user, "Gone").await;
    let gone_task = app.create_task(&user, json!({"title": "Gone"})).await;
    let mut projects = Vec::new();
    for name in ["A", "B", "C"] {
        projects.push(create_project(&app, &user, name).await);
    }
    for i in 0..5 {
        let project_id = if i % 2 == 0 {
            projects[i % 3]["id"].clone()
        } else {
            Value::Null
        };
        app.create_task(
            &user,
            json!({"title": format!("Task {i}"), "project_id": project_id, "labels": [format!("l{i}")]}),
        )
        .await;
    }
    remove(&app, &user, &task_path(&gone_task)).await;
    remove(&app, &user, &project_path(&gone_project)).await;

    let expected = truth(&app, &user).await;
    assert_eq!(expected.len(), 8);
    for limit in [None, Some(1000), Some(2)] {
        let (changes, _, _) = sync(&app, &user, None, limit).await;
        let upserts: Vec<&Value> = changes.iter().filter(|c| c["op"] == "upsert").collect();
        assert_eq!(
            upserts.len(),
            expected.len(),
            "one upsert per object ({limit:?})"
        );
        for change in &changes {
            if change["op"] == "delete" {
                assert!(
                    !expected.contains_key(&key_of(change)),
                    "a delete of an existing object: {change}"
                );
            }
        }
        let mut state = State::new();
        apply(&mut state, &changes);
        assert_eq!(state, expected, "limit {limit:?}");
    }

    // A user with nothing: nothing, and a cursor that works.
    let empty = app.new_user().await;
    let first = page(&app, &empty, None, None).await;
    assert!(first.changes.is_empty() && !first.has_more);
    let task = app.create_task(&empty, json!({"title": "First"})).await;
    let next = page(&app, &empty, Some(&first.cursor), None).await;
    assert_eq!(summary(&next.changes), vec![upsert("task", &task)]);
}

#[tokio::test]
async fn limit_defaults_to_100_and_takes_any_value_from_1_to_1000() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut created = Vec::new();
    for i in 0..101 {
        created.push(
            app.create_task(&user, json!({"title": format!("T{i}")}))
                .await,
        );
    }
    let first = page(&app, &user, None, None).await;
    assert_eq!(first.changes.len(), 100, "the default limit is 100");
    assert!(first.has_more);
    let second = page(&app, &user, Some(&first.cursor), None).await;
    assert_eq!(second.changes.len(), 1);
    assert!(!second.has_more);

    let all = page(&app, &user, None, Some(1000)).await;
    assert_eq!(all.changes.len(), 101);
    assert!(!all.has_more);
    let one = page(&app, &user, None, Some(1)).await;
    assert_eq!(one.changes.len(), 1);
    assert!(one.has_more);
    let hundred_and_one = page(&app, &user, None, Some(101)).await;
    assert_eq!(hundred_and_one.changes.len(), 101);
    // Commit order: the tasks as they were created.
    let expected: Vec<_> = created.iter().map(|t| upsert("task", t)).collect();
    assert_eq!(summary(&all.changes), expected);
}

#[tokio::test]
async fn a_limit_out_of_range_or_not_an_integer_is_422() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "One"})).await;
    let cursor = end_cursor(&app, &user).await;
    for raw in [
        "0",
        "1001",
        "-1",
        "abc",
        "1.5",
        "",
        "1e2",
        "99999999999999999999",
    ] {
        for query in [
            vec![("limit", raw)],
            vec![("since", cursor.as_str()), ("limit", raw)],
        ] {
            let response = feed(&app, &user, &query).await;
            let fields = assert_invalid_fields(response).await;
            assert_eq!(fields, ["limit"], "{query:?}");
        }
    }
}

/// Not in the feed's section, but the conventions `GET /tasks` follows (and its tests
/// check): an unknown parameter, or one given twice, is 422 naming it.
#[tokio::test]
async fn unknown_or_repeated_query_parameters_are_422_as_on_the_task_list() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "One"})).await;
    let cursor = end_cursor(&app, &user).await;
    for (raw, field) in [
        ("limit=5&limit=6".to_owned(), "limit"),
        (format!("since={cursor}&since={cursor}"), "since"),
        ("offset=0".to_owned(), "offset"),
        ("cursor=abc".to_owned(), "cursor"),
    ] {
        let response = app.get(&format!("/changes?{raw}"), Some(&user.token)).await;
        let fields = assert_invalid_fields(response).await;
        assert!(fields.contains(&field.to_owned()), "{raw}: {fields:?}");
    }
}

#[tokio::test]
async fn pages_follow_cursor_to_since_until_has_more_is_false() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for i in 0..7 {
        app.create_task(&user, json!({"title": format!("Page {i}")}))
            .await;
    }
    let (paged, _, sizes) = sync(&app, &user, None, Some(3)).await;
    assert_eq!(sizes, [3, 3, 1]);
    let whole = page(&app, &user, None, Some(1000)).await;
    assert_eq!(paged, whole.changes, "pages concatenate to the whole");
    let ids: HashSet<_> = paged.iter().map(key_of).collect();
    assert_eq!(ids.len(), 7);

    // The same walk twice gives the same pages.
    let first = page(&app, &user, None, Some(3)).await;
    let again = page(&app, &user, None, Some(3)).await;
    assert_eq!(first.changes, again.changes);
    let next = page(&app, &user, Some(&first.cursor), Some(3)).await;
    let next_again = page(&app, &user, Some(&again.cursor), Some(3)).await;
    assert_eq!(next.changes, next_again.changes);
    assert_eq!(next.changes, whole.changes[3..6]);
}

// ---------------------------------------------------------------------------------------
// Coalescing and order.

#[tokio::test]
async fn an_object_changed_several_times_appears_once_at_the_place_of_its_latest_change() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let a = app.create_task(&user, json!({"title": "A"})).await;
    let b = app.create_task(&user, json!({"title": "B"})).await;
    let c = app.create_task(&user, json!({"title": "C"})).await;
    let since = end_cursor(&app, &user).await;

    patch(&app, &user, &task_path(&a), json!({"title": "A1"})).await;
    patch(&app, &user, &task_path(&b), json!({"title": "B1"})).await;
    patch(&app, &user, &task_path(&a), json!({"title": "A2"})).await;
    let d = app.create_task(&user, json!({"title": "D"})).await;
    let a3 = patch(
        &app,
        &user,
        &task_path(&a),
        json!({"title": "A3", "status": "done"}),
    )
    .await;

    let page_all = page(&app, &user, Some(&since), None).await;
    assert_eq!(
        summary(&page_all.changes),
        vec![upsert("task", &b), upsert("task", &d), upsert("task", &a)]
    );
    assert!(!page_all.has_more);
    assert_eq!(page_all.changes[2]["data"], a3, "A's latest state");
    assert_eq!(page_all.changes[0]["data"]["title"], "B1");
    assert!(
        !summary(&page_all.changes).contains(&upsert("task", &c)),
        "C did not change"
    );
    assert_data_is_what_get_returns(&app, &user, &page_all.changes).await;

    // The same, one change per page.
    let (walked, _, _) = sync(&app, &user, Some(&since), Some(1)).await;
    assert_eq!(walked, page_all.changes);
}

#[tokio::test]
async fn an_object_created_and_deleted_after_since_appears_once_as_a_delete() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let since = end_cursor(&app, &user).await;
    let ephemeral = app.create_task(&user, json!({"title": "Ephemeral"})).await;
    patch(
        &app,
        &user,
        &task_path(&ephemeral),
        json!({"title": "Still ephemeral"}),
    )
    .await;
    let kept = app.create_task(&user, json!({"title": "Kept"})).await;
    remove(&app, &user, &task_path(&ephemeral)).await;
    let page = page(&app, &user, Some(&since), None).await;
    assert_eq!(
        summary(&page.changes),
        vec![upsert("task", &kept), delete("task", &ephemeral)]
    );
}

#[tokio::test]
async fn changes_come_in_the_order_they_were_committed_across_kinds() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let since = end_cursor(&app, &user).await;
    let p = create_project(&app, &user, "P").await;
    let t1 = app
        .create_task(&user, json!({"title": "T1", "project_id": p["id"]}))
        .await;
    patch(&app, &user, &project_path(&p), json!({"name": "P renamed"})).await;
    let t2 = app.create_task(&user, json!({"title": "T2"})).await;
    let q = create_project(&app, &user, "Q").await;
    patch(&app, &user, &task_path(&t1), json!({"priority": "low"})).await;
    remove(&app, &user, &task_path(&t2)).await;

    let (changes, _, _) = sync(&app, &user, Some(&since), Some(2)).await;
    assert_eq!(
        summary(&changes),
        vec![
            upsert("project", &p),
            upsert("project", &q),
            upsert("task", &t1),
            delete("task", &t2),
        ]
    );
    assert_eq!(changes[0]["data"]["name"], "P renamed");
}

// ---------------------------------------------------------------------------------------
// Deletions, projects and labels.

#[tokio::test]
async fn deleting_a_task_or_a_project_is_a_delete() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "Doomed"})).await;
    let project = create_project(&app, &user, "Doomed").await;
    let survivor = app.create_task(&user, json!({"title": "Survivor"})).await;
    let since = end_cursor(&app, &user).await;
    remove(&app, &user, &task_path(&task)).await;
    remove(&app, &user, &project_path(&project)).await;
    let page = page(&app, &user, Some(&since), None).await;
    assert_eq!(
        page.changes,
        vec![
            json!({"kind": "task", "op": "delete", "id": task["id"]}),
            json!({"kind": "project", "op": "delete", "id": project["id"]}),
        ]
    );
    let mut state = State::new();
    apply(&mut state, &sync(&app, &user, None, None).await.0);
    assert_eq!(state, truth(&app, &user).await);
    assert!(state.contains_key(&(
        "task".to_owned(),
        survivor["id"].as_str().unwrap().to_owned()
    )));
}

#[tokio::test]
async fn deleting_a_project_reports_the_deletion_of_each_of_its_tasks() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let doomed = create_project(&app, &user, "Doomed").await;
    let other = create_project(&app, &user, "Other").await;
    let in_doomed: Vec<Value> = tasks_in(&app, &user, &doomed, 3).await;
    let in_other = app
        .create_task(
            &user,
            json!({"title": "Elsewhere", "project_id": other["id"]}),
        )
        .await;
    let loose = app.create_task(&user, json!({"title": "Loose"})).await;
    let moved_out = app
        .create_task(
            &user,
            json!({"title": "Moved out", "project_id": doomed["id"]}),
        )
        .await;
    patch(
        &app,
        &user,
        &task_path(&moved_out),
        json!({"project_id": null}),
    )
    .await;
    let mut state = State::new();
    let (changes, since, _) = sync(&app, &user, None, None).await;
    apply(&mut state, &changes);

    remove(&app, &user, &project_path(&doomed)).await;
    let page = page(&app, &user, Some(&since), None).await;
    let mut got = summary(&page.changes);
    got.sort();
    let mut expected: Vec<_> = in_doomed.iter().map(|t| delete("task", t)).collect();
    expected.push(delete("project", &doomed));
    expected.sort();
    assert_eq!(got, expected, "the project and exactly its tasks");
    for untouched in [&in_other, &loose, &moved_out, &other] {
        assert!(
            !page.changes.iter().any(|c| c["id"] == untouched["id"]),
            "{untouched} is not part of the deletion"
        );
    }
    apply(&mut state, &page.changes);
    assert_eq!(state, truth(&app, &user).await);
}

/// Creates `count` tasks in `project`, one after the other.
async fn tasks_in(app: &TestApp, user: &TestUser, project: &Value, count: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for i in 0..count {
        tasks.push(
            app.create_task(
                user,
                json!({"title": format!("In {} #{i}", project["name"]), "project_id": project["id"]}),
            )
            .await,
        );
    }
    tasks
}

#[tokio::test]
async fn renaming_or_deleting_a_label_reports_every_task_it_changed() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let a = app
        .create_task(&user, json!({"title": "A", "labels": ["work", "home"]}))
        .await;
    let b = app
        .create_task(&user, json!({"title": "B", "labels": ["work"]}))
        .await;
    let c = app
        .create_task(&user, json!({"title": "C", "labels": ["home"]}))
        .await;
    let d = app
        .create_task(&user, json!({"title": "D", "labels": ["Work"]}))
        .await;
    let mut state = State::new();
    let (changes, since, _) = sync(&app, &user, None, None).await;
    apply(&mut state, &changes);

    // Rename work → job: A and B, not C, not D (labels are case-sensitive).
    let renamed = write(
        &app,
        &user,
        Method::PATCH,
        "/labels/work",
        None,
        Some(&json!({"name": "job"})),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let page1 = page(&app, &user, Some(&since), None).await;
    let mut got = summary(&page1.changes);
    got.sort();
    let mut expected = vec![upsert("task", &a), upsert("task", &b)];
    expected.sort();
    assert_eq!(got, expected);
    assert_data_is_what_get_returns(&app, &user, &page1.changes).await;
    let labels_of = |changes: &[Value], task: &Value| {
        changes.iter().find(|ch| ch["id"] == task["id"]).unwrap()["data"]["labels"].clone()
    };
    assert_eq!(labels_of(&page1.changes, &a), json!(["job", "home"]));
    assert_eq!(labels_of(&page1.changes, &b), json!(["job"]));
    apply(&mut state, &page1.changes);

    // Rename home → job: A already has job and keeps it once; C gets it.
    let renamed = write(
        &app,
        &user,
        Method::PATCH,
        "/labels/home",
        None,
        Some(&json!({"name": "job"})),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let page2 = page(&app, &user, Some(&page1.cursor), None).await;
    let mut got = summary(&page2.changes);
    got.sort();
    let mut expected = vec![upsert("task", &a), upsert("task", &c)];
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(labels_of(&page2.changes, &a), json!(["job"]));
    assert_eq!(labels_of(&page2.changes, &c), json!(["job"]));
    assert_data_is_what_get_returns(&app, &user, &page2.changes).await;
    apply(&mut state, &page2.changes);

    // Delete job: A, B and C.
    let deleted = write(&app, &user, Method::DELETE, "/labels/job", None, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let page3 = page(&app, &user, Some(&page2.cursor), None).await;
    let mut got = summary(&page3.changes);
    got.sort();
    let mut expected = vec![upsert("task", &a), upsert("task", &b), upsert("task", &c)];
    expected.sort();
    assert_eq!(got, expected);
    for task in [&a, &b, &c] {
        assert_eq!(labels_of(&page3.changes, task), json!([]));
    }
    assert!(!page3.changes.iter().any(|ch| ch["id"] == d["id"]));
    assert_data_is_what_get_returns(&app, &user, &page3.changes).await;
    apply(&mut state, &page3.changes);
    assert_eq!(state, truth(&app, &user).await);
}

#[tokio::test]
async fn writes_that_change_nothing_report_no_change() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let stranger = app.new_user().await;
    let key = format!("key-{}", uuid::Uuid::new_v4());
    let created = post_keyed(&app, &user, "/tasks", &key, &json!({"title": "Keyed"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    create_project(&app, &user, "Taken").await;
    let theirs = app.create_task(&stranger, json!({"title": "Theirs"})).await;
    let path = task_path(&created.body);
    let since = end_cursor(&app, &user).await;

    // A replay, a stale If-Match, an invalid patch, someone else's task, a taken name.
    let replay = post_keyed(&app, &user, "/tasks", &key, &json!({"title": "Keyed"})).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    let stale = app
        .request(Method::PATCH, &path, Some(&user.token))
        .header(IF_MATCH, "\"stale\"")
        .json(&json!({"title": "Never"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let invalid = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"title": ""})),
    )
    .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let foreign = write(&app, &user, Method::DELETE, &task_path(&theirs), None, None).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let taken = app
        .send_json(
            Method::POST,
            "/projects",
            Some(&user.token),
            &json!({"name": "taken"}),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    let page = page(&app, &user, Some(&since), None).await;
    assert_eq!(page.changes, Vec::<Value>::new(), "nothing changed");
    assert!(!page.has_more);
}

// ---------------------------------------------------------------------------------------
// Cursors.

#[tokio::test]
async fn a_response_with_nothing_new_returns_a_cursor_that_is_as_good_as_since() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "Before"})).await;
    let since = end_cursor(&app, &user).await;
    let idle = page(&app, &user, Some(&since), None).await;
    assert!(idle.changes.is_empty(), "nothing new: {:?}", idle.changes);
    assert!(!idle.has_more);
    let idle_again = page(&app, &user, Some(&idle.cursor), None).await;
    assert!(idle_again.changes.is_empty());
    assert!(!idle_again.has_more);

    let task = app.create_task(&user, json!({"title": "After"})).await;
    for cursor in [&since, &idle.cursor, &idle_again.cursor] {
        let next = page(&app, &user, Some(cursor), None).await;
        assert_eq!(summary(&next.changes), vec![upsert("task", &task)]);
    }
}

#[tokio::test]
async fn a_malformed_since_is_422_naming_since() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "One"})).await;
    app.create_task(&user, json!({"title": "Two"})).await;
    let cursor = end_cursor(&app, &user).await;
    // A task-list cursor: real, sealed, but for another purpose.
    let list = json_body(app.get("/tasks?limit=1", Some(&user.token)).await).await;
    let list_cursor = list["next_cursor"]
        .as_str()
        .expect("a next_cursor")
        .to_owned();

    let middle = cursor.len() / 2;
    let flipped_char = if cursor.as_bytes()[middle] == b'A' {
        "B"
    } else {
        "A"
    };
    let tampered = format!(
        "{}{flipped_char}{}",
        &cursor[..middle],
        &cursor[middle + 1..]
    );
    let malformed = [
        String::new(),
        "x".to_owned(),
        "not a cursor".to_owned(),
        "AAAA".to_owned(),
        "0".to_owned(),
        "-1".to_owned(),
        uuid::Uuid::new_v4().to_string(),
        tampered,
        cursor[..cursor.len() - 2].to_owned(),
        format!("{cursor}AA"),
        "A".repeat(5000),
        list_cursor,
    ];
    for since in &malformed {
        let response = feed(&app, &user, &[("since", since)]).await;
        let fields = assert_invalid_fields(response).await;
        assert!(
            fields.contains(&"since".to_owned()),
            "since={since:?}: {fields:?}"
        );
    }
    // The real one still works.
    page(&app, &user, Some(&cursor), None).await;
}

#[tokio::test]
async fn another_users_cursor_is_422_naming_since() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    app.create_task(&alice, json!({"title": "Alice's"})).await;
    app.create_task(&bob, json!({"title": "Bob's"})).await;
    let hers = page(&app, &alice, None, Some(1)).await.cursor;
    let his = page(&app, &bob, None, Some(1)).await.cursor;
    for (user, foreign) in [(&bob, &hers), (&alice, &his)] {
        let response = feed(&app, user, &[("since", foreign)]).await;
        let fields = assert_invalid_fields(response).await;
        assert!(fields.contains(&"since".to_owned()), "{fields:?}");
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_is_410_gone_and_a_fresh_sync_recovers() {
    let retention = Duration::from_secs(2);
    let app = TestApp::spawn_with(database().await.config.clone(), |s| {
        s.changes_retention = retention;
    })
    .await;
    let user = app.new_user().await;
    let doomed = app.create_task(&user, json!({"title": "Doomed"})).await;
    app.create_task(&user, json!({"title": "Kept"})).await;
    let old = end_cursor(&app, &user).await;
    // Fresh, it works.
    assert!(page(&app, &user, Some(&old), None).await.changes.is_empty());
    remove(&app, &user, &task_path(&doomed)).await;

    // Past the retention (this sleep is the point of the test), and one more write.
    tokio::time::sleep(retention + Duration::from_secs(1)).await;
    app.create_task(&user, json!({"title": "Later"})).await;

    let response = feed(&app, &user, &[("since", &old)]).await;
    let problem = assert_problem(response, StatusCode::GONE).await;
    assert_eq!(problem["status"], 410);

    // Syncing again from the beginning works and gives the truth; its cursor works.
    let (changes, fresh, _) = sync(&app, &user, None, None).await;
    let mut state = State::new();
    apply(&mut state, &changes);
    assert_eq!(state, truth(&app, &user).await);
    let next = page(&app, &user, Some(&fresh), None).await;
    assert!(next.changes.is_empty());
}

// ---------------------------------------------------------------------------------------
// Isolation and authentication.

#[tokio::test]
async fn other_users_changes_never_appear() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let alice_since = end_cursor(&app, &alice).await;

    // Interleaved writes; Bob uses the same names and labels.
    let hers = create_project(&app, &alice, "Shared name").await;
    let his = create_project(&app, &bob, "Shared name").await;
    let her_task = app
        .create_task(
            &alice,
            json!({"title": "Same", "labels": ["shared"], "project_id": hers["id"]}),
        )
        .await;
    let his_task = app
        .create_task(
            &bob,
            json!({"title": "Same", "labels": ["shared"], "project_id": his["id"]}),
        )
        .await;
    let his_loose = app
        .create_task(&bob, json!({"title": "Loose", "labels": ["shared"]}))
        .await;
    let renamed = write(
        &app,
        &bob,
        Method::PATCH,
        "/labels/shared",
        None,
        Some(&json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    patch(
        &app,
        &bob,
        &task_path(&his_loose),
        json!({"status": "done"}),
    )
    .await;
    remove(&app, &bob, &task_path(&his_loose)).await;
    remove(&app, &bob, &project_path(&his)).await;
    let _ = his_task;

    let alice_truth = truth(&app, &alice).await;
    for since in [None, Some(alice_since.as_str())] {
        let (changes, _, _) = sync(&app, &alice, since, Some(2)).await;
        let mut got = summary(&changes);
        got.sort();
        let mut expected = vec![upsert("project", &hers), upsert("task", &her_task)];
        expected.sort();
        assert_eq!(got, expected, "only Alice's objects (since {since:?})");
        let mut state = State::new();
        apply(&mut state, &changes);
        assert_eq!(state, alice_truth);
        assert_eq!(
            state[&(
                "task".to_owned(),
                her_task["id"].as_str().unwrap().to_owned()
            )]["labels"],
            json!(["shared"])
        );
    }
    // And Bob's feed has only Bob's.
    let (changes, _, _) = sync(&app, &bob, None, None).await;
    for change in &changes {
        assert_ne!(change["id"], hers["id"]);
        assert_ne!(change["id"], her_task["id"]);
    }
    let mut state = State::new();
    apply(&mut state, &changes);
    assert_eq!(state, truth(&app, &bob).await);
}

#[tokio::test]
async fn the_feed_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    for token in [None, Some("not-a-token")] {
        let response = app
            .request(Method::GET, "/changes", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let response = app
        .request(Method::GET, "/changes?limit=5&since=x", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "401 before 422"
    );
}

// ---------------------------------------------------------------------------------------
// No change is ever skipped, even when other writes commit while the client reads.

/// A transaction that commits late: the proxy holds the COMMIT of a create while another
/// write commits and the reader reads past it. When the held commit lands, the reader's
/// next sync must see it. (A feed that numbers changes when they are written rather than
/// when they commit, and lets a reader run past a number still uncommitted, skips it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_that_commits_late_is_not_skipped_by_a_reader_that_read_past_it() {
    let proxy = DbProxy::start().await;
    let app = Arc::new(TestApp::spawn_on(proxy.config().await).await);
    let user = app.new_user().await;
    let early = app.create_task(&user, json!({"title": "Early"})).await;
    let mut state = State::new();
    let (changes, since, _) = sync(&app, &user, None, None).await;
    apply(&mut state, &changes);

    let late_title = format!("Late {}", uuid::Uuid::new_v4());
    let (held_tx, held_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    proxy
        .arm(
            &late_title,
            Trap::HoldCommit {
                held: held_tx,
                release: release_rx,
            },
        )
        .await;
    let late = {
        let request = app
            .request(Method::POST, "/tasks", Some(&user.token))
            .json(&json!({"title": late_title}));
        tokio::spawn(async move { request.send().await.expect("request sent") })
    };
    // Wait (on the proxy's signal, not on a clock) until its statements ran, COMMIT held.
    let held = tokio::time::timeout(Duration::from_secs(10), held_rx).await;
    assert!(
        matches!(held, Ok(Ok(()))),
        "the proxy never held the late create's COMMIT"
    );

    // Meanwhile a write that shares no row with it commits.
    let mut patch_other = {
        let request = app
            .request(Method::PATCH, &task_path(&early), Some(&user.token))
            .json(&json!({"title": "Early, changed"}));
        tokio::spawn(async move { request.send().await.expect("request sent") })
    };
    // If the server serialises writers (a lock the held transaction holds), the patch
    // waits for the commit; after a second, let the commit go so that it can.
    let patched_first = match tokio::time::timeout(Duration::from_secs(1), &mut patch_other).await {
        Ok(done) => Some(done.unwrap()),
        Err(_) => None,
    };
    if let Some(response) = &patched_first {
        assert_eq!(response.status(), StatusCode::OK);
        // The reader reads past the patch while the create is still uncommitted. (Should
        // the server make readers wait for writers in flight, let the commit go after a
        // second rather than wait for ever.)
        let mut reading = {
            let (app, user, since) = (Arc::clone(&app), user.clone(), since.clone());
            tokio::spawn(async move { sync(&app, &user, Some(&since), Some(1)).await })
        };
        let mut release_tx = Some(release_tx);
        let read = match tokio::time::timeout(Duration::from_secs(2), &mut reading).await {
            Ok(read) => read,
            Err(_) => {
                release_tx.take().unwrap().send(()).unwrap();
                reading.await
            }
        };
        let (first_read, cursor, _) = read.expect("the reader failed");
        let still_held = release_tx.is_some();
        let is_late = |c: &Value| c["data"]["title"] == late_title.as_str();
        if still_held {
            assert!(
                !first_read.iter().any(is_late),
                "an uncommitted create shows in the feed"
            );
        }
        // (Whether the patch shows yet is the server's choice: a feed may hold back
        // changes committed after one still in flight, so as not to skip it.)
        apply(&mut state, &first_read);
        // Now the late commit lands.
        if let Some(release_tx) = release_tx {
            release_tx.send(()).unwrap();
        }
        let created = late.await.unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let created = json_body(created).await;
        let (second_read, _, _) = sync(&app, &user, Some(&cursor), Some(1)).await;
        let reported = |changes: &[Value]| {
            changes
                .iter()
                .any(|c| c["id"] == created["id"] && c["op"] == "upsert")
        };
        assert!(
            reported(&second_read) || (!still_held && reported(&first_read)),
            "the late create was skipped: {first_read:?} then {second_read:?}"
        );
        apply(&mut state, &second_read);
    } else {
        release_tx.send(()).unwrap();
        assert_eq!(late.await.unwrap().status(), StatusCode::CREATED);
        assert_eq!(patch_other.await.unwrap().status(), StatusCode::OK);
        let (changes, _, _) = sync(&app, &user, Some(&since), Some(1)).await;
        apply(&mut state, &changes);
    }
    assert_eq!(state, truth(&app, &user).await);
    drop(proxy);
}

/// A write by `user`, sent again while the server answers 503 (a writer that lost a
/// deadlock or a lock wait to a concurrent one is rolled back and told 503; the feed is
/// what is tested here, not the server's lock order). Its status and body.
async fn send_retrying(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    for _ in 0..20 {
        let response = write(app, user, method.clone(), path, None, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            let value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return (status, value);
        }
    }
    panic!("{method} {path}: 503 twenty times");
}

/// A writer of tasks: creates (some in `project`, all with labels), patches, deletes.
async fn writer(app: Arc<TestApp>, user: TestUser, number: usize, project: Value) {
    let mut live: Vec<String> = Vec::new();
    for step in 0..24 {
        match step % 4 {
            0 | 1 => {
                let labels = if step % 3 == 0 {
                    json!(["hot"])
                } else {
                    json!(["cold", "x"])
                };
                let project_id = if step % 5 == 0 {
                    project["id"].clone()
                } else {
                    Value::Null
                };
                let body = json!({
                    "title": format!("w{number} s{step}"),
                    "labels": labels,
                    "project_id": project_id,
                });
                let (status, task) =
                    send_retrying(&app, &user, Method::POST, "/tasks", Some(&body)).await;
                assert_eq!(status, StatusCode::CREATED, "{body}: {task}");
                live.push(task_path(&task));
            }
            2 => {
                if let Some(path) = live.get(step % live.len().max(1)) {
                    let status = ["done", "in_progress", "todo"][step % 3];
                    let body = json!({
                        "title": format!("w{number} s{step} patched"),
                        "status": status,
                    });
                    let (status, answer) =
                        send_retrying(&app, &user, Method::PATCH, path, Some(&body)).await;
                    // Nobody else deletes this writer's tasks: always 200.
                    assert_eq!(status, StatusCode::OK, "PATCH {path}: {answer}");
                }
            }
            _ => {
                if !live.is_empty() {
                    let path = live.remove(0);
                    let (status, answer) =
                        send_retrying(&app, &user, Method::DELETE, &path, None).await;
                    assert_eq!(status, StatusCode::NO_CONTENT, "DELETE {path}: {answer}");
                }
            }
        }
    }
}

/// The writer of projects and labels: a project filled and then deleted with its tasks,
/// renames, and label renames and deletions across everyone's tasks.
async fn project_writer(app: Arc<TestApp>, user: TestUser) {
    for round in 0..3 {
        let name = format!("Doomed {round}");
        let (status, doomed) = send_retrying(
            &app,
            &user,
            Method::POST,
            "/projects",
            Some(&json!({ "name": name })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{doomed}");
        for i in 0..4 {
            let body = json!({
                "title": format!("doomed {round}/{i}"),
                "labels": ["hot"],
                "project_id": doomed["id"],
            });
            let (status, task) =
                send_retrying(&app, &user, Method::POST, "/tasks", Some(&body)).await;
            assert_eq!(status, StatusCode::CREATED, "{task}");
        }
        let rename = json!({"name": format!("Doomed {round}, renamed")});
        let (status, answer) = send_retrying(
            &app,
            &user,
            Method::PATCH,
            &project_path(&doomed),
            Some(&rename),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (from, to) = if round % 2 == 0 {
            ("hot", "warm")
        } else {
            ("warm", "hot")
        };
        let (status, answer) = send_retrying(
            &app,
            &user,
            Method::PATCH,
            &format!("/labels/{from}"),
            Some(&json!({ "name": to })),
        )
        .await;
        assert!(
            [StatusCode::OK, StatusCode::NOT_FOUND].contains(&status),
            "rename {from}: {status} {answer}"
        );
        let (status, answer) =
            send_retrying(&app, &user, Method::DELETE, &project_path(&doomed), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
        let (status, answer) = send_retrying(&app, &user, Method::DELETE, "/labels/x", None).await;
        assert!(
            [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND].contains(&status),
            "delete x: {status} {answer}"
        );
    }
}

/// A client that syncs again and again with a small page until told the writers are done,
/// then once more to the end; its state.
async fn reader(
    app: Arc<TestApp>,
    user: TestUser,
    limit: u32,
    done: Arc<AtomicBool>,
) -> (State, usize) {
    let mut state = State::new();
    let mut cursor: Option<String> = None;
    let mut rounds = 0;
    loop {
        let finished = done.load(Ordering::SeqCst);
        loop {
            let page = page(&app, &user, cursor.as_deref(), Some(limit)).await;
            apply(&mut state, &page.changes);
            cursor = Some(page.cursor);
            if !page.has_more {
                break;
            }
        }
        rounds += 1;
        if finished {
            return (state, rounds);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_syncing_while_writers_write_end_with_exactly_the_callers_objects() {
    let app = Arc::new(TestApp::spawn().await);
    let user = app.new_user().await;
    let bystander = app.new_user().await;
    let keep = create_project(&app, &user, "Keep").await;
    for i in 0..3 {
        app.create_task(
            &user,
            json!({"title": format!("seed {i}"), "labels": ["hot"]}),
        )
        .await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = JoinSet::new();
    for limit in [3, 10] {
        readers.spawn(reader(
            Arc::clone(&app),
            user.clone(),
            limit,
            Arc::clone(&done),
        ));
    }
    let mut writers = JoinSet::new();
    for number in 0..4 {
        writers.spawn(writer(Arc::clone(&app), user.clone(), number, keep.clone()));
    }
    writers.spawn(project_writer(Arc::clone(&app), user.clone()));
    // Someone else writing at the same time changes nothing in the caller's feed.
    let other_keep = create_project(&app, &bystander, "Keep").await;
    writers.spawn(writer(Arc::clone(&app), bystander.clone(), 9, other_keep));
    while let Some(result) = writers.join_next().await {
        result.expect("a writer failed");
    }
    done.store(true, Ordering::SeqCst);

    let expected = truth(&app, &user).await;
    assert!(!expected.is_empty());
    while let Some(result) = readers.join_next().await {
        let (state, rounds) = result.expect("a reader failed");
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !state.contains_key(*k))
            .collect();
        let extra: Vec<_> = state
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        let stale: Vec<_> = expected
            .iter()
            .filter(|(k, v)| state.get(*k).is_some_and(|mine| mine != *v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty() && stale.is_empty(),
            "after {rounds} rounds: missing {missing:?}, extra {extra:?}, stale {stale:?}"
        );
    }
    // And a client starting now gets the same.
    let mut fresh = State::new();
    apply(&mut fresh, &sync(&app, &user, None, Some(1000)).await.0);
    assert_eq!(fresh, expected);
}
