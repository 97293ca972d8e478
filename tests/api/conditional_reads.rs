//! Conditional reads (API.md "Conventions", **Conditional reads**): `If-None-Match` on
//! `GET /tasks/{id}` and `GET /projects/{id}`. A match is 304 Not Modified with the current
//! `ETag` and no body; the comparison is RFC 9110's weak one (`W/"x"` matches `"x"`); a
//! list matches when any member does; `*` matches any existing resource; anything else
//! (a stale tag, an unknown one) is the ordinary 200. A condition never turns a 404 into
//! anything else: another user's resource, a missing one and a non-UUID id stay 404.
//!
//! Readings of the contract written down here:
//! - Several `If-None-Match` field lines form one list (RFC 9110 §5.3), exactly as if
//!   they were sent as one comma-separated line.
//! - A 304 carries the same `ETag` a 200 would carry at that moment (the current one), and
//!   an empty body (RFC 9110 §15.4.5: a 304 cannot carry content).
//! - The tag of the 201 of a create is the tag of the created state, so it matches a `GET`
//!   made before any change.
//! - A field value that is not a valid entity tag (no quotes) matches nothing: it is
//!   either ignored (200) or refused (400); never 304, never a 5xx.
//! - The condition is evaluated only after authentication and ownership: without a token
//!   it is 401, for someone else's resource it is 404, whatever the tag.

use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, json_body};
use crate::projects::{create_project_tagged, etag, fetch, project_path, task_path, write};

/// `GET path` as `user` with one `If-None-Match` field line per entry of `conditions`.
async fn get_if_none_match(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    conditions: &[&str],
) -> Response {
    let mut request = app.request(Method::GET, path, Some(&user.token));
    for condition in conditions {
        request = request.header(IF_NONE_MATCH, *condition);
    }
    request.send().await.expect("request sent")
}

/// Asserts a 304 with `ETag: current` and no body.
async fn assert_not_modified(response: Response, current: &str, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::NOT_MODIFIED,
        "{what}: expected 304"
    );
    assert_eq!(
        response
            .headers()
            .get(ETAG)
            .unwrap_or_else(|| panic!("{what}: a 304 without ETag"))
            .to_str()
            .unwrap(),
        current,
        "{what}: the 304 must carry the current ETag"
    );
    let body = response.bytes().await.expect("a body (empty)");
    assert!(
        body.is_empty(),
        "{what}: a 304 has no body, got {:?}",
        String::from_utf8_lossy(&body)
    );
}

/// Asserts an ordinary 200 carrying `expected` as body and `current` as ETag.
async fn assert_full(response: Response, expected: &Value, current: &str, what: &str) {
    assert_eq!(response.status(), StatusCode::OK, "{what}: expected 200");
    assert_eq!(etag(&response), current, "{what}: the current ETag");
    assert_eq!(&json_body(response).await, expected, "{what}: the body");
}

/// `"abc"` → `W/"abc"`.
fn weak(tag: &str) -> String {
    format!("W/{tag}")
}

