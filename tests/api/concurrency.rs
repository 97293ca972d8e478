//! Optimistic concurrency (API.md "Tasks", Concurrency): strong ETags on task responses,
//! `If-Match` on PATCH, PUT and DELETE, and exactly one winner among concurrent writers.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, ETAG, HeaderName, IF_MATCH};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::helpers::{TestApp, TestUser, assert_problem, json_body};

/// The response's ETag, checked to be a strong, quoted entity tag (RFC 9110 §8.8.3).
fn etag(response: &Response) -> String {
    let tag = response
        .headers()
        .get(ETAG)
        .unwrap_or_else(|| panic!("no ETag on a {} response", response.status()))
        .to_str()
        .expect("a visible-ASCII ETag")
        .to_owned();
    assert_strong(&tag);
    tag
}

fn assert_strong(tag: &str) {
    assert!(!tag.starts_with("W/"), "{tag} is weak");
    let opaque = tag
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{tag} is not quoted"));
    assert!(!opaque.is_empty(), "{tag} is empty");
    assert!(
        opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b)),
        "{tag} holds characters an entity tag cannot"
    );
}

fn task_path(task: &Value) -> String {
    format!("/tasks/{}", task["id"].as_str().expect("an id"))
}

/// Creates a task for `user`; returns it and the ETag of the 201.
async fn create(app: &TestApp, user: &TestUser, body: Value) -> (Value, String) {
    let response = app
        .send_json(Method::POST, "/tasks", Some(&user.token), &body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tag = etag(&response);
    (json_body(response).await, tag)
}

/// The task at `path` as `user` sees it, and its ETag.
async fn current(app: &TestApp, user: &TestUser, path: &str) -> (Value, String) {
    let response = app.get(path, Some(&user.token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let tag = etag(&response);
    (json_body(response).await, tag)
}

/// A PATCH, PUT or DELETE of `path`, with `If-Match: if_match` when given.
async fn write(
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

#[tokio::test]
async fn post_get_patch_and_put_responses_carry_a_strong_quoted_etag() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, created) = create(&app, &user, json!({"title": "tagged"})).await;
    let path = task_path(&task);

    let (_, got) = current(&app, &user, &path).await;
    assert_eq!(
        got, created,
        "GET of an unchanged task gives the tag of its POST"
    );

    let patched = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"title": "patched"})),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched = etag(&patched);

    let put = write(
        &app,
        &user,
        Method::PUT,
        &path,
        None,
        Some(&json!({"title": "put"})),
    )
    .await;
    assert_eq!(put.status(), StatusCode::OK);
    let put = etag(&put);

    let (_, after) = current(&app, &user, &path).await;
    assert_eq!(after, put, "GET gives the tag of the last write");

    // Two tasks never share a tag, even in the same state.
    let (_, other) = create(&app, &user, json!({"title": "tagged"})).await;
    let (_, another) = create(&app, &user, json!({"title": "tagged"})).await;
    assert_ne!(other, another);
    let all: HashSet<&String> = [&created, &patched, &put, &other].into_iter().collect();
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn the_etag_changes_on_every_change() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, first) = create(
        &app,
        &user,
        json!({"title": "evolving", "description": "v1"}),
    )
    .await;
    let path = task_path(&task);
    let mut tags = vec![first];
    for (method, body) in [
        (Method::PATCH, json!({"title": "evolving, renamed"})),
        (Method::PATCH, json!({"description": null})),
        (Method::PATCH, json!({"status": "done"})),
        (
            Method::PATCH,
            json!({"priority": "urgent", "due_at": "2026-12-01T17:00:00Z"}),
        ),
        (Method::PATCH, json!({"due_at": null})),
        (Method::PUT, json!({"title": "replaced"})),
        // Re-sending the same content is still a write.
        (Method::PUT, json!({"title": "replaced"})),
        (Method::PATCH, json!({"status": "todo"})),
    ] {
        let response = write(&app, &user, method.clone(), &path, None, Some(&body)).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {body}");
        let tag = etag(&response);
        let (_, got) = current(&app, &user, &path).await;
        assert_eq!(got, tag, "GET after {method} {body}");
        assert!(!tags.contains(&tag), "{method} {body} reused the tag {tag}");
        tags.push(tag);
    }
}

#[tokio::test]
async fn an_empty_patch_keeps_the_etag_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = create(
        &app,
        &user,
        json!({"title": "still", "due_at": "2026-12-01T17:00:00Z"}),
    )
    .await;
    let path = task_path(&task);

    let response = write(&app, &user, Method::PATCH, &path, None, Some(&json!({}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), tag);
    assert_eq!(json_body(response).await, task);

    // With the current tag too, and the tag still holds afterwards.
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&tag),
        Some(&json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), tag);
    let (after, after_tag) = current(&app, &user, &path).await;
    assert_eq!((after, after_tag), (task, tag));
}

