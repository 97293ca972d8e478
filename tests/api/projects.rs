//! Projects (API.md "Projects"): creating, reading, renaming, listing and deleting them;
//! names (trimmed, at most 100 characters, unique per owner whatever their case); paging;
//! `If-Match`; another user's project indistinguishable from a missing one; deleting a
//! project deletes its tasks; and the database's own walls (RLS on `projects`, the
//! composite foreign key that keeps a task and its project with one owner).

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::header::{ETAG, IF_MATCH};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::helpers::{
    TestApp, TestUser, assert_invalid_fields, assert_problem, database, json_body,
};

// ---------------------------------------------------------------------------------------
// Helpers shared by the project, label and task-field tests.

pub fn project_path(project: &Value) -> String {
    format!(
        "/projects/{}",
        project["id"].as_str().expect("a project id")
    )
}

pub fn task_path(task: &Value) -> String {
    format!("/tasks/{}", task["id"].as_str().expect("a task id"))
}

/// The response's ETag, checked to be strong and quoted.
pub fn etag(response: &Response) -> String {
    let tag = response
        .headers()
        .get(ETAG)
        .unwrap_or_else(|| panic!("no ETag on a {} response", response.status()))
        .to_str()
        .expect("a visible-ASCII ETag")
        .to_owned();
    assert!(!tag.starts_with("W/"), "{tag} is weak");
    let opaque = tag
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{tag} is not quoted"));
    assert!(!opaque.is_empty(), "{tag} is empty");
    tag
}

/// `POST /projects {"name": name}` as `user`, expecting 201; the project and its ETag.
pub async fn create_project_tagged(app: &TestApp, user: &TestUser, name: &str) -> (Value, String) {
    let response = app
        .send_json(
            Method::POST,
            "/projects",
            Some(&user.token),
            &json!({ "name": name }),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "creating project {name:?}"
    );
    let tag = etag(&response);
    (json_body(response).await, tag)
}

pub async fn create_project(app: &TestApp, user: &TestUser, name: &str) -> Value {
    create_project_tagged(app, user, name).await.0
}

