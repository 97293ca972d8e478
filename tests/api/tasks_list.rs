//! `GET /tasks` (API.md "Tasks"): the page envelope and its defaults, paging with `offset`
//! under every sort order, the filters, owner isolation, and the 401 and 422s of a bad request.

use std::cmp::Ordering;
use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_invalid_fields, assert_problem, json_body};

/// `pairs` as form-urlencoded query text, so test values are written unescaped.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `GET /tasks?{raw}` as `user`, expecting 200; returns the body.
pub(crate) async fn list_raw(app: &TestApp, user: &TestUser, raw: &str) -> Value {
    let path = if raw.is_empty() {
        "/tasks".to_owned()
    } else {
        format!("/tasks?{raw}")
    };
    let response = app.get(&path, Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    json_body(response).await
}

pub(crate) async fn list(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Value {
    list_raw(app, user, &query(pairs)).await
}

pub(crate) fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items is an array")
}

pub(crate) fn ids(page: &Value) -> Vec<String> {
    items(page)
        .iter()
        .map(|task| task["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The titles of the tasks matching `pairs` (all on one page), sorted; also checks that
/// `total` agrees with them.
async fn titles(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut all = pairs.to_vec();
    all.push(("limit", "100"));
    let page = list(app, user, &all).await;
    let mut titles: Vec<String> = items(&page)
        .iter()
        .map(|task| task["title"].as_str().expect("a title").to_owned())
        .collect();
    assert_eq!(page["total"], titles.len(), "total of {pairs:?}");
    titles.sort();
    titles
}

fn sorted(titles: &[&str]) -> Vec<String> {
    let mut titles: Vec<String> = titles.iter().map(|t| (*t).to_owned()).collect();
    titles.sort();
    titles
}

fn instant(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp, not {value}"));
    OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
}

fn rank(task: &Value) -> usize {
    let priority = task["priority"].as_str().expect("a priority");
    ["low", "medium", "high", "urgent"]
        .iter()
        .position(|p| *p == priority)
        .unwrap_or_else(|| panic!("unknown priority {priority}"))
}

pub(crate) fn task_id(task: &Value) -> Uuid {
    task["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("a UUID id")
}

/// The order API.md promises for `sort`: the key in the sort's direction (priority by rank,
/// titles by code point, undated tasks after all dated ones in both directions), then the
/// id in the same direction.
pub(crate) fn compare(sort: &str, a: &Value, b: &Value) -> Ordering {
    let (descending, key) = match sort.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, sort),
    };
    let directed = |order: Ordering| if descending { order.reverse() } else { order };
    let by_key = match key {
        "created_at" | "updated_at" => directed(instant(&a[key]).cmp(&instant(&b[key]))),
        "due_at" => match (a["due_at"].is_null(), b["due_at"].is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => directed(instant(&a["due_at"]).cmp(&instant(&b["due_at"]))),
        },
        "priority" => directed(rank(a).cmp(&rank(b))),
        // `str` orders by bytes, which for UTF-8 is code-point order.
        "title" => directed(a["title"].as_str().cmp(&b["title"].as_str())),
        other => panic!("no such sort key {other}"),
    };
    by_key.then_with(|| directed(task_id(a).cmp(&task_id(b))))
}

pub(crate) const FIXTURE_SIZE: usize = 23;

/// Titles that tie, differ only by case or accent, and sort differently by code point than
/// by any human collation ("Zeta" < "a b" < "alpha" < "Éclair" < "éclair" < "Ωmega").
const TITLES: [&str; 10] = [
    "alpha",
    "Alpha",
    "Zeta",
    "éclair",
    "Éclair",
    "ab",
    "a b",
    "Ωmega 😀",
    "10",
    "9",
];

/// Due dates with ties, including one instant written with two offsets, and undated tasks.
const DUE: [Option<&str>; 6] = [
    None,
    Some("2026-12-01T17:00:00Z"),
    Some("2026-12-01T19:00:00+02:00"),
    Some("2026-11-30T08:30:00.250Z"),
    None,
    Some("2027-01-15T00:00:00Z"),
];

const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];
const STATUSES: [&str; 3] = ["todo", "in_progress", "done"];

/// Creates `FIXTURE_SIZE` tasks for a fresh user with many ties on every sort key: titles,
/// due dates and priorities repeat, and `created_at`/`updated_at` are set (behind the
/// API's back) so that several tasks share each instant. Returns the user and its tasks as
/// the API shows them.
pub(crate) async fn tied_tasks(app: &TestApp) -> (TestUser, Vec<Value>) {
    let user = app.new_user().await;
    let db = app.db().await;
    let created_base = datetime!(2026-01-01 00:00 UTC);
    let updated_base = datetime!(2026-02-01 00:00 UTC);
    for i in 0..FIXTURE_SIZE {
        let task = app
            .create_task(
                &user,
                json!({
                    "title": TITLES[i % TITLES.len()],
                    "description": format!("task number {i}"),
                    "status": STATUSES[i % STATUSES.len()],
                    "priority": PRIORITIES[(i / 2) % PRIORITIES.len()],
                    "due_at": DUE[i % DUE.len()],
                }),
            )
            .await;
        let hours = |n: usize| Duration::hours(i64::try_from(n).expect("small"));
        let created_at = created_base + hours(i / 3);
        let updated_at = updated_base + hours((i * 7) % 5);
        let changed = db
            .execute(
                "UPDATE tasks SET created_at = $2, updated_at = $3 WHERE id = $1",
                &[&task_id(&task), &created_at, &updated_at],
            )
            .await
            .expect("timestamps set");
        assert_eq!(changed, 1);
    }
    let all = list(app, &user, &[("limit", "100")]).await;
    assert_eq!(all["total"], FIXTURE_SIZE);
    let tasks = items(&all).clone();
    assert_eq!(tasks.len(), FIXTURE_SIZE);
    (user, tasks)
}

/// Pages through the fixture five at a time under `key` and `-key`, and checks that the
/// pages together hold every task exactly once, in the promised order.
async fn assert_paging_is_total_and_ordered(key: &str) {
    let app = TestApp::spawn().await;
    let (user, tasks) = tied_tasks(&app).await;
    // "value id-prefix", so a failure shows the order the server chose.
    let describe = |task: &Value| {
        let id = task["id"].as_str().expect("an id");
        format!("{} {}", task[key], &id[..8])
    };
    for sort in [key.to_owned(), format!("-{key}")] {
        let mut expected = tasks.clone();
        expected.sort_by(|a, b| compare(&sort, a, b));
        let expected: Vec<String> = expected.iter().map(describe).collect();

        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let offset_text = offset.to_string();
            let pairs = [
                ("sort", sort.as_str()),
                ("limit", "5"),
                ("offset", &offset_text),
            ];
            let page = list(&app, &user, &pairs).await;
            assert_eq!(page["total"], FIXTURE_SIZE, "sort={sort} offset={offset}");
            assert_eq!(page["limit"], 5);
            assert_eq!(page["offset"], offset);
            let page_items = items(&page);
            let expected_len = 5.min(FIXTURE_SIZE.saturating_sub(offset));
            assert_eq!(
                page_items.len(),
                expected_len,
                "sort={sort} offset={offset}"
            );
            if page_items.is_empty() {
                break;
            }
            seen.extend(page_items.iter().cloned());
            offset += 5;
        }
        let unique: HashSet<Uuid> = seen.iter().map(task_id).collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "sort={sort}: a task came back twice"
        );
        assert_eq!(seen.len(), FIXTURE_SIZE, "sort={sort}: a task was skipped");
        let seen: Vec<String> = seen.iter().map(describe).collect();
        assert_eq!(seen, expected, "sort={sort}: pages out of order");
    }
}