#[tokio::test]
async fn patch_with_a_stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, stale) = create(&app, &user, json!({"title": "original"})).await;
    let path = task_path(&task);

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&stale),
        Some(&json!({"title": "first"})),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the current tag succeeds"
    );
    let fresh = etag(&response);
    assert_ne!(fresh, stale);
    let (before, _) = current(&app, &user, &path).await;
    assert_eq!(before["title"], "first");

    for body in [
        json!({"title": "second"}),
        json!({"status": "done"}),
        json!({}),
    ] {
        let response = write(&app, &user, Method::PATCH, &path, Some(&stale), Some(&body)).await;
        assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        let (after, tag) = current(&app, &user, &path).await;
        assert_eq!(after, before, "a 412 PATCH {body} changed the task");
        assert_eq!(tag, fresh);
    }

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&fresh),
        Some(&json!({"title": "third"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["title"], "third");
}

#[tokio::test]
async fn put_with_a_stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, stale) = create(
        &app,
        &user,
        json!({"title": "original", "priority": "high"}),
    )
    .await;
    let path = task_path(&task);

    let response = write(
        &app,
        &user,
        Method::PUT,
        &path,
        Some(&stale),
        Some(&json!({"title": "first"})),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the current tag succeeds"
    );
    let fresh = etag(&response);
    assert_ne!(fresh, stale);
    let (before, _) = current(&app, &user, &path).await;
    assert_eq!(
        (before["title"].as_str(), before["priority"].as_str()),
        (Some("first"), Some("medium"))
    );

    let body = json!({"title": "second", "status": "done", "description": "lost update"});
    let response = write(&app, &user, Method::PUT, &path, Some(&stale), Some(&body)).await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let (after, tag) = current(&app, &user, &path).await;
    assert_eq!(after, before, "a 412 PUT changed the task");
    assert_eq!(tag, fresh);

    let response = write(&app, &user, Method::PUT, &path, Some(&fresh), Some(&body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["title"], "second");
}