/// `GET path` as `user`, expecting 200; the body and its ETag.
pub async fn fetch(app: &TestApp, user: &TestUser, path: &str) -> (Value, String) {
    let response = app.get(path, Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let tag = etag(&response);
    (json_body(response).await, tag)
}

/// A request with an optional JSON body and an optional `If-Match`.
pub async fn write(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = app.request(method, path, Some(&user.token));
    if let Some(tag) = if_match {
        request = request.header(IF_MATCH, tag);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items is an array")
}

fn names(page: &Value) -> Vec<String> {
    items(page)
        .iter()
        .map(|p| p["name"].as_str().expect("a name").to_owned())
        .collect()
}

async fn list_projects(app: &TestApp, user: &TestUser, raw: &str) -> Value {
    let path = if raw.is_empty() {
        "/projects".to_owned()
    } else {
        format!("/projects?{raw}")
    };
    let response = app.get(&path, Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    json_body(response).await
}

/// A connection as the API's own role (neither superuser nor BYPASSRLS).
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
        "the API's role must be neither superuser nor BYPASSRLS"
    );
    client
}

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

fn id_of(value: &Value) -> Uuid {
    value["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("a uuid")
}

// ---------------------------------------------------------------------------------------
// Creating and reading.

#[tokio::test]
async fn create_returns_201_with_location_etag_and_exactly_the_documented_fields() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let response = app
        .send_json(
            Method::POST,
            "/projects",
            Some(&user.token),
            &json!({"name": "  Home  "}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let tag = etag(&response);
    let project = json_body(response).await;
    assert_eq!(keys(&project), ["created_at", "id", "name", "updated_at"]);
    assert_eq!(location, project_path(&project));
    assert_eq!(project["name"], "Home", "stored trimmed");
    assert!(project["id"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert!(project["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(project["created_at"], project["updated_at"]);

    let (fetched, fetched_tag) = fetch(&app, &user, &location).await;
    assert_eq!(fetched, project);
    assert_eq!(
        fetched_tag, tag,
        "GET of an unchanged project gives the tag of its POST"
    );
}

#[tokio::test]
async fn invalid_names_are_422_naming_name_and_create_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for body in [
        json!({}),
        json!({"name": null}),
        json!({"name": 5}),
        json!({"name": true}),
        json!({"name": ["Home"]}),
        json!({"name": {"text": "Home"}}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": " \t\n "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": format!("  {}  ", "y".repeat(101))}),
        json!({"name": "a\u{0}b"}),
    ] {
        let response = app
            .send_json(Method::POST, "/projects", Some(&user.token), &body)
            .await;
        assert_eq!(assert_invalid_fields(response).await, ["name"], "{body}");
    }
    let list = list_projects(&app, &user, "").await;
    assert_eq!(list["total"], 0);
    assert!(items(&list).is_empty());

    // Exactly at the limit, once trimmed, is fine.
    let long = create_project(&app, &user, &format!("  {}  ", "z".repeat(100))).await;
    assert_eq!(long["name"], "z".repeat(100));
    let short = create_project(&app, &user, "q").await;
    assert_eq!(short["name"], "q");
}

#[tokio::test]
async fn unknown_and_server_managed_fields_are_422() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Fixed").await;
    let path = project_path(&project);
    for field in [
        "id",
        "owner_id",
        "created_at",
        "updated_at",
        "colour",
        "task_count",
    ] {
        let mut body = json!({"name": "Other"});
        body[field] = json!("00000000-0000-0000-0000-000000000000");
        let created = app
            .send_json(Method::POST, "/projects", Some(&user.token), &body)
            .await;
        assert_problem(created, StatusCode::UNPROCESSABLE_ENTITY).await;
        let patched = app
            .send_json(Method::PATCH, &path, Some(&user.token), &body)
            .await;
        assert_problem(patched, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let (after, after_tag) = fetch(&app, &user, &path).await;
    assert_eq!(after, project);
    assert_eq!(after_tag, tag);
    assert_eq!(list_projects(&app, &user, "").await["total"], 1);
}

#[tokio::test]
async fn a_name_equal_to_another_of_the_callers_projects_whatever_its_case_is_409() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    create_project(&app, &alice, "Home").await;
    for duplicate in ["Home", "home", "HOME", "hOmE", "  home  "] {
        let response = app
            .send_json(
                Method::POST,
                "/projects",
                Some(&alice.token),
                &json!({ "name": duplicate }),
            )
            .await;
        assert_problem(response, StatusCode::CONFLICT).await;
    }
    assert_eq!(list_projects(&app, &alice, "").await["total"], 1);

    // Another user may have the same name.
    let bobs = create_project(&app, &bob, "home").await;
    assert_eq!(bobs["name"], "home");
    let bobs_too = create_project(&app, &bob, "Work").await;
    assert_eq!(bobs_too["name"], "Work");
    assert_eq!(list_projects(&app, &bob, "").await["total"], 2);
}

#[tokio::test]
async fn names_differing_only_in_the_case_of_non_ascii_letters_are_409_too() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    create_project(&app, &user, "Été").await;
    let response = app
        .send_json(
            Method::POST,
            "/projects",
            Some(&user.token),
            &json!({"name": "ÉTÉ"}),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT).await;
    let response = app
        .send_json(
            Method::POST,
            "/projects",
            Some(&user.token),
            &json!({"name": "été"}),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT).await;
    assert_eq!(list_projects(&app, &user, "").await["total"], 1);
}

#[tokio::test]
async fn project_names_come_back_byte_for_byte() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for name in [
        "Ünïcødé ✓ 日本語 🚀",
        "100% _under_ 'q' \"d\" \\ / ? #",
        "a  b",
    ] {
        let project = create_project(&app, &user, name).await;
        assert_eq!(project["name"], name);
        let (fetched, _) = fetch(&app, &user, &project_path(&project)).await;
        assert_eq!(fetched["name"], name);
    }
}

// ---------------------------------------------------------------------------------------
// Renaming.

#[tokio::test]
async fn patch_renames_trims_and_changes_the_etag_and_updated_at() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Home").await;
    let path = project_path(&project);

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"name": "  House "})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let new_tag = etag(&response);
    let renamed = json_body(response).await;
    assert_ne!(new_tag, tag, "the ETag changes on every change");
    assert_eq!(keys(&renamed), ["created_at", "id", "name", "updated_at"]);
    assert_eq!(renamed["name"], "House");
    assert_eq!(renamed["id"], project["id"]);
    assert_eq!(renamed["created_at"], project["created_at"]);
    assert!(renamed["updated_at"].as_str() > project["updated_at"].as_str());

    let (fetched, fetched_tag) = fetch(&app, &user, &path).await;
    assert_eq!(fetched, renamed);
    assert_eq!(fetched_tag, new_tag);

    // Another change, another tag, different from both before.
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"name": "Flat"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let third = etag(&response);
    assert!(third != tag && third != new_tag);
}

#[tokio::test]
async fn empty_patch_changes_nothing_and_keeps_the_etag() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Same").await;
    let path = project_path(&project);
    let response = write(&app, &user, Method::PATCH, &path, None, Some(&json!({}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), tag);
    assert_eq!(json_body(response).await, project);
    let (fetched, fetched_tag) = fetch(&app, &user, &path).await;
    assert_eq!((fetched, fetched_tag), (project, tag));
}