#[tokio::test]
async fn the_list_is_an_envelope_of_items_total_limit_and_offset() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;

    let empty = list(&app, &user, &[]).await;
    assert_eq!(
        empty,
        json!({"items": [], "total": 0, "limit": 20, "offset": 0, "next_cursor": null})
    );

    let task = app
        .create_task(
            &user,
            json!({"title": "Write the report", "description": "Two pages", "due_at": "2026-12-01T17:00:00Z"}),
        )
        .await;
    let page = list(&app, &user, &[]).await;
    let keys: Vec<&str> = page
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["items", "limit", "next_cursor", "offset", "total"]);
    assert_eq!(page["total"], 1);
    let item = &items(&page)[0];
    let item_keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        item_keys,
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
    // An item is exactly the task as GET /tasks/{id} shows it.
    let path = format!("/tasks/{}", task["id"].as_str().unwrap());
    let single = json_body(app.get(&path, Some(&user.token)).await).await;
    assert_eq!(item, &single);
    assert_eq!(item, &task);

    let page = list(&app, &user, &[("limit", "7"), ("offset", "3")]).await;
    assert_eq!(
        page,
        json!({"items": [], "total": 1, "limit": 7, "offset": 3, "next_cursor": null})
    );
}

#[tokio::test]
async fn by_default_the_first_twenty_tasks_come_newest_first() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut created = Vec::new();
    for i in 0..22 {
        let task = app
            .create_task(&user, json!({"title": format!("task {i}")}))
            .await;
        created.push(task["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let page = list(&app, &user, &[]).await;
    assert_eq!(page["limit"], 20);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["total"], 22);
    assert_eq!(ids(&page), newest_first[..20]);
    let explicit = list(
        &app,
        &user,
        &[("sort", "-created_at"), ("limit", "20"), ("offset", "0")],
    )
    .await;
    assert_eq!(explicit, page);

    let rest = list(&app, &user, &[("offset", "20")]).await;
    assert_eq!(ids(&rest), newest_first[20..]);
    assert_eq!(rest["total"], 22);

    let oldest_first = list(&app, &user, &[("sort", "created_at"), ("limit", "100")]).await;
    assert_eq!(ids(&oldest_first), created);
}

#[tokio::test]
async fn updating_a_task_moves_it_to_the_front_of_minus_updated_at() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let first = app.create_task(&user, json!({"title": "first"})).await;
    let second = app.create_task(&user, json!({"title": "second"})).await;
    let third = app.create_task(&user, json!({"title": "third"})).await;
    let id = |task: &Value| task["id"].as_str().unwrap().to_owned();

    let page = list(&app, &user, &[("sort", "-updated_at")]).await;
    assert_eq!(ids(&page), [id(&third), id(&second), id(&first)]);

    let path = format!("/tasks/{}", id(&first));
    let response = app
        .send_json(
            Method::PATCH,
            &path,
            Some(&user.token),
            &json!({"title": "first, edited"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let page = list(&app, &user, &[("sort", "-updated_at")]).await;
    assert_eq!(ids(&page), [id(&first), id(&third), id(&second)]);
    let page = list(&app, &user, &[("sort", "updated_at")]).await;
    assert_eq!(ids(&page), [id(&second), id(&third), id(&first)]);
    // Creation order is untouched by the edit.
    let page = list(&app, &user, &[]).await;
    assert_eq!(ids(&page), [id(&third), id(&second), id(&first)]);
}

#[tokio::test]
async fn paging_through_with_offset_yields_every_task_once_sorted_by_created_at() {
    assert_paging_is_total_and_ordered("created_at").await;
}

#[tokio::test]
async fn paging_through_with_offset_yields_every_task_once_sorted_by_updated_at() {
    assert_paging_is_total_and_ordered("updated_at").await;
}

#[tokio::test]
async fn paging_through_with_offset_yields_every_task_once_sorted_by_due_at_undated_last() {
    assert_paging_is_total_and_ordered("due_at").await;
}

#[tokio::test]
async fn paging_through_with_offset_yields_every_task_once_sorted_by_priority_rank() {
    assert_paging_is_total_and_ordered("priority").await;
}

#[tokio::test]
async fn paging_through_with_offset_yields_every_task_once_sorted_by_title_code_point() {
    assert_paging_is_total_and_ordered("title").await;
}

#[tokio::test]
async fn sort_orders_match_the_documented_rules_on_a_small_example() {
    // A readable cross-check of `compare` itself, on values chosen by hand.
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (title, priority, due_at) in [
        ("b urgent", "urgent", Some("2026-12-02T00:00:00Z")),
        ("Zeta low", "low", None),
        ("a high", "high", Some("2026-12-01T00:00:00Z")),
        ("éclair medium", "medium", Some("2026-12-03T00:00:00Z")),
    ] {
        app.create_task(
            &user,
            json!({"title": title, "priority": priority, "due_at": due_at}),
        )
        .await;
    }
    let mut wrong = Vec::new();
    for (sort, expected) in [
        (
            "priority",
            ["Zeta low", "éclair medium", "a high", "b urgent"],
        ),
        (
            "-priority",
            ["b urgent", "a high", "éclair medium", "Zeta low"],
        ),
        (
            "due_at",
            ["a high", "b urgent", "éclair medium", "Zeta low"],
        ),
        (
            "-due_at",
            ["éclair medium", "b urgent", "a high", "Zeta low"],
        ),
        ("title", ["Zeta low", "a high", "b urgent", "éclair medium"]),
        (
            "-title",
            ["éclair medium", "b urgent", "a high", "Zeta low"],
        ),
    ] {
        let page = list(&app, &user, &[("sort", sort)]).await;
        let got: Vec<&str> = items(&page)
            .iter()
            .map(|t| t["title"].as_str().unwrap())
            .collect();
        if got != expected {
            wrong.push(format!("sort={sort}: got {got:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Six tasks with distinct titles, for the filter tests.
async fn filter_fixture(app: &TestApp) -> TestUser {
    let user = app.new_user().await;
    for body in [
        json!({"title": "Write the report", "description": "Two pages, with the figures",
               "status": "todo", "priority": "high", "due_at": "2026-12-01T17:00:00Z"}),
        json!({"title": "Report review", "status": "in_progress", "priority": "urgent",
               "due_at": "2026-12-05T09:00:00Z"}),
        json!({"title": "Buy milk", "description": "and the REPORTING tools",
               "status": "done", "priority": "low"}),
        json!({"title": "100% done", "description": "rename snake_case_name",
               "status": "todo", "priority": "medium", "due_at": "2026-11-30T00:00:00+01:00"}),
        // Due at the same instant as "Write the report", written with another offset.
        json!({"title": "Plain task", "description": "nothing special here",
               "status": "done", "priority": "urgent", "due_at": "2026-12-01T19:00:00+02:00"}),
        json!({"title": "Été à Zürich", "description": "Crème brûlée",
               "status": "in_progress", "priority": "low"}),
    ] {
        app.create_task(&user, body).await;
    }
    user
}

const WRITE: &str = "Write the report";
const REVIEW: &str = "Report review";
const MILK: &str = "Buy milk";
const PERCENT: &str = "100% done";
const PLAIN: &str = "Plain task";
const ETE: &str = "Été à Zürich";
const ALL_SIX: [&str; 6] = [WRITE, REVIEW, MILK, PERCENT, PLAIN, ETE];

#[tokio::test]
async fn status_filters_select_and_may_repeat() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    assert_eq!(titles(&app, &user, &[]).await, sorted(&ALL_SIX));
    assert_eq!(
        titles(&app, &user, &[("status", "todo")]).await,
        sorted(&[WRITE, PERCENT])
    );
    assert_eq!(
        titles(&app, &user, &[("status", "in_progress")]).await,
        sorted(&[REVIEW, ETE])
    );
    assert_eq!(
        titles(&app, &user, &[("status", "todo"), ("status", "done")]).await,
        sorted(&[WRITE, MILK, PERCENT, PLAIN])
    );
    assert_eq!(
        titles(&app, &user, &[("status", "done"), ("status", "done")]).await,
        sorted(&[MILK, PLAIN])
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[
                ("status", "todo"),
                ("status", "in_progress"),
                ("status", "done")
            ]
        )
        .await,
        sorted(&ALL_SIX)
    );
}

#[tokio::test]
async fn priority_filters_select_and_may_repeat() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    assert_eq!(
        titles(&app, &user, &[("priority", "urgent")]).await,
        sorted(&[REVIEW, PLAIN])
    );
    assert_eq!(
        titles(&app, &user, &[("priority", "medium")]).await,
        sorted(&[PERCENT])
    );
    assert_eq!(
        titles(&app, &user, &[("priority", "low"), ("priority", "urgent")]).await,
        sorted(&[REVIEW, MILK, PLAIN, ETE])
    );
}

#[tokio::test]
async fn due_bounds_finer_than_a_microsecond_are_compared_exactly_or_refused() {
    // RFC 3339 allows any number of fractional digits. PostgreSQL keeps microseconds, so a
    // finer bound must either be compared exactly or be refused, never silently rounded
    // into a wrong answer.
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(
        &user,
        json!({"title": "due at five", "due_at": "2026-12-01T17:00:00Z"}),
    )
    .await;
    for (bound, instant, matches) in [
        ("due_before", "2026-12-01T17:00:00.0000005Z", true),
        ("due_before", "2026-12-01T16:59:59.9999995Z", false),
        ("due_after", "2026-12-01T16:59:59.9999995Z", true),
        ("due_after", "2026-12-01T17:00:00.0000005Z", false),
    ] {
        let path = format!("/tasks?{}", query(&[(bound, instant)]));
        let response = app.get(&path, Some(&user.token)).await;
        if response.status() == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(assert_invalid_fields(response).await, [bound]);
            continue;
        }
        assert_eq!(response.status(), StatusCode::OK, "{bound}={instant}");
        let found = json_body(response).await["total"].clone();
        assert_eq!(found, u64::from(matches), "{bound}={instant}");
    }
}

#[tokio::test]
async fn due_before_and_due_after_are_strict_and_never_match_undated_tasks() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    let dated = sorted(&[WRITE, REVIEW, PERCENT, PLAIN]);
    // Exactly at the boundary is neither before nor after.
    assert_eq!(
        titles(&app, &user, &[("due_before", "2026-12-01T17:00:00Z")]).await,
        sorted(&[PERCENT])
    );
    assert_eq!(
        titles(&app, &user, &[("due_after", "2026-12-01T17:00:00Z")]).await,
        sorted(&[REVIEW])
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[
                ("due_after", "2026-12-01T16:59:59.999999Z"),
                ("due_before", "2026-12-01T17:00:01Z")
            ]
        )
        .await,
        sorted(&[WRITE, PLAIN])
    );
    // Offsets are honoured: 18:00+01:00 is 17:00Z.
    assert_eq!(
        titles(&app, &user, &[("due_before", "2026-12-01T18:00:00+01:00")]).await,
        sorted(&[PERCENT])
    );
    assert_eq!(
        titles(&app, &user, &[("due_after", "2026-12-01T18:00:00+01:00")]).await,
        sorted(&[REVIEW])
    );
    // Undated tasks match neither bound, however wide.
    assert_eq!(
        titles(&app, &user, &[("due_before", "2999-01-01T00:00:00Z")]).await,
        dated
    );
    assert_eq!(
        titles(&app, &user, &[("due_after", "1970-01-01T00:00:00Z")]).await,
        dated
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[
                ("due_after", "2026-12-06T00:00:00Z"),
                ("due_before", "2026-11-01T00:00:00Z")
            ]
        )
        .await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn q_matches_whole_words_case_insensitively_in_title_and_description() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    let q = |text: &'static str| [("q", text)];
    // Whole words: "REPORTING" is not "report", and "rep" is no word at all.
    assert_eq!(
        titles(&app, &user, &q("report")).await,
        sorted(&[WRITE, REVIEW])
    );
    assert_eq!(
        titles(&app, &user, &q("REPORT")).await,
        sorted(&[WRITE, REVIEW])
    );
    assert_eq!(
        titles(&app, &user, &q("RePoRt")).await,
        sorted(&[WRITE, REVIEW])
    );
    assert_eq!(titles(&app, &user, &q("reporting")).await, sorted(&[MILK]));
    assert_eq!(titles(&app, &user, &q("rep")).await, Vec::<String>::new());
    // The description counts too.
    assert_eq!(titles(&app, &user, &q("FIGURES")).await, sorted(&[WRITE]));
    // Every word must match, in any order, in the title or the description.
    assert_eq!(
        titles(&app, &user, &q("report review")).await,
        sorted(&[REVIEW])
    );
    assert_eq!(
        titles(&app, &user, &q("review report")).await,
        sorted(&[REVIEW])
    );
    assert_eq!(
        titles(&app, &user, &q("figures write")).await,
        sorted(&[WRITE])
    );
    assert_eq!(
        titles(&app, &user, &q("report milk")).await,
        Vec::<String>::new()
    );
    // Beyond ASCII, case still does not matter.
    assert_eq!(titles(&app, &user, &q("ÉTÉ zürich")).await, sorted(&[ETE]));
    assert_eq!(titles(&app, &user, &q("été ZÜRICH")).await, sorted(&[ETE]));
    assert_eq!(titles(&app, &user, &q("CRÈME")).await, sorted(&[ETE]));
}

#[tokio::test]
async fn q_treats_percent_and_underscore_as_ordinary_characters_never_wildcards() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    // Lone wildcards would match everything; only the task that holds a `%` or a `_` at all
    // may come back.
    let everything_else = [WRITE, REVIEW, MILK, PLAIN, ETE];
    // Patterns that, read as LIKE patterns, would match tasks they must not find as words.
    for (text, forbidden) in [
        ("%", &everything_else[..]),
        ("%%", &everything_else[..]),
        ("_", &everything_else[..]),
        ("__", &everything_else[..]),
        ("%_%", &everything_else[..]),
        ("%port%", &[WRITE, REVIEW, MILK][..]),
        ("%eport", &[WRITE, REVIEW][..]),
        ("r_port", &[WRITE, REVIEW][..]),
        ("_eport", &[WRITE, REVIEW][..]),
        ("report%", &[MILK][..]),
        ("report_", &[MILK][..]),
        ("Wr%", &[WRITE][..]),
        ("M_lk", &[MILK][..]),
    ] {
        let found = titles(&app, &user, &[("q", text)]).await;
        assert!(
            found
                .iter()
                .all(|title| !forbidden.contains(&title.as_str())),
            "q={text:?} acted as a wildcard: {found:?}"
        );
    }
    // Searching the literal text still finds the task that holds it.
    assert_eq!(
        titles(&app, &user, &[("q", "100%")]).await,
        sorted(&[PERCENT])
    );
    assert_eq!(
        titles(&app, &user, &[("q", "snake_case_name")]).await,
        sorted(&[PERCENT])
    );
}

#[tokio::test]
async fn q_never_interprets_search_operators() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    // Neither an OR, nor a prefix search, nor a syntax error (500) from stray punctuation.
    assert_eq!(
        titles(&app, &user, &[("q", "report | milk")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, &user, &[("q", "report OR milk")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, &user, &[("q", "rep:*")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&app, &user, &[("q", "rep*")]).await,
        Vec::<String>::new()
    );
    for text in [
        "'",
        "\"",
        "(",
        "report & (",
        "!",
        "<->",
        "\\",
        ":",
        "report'; DROP TABLE tasks; --",
    ] {
        let found = titles(&app, &user, &[("q", text)]).await;
        assert!(
            found.len() < ALL_SIX.len(),
            "q={text:?} matched everything: {found:?}"
        );
    }
    assert_eq!(titles(&app, &user, &[]).await.len(), ALL_SIX.len());
}

#[tokio::test]
async fn filters_combine_with_and() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    assert_eq!(
        titles(
            &app,
            &user,
            &[("status", "todo"), ("priority", "high"), ("q", "report")]
        )
        .await,
        sorted(&[WRITE])
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[
                ("status", "todo"),
                ("status", "in_progress"),
                ("due_after", "2026-12-01T00:00:00Z")
            ]
        )
        .await,
        sorted(&[WRITE, REVIEW])
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[
                ("priority", "urgent"),
                ("due_before", "2026-12-02T00:00:00Z"),
                ("q", "plain")
            ]
        )
        .await,
        sorted(&[PLAIN])
    );
    assert_eq!(
        titles(
            &app,
            &user,
            &[
                ("priority", "low"),
                ("priority", "urgent"),
                ("status", "done")
            ]
        )
        .await,
        sorted(&[MILK, PLAIN])
    );
    assert_eq!(
        titles(&app, &user, &[("status", "done"), ("q", "report")]).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn total_counts_every_match_across_pages_not_just_the_page() {
    let app = TestApp::spawn().await;
    let user = filter_fixture(&app).await;
    let filter = [("status", "todo"), ("status", "done")];
    let mut seen = HashSet::new();
    for offset in ["0", "1", "2", "3"] {
        let mut pairs = filter.to_vec();
        pairs.extend([("limit", "1"), ("offset", offset)]);
        let page = list(&app, &user, &pairs).await;
        assert_eq!(page["total"], 4);
        assert_eq!(items(&page).len(), 1);
        seen.extend(ids(&page));
    }
    assert_eq!(seen.len(), 4);
    let mut pairs = filter.to_vec();
    pairs.extend([("limit", "1"), ("offset", "4")]);
    let past_the_end = list(&app, &user, &pairs).await;
    assert_eq!(past_the_end["total"], 4);
    assert_eq!(items(&past_the_end).len(), 0);

    let unfiltered = list(&app, &user, &[("limit", "2")]).await;
    assert_eq!(unfiltered["total"], 6);
    assert_eq!(items(&unfiltered).len(), 2);
    let nothing = list(&app, &user, &[("q", "nonexistentword"), ("limit", "2")]).await;
    assert_eq!(nothing["total"], 0);
}

#[tokio::test]
async fn a_user_never_sees_another_users_tasks_and_total_excludes_them() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let mut alices = HashSet::new();
    for i in 0..3 {
        let task = app
            .create_task(
                &alice,
                json!({"title": format!("shared words {i}"), "priority": "high", "status": "todo"}),
            )
            .await;
        alices.insert(task["id"].as_str().unwrap().to_owned());
    }
    let mut bobs = HashSet::new();
    for title in ["shared words 0", "shared words bob", "only bob"] {
        let task = app
            .create_task(
                &bob,
                json!({"title": title, "priority": "high", "status": "todo"}),
            )
            .await;
        bobs.insert(task["id"].as_str().unwrap().to_owned());
    }

    for pairs in [
        vec![],
        vec![("q", "shared words")],
        vec![("priority", "high"), ("status", "todo")],
        vec![("sort", "title"), ("limit", "100")],
    ] {
        let page = list(&app, &alice, &pairs).await;
        assert_eq!(page["total"], 3, "{pairs:?}");
        let found: HashSet<String> = ids(&page).into_iter().collect();
        assert_eq!(found, alices, "{pairs:?}");
    }
    for pairs in [vec![("q", "bob")], vec![("q", "only")]] {
        let page = list(&app, &alice, &pairs).await;
        assert_eq!(page["total"], 0, "{pairs:?}");
        assert!(items(&page).is_empty());
    }
    let page = list(&app, &bob, &[]).await;
    assert_eq!(page["total"], 3);
    assert_eq!(ids(&page).into_iter().collect::<HashSet<_>>(), bobs);
}

#[tokio::test]
async fn limit_and_offset_bounds_are_inclusive() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "one"})).await;
    app.create_task(&user, json!({"title": "two"})).await;
    let page = list_raw(&app, &user, "limit=1").await;
    assert_eq!((page["limit"].clone(), items(&page).len()), (json!(1), 1));
    let page = list_raw(&app, &user, "limit=100&offset=0").await;
    assert_eq!((page["limit"].clone(), items(&page).len()), (json!(100), 2));
    let page = list_raw(&app, &user, "offset=9223372036854775807").await;
    assert_eq!(page["offset"], i64::MAX);
    assert_eq!(page["total"], 2);
    assert!(items(&page).is_empty());
}