/// A task and a project of `user`, each with its path, current body and current ETag.
async fn one_of_each(app: &TestApp, user: &TestUser) -> Vec<(String, Value, String)> {
    let created = app
        .send_json(
            Method::POST,
            "/tasks",
            Some(&user.token),
            &json!({"title": "Conditional", "labels": ["a"]}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created_tag = etag(&created);
    let task = json_body(created).await;
    let (project, project_tag) = create_project_tagged(app, user, "Conditional").await;
    let (task_now, task_tag) = fetch(app, user, &task_path(&task)).await;
    let (project_now, project_now_tag) = fetch(app, user, &project_path(&project)).await;
    assert_eq!(task_now, task);
    assert_eq!(project_now, project);
    assert_eq!(task_tag, created_tag, "the 201's ETag is the task's tag");
    assert_eq!(
        project_now_tag, project_tag,
        "the 201's ETag is the project's tag"
    );
    vec![
        (task_path(&task), task_now, task_tag),
        (project_path(&project), project_now, project_now_tag),
    ]
}

#[tokio::test]
async fn the_current_tag_is_304_with_that_etag_and_no_body() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (path, _, tag) in one_of_each(&app, &user).await {
        let response = get_if_none_match(&app, &user, &path, &[&tag]).await;
        assert_not_modified(response, &tag, &format!("GET {path} If-None-Match: {tag}")).await;
        // Asking again changes nothing: still 304.
        let again = get_if_none_match(&app, &user, &path, &[&tag]).await;
        assert_not_modified(again, &tag, &format!("again GET {path}")).await;
    }
}

#[tokio::test]
async fn the_tag_of_the_201_is_304_until_the_resource_changes() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let created = app
        .send_json(
            Method::POST,
            "/tasks",
            Some(&user.token),
            &json!({"title": "Fresh"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let tag = etag(&created);
    let task = json_body(created).await;
    let response = get_if_none_match(&app, &user, &task_path(&task), &[&tag]).await;
    assert_not_modified(response, &tag, "the task's 201 tag").await;

    let created = app
        .send_json(
            Method::POST,
            "/projects",
            Some(&user.token),
            &json!({"name": "Fresh"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let tag = etag(&created);
    let project = json_body(created).await;
    let response = get_if_none_match(&app, &user, &project_path(&project), &[&tag]).await;
    assert_not_modified(response, &tag, "the project's 201 tag").await;
}

#[tokio::test]
async fn comparison_is_weak_so_the_weak_form_of_the_current_tag_matches() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (path, _, tag) in one_of_each(&app, &user).await {
        let response = get_if_none_match(&app, &user, &path, &[&weak(&tag)]).await;
        assert_not_modified(
            response,
            &tag,
            &format!("GET {path} If-None-Match: W/{tag}"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_list_of_tags_matches_when_any_member_matches() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (path, body, tag) in one_of_each(&app, &user).await {
        let lists = [
            format!("\"nope\", {tag}"),
            format!("{tag}, \"nope\""),
            format!("\"a\",\"b\",{tag},\"c\""),
            format!("\"a\" ,   {}  , \"c\"", weak(&tag)),
            format!("W/\"x\", {}", weak(&tag)),
        ];
        for list in &lists {
            let response = get_if_none_match(&app, &user, &path, &[list]).await;
            assert_not_modified(response, &tag, &format!("GET {path} If-None-Match: {list}")).await;
        }
        // Several field lines are one list.
        let response = get_if_none_match(&app, &user, &path, &["\"nope\"", &tag]).await;
        assert_not_modified(response, &tag, &format!("GET {path}: two field lines")).await;

        // A list none of whose members matches is an ordinary read.
        let response =
            get_if_none_match(&app, &user, &path, &["\"a\", W/\"b\", \"c\"", "\"d\""]).await;
        assert_full(
            response,
            &body,
            &tag,
            &format!("GET {path}: no member matches"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_star_matches_any_existing_resource() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (path, _, tag) in one_of_each(&app, &user).await {
        let response = get_if_none_match(&app, &user, &path, &["*"]).await;
        assert_not_modified(response, &tag, &format!("GET {path} If-None-Match: *")).await;
    }
}

#[tokio::test]
async fn a_tag_that_does_not_match_is_an_ordinary_200_with_body_and_etag() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for (path, body, tag) in one_of_each(&app, &user).await {
        let opaque = tag.trim_matches('"');
        let others = [
            "\"nope\"".to_owned(),
            "W/\"nope\"".to_owned(),
            // A prefix, an extension and a case change of the current tag are other tags.
            format!("\"{}\"", &opaque[..opaque.len() - 1]),
            format!("\"{opaque}x\""),
            format!("\"{}\"", opaque.to_uppercase()),
            format!("\"{}\"", opaque.to_lowercase()),
            "\"\"".to_owned(),
        ];
        for other in &others {
            if other == &tag {
                continue; // a case change may leave the tag as it is
            }
            let response = get_if_none_match(&app, &user, &path, &[other]).await;
            assert_full(
                response,
                &body,
                &tag,
                &format!("GET {path} If-None-Match: {other}"),
            )
            .await;
        }
        // Not an entity tag at all (no quotes): never a match, never a server error.
        let response = get_if_none_match(&app, &user, &path, &[opaque]).await;
        let status = response.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "GET {path} If-None-Match: {opaque} (unquoted) gave {status}"
        );
    }
}

#[tokio::test]
async fn after_a_change_the_old_tag_gives_the_new_state_and_the_new_tag_is_304() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let things = one_of_each(&app, &user).await;
    let changes = [json!({"title": "Changed"}), json!({"name": "Changed"})];
    for ((path, before, old_tag), change) in things.into_iter().zip(changes) {
        let response = write(&app, &user, Method::PATCH, &path, None, Some(&change)).await;
        assert_eq!(response.status(), StatusCode::OK, "PATCH {path}");
        let new_tag = etag(&response);
        let after = json_body(response).await;
        assert_ne!(new_tag, old_tag, "a change changes the ETag");
        assert_ne!(after, before);

        for stale in [old_tag.clone(), weak(&old_tag)] {
            let response = get_if_none_match(&app, &user, &path, &[&stale]).await;
            assert_full(
                response,
                &after,
                &new_tag,
                &format!("GET {path} with the old {stale}"),
            )
            .await;
        }
        let response = get_if_none_match(&app, &user, &path, &[&new_tag]).await;
        assert_not_modified(response, &new_tag, &format!("GET {path} with the new tag")).await;
    }
}

#[tokio::test]
async fn a_put_and_a_label_rename_also_make_the_old_tag_stale() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app
        .create_task(&user, json!({"title": "Relabel me", "labels": ["old"]}))
        .await;
    let path = task_path(&task);
    let (_, first) = fetch(&app, &user, &path).await;

    let response = write(
        &app,
        &user,
        Method::PUT,
        &path,
        None,
        Some(&json!({"title": "Relabel me", "labels": ["old"], "priority": "high"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (after_put, second) = fetch(&app, &user, &path).await;
    let response = get_if_none_match(&app, &user, &path, &[&first]).await;
    assert_full(response, &after_put, &second, "the tag from before the PUT").await;

    let response = write(
        &app,
        &user,
        Method::PATCH,
        "/labels/old",
        None,
        Some(&json!({"name": "new"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (after_rename, third) = fetch(&app, &user, &path).await;
    assert_eq!(after_rename["labels"], json!(["new"]));
    let response = get_if_none_match(&app, &user, &path, &[&second]).await;
    assert_full(
        response,
        &after_rename,
        &third,
        "the tag from before the label rename",
    )
    .await;
    let response = get_if_none_match(&app, &user, &path, &[&third]).await;
    assert_not_modified(response, &third, "the tag after the label rename").await;
}

#[tokio::test]
async fn no_condition_turns_a_404_into_a_304_or_a_200() {
    let app = TestApp::spawn().await;
    let owner = app.new_user().await;
    let stranger = app.new_user().await;
    for (path, _, tag) in one_of_each(&app, &owner).await {
        // Another user's resource, with its real tag, its weak tag, or `*`: 404.
        for condition in [tag.as_str(), &weak(&tag), "*", "\"nope\""] {
            let response = get_if_none_match(&app, &stranger, &path, &[condition]).await;
            assert_problem(response, StatusCode::NOT_FOUND).await;
        }
        // Without credentials: 401, whatever the condition.
        let response = app
            .request(Method::GET, &path, None)
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        // Deleted: the old tag and `*` find nothing.
        let response = write(&app, &owner, Method::DELETE, &path, None, None).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        for condition in [tag.as_str(), "*"] {
            let response = get_if_none_match(&app, &owner, &path, &[condition]).await;
            assert_problem(response, StatusCode::NOT_FOUND).await;
        }
    }
    for path in [
        format!("/tasks/{}", uuid::Uuid::new_v4()),
        format!("/projects/{}", uuid::Uuid::new_v4()),
    ] {
        let response = get_if_none_match(&app, &owner, &path, &["*"]).await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
    for path in ["/tasks/not-a-uuid", "/projects/not-a-uuid"] {
        let response = get_if_none_match(&app, &owner, path, &["*"]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
}
