//! `GET /tasks?cursor=` (API.md "Listing"): walking a list by `next_cursor` under every sort
//! order and filter shape gives exactly the list's order; the walk stays exact while tasks are
//! created, changed and deleted between pages; a cursor that is not one this list gave out
//! (mangled, another sort, other filters, another user's, or with `offset`) is a 422 naming
//! `cursor`; offset pages carry a `next_cursor` too.

use std::collections::{HashMap, HashSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;
use time::macros::datetime;
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_invalid_fields, json_body};
use crate::tasks_list::{
    FIXTURE_SIZE, compare, ids, items, list, list_raw, query, task_id, tied_tasks,
};

const SORTS: [&str; 10] = [
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_at",
    "-due_at",
    "priority",
    "-priority",
    "title",
    "-title",
];

fn next_cursor(page: &Value) -> Option<String> {
    match &page["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("next_cursor is neither a string nor null: {other}"),
    }
}

/// Walks the list of `pairs` (a sort and filters) by cursor, the page sizes taken in turn
/// from `limits`, calling `between` after each page but the last. Checks each page's
/// envelope: `offset` 0, `limit` as asked, full pages while a cursor follows, and a
/// `next_cursor` exactly until the page holding the last task. Returns the pages' tasks.
async fn walk_with<F>(
    app: &TestApp,
    user: &TestUser,
    pairs: &[(&str, &str)],
    limits: &[usize],
    mut between: F,
) -> Vec<Value>
where
    F: AsyncFnMut(usize, &[Value]),
{
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0.. {
        assert!(page_number < 200, "{pairs:?}: the walk does not end");
        let limit = limits[page_number % limits.len()];
        let limit_text = limit.to_string();
        let mut all = pairs.to_vec();
        all.push(("limit", &limit_text));
        if let Some(cursor) = &cursor {
            all.push(("cursor", cursor));
        }
        let page = list(app, user, &all).await;
        assert_eq!(page["offset"], 0, "{pairs:?} page {page_number}");
        assert_eq!(page["limit"], limit, "{pairs:?} page {page_number}");
        let page_items = items(&page).clone();
        seen.extend(page_items.iter().cloned());
        cursor = next_cursor(&page);
        if cursor.is_none() {
            break;
        }
        assert_eq!(
            page_items.len(),
            limit,
            "{pairs:?} page {page_number}: a page before the last one is full"
        );
        between(page_number, &seen).await;
    }
    seen
}

async fn walk(
    app: &TestApp,
    user: &TestUser,
    pairs: &[(&str, &str)],
    limits: &[usize],
) -> Vec<Value> {
    walk_with(app, user, pairs, limits, async |_, _| {}).await
}

/// The whole list of `pairs` on one page (at most 100 tasks), checking `total` against it.
async fn one_page(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut all = pairs.to_vec();
    all.push(("limit", "100"));
    let page = list(app, user, &all).await;
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "{pairs:?}: all on one page"
    );
    assert_eq!(page["total"], items(&page).len(), "{pairs:?}");
    ids(&page)
}