#[tokio::test]
async fn delete_with_a_stale_if_match_is_412_and_deletes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, stale) = create(&app, &user, json!({"title": "keep me"})).await;
    let path = task_path(&task);
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"title": "kept"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = etag(&response);
    let (before, _) = current(&app, &user, &path).await;

    let response = write(&app, &user, Method::DELETE, &path, Some(&stale), None).await;
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let (after, tag) = current(&app, &user, &path).await;
    assert_eq!(
        (after, tag),
        (before, fresh.clone()),
        "a 412 DELETE touched the task"
    );

    let response = write(&app, &user, Method::DELETE, &path, Some(&fresh), None).await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "the current tag succeeds"
    );
    assert_problem(
        app.get(&path, Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn if_match_star_matches_any_existing_task_and_no_missing_one() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, _) = create(&app, &user, json!({"title": "starred"})).await;
    let path = task_path(&task);

    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some("*"),
        Some(&json!({"title": "patched"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some("*"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = write(
        &app,
        &user,
        Method::PUT,
        &path,
        Some("*"),
        Some(&json!({"title": "put"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["title"], "put");
    let response = write(&app, &user, Method::DELETE, &path, Some("*"), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // The task is gone: `*` no longer matches anything, and absence is a 404.
    for (method, body) in [
        (Method::PATCH, Some(json!({"title": "ghost"}))),
        (Method::PATCH, Some(json!({}))),
        (Method::PUT, Some(json!({"title": "ghost"}))),
        (Method::DELETE, None),
    ] {
        let response = write(&app, &user, method.clone(), &path, Some("*"), body.as_ref()).await;
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn weak_or_foreign_tags_never_match_but_a_list_holding_the_current_one_does() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = create(&app, &user, json!({"title": "picky"})).await;
    let (_, foreign) = create(&app, &user, json!({"title": "picky"})).await;
    let path = task_path(&task);

    // If-Match compares strongly (RFC 9110 §13.1.1): the weak form of the current tag fails,
    // and so does another task's current tag, or something that is no tag at all.
    let weak = format!("W/{tag}");
    let unquoted = tag.trim_matches('"').to_owned();
    for bad in [
        weak.as_str(),
        foreign.as_str(),
        unquoted.as_str(),
        "\"\"",
        "garbage",
    ] {
        for (method, body) in [
            (Method::PATCH, Some(json!({"title": "changed"}))),
            (Method::PATCH, Some(json!({}))),
            (Method::PUT, Some(json!({"title": "changed"}))),
            (Method::DELETE, None),
        ] {
            let response =
                write(&app, &user, method.clone(), &path, Some(bad), body.as_ref()).await;
            assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
        }
    }
    let (unchanged, unchanged_tag) = current(&app, &user, &path).await;
    assert_eq!((unchanged, unchanged_tag.clone()), (task, tag.clone()));

    let list = format!("{foreign}, {weak}, {tag}");
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        Some(&list),
        Some(&json!({"title": "listed"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = etag(&response);
    let list = format!("{tag}, {fresh}");
    let response = write(&app, &user, Method::DELETE, &path, Some(&list), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn if_match_may_span_several_header_lines() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, stale) = create(&app, &user, json!({"title": "lines"})).await;
    let path = task_path(&task);
    let response = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"title": "v2"})),
    )
    .await;
    let fresh = etag(&response);

    let two_lines = |first: &str, second: &str| {
        app.request(Method::PATCH, &path, Some(&user.token))
            .header(IF_MATCH, first)
            .header(IF_MATCH, second)
            .json(&json!({"title": "v3"}))
    };
    let response = two_lines(&stale, "\"garbage\"").send().await.expect("sent");
    assert_problem(response, StatusCode::PRECONDITION_FAILED).await;
    let response = two_lines(&stale, &fresh).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["title"], "v3");
}

#[tokio::test]
async fn if_match_compares_tags_character_by_character() {
    // RFC 9110 §8.8.3.2: strong tags match only when their opaque-tags are identical, so
    // another spelling of the same version is not the current tag.
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = create(&app, &user, json!({"title": "exact"})).await;
    let path = task_path(&task);
    let opaque = tag.trim_matches('"');
    let (prefix, version) = opaque
        .rsplit_once('-')
        .expect("this server's tags end in -version");
    let variants = [
        format!("\"{prefix}-0{version}\""),
        format!("\"{prefix}-+{version}\""),
        format!("\"{}-{version}\"", prefix.to_uppercase()),
        format!("\"{opaque} \""),
    ];
    for variant in &variants {
        for (method, body) in [
            (Method::PATCH, Some(json!({"title": "changed"}))),
            (Method::PUT, Some(json!({"title": "changed"}))),
            (Method::DELETE, None),
        ] {
            let response = write(
                &app,
                &user,
                method.clone(),
                &path,
                Some(variant),
                body.as_ref(),
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::PRECONDITION_FAILED,
                "{method} with If-Match {variant} (current {tag})"
            );
        }
    }
    let (after, after_tag) = current(&app, &user, &path).await;
    assert_eq!((after, after_tag), (task, tag));
}

#[tokio::test]
async fn another_users_task_is_404_whatever_the_if_match_never_412() {
    let app = TestApp::spawn().await;
    let owner = app.new_user().await;
    let intruder = app.new_user().await;
    let (task, stale) = create(&app, &owner, json!({"title": "private"})).await;
    let path = task_path(&task);
    let response = write(
        &app,
        &owner,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"title": "mine"})),
    )
    .await;
    let tag = etag(&response);
    let (before, _) = current(&app, &owner, &path).await;

    let weak = format!("W/{tag}");
    for if_match in [
        None,
        Some(tag.as_str()),
        Some(stale.as_str()),
        Some("*"),
        Some(weak.as_str()),
        Some("garbage"),
    ] {
        for (method, body) in [
            (Method::PATCH, Some(json!({"title": "stolen"}))),
            (Method::PATCH, Some(json!({}))),
            (Method::PUT, Some(json!({"title": "stolen"}))),
            (Method::DELETE, None),
        ] {
            let response = write(
                &app,
                &intruder,
                method.clone(),
                &path,
                if_match,
                body.as_ref(),
            )
            .await;
            assert!(
                response.headers().get(ETAG).is_none(),
                "{method} {if_match:?} revealed an ETag"
            );
            assert_problem(response, StatusCode::NOT_FOUND).await;
        }
    }
    let (after, after_tag) = current(&app, &owner, &path).await;
    assert_eq!((after, after_tag), (before, tag));
}

const WRITERS: usize = 20;

/// What one of the concurrent writers got back.
#[derive(Debug)]
struct Outcome {
    writer: usize,
    status: StatusCode,
    etag: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// Sends the requests all at once (released together by a barrier) and collects every
/// answer.
async fn race(requests: Vec<RequestBuilder>) -> Vec<Outcome> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut writers = JoinSet::new();
    for (writer, request) in requests.into_iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        writers.spawn(async move {
            barrier.wait().await;
            let response = request.send().await.expect("request sent");
            let header = |name: HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let (status, etag, content_type) =
                (response.status(), header(ETAG), header(CONTENT_TYPE));
            let body = response.text().await.expect("a body");
            Outcome {
                writer,
                status,
                etag,
                content_type,
                body,
            }
        });
    }
    let mut outcomes = writers.join_all().await;
    outcomes.sort_by_key(|outcome| outcome.writer);
    outcomes
}

fn assert_is_problem(outcome: &Outcome, statuses: &[StatusCode]) {
    assert!(statuses.contains(&outcome.status), "unexpected {outcome:?}");
    assert_eq!(
        outcome.content_type.as_deref(),
        Some("application/problem+json"),
        "{outcome:?}"
    );
    let body: Value = serde_json::from_str(&outcome.body).expect("a JSON problem");
    assert_eq!(body["status"], outcome.status.as_u16());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_patches_with_the_same_tag_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = create(&app, &user, json!({"title": "contested"})).await;
    let path = task_path(&task);

    let requests = (0..WRITERS)
        .map(|n| {
            app.request(Method::PATCH, &path, Some(&user.token))
                .header(IF_MATCH, &tag)
                .json(&json!({"title": format!("writer {n}"), "priority": "urgent"}))
        })
        .collect();
    let outcomes = race(requests).await;

    let winners: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:#?}");
    for loser in outcomes.iter().filter(|o| o.status != StatusCode::OK) {
        assert_is_problem(loser, &[StatusCode::PRECONDITION_FAILED]);
    }
    assert_eq!(outcomes.len(), WRITERS);

    let winner = winners[0];
    let winning_tag = winner.etag.clone().expect("the winner's ETag");
    assert_strong(&winning_tag);
    assert_ne!(winning_tag, tag);
    let won: Value = serde_json::from_str(&winner.body).expect("the winner's task");
    assert_eq!(won["title"], format!("writer {}", winner.writer));

    let (final_task, final_tag) = current(&app, &user, &path).await;
    assert_eq!(final_task, won, "the task is the winner's version");
    assert_eq!(final_tag, winning_tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_deletes_with_the_same_tag_exactly_one_succeeds() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = create(&app, &user, json!({"title": "doomed"})).await;
    let path = task_path(&task);

    let requests = (0..WRITERS)
        .map(|_| {
            app.request(Method::DELETE, &path, Some(&user.token))
                .header(IF_MATCH, &tag)
        })
        .collect();
    let outcomes = race(requests).await;

    let winners = outcomes
        .iter()
        .filter(|o| o.status == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(winners, 1, "{outcomes:#?}");
    // A loser finds the task gone: 404 (RFC 9110 §13.2.1 lets the missing resource take
    // precedence over the precondition) or 412; never a second success, never a 5xx.
    for loser in outcomes
        .iter()
        .filter(|o| o.status != StatusCode::NO_CONTENT)
    {
        assert_is_problem(
            loser,
            &[StatusCode::NOT_FOUND, StatusCode::PRECONDITION_FAILED],
        );
    }
    assert_problem(
        app.get(&path, Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_mixed_writes_with_the_same_tag_exactly_one_succeeds() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (task, tag) = create(&app, &user, json!({"title": "contested"})).await;
    let path = task_path(&task);

    let requests = (0..WRITERS)
        .map(|n| {
            let (method, body) = match n % 3 {
                0 => (Method::PATCH, Some(json!({"title": format!("patch {n}")}))),
                1 => (
                    Method::PUT,
                    Some(json!({"title": format!("put {n}"), "status": "done"})),
                ),
                _ => (Method::DELETE, None),
            };
            let request = app
                .request(method, &path, Some(&user.token))
                .header(IF_MATCH, &tag);
            match body {
                Some(body) => request.json(&body),
                None => request,
            }
        })
        .collect();
    let outcomes = race(requests).await;

    let winners: Vec<&Outcome> = outcomes.iter().filter(|o| o.status.is_success()).collect();
    assert_eq!(winners.len(), 1, "{outcomes:#?}");
    for loser in outcomes.iter().filter(|o| !o.status.is_success()) {
        assert_is_problem(
            loser,
            &[StatusCode::NOT_FOUND, StatusCode::PRECONDITION_FAILED],
        );
    }
    let winner = winners[0];
    if winner.status == StatusCode::NO_CONTENT {
        assert_eq!(winner.writer % 3, 2, "only a DELETE answers 204");
        assert_problem(
            app.get(&path, Some(&user.token)).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    } else {
        assert_eq!(winner.status, StatusCode::OK);
        let won: Value = serde_json::from_str(&winner.body).expect("the winner's task");
        let (final_task, final_tag) = current(&app, &user, &path).await;
        assert_eq!(final_task, won);
        assert_eq!(Some(final_tag), winner.etag.clone());
        // Writes that lost to an update found the task with another version: 412.
        for loser in outcomes.iter().filter(|o| !o.status.is_success()) {
            assert_eq!(loser.status, StatusCode::PRECONDITION_FAILED, "{loser:?}");
        }
    }
}