#[tokio::test]
async fn patch_with_an_invalid_name_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Keep").await;
    let path = project_path(&project);
    for body in [
        json!({"name": null}),
        json!({"name": 1}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "nul\u{0}"}),
    ] {
        let response = write(&app, &user, Method::PATCH, &path, None, Some(&body)).await;
        assert_eq!(assert_invalid_fields(response).await, ["name"], "{body}");
    }
    let (fetched, fetched_tag) = fetch(&app, &user, &path).await;
    assert_eq!((fetched, fetched_tag), (project, tag));
}

#[tokio::test]
async fn renaming_onto_another_of_the_callers_names_is_409_but_recasing_ones_own_name_is_fine() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (home, home_tag) = create_project_tagged(&app, &user, "Home").await;
    let work = create_project(&app, &user, "Work").await;
    for name in ["home", "HOME", " Home "] {
        let response = write(
            &app,
            &user,
            Method::PATCH,
            &project_path(&work),
            None,
            Some(&json!({ "name": name })),
        )
        .await;
        assert_problem(response, StatusCode::CONFLICT).await;
    }
    let (unchanged, _) = fetch(&app, &user, &project_path(&work)).await;
    assert_eq!(unchanged, work);

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &project_path(&home),
        None,
        Some(&json!({"name": "HOME"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(etag(&response), home_tag);
    assert_eq!(json_body(response).await["name"], "HOME");
}

#[tokio::test]
async fn patch_and_delete_honour_if_match_and_a_stale_tag_is_412_changing_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Guarded").await;
    let path = project_path(&project);
    let task = app
        .create_task(
            &user,
            json!({"title": "inside", "project_id": project["id"]}),
        )
        .await;

    let stale = "\"not-the-tag\"";
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(stale),
        Some(&json!({"name": "Lost"})),
    )
    .await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let response = write(&app, &user, Method::DELETE, &path, Some(stale), None).await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let (after, after_tag) = fetch(&app, &user, &path).await;
    assert_eq!((after, after_tag.clone()), (project.clone(), tag.clone()));
    let (still, _) = fetch(&app, &user, &task_path(&task)).await;
    assert_eq!(
        still, task,
        "a refused DELETE deletes none of the project's tasks"
    );

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&tag),
        Some(&json!({"name": "Won"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let new_tag = etag(&response);

    // The old tag is stale now.
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&tag),
        Some(&json!({"name": "Late"})),
    )
    .await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let response = write(&app, &user, Method::DELETE, &path, Some(&tag), None).await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(fetch(&app, &user, &path).await.0["name"], "Won");

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some("*"),
        Some(&json!({"name": "Star"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let star_tag = etag(&response);
    assert_ne!(star_tag, new_tag);

    let response = write(&app, &user, Method::DELETE, &path, Some(&star_tag), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get(&path, Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_ten_concurrent_patches_with_the_same_tag_exactly_one_wins() {
    const WRITERS: usize = 10;
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Contested").await;
    let path = project_path(&project);

    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut writers = JoinSet::new();
    for n in 0..WRITERS {
        let request = app
            .request(Method::PATCH, &path, Some(&user.token))
            .header(IF_MATCH, &tag)
            .json(&json!({"name": format!("writer {n}")}));
        let barrier = Arc::clone(&barrier);
        writers.spawn(async move {
            barrier.wait().await;
            let response = request.send().await.expect("request sent");
            let status = response.status();
            let tag = response
                .headers()
                .get(ETAG)
                .map(|t| t.to_str().unwrap().to_owned());
            let content_type = response
                .headers()
                .get("content-type")
                .map(|t| t.to_str().unwrap().to_owned());
            let body = response.text().await.unwrap();
            (n, status, tag, content_type, body)
        });
    }
    let outcomes = writers.join_all().await;
    assert_eq!(outcomes.len(), WRITERS);
    let winners: Vec<_> = outcomes.iter().filter(|o| o.1 == StatusCode::OK).collect();
    assert_eq!(winners.len(), 1, "{outcomes:#?}");
    for loser in outcomes.iter().filter(|o| o.1 != StatusCode::OK) {
        assert_eq!(loser.1, StatusCode::PRECONDITION_FAILED, "{loser:?}");
        assert_eq!(loser.3.as_deref(), Some("application/problem+json"));
    }
    let (n, _, winning_tag, _, body) = winners[0];
    let won: Value = serde_json::from_str(body).unwrap();
    assert_eq!(won["name"], format!("writer {n}"));
    let winning_tag = winning_tag.clone().expect("the winner's ETag");
    assert_ne!(winning_tag, tag);
    let (final_project, final_tag) = fetch(&app, &user, &path).await;
    assert_eq!(final_project, won);
    assert_eq!(final_tag, winning_tag);
}

// ---------------------------------------------------------------------------------------
// Listing.

#[tokio::test]
async fn the_list_is_ordered_by_name_case_insensitively_and_pages_never_repeat_or_skip() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    create_project(&app, &other, "a0").await;
    // Mixed case so that a case-sensitive order would differ from the documented one.
    let names = [
        "b1", "A1", "c1", "B2", "a2", "C2", "b3", "A3", "c3", "B4", "a4", "C4", "Zeta", "alpha",
        "Beta", "gamma", "DELTA", "epsilon", "a10", "A11", "b12", "Ab", "aC",
    ];
    assert_eq!(names.len(), 23);
    let mut created = Vec::new();
    for name in names {
        created.push(create_project(&app, &user, name).await);
    }
    let mut expected = created.clone();
    expected.sort_by_key(|p| (p["name"].as_str().unwrap().to_lowercase(), id_of(p)));
    let expected_names: Vec<String> = expected
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();

    let mut walked = Vec::new();
    let mut seen = HashSet::new();
    for offset in (0..25).step_by(5) {
        let page = list_projects(&app, &user, &format!("limit=5&offset={offset}")).await;
        assert_eq!(keys(&page), ["items", "limit", "offset", "total"]);
        assert_eq!(page["total"], 23);
        assert_eq!(page["limit"], 5);
        assert_eq!(page["offset"], offset);
        assert_eq!(items(&page).len(), if offset == 20 { 3 } else { 5 });
        for project in items(&page) {
            assert_eq!(keys(project), ["created_at", "id", "name", "updated_at"]);
            assert!(
                seen.insert(project["id"].as_str().unwrap().to_owned()),
                "repeated {project}"
            );
            walked.push(project.clone());
        }
    }
    let walked_names: Vec<String> = walked
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(walked_names, expected_names);
    assert_eq!(walked, expected, "list items are the projects as created");

    let past = list_projects(&app, &user, "limit=5&offset=23").await;
    assert!(items(&past).is_empty());
    assert_eq!(past["total"], 23);
}

#[tokio::test]
async fn by_default_the_list_gives_twenty_from_offset_zero() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for n in 0..22 {
        create_project(&app, &user, &format!("p{n:02}")).await;
    }
    let page = list_projects(&app, &user, "").await;
    assert_eq!(page["limit"], 20);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["total"], 22);
    let expected: Vec<String> = (0..20).map(|n| format!("p{n:02}")).collect();
    assert_eq!(names(&page), expected);
    let page = list_projects(&app, &user, "limit=100").await;
    assert_eq!(items(&page).len(), 22);
    let page = list_projects(&app, &user, "limit=1&offset=21").await;
    assert_eq!(names(&page), ["p21"]);
}

#[tokio::test]
async fn invalid_list_parameters_are_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    create_project(&app, &user, "One").await;
    for (raw, expected) in [
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("limit=-1", vec!["limit"]),
        ("limit=ten", vec!["limit"]),
        ("limit=", vec!["limit"]),
        ("limit=1.5", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("offset=abc", vec!["offset"]),
        ("limit=5&limit=5", vec!["limit"]),
        ("limit=5&limit=6", vec!["limit"]),
        ("offset=0&offset=0", vec!["offset"]),
        ("name=One", vec!["name"]),
        ("sort=name", vec!["sort"]),
        ("q=one", vec!["q"]),
        ("page=2", vec!["page"]),
        ("cursor=abc", vec!["cursor"]),
        ("limit=0&offset=-1", vec!["limit", "offset"]),
    ] {
        let response = app
            .get(&format!("/projects?{raw}"), Some(&user.token))
            .await;
        let mut fields = assert_invalid_fields(response).await;
        fields.sort();
        fields.dedup();
        assert_eq!(fields, expected, "{raw}");
    }
    // The bounds themselves are fine.
    assert_eq!(list_projects(&app, &user, "limit=1").await["limit"], 1);
    assert_eq!(
        list_projects(&app, &user, "limit=100&offset=0").await["limit"],
        100
    );
}

#[tokio::test]
async fn a_user_never_sees_another_users_projects_and_total_excludes_them() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    create_project(&app, &alice, "Alice one").await;
    create_project(&app, &alice, "Alice two").await;
    create_project(&app, &bob, "Bob one").await;
    let alices = list_projects(&app, &alice, "").await;
    assert_eq!(names(&alices), ["Alice one", "Alice two"]);
    assert_eq!(alices["total"], 2);
    let bobs = list_projects(&app, &bob, "").await;
    assert_eq!(names(&bobs), ["Bob one"]);
    assert_eq!(bobs["total"], 1);
    let carol = app.new_user().await;
    let empty = list_projects(&app, &carol, "").await;
    assert_eq!(empty["total"], 0);
    assert!(items(&empty).is_empty());
}

// ---------------------------------------------------------------------------------------
// Deleting.

#[tokio::test]
async fn deleting_a_project_deletes_its_tasks_and_no_others() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let other_user = app.new_user().await;
    let doomed = create_project(&app, &user, "Doomed").await;
    let kept = create_project(&app, &user, "Kept").await;
    let inside: Vec<Value> = [
        app.create_task(&user, json!({"title": "in 1", "project_id": doomed["id"]}))
            .await,
        app.create_task(
            &user,
            json!({"title": "in 2", "project_id": doomed["id"], "labels": ["x"]}),
        )
        .await,
    ]
    .into();
    let in_kept = app
        .create_task(
            &user,
            json!({"title": "elsewhere", "project_id": kept["id"]}),
        )
        .await;
    let loose = app.create_task(&user, json!({"title": "loose"})).await;
    let others = app
        .create_task(&other_user, json!({"title": "not mine"}))
        .await;

    let response = write(
        &app,
        &user,
        Method::DELETE,
        &project_path(&doomed),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());

    assert_problem(
        app.get(&project_path(&doomed), Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for task in &inside {
        assert_problem(
            app.get(&task_path(task), Some(&user.token)).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    assert_eq!(fetch(&app, &user, &task_path(&in_kept)).await.0, in_kept);
    assert_eq!(fetch(&app, &user, &task_path(&loose)).await.0, loose);
    assert_eq!(
        fetch(&app, &other_user, &task_path(&others)).await.0,
        others
    );
    assert_eq!(fetch(&app, &user, &project_path(&kept)).await.0, kept);
    let list = json_body(app.get("/tasks", Some(&user.token)).await).await;
    assert_eq!(list["total"], 2);
    let projects = list_projects(&app, &user, "").await;
    assert_eq!(names(&projects), ["Kept"]);

    // Behind the API's back: no row remains.
    let db = app.db().await;
    let ids: Vec<Uuid> = inside.iter().map(id_of).collect();
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM tasks WHERE id = ANY($1) OR project_id = $2",
            &[&ids, &id_of(&doomed)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let projects_left: i64 = db
        .query_one(
            "SELECT count(*) FROM projects WHERE id = $1",
            &[&id_of(&doomed)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(projects_left, 0);
    let owners_left: i64 = db
        .query_one(
            "SELECT count(*) FROM tasks WHERE owner_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owners_left, 2);

    let again = write(
        &app,
        &user,
        Method::DELETE,
        &project_path(&doomed),
        None,
        None,
    )
    .await;
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_deleted_projects_labels_vanish_from_the_label_list() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let doomed = create_project(&app, &user, "Doomed").await;
    app.create_task(
        &user,
        json!({"title": "in", "project_id": doomed["id"], "labels": ["only-here", "both"]}),
    )
    .await;
    app.create_task(&user, json!({"title": "out", "labels": ["both"]}))
        .await;
    let response = write(
        &app,
        &user,
        Method::DELETE,
        &project_path(&doomed),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let labels = json_body(app.get("/labels", Some(&user.token)).await).await;
    assert_eq!(
        labels,
        json!({"items": [{"name": "both", "task_count": 1}]})
    );
}

// ---------------------------------------------------------------------------------------
// Isolation and ids.

#[tokio::test]
async fn another_users_project_is_indistinguishable_from_a_missing_one_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.new_user().await;
    let intruder = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &owner, "Private").await;
    let task = app
        .create_task(
            &owner,
            json!({"title": "inside", "project_id": project["id"]}),
        )
        .await;
    let theirs = project_path(&project);
    let missing = format!("/projects/{}", Uuid::new_v4());

    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "hijacked"}))),
        (Method::PATCH, Some(json!({}))),
        (Method::DELETE, None),
    ] {
        let mut bodies = Vec::new();
        for path in [&theirs, &missing] {
            for if_match in [None, Some(tag.as_str()), Some("*"), Some("\"stale\"")] {
                let response = write(
                    &app,
                    &intruder,
                    method.clone(),
                    path,
                    if_match,
                    body.as_ref(),
                )
                .await;
                assert!(
                    !response.headers().contains_key("etag"),
                    "{method} {path} {if_match:?}"
                );
                let problem = assert_problem(response, StatusCode::NOT_FOUND).await;
                bodies.push(problem);
            }
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "{method}: {bodies:?}"
        );
    }
    assert_eq!(list_projects(&app, &intruder, "").await["total"], 0);
    let (untouched, untouched_tag) = fetch(&app, &owner, &theirs).await;
    assert_eq!((untouched, untouched_tag), (project, tag));
    assert_eq!(fetch(&app, &owner, &task_path(&task)).await.0, task);
}

#[tokio::test]
async fn project_ids_that_are_not_uuids_are_404() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    create_project(&app, &user, "Exists").await;
    for id in [
        "42",
        "not-a-uuid",
        "00000000-0000-0000-0000-00000000000g",
        "%20",
        "none",
    ] {
        let path = format!("/projects/{id}");
        assert_problem(
            app.get(&path, Some(&user.token)).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let patched = write(
            &app,
            &user,
            Method::PATCH,
            &path,
            None,
            Some(&json!({"name": "x"})),
        )
        .await;
        assert_problem(patched, StatusCode::NOT_FOUND).await;
        let deleted = write(&app, &user, Method::DELETE, &path, None, None).await;
        assert_problem(deleted, StatusCode::NOT_FOUND).await;
    }
    assert_eq!(list_projects(&app, &user, "").await["total"], 1);
}

#[tokio::test]
async fn project_and_label_routes_require_a_token() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4();
    for (method, path) in [
        (Method::GET, "/projects".to_owned()),
        (Method::POST, "/projects".to_owned()),
        (Method::GET, format!("/projects/{id}")),
        (Method::PATCH, format!("/projects/{id}")),
        (Method::DELETE, format!("/projects/{id}")),
        (Method::GET, "/labels".to_owned()),
        (Method::PATCH, "/labels/work".to_owned()),
        (Method::DELETE, "/labels/work".to_owned()),
    ] {
        let response = app
            .request(method.clone(), &path, None)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{method} {path}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
        let response = app
            .request(method.clone(), &path, Some("not-a-token"))
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

// ---------------------------------------------------------------------------------------
// The database's own walls.

#[tokio::test]
async fn the_database_refuses_to_put_a_task_into_another_users_project_with_a_foreign_key_violation()
 {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let alices_project = create_project(&app, &alice, "Alice's").await;
    let bobs_project = create_project(&app, &bob, "Bob's").await;
    let task = app
        .create_task(&alice, json!({"title": "alice's task"}))
        .await;

    let client = app_role().await;
    begin_as(&client, Some(alice.id)).await;
    let moved = client
        .execute(
            "UPDATE tasks SET project_id = $1 WHERE id = $2",
            &[&id_of(&bobs_project), &id_of(&task)],
        )
        .await
        .expect_err("a task cannot join another owner's project");
    assert_eq!(
        moved.code(),
        Some(&SqlState::FOREIGN_KEY_VIOLATION),
        "{moved:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();

    begin_as(&client, Some(alice.id)).await;
    let inserted = client
        .execute(
            "INSERT INTO tasks (owner_id, title, project_id) VALUES ($1, 'planted', $2)",
            &[&alice.id, &id_of(&bobs_project)],
        )
        .await
        .expect_err("nor be created in it");
    assert_eq!(
        inserted.code(),
        Some(&SqlState::FOREIGN_KEY_VIOLATION),
        "{inserted:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();

    // The same statement with her own project is fine: the refusal is the foreign key's.
    begin_as(&client, Some(alice.id)).await;
    let ok = client
        .execute(
            "UPDATE tasks SET project_id = $1 WHERE id = $2",
            &[&id_of(&alices_project), &id_of(&task)],
        )
        .await
        .unwrap();
    assert_eq!(ok, 1);
    client.batch_execute("ROLLBACK").await.unwrap();

    // Not even the superuser, who bypasses RLS, can do it.
    let db = app.db().await;
    let forced = db
        .execute(
            "UPDATE tasks SET project_id = $1 WHERE id = $2",
            &[&id_of(&bobs_project), &id_of(&task)],
        )
        .await
        .expect_err("the foreign key binds everyone");
    assert_eq!(
        forced.code(),
        Some(&SqlState::FOREIGN_KEY_VIOLATION),
        "{forced:?}"
    );

    let (after, _) = fetch(&app, &alice, &task_path(&task)).await;
    assert_eq!(after, task);
}

#[tokio::test]
async fn without_an_identity_projects_are_invisible_and_with_one_only_the_callers_are() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    create_project(&app, &alice, "A1").await;
    create_project(&app, &alice, "A2").await;
    create_project(&app, &bob, "B1").await;
    let client = app_role().await;

    begin_as(&client, None).await;
    let none: i64 = client
        .query_one("SELECT count(*) FROM projects", &[])
        .await
        .unwrap()
        .get(0);
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(none, 0, "with no identity, RLS hides every project");
    let bare: i64 = client
        .query_one("SELECT count(*) FROM projects", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bare, 0);

    begin_as(&client, Some(alice.id)).await;
    let owners: Vec<Uuid> = client
        .query("SELECT owner_id FROM projects", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Nor can she write over them.
    let renamed = client
        .execute("UPDATE projects SET name = name || ' (mine)'", &[])
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(owners, [alice.id, alice.id]);
    assert_eq!(renamed, 2, "only her own two projects");

    begin_as(&client, Some(alice.id)).await;
    let forged = client
        .execute(
            "INSERT INTO projects (owner_id, name) VALUES ($1, 'planted')",
            &[&bob.id],
        )
        .await;
    assert!(
        forged.is_err(),
        "WITH CHECK refuses projects for another owner"
    );
    client.batch_execute("ROLLBACK").await.unwrap();

    begin_as(&client, Some(alice.id)).await;
    let deleted = client
        .execute("DELETE FROM projects WHERE owner_id = $1", &[&bob.id])
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(deleted, 0);
    let bobs = list_projects(&app, &bob, "").await;
    assert_eq!(names(&bobs), ["B1"]);
}

// ---------------------------------------------------------------------------------------
// Races, lengths, media types.

/// Sends every request at once (after a barrier); the status and body of each.
pub async fn race(requests: Vec<reqwest::RequestBuilder>) -> Vec<(StatusCode, String)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut set = JoinSet::new();
    for (n, request) in requests.into_iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        set.spawn(async move {
            barrier.wait().await;
            let response = request.send().await.expect("request sent");
            let status = response.status();
            (n, status, response.text().await.unwrap())
        });
    }
    let mut outcomes = set.join_all().await;
    outcomes.sort_by_key(|o| o.0);
    outcomes.into_iter().map(|(_, s, b)| (s, b)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_ten_concurrent_creates_of_one_name_in_any_case_exactly_one_is_201_and_the_rest_409() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let spellings = ["Race", "race", "RACE", "rAcE", " race "];
    let requests = (0..10)
        .map(|n| {
            app.request(Method::POST, "/projects", Some(&user.token))
                .json(&json!({"name": spellings[n % spellings.len()]}))
        })
        .collect();
    let outcomes = race(requests).await;
    let created = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{outcomes:#?}");
    for (status, body) in &outcomes {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            let problem: Value = serde_json::from_str(body).unwrap();
            assert_eq!(problem["status"], 409);
        }
    }
    assert_eq!(list_projects(&app, &user, "").await["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_moved_or_created_into_a_project_being_deleted_is_deleted_with_it_or_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for round in 0..8 {
        let project = create_project(&app, &user, &format!("round {round}")).await;
        let loose = app.create_task(&user, json!({"title": "loose"})).await;
        let requests = vec![
            app.request(Method::DELETE, &project_path(&project), Some(&user.token)),
            app.request(Method::PATCH, &task_path(&loose), Some(&user.token))
                .json(&json!({"project_id": project["id"]})),
            app.request(Method::POST, "/tasks", Some(&user.token))
                .json(&json!({"title": "new", "project_id": project["id"]})),
        ];
        let outcomes = race(requests).await;
        assert_eq!(outcomes[0].0, StatusCode::NO_CONTENT, "{outcomes:?}");
        let (moved, moved_body) = &outcomes[1];
        match *moved {
            StatusCode::OK => {
                // Moved first, then deleted with the project.
                let gone = app.get(&task_path(&loose), Some(&user.token)).await;
                assert_problem(gone, StatusCode::NOT_FOUND).await;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let problem: Value = serde_json::from_str(moved_body).unwrap();
                assert_eq!(problem["errors"][0]["field"], "project_id", "{problem}");
                let (still, _) = fetch(&app, &user, &task_path(&loose)).await;
                assert_eq!(still, loose);
            }
            other => panic!("round {round}: PATCH answered {other}: {moved_body}"),
        }
        let (created, created_body) = &outcomes[2];
        match *created {
            StatusCode::CREATED => {
                let task: Value = serde_json::from_str(created_body).unwrap();
                let gone = app.get(&task_path(&task), Some(&user.token)).await;
                assert_problem(gone, StatusCode::NOT_FOUND).await;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let problem: Value = serde_json::from_str(created_body).unwrap();
                assert_eq!(problem["errors"][0]["field"], "project_id", "{problem}");
            }
            other => panic!("round {round}: POST answered {other}: {created_body}"),
        }
        let db = app.db().await;
        let dangling: i64 = db
            .query_one(
                "SELECT count(*) FROM tasks WHERE project_id = $1",
                &[&id_of(&project)],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(dangling, 0);
    }
}

#[tokio::test]
async fn name_lengths_count_characters_not_bytes() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (ok, too_long) in [("é", "é"), ("🚀", "🚀"), ("日", "日")] {
        let name = ok.repeat(100);
        assert_eq!(create_project(&app, &user, &name).await["name"], name);
        let response = app
            .send_json(
                Method::POST,
                "/projects",
                Some(&user.token),
                &json!({"name": too_long.repeat(101)}),
            )
            .await;
        assert_eq!(assert_invalid_fields(response).await, ["name"]);
    }
}

#[tokio::test]
async fn renaming_a_project_back_to_its_old_name_still_gives_a_new_etag() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, original) = create_project_tagged(&app, &user, "Home").await;
    let path = project_path(&project);
    let away = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"name": "Away"})),
    )
    .await;
    let away = etag(&away);
    let back = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"name": "Home"})),
    )
    .await;
    assert_eq!(back.status(), StatusCode::OK);
    let back = etag(&back);
    assert!(back != original && back != away, "{original} {away} {back}");
    // The original tag is stale, though the name is the same again.
    let response = write(&app, &user, Method::DELETE, &path, Some(&original), None).await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
}