fn id_list(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|task| task["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The cursor of the first page of `raw` (which must have a second page).
async fn first_cursor(app: &TestApp, user: &TestUser, raw: &str) -> String {
    next_cursor(&list_raw(app, user, raw).await).expect("a second page")
}

fn with_cursor(raw: &str, cursor: &str) -> String {
    let cursor = query(&[("cursor", cursor)]);
    if raw.is_empty() {
        cursor
    } else {
        format!("{raw}&{cursor}")
    }
}

async fn status(app: &TestApp, user: &TestUser, raw: &str) -> StatusCode {
    app.get(&format!("/tasks?{raw}"), Some(&user.token))
        .await
        .status()
}

#[tokio::test]
async fn a_cursor_walk_gives_exactly_the_one_page_order_under_every_sort_with_ties() {
    let app = TestApp::spawn().await;
    let (user, tasks) = tied_tasks(&app).await;
    let undated = tasks.iter().filter(|t| t["due_at"].is_null()).count();
    assert!(undated >= 4, "the fixture has undated tasks ({undated})");
    for sort in SORTS {
        let mut expected = tasks.clone();
        expected.sort_by(|a, b| compare(sort, a, b));
        let expected = id_list(&expected);
        assert_eq!(
            one_page(&app, &user, &[("sort", sort)]).await,
            expected,
            "sort={sort}: one page"
        );
        // Page sizes that change from page to page, and put page boundaries inside every
        // run of tied keys (and, for due_at, on both sides of the dated/undated switch).
        for limits in [&[1][..], &[2, 3, 1], &[4, 1, 5], &[7]] {
            let walked = walk(&app, &user, &[("sort", sort)], limits).await;
            assert_eq!(walked.len(), FIXTURE_SIZE, "sort={sort} limits={limits:?}");
            assert_eq!(
                id_list(&walked),
                expected,
                "sort={sort} limits={limits:?}: the walk differs from the one page"
            );
        }
    }
    // Without `sort`: the default order (newest first).
    let walked = walk(&app, &user, &[], &[3, 2]).await;
    assert_eq!(id_list(&walked), one_page(&app, &user, &[]).await);
}

#[tokio::test]
async fn a_walk_that_ends_on_a_full_page_has_no_empty_page_after_it() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for i in 0..6 {
        app.create_task(&user, json!({"title": format!("task {i}")}))
            .await;
    }
    let first = list(&app, &user, &[("limit", "3")]).await;
    let cursor = next_cursor(&first).expect("a second page");
    let second = list(&app, &user, &[("limit", "3"), ("cursor", &cursor)]).await;
    assert_eq!(items(&second).len(), 3);
    assert_eq!(second["total"], 6);
    assert_eq!(second["next_cursor"], Value::Null, "the last page says so");
    let all = list(&app, &user, &[("limit", "6")]).await;
    assert_eq!(all["next_cursor"], Value::Null);
    let mut walked = ids(&first);
    walked.extend(ids(&second));
    assert_eq!(walked, ids(&all));
}

/// Tasks in two projects and none, some labelled, with statuses, words and created_at ties.
struct FilterFixture {
    user: TestUser,
    project: String,
}

async fn filter_fixture(app: &TestApp) -> FilterFixture {
    let user = app.new_user().await;
    let mut projects = Vec::new();
    for name in ["home", "work"] {
        let response = app
            .send_json(
                Method::POST,
                "/projects",
                Some(&user.token),
                &json!({"name": name}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        projects.push(json_body(response).await["id"].clone());
    }
    let db = app.db().await;
    let base = datetime!(2026-03-01 00:00 UTC);
    for i in 0..30_usize {
        let title = format!(
            "{} {}",
            ["Plan", "plan", "Report", "Zoo", "ärger"][i % 5],
            i % 4
        );
        let description = if i % 3 == 0 {
            "the quarterly report"
        } else {
            "other words"
        };
        let status = ["todo", "in_progress", "done"][i % 3];
        let priority = ["low", "medium", "high", "urgent"][i % 4];
        let due_at = if i % 4 == 1 {
            Value::Null
        } else {
            json!(format!("2026-12-{:02}T10:00:00Z", 1 + i % 5))
        };
        let project_id = if i % 5 == 4 {
            Value::Null
        } else {
            projects[i % 2].clone()
        };
        let labels = if i % 2 == 0 {
            json!(["work"])
        } else {
            json!(["home", "work2"])
        };
        let task = app
            .create_task(
                &user,
                json!({
                    "title": title, "description": description, "status": status,
                    "priority": priority, "due_at": due_at, "project_id": project_id,
                    "labels": labels,
                }),
            )
            .await;
        // Four tasks per instant: ties that page boundaries fall among.
        let created_at = base + Duration::minutes(i64::try_from(i / 4).expect("small"));
        db.execute(
            "UPDATE tasks SET created_at = $2 WHERE id = $1",
            &[&task_id(&task), &created_at],
        )
        .await
        .expect("created_at set");
    }
    FilterFixture {
        user,
        project: projects[0].as_str().expect("an id").to_owned(),
    }
}

#[tokio::test]
async fn cursor_walks_under_filters_match_the_one_page_in_creation_and_other_orders() {
    let app = TestApp::spawn().await;
    let f = filter_fixture(&app).await;
    let project = f.project.as_str();
    let filter_sets: [&[(&str, &str)]; 8] = [
        // The shapes with statements of their own in creation order.
        &[("project_id", project)],
        &[("label", "work")],
        // The general statement.
        &[("project_id", "none")],
        &[("status", "todo"), ("status", "done")],
        &[("q", "report")],
        &[("project_id", project), ("label", "work")],
        &[
            ("label", "home"),
            ("label", "work2"),
            ("priority", "urgent"),
            ("priority", "low"),
        ],
        &[
            ("due_after", "2026-12-01T10:00:00Z"),
            ("due_before", "2026-12-05T10:00:00Z"),
        ],
    ];
    for filters in filter_sets {
        for sort in ["-created_at", "created_at", "-due_at", "title", "priority"] {
            let mut pairs = filters.to_vec();
            pairs.push(("sort", sort));
            let expected = one_page(&app, &f.user, &pairs).await;
            assert!(
                expected.len() >= 4,
                "{pairs:?}: the filter keeps enough tasks to page ({})",
                expected.len()
            );
            let walked = walk(&app, &f.user, &pairs, &[3, 1, 2]).await;
            assert_eq!(id_list(&walked), expected, "{pairs:?}");
            // Every page's `total` counts all matches, not the rest of the walk.
            let mut first = pairs.clone();
            first.push(("limit", "1"));
            let page = list(&app, &f.user, &first).await;
            let cursor = next_cursor(&page).expect("a next page");
            first.push(("cursor", &cursor));
            assert_eq!(
                list(&app, &f.user, &first).await["total"],
                expected.len(),
                "{pairs:?}"
            );
        }
    }
}

/// Changes `task`'s sort key under `sort` (`to_end`: to where the walk has yet to go;
/// otherwise to where it already went), through the API except for `created_at`, which only
/// SQL can set.
async fn move_task(app: &TestApp, user: &TestUser, sort: &str, task: &str, to_end: bool) {
    let ascending = !sort.starts_with('-');
    // Whether the key must become larger: towards the end of an ascending walk, or towards
    // the start of a descending one.
    let larger = to_end == ascending;
    let key = sort.trim_start_matches('-');
    let id: Uuid = task.parse().expect("a UUID");
    let change = match key {
        "created_at" => {
            let at = if larger {
                datetime!(2030-01-01 00:00 UTC)
            } else {
                datetime!(2020-01-01 00:00 UTC)
            };
            let db = app.db().await;
            let changed = db
                .execute(
                    "UPDATE tasks SET created_at = $2 WHERE id = $1",
                    &[&id, &at],
                )
                .await
                .expect("created_at set");
            assert_eq!(changed, 1);
            return;
        }
        // Any change moves it to the newest end of updated_at.
        "updated_at" => {
            assert!(larger, "updated_at only grows");
            json!({"description": "touched"})
        }
        // Undated sorts last both ways: the far end for "larger ascending" and for "smaller
        // descending" alike.
        "due_at" if to_end => json!({"due_at": null}),
        "due_at" if larger => json!({"due_at": "2999-01-01T00:00:00Z"}),
        "due_at" => json!({"due_at": "2000-01-01T00:00:00Z"}),
        "priority" => json!({"priority": if larger { "urgent" } else { "low" }}),
        // U+10FFFD has the largest UTF-8 encoding there is; `!` the smallest printable byte.
        "title" => json!({"title": if larger { "\u{10FFFD} last" } else { "!!! first" }}),
        other => panic!("no sort key {other}"),
    };
    let response = app
        .send_json(
            Method::PATCH,
            &format!("/tasks/{task}"),
            Some(&user.token),
            &change,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{sort}: {change}");
}

async fn delete_task(app: &TestApp, user: &TestUser, task: &str) {
    let response = app
        .request(Method::DELETE, &format!("/tasks/{task}"), Some(&user.token))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// A walk under `sort` while, between pages, tasks are created, not-yet-returned tasks are
/// deleted (among them the task the cursor stands on), and sort keys change both ways (of
/// returned tasks towards the end, of unreturned ones towards the start, and of the task
/// the cursor stands on).
async fn assert_walk_is_exact_under_concurrent_writes(sort: &str) {
    let app = TestApp::spawn().await;
    let (user, tasks) = tied_tasks(&app).await;
    let before: Vec<String> = one_page(&app, &user, &[("sort", sort)]).await;
    assert_eq!(before.len(), FIXTURE_SIZE);
    let mut deleted: HashSet<String> = HashSet::new();
    let mut moved: HashSet<String> = HashSet::new();
    // Moved ahead while the cursor was early in the list, so surely ahead of it.
    let mut moved_ahead_early: Option<String> = None;
    let mut created: HashSet<String> = HashSet::new();
    let updated_at = sort.trim_start_matches('-') == "updated_at";
    let walked = walk_with(
        &app,
        &user,
        &[("sort", sort)],
        &[3, 2],
        async |page, seen: &[Value]| {
            let returned: HashSet<String> = id_list(seen).into_iter().collect();
            // Tasks neither returned nor touched yet, in the list's order.
            let ahead: Vec<String> = before
                .iter()
                .filter(|id| {
                    !returned.contains(*id) && !deleted.contains(*id) && !moved.contains(*id)
                })
                .cloned()
                .collect();
            let last = seen.last().expect("a page")["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let task = app
                .create_task(
                    &user,
                    json!({"title": format!("new {page}"), "priority": "high",
                           "due_at": if page % 2 == 0 { Value::Null } else { json!("2026-12-01T17:00:00Z") }}),
                )
                .await;
            created.insert(task["id"].as_str().unwrap().to_owned());
            match page {
                // The task the cursor stands on goes away.
                0 => {
                    delete_task(&app, &user, &last).await;
                    deleted.insert(last);
                }
                // A returned task moves ahead of the cursor: the walk may give it again.
                1 | 4 => {
                    let back = id_list(seen)
                        .into_iter()
                        .find(|id| !moved.contains(id) && !deleted.contains(id) && *id != last)
                        .expect("a returned task");
                    move_task(&app, &user, sort, &back, true).await;
                    moved.insert(back.clone());
                    if page == 1 {
                        moved_ahead_early = Some(back);
                    }
                }
                // An unreturned task moves behind the cursor (updated_at cannot go back: it
                // moves ahead instead), and one ahead is deleted.
                2 => {
                    let skipped = ahead.get(1).expect("a task ahead").clone();
                    move_task(&app, &user, sort, &skipped, updated_at).await;
                    moved.insert(skipped);
                    let gone = ahead.get(3).expect("a task ahead").clone();
                    delete_task(&app, &user, &gone).await;
                    deleted.insert(gone);
                }
                // The task the cursor stands on changes its key.
                3 => {
                    if !deleted.contains(&last) {
                        move_task(&app, &user, sort, &last, true).await;
                        moved.insert(last);
                    }
                }
                _ => {
                    if let Some(gone) = ahead.first() {
                        delete_task(&app, &user, gone).await;
                        deleted.insert(gone.clone());
                    }
                }
            }
        },
    )
    .await;
    let mut times: HashMap<String, usize> = HashMap::new();
    for id in id_list(&walked) {
        *times.entry(id).or_default() += 1;
    }
    let original: HashSet<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &original {
        if !deleted.contains(id) && !moved.contains(id) {
            assert_eq!(
                times.get(id).copied().unwrap_or(0),
                1,
                "{sort}: task {id} existed throughout with its key and must come exactly once"
            );
        }
    }
    for (id, count) in &times {
        assert!(
            original.contains(id) || created.contains(id),
            "{sort}: {id} is not a task"
        );
        if *count > 1 {
            assert!(
                moved.contains(id),
                "{sort}: task {id} came {count} times but its sort key never changed"
            );
        }
    }
    // Checked last: a walk cut short shows first as a task missing.
    assert!(
        moved.len() >= 3 && deleted.len() >= 3 && created.len() >= 6,
        "{sort}: the writes happened: moved {moved:?}, deleted {deleted:?}, created {created:?}"
    );
    // A returned task moved ahead of the cursor comes again: the walk follows the keys, not a
    // snapshot (and the writes above did change what was ahead of the cursor).
    let early = moved_ahead_early.expect("a task moved at page 1");
    assert_eq!(
        times.get(&early),
        Some(&2),
        "{sort}: {early} moved ahead of the cursor"
    );
}

#[tokio::test]
async fn a_walk_by_minus_created_at_is_exact_while_tasks_change() {
    assert_walk_is_exact_under_concurrent_writes("-created_at").await;
}

#[tokio::test]
async fn a_walk_by_created_at_is_exact_while_tasks_change() {
    assert_walk_is_exact_under_concurrent_writes("created_at").await;
}

#[tokio::test]
async fn a_walk_by_updated_at_is_exact_while_tasks_change() {
    assert_walk_is_exact_under_concurrent_writes("updated_at").await;
}

#[tokio::test]
async fn a_walk_by_due_at_is_exact_while_tasks_change() {
    assert_walk_is_exact_under_concurrent_writes("due_at").await;
    assert_walk_is_exact_under_concurrent_writes("-due_at").await;
}

#[tokio::test]
async fn a_walk_by_priority_is_exact_while_tasks_change() {
    assert_walk_is_exact_under_concurrent_writes("-priority").await;
}

#[tokio::test]
async fn a_walk_by_title_is_exact_while_tasks_change() {
    assert_walk_is_exact_under_concurrent_writes("title").await;
    assert_walk_is_exact_under_concurrent_writes("-title").await;
}

#[tokio::test]
async fn a_cursor_that_is_not_one_this_list_gave_out_is_422_naming_cursor() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    for owner in [&user, &other] {
        for i in 0..5 {
            app.create_task(
                owner,
                json!({"title": format!("task {i}"), "status": "todo"}),
            )
            .await;
        }
    }
    let issued_for = "sort=title&status=todo";
    let cursor = first_cursor(&app, &user, &format!("{issued_for}&limit=2")).await;
    // The cursor itself is fine, with any page size.
    for limit in ["limit=2", "limit=1", "limit=100", ""] {
        let raw = with_cursor(&format!("{issued_for}&{limit}"), &cursor);
        assert_eq!(status(&app, &user, &raw).await, StatusCode::OK, "{raw}");
    }

    let mut altered = Vec::new();
    for at in [0, 1, cursor.len() / 2, cursor.len() - 1] {
        let mut bytes = cursor.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        altered.push(String::from_utf8(bytes).unwrap());
    }
    let mut refused: Vec<(String, String)> = vec![
        ("garbage".into(), with_cursor(issued_for, "not a cursor")),
        ("empty".into(), with_cursor(issued_for, "")),
        ("empty, no =".into(), format!("{issued_for}&cursor")),
        (
            "truncated by one".into(),
            with_cursor(issued_for, &cursor[..cursor.len() - 1]),
        ),
        (
            "truncated by half".into(),
            with_cursor(issued_for, &cursor[..cursor.len() / 2]),
        ),
        (
            "extended".into(),
            with_cursor(issued_for, &format!("{cursor}AA")),
        ),
        (
            "far too long".into(),
            with_cursor(issued_for, &"A".repeat(5000)),
        ),
        (
            "another sort".into(),
            with_cursor("sort=-title&status=todo", &cursor),
        ),
        (
            "the default sort".into(),
            with_cursor("status=todo", &cursor),
        ),
        ("a filter fewer".into(), with_cursor("sort=title", &cursor)),
        (
            "another filter value".into(),
            with_cursor("sort=title&status=done", &cursor),
        ),
        (
            "a filter more".into(),
            with_cursor("sort=title&status=todo&label=x", &cursor),
        ),
        (
            "with offset=0".into(),
            with_cursor(&format!("{issued_for}&offset=0"), &cursor),
        ),
        (
            "with offset=2".into(),
            format!("offset=2&{}", with_cursor(issued_for, &cursor)),
        ),
        (
            "given twice".into(),
            with_cursor(&with_cursor(issued_for, &cursor), &cursor),
        ),
    ];
    for (n, text) in altered.iter().enumerate() {
        refused.push((format!("altered byte {n}"), with_cursor(issued_for, text)));
    }
    for (what, raw) in &refused {
        let response = app.get(&format!("/tasks?{raw}"), Some(&user.token)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {raw}"
        );
        assert_eq!(
            assert_invalid_fields(response).await,
            ["cursor"],
            "{what}: {raw}"
        );
    }
    // Another user's cursor, for the very same query, does not open for them; nor does
    // theirs for the first user.
    let raw = with_cursor(issued_for, &cursor);
    let response = app.get(&format!("/tasks?{raw}"), Some(&other.token)).await;
    assert_eq!(assert_invalid_fields(response).await, ["cursor"]);
    let theirs = first_cursor(&app, &other, &format!("{issued_for}&limit=2")).await;
    let response = app
        .get(
            &format!("/tasks?{}", with_cursor(issued_for, &theirs)),
            Some(&user.token),
        )
        .await;
    assert_eq!(assert_invalid_fields(response).await, ["cursor"]);
    // The problem says what is wrong with the cursor.
    let response = app
        .get(
            &format!("/tasks?{}", with_cursor(issued_for, "nope")),
            Some(&user.token),
        )
        .await;
    let body = json_body(response).await;
    assert_eq!(body["errors"][0]["field"], "cursor");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cursor")
    );
}

#[tokio::test]
async fn offset_pages_carry_a_next_cursor_that_continues_after_them() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for i in 0..7 {
        app.create_task(&user, json!({"title": format!("task {i}")}))
            .await;
    }
    let all = one_page(&app, &user, &[("sort", "title")]).await;
    for (offset, limit, more) in [
        (0, 2, true),
        (2, 2, true),
        (4, 2, true),
        (5, 2, false),
        (6, 2, false),
        (0, 7, false),
        (0, 6, true),
        (7, 2, false),
        (50, 2, false),
    ] {
        let (offset_text, limit_text) = (offset.to_string(), limit.to_string());
        let page = list(
            &app,
            &user,
            &[
                ("sort", "title"),
                ("offset", &offset_text),
                ("limit", &limit_text),
            ],
        )
        .await;
        assert_eq!(page["offset"], offset);
        let end = (offset + limit).min(all.len());
        let start = offset.min(all.len());
        assert_eq!(ids(&page), all[start..end], "offset={offset} limit={limit}");
        match next_cursor(&page) {
            None => assert!(!more, "offset={offset} limit={limit}: a next_cursor"),
            Some(cursor) => {
                assert!(
                    more,
                    "offset={offset} limit={limit}: the last page has none"
                );
                assert!(!cursor.is_empty());
                // The cursor continues right after the offset page.
                let next = list(
                    &app,
                    &user,
                    &[("sort", "title"), ("cursor", &cursor), ("limit", "100")],
                )
                .await;
                assert_eq!(
                    ids(&next),
                    all[end..],
                    "after offset={offset} limit={limit}"
                );
                assert_eq!(next["offset"], 0);
                assert_eq!(next["next_cursor"], Value::Null);
            }
        }
    }
}