#[tokio::test]
async fn invalid_query_parameters_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "a task"})).await;
    for (raw, expected) in [
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("limit=ten", vec!["limit"]),
        ("limit=", vec!["limit"]),
        ("limit=1.5", vec!["limit"]),
        ("limit=-1", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("offset=abc", vec!["offset"]),
        ("offset=9223372036854775808", vec!["offset"]),
        ("status=later", vec!["status"]),
        ("status=todo&status=TODO", vec!["status"]),
        ("status=", vec!["status"]),
        ("priority=critical", vec!["priority"]),
        ("sort=colour", vec!["sort"]),
        ("sort=-colour", vec!["sort"]),
        ("sort=--title", vec!["sort"]),
        ("sort=", vec!["sort"]),
        ("sort=id", vec!["sort"]),
        ("due_before=yesterday", vec!["due_before"]),
        ("due_after=2026-12-01", vec!["due_after"]),
        ("due_before=2026-12-01T17:00:00", vec!["due_before"]),
        ("due_after=2026-13-01T17:00:00Z", vec!["due_after"]),
        ("page=2", vec!["page"]),
        (
            "owner_id=00000000-0000-0000-0000-000000000000",
            vec!["owner_id"],
        ),
        ("limit=5&limit=6", vec!["limit"]),
        ("limit=5&limit=5", vec!["limit"]),
        ("offset=0&offset=0", vec!["offset"]),
        ("sort=title&sort=-title", vec!["sort"]),
        (
            "due_before=2026-12-01T17:00:00Z&due_before=2026-12-02T17:00:00Z",
            vec!["due_before"],
        ),
        ("q=a&q=b", vec!["q"]),
        ("q=a%00b", vec!["q"]),
        // Repeated once decoded, whatever the spelling.
        ("limit=5&lim%69t=6", vec!["limit"]),
        ("limit=0&offset=-1", vec!["limit", "offset"]),
    ] {
        let response = app.get(&format!("/tasks?{raw}"), Some(&user.token)).await;
        let mut fields = assert_invalid_fields(response).await;
        fields.sort();
        fields.dedup();
        assert_eq!(fields, expected, "{raw}");
    }
}