#[tokio::test]
async fn project_and_label_bodies_that_are_not_json_are_415_and_unparseable_ones_400() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let project = create_project(&app, &user, "Media").await;
    app.create_task(&user, json!({"title": "t", "labels": ["x"]}))
        .await;
    let targets = [
        (Method::POST, "/projects".to_owned()),
        (Method::PATCH, project_path(&project)),
        (Method::PATCH, "/labels/x".to_owned()),
    ];
    for (method, path) in &targets {
        for content_type in [None, Some("text/plain")] {
            let mut request = app
                .request(method.clone(), path, Some(&user.token))
                .body(r#"{"name":"y"}"#);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        }
        for body in ["{", "", "{\"name\": \"y\"} trailing"] {
            let response = app
                .request(method.clone(), path, Some(&user.token))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_problem(response, StatusCode::BAD_REQUEST).await;
        }
    }
    assert_eq!(fetch(&app, &user, &project_path(&project)).await.0, project);
    assert_eq!(list_projects(&app, &user, "").await["total"], 1);
}

#[tokio::test]
async fn wrong_methods_on_project_and_label_routes_are_405_with_allow() {
    let app = TestApp::spawn().await;
    for (method, path, allowed) in [
        (Method::PUT, "/projects", vec!["GET", "HEAD", "POST"]),
        (Method::DELETE, "/projects", vec!["GET", "HEAD", "POST"]),
        (
            Method::POST,
            "/projects/00000000-0000-0000-0000-000000000000",
            vec!["DELETE", "GET", "HEAD", "PATCH"],
        ),
        (
            Method::PUT,
            "/projects/00000000-0000-0000-0000-000000000000",
            vec!["DELETE", "GET", "HEAD", "PATCH"],
        ),
        (Method::POST, "/labels", vec!["GET", "HEAD"]),
        (Method::GET, "/labels/work", vec!["DELETE", "PATCH"]),
        (Method::PUT, "/labels/work", vec!["DELETE", "PATCH"]),
    ] {
        let response = app
            .request(method.clone(), path, None)
            .send()
            .await
            .unwrap();
        let mut allow: Vec<String> = response
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("no Allow on {method} {path}"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        allow.sort();
        assert_eq!(allow, allowed, "{method} {path}");
        assert_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[tokio::test]
async fn project_if_match_compares_strongly_and_accepts_a_list_holding_the_current_tag() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (project, tag) = create_project_tagged(&app, &user, "Picky").await;
    let (_, foreign) = create_project_tagged(&app, &user, "Other").await;
    let path = project_path(&project);
    let weak = format!("W/{tag}");
    let unquoted = tag.trim_matches('"').to_owned();
    for bad in [
        weak.as_str(),
        foreign.as_str(),
        unquoted.as_str(),
        "\"\"",
        "garbage",
    ] {
        let response = write(
            &app,
            &user,
            Method::PATCH,
            &path,
            Some(bad),
            Some(&json!({"name": "changed"})),
        )
        .await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        let response = write(&app, &user, Method::DELETE, &path, Some(bad), None).await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    }
    assert_eq!(
        fetch(&app, &user, &path).await,
        (project.clone(), tag.clone())
    );

    // A task's tag is not a project's, even for the project's own tasks.
    let task = app
        .create_task(&user, json!({"title": "t", "project_id": project["id"]}))
        .await;
    let (_, task_tag) = fetch(&app, &user, &task_path(&task)).await;
    let response = write(&app, &user, Method::DELETE, &path, Some(&task_tag), None).await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;

    let list = format!("{foreign}, {weak}, {tag}");
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&list),
        Some(&json!({"name": "listed"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = etag(&response);
    let response = app
        .request(Method::DELETE, &path, Some(&user.token))
        .header(IF_MATCH, tag.as_str())
        .header(IF_MATCH, fresh.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get(&task_path(&task), Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}