#[tokio::test]
async fn listing_without_a_valid_token_is_401() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "secret"})).await;
    for (path, token) in [
        ("/tasks", None),
        ("/tasks?limit=0", None),
        ("/tasks", Some("not-a-token")),
        ("/tasks?q=secret", Some("")),
    ] {
        let response = app.get(path, token).await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer"),
            "{path} {token:?}: {challenge:?}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

/// The unfiltered `total` comes from a count kept by a trigger (migration V3); it must agree
/// with the rows through creates, deletes, and an account's deletion.
#[tokio::test]
async fn the_kept_task_count_agrees_with_the_rows() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_task(&user, json!({"title": format!("t{i}")}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids[..2] {
        let response = app
            .request(Method::DELETE, &format!("/tasks/{id}"), Some(&user.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let list = json_body(app.get("/tasks", Some(&user.token)).await).await;
    assert_eq!(list["total"], 3);
    let filtered = json_body(app.get("/tasks?status=todo", Some(&user.token)).await).await;
    assert_eq!(filtered["total"], 3);
    let db = app.db().await;
    let (kept, actual): (i32, i64) = {
        let row = db
            .query_one(
                "SELECT task_count, (SELECT count(*) FROM tasks WHERE owner_id = $1) FROM users WHERE id = $1",
                &[&user.id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((kept, actual), (3, 3));
    // The API's role cannot forge it.
    let app_role = taskapi::db::connect(&crate::helpers::database().await.config)
        .await
        .unwrap();
    assert!(
        app_role
            .execute("UPDATE users SET task_count = 0", &[])
            .await
            .is_err()
    );
}
