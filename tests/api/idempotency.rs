//! Idempotent creates (API.md "Conventions", **Idempotent creates**): `Idempotency-Key` on
//! `POST /tasks` and `POST /projects`. A repeat with the same key and the same body (same
//! JSON, whatever its member order or whitespace) replays the first answer (status, body,
//! `Location`, `ETag`, plus `Idempotent-Replayed: true`) and creates nothing, even after
//! the resource changed or was deleted; a different body is 422 and creates nothing; a
//! malformed key is 400; keys belong to one user and one route; only a success is
//! remembered; of concurrent requests with one key exactly one creates; and a client that
//! lost an answer (connection cut between it and the server, or between the server and
//! PostgreSQL) retries with its key and never gets a duplicate.
//!
//! Readings of the contract written down here:
//! - "Compared as JSON" means equality of the JSON values: member order and insignificant
//!   whitespace do not matter, nor how a string is escaped (`"\u00e9"` is `"é"`, `"\/"` is
//!   `"/"`); but any difference of value is a different body, even one that would create
//!   the same thing (an added `"status": "todo"`, a title with spaces the server trims, a
//!   reordered `labels` array): 422.
//! - A key is an opaque, case-sensitive string: `abc` and `ABC` are two keys.
//! - The first (non-replayed) response does not say `Idempotent-Replayed: true`.
//! - "Malformed" covers the empty key, 256 characters or more, and any byte outside
//!   visible ASCII (0x21..=0x7E): a space or tab inside the key, a non-ASCII character,
//!   control characters (DEL, 0x01). A malformed key is 400 whatever the body, and
//!   creates nothing.
//! - Replays are the user's, not the token's: a fresh login of the same user replays too.
//! - The 409 of a request whose twin is in flight is a problem+json like every error.
//! - When the connection to PostgreSQL breaks mid-request the server answers 503 (the
//!   status list: "503 database unavailable, never a 500"); the client then retries.
//! - The 24-hour window is not tested (no setting shortens it).
//! - "Account security" puts whatever the idempotency keys and the change feed keep under
//!   row-level security: checked on every table that points at a user.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Mutex, oneshot};
use tokio::task::JoinSet;
use tokio_postgres::config::Host;

use crate::helpers::{TestApp, TestUser, assert_problem, database, json_body};
use crate::projects::{create_project, etag, project_path, task_path, write};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// What a create answered, in full.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub replayed: bool,
    pub content_type: String,
}

impl Answer {
    pub async fn of(response: Response) -> Self {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("a visible-ASCII header").to_owned())
        };
        let status = response.status();
        let location = header(LOCATION.as_str());
        let etag = header("etag");
        let replayed = match header(REPLAYED) {
            None => false,
            Some(value) if value == "true" => true,
            Some(value) if value == "false" => false,
            Some(value) => panic!("Idempotent-Replayed: {value:?} is neither true nor false"),
        };
        let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Self {
            status,
            body,
            location,
            etag,
            replayed,
            content_type,
        }
    }

    /// Asserts a first, non-replayed 201 with everything a create must carry.
    pub fn assert_created(&self, route: &str) {
        assert_eq!(self.status, StatusCode::CREATED, "{route}: {}", self.body);
        assert!(!self.replayed, "{route}: a first create is not a replay");
        let id = self.body["id"].as_str().expect("an id");
        assert_eq!(
            self.location.as_deref(),
            Some(format!("{route}/{id}").as_str()),
            "Location"
        );
        assert!(self.etag.is_some(), "{route}: an ETag on the 201");
    }

    /// Asserts a 201 (first or replayed) for a resource of `route`.
    fn assert_created_or_replayed(&self, route: &str) {
        assert_eq!(self.status, StatusCode::CREATED, "{route}: {}", self.body);
        let id = self.body["id"].as_str().expect("an id");
        assert_eq!(
            self.location.as_deref(),
            Some(format!("{route}/{id}").as_str())
        );
        assert!(self.etag.is_some());
    }

    /// Asserts that `self` replays `first`: same status, body, Location and ETag, marked.
    pub fn assert_replays(&self, first: &Answer, what: &str) {
        assert_eq!(self.status, first.status, "{what}: the status is replayed");
        assert_eq!(self.body, first.body, "{what}: the body is replayed");
        assert_eq!(
            self.location, first.location,
            "{what}: Location is replayed"
        );
        assert_eq!(self.etag, first.etag, "{what}: ETag is replayed");
        assert!(self.replayed, "{what}: Idempotent-Replayed: true");
        assert!(
            self.content_type.starts_with("application/json"),
            "{what}: Content-Type {}",
            self.content_type
        );
    }
}

/// `POST route` as `token` with `body` (sent as it is, byte for byte) and an optional key.
pub fn keyed_request(
    app: &TestApp,
    token: &str,
    route: &str,
    idempotency_key: Option<HeaderValue>,
    raw: &str,
) -> reqwest::RequestBuilder {
    let mut request = app
        .request(Method::POST, route, Some(token))
        .header(CONTENT_TYPE, "application/json")
        .body(raw.to_owned());
    if let Some(value) = idempotency_key {
        request = request.header(IDEMPOTENCY_KEY, value);
    }
    request
}

fn key(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a valid header value")
}

/// `POST route` with `Idempotency-Key: key` and `body`.
pub async fn post_keyed(
    app: &TestApp,
    user: &TestUser,
    route: &str,
    idempotency_key: &str,
    body: &Value,
) -> Answer {
    post_raw(app, user, route, idempotency_key, &body.to_string()).await
}

async fn post_raw(
    app: &TestApp,
    user: &TestUser,
    route: &str,
    idempotency_key: &str,
    raw: &str,
) -> Answer {
    let response = keyed_request(app, &user.token, route, Some(key(idempotency_key)), raw)
        .send()
        .await
        .expect("request sent");
    Answer::of(response).await
}

fn fresh_key() -> String {
    format!("key-{}", uuid::Uuid::new_v4())
}

/// How many tasks (or projects, with `/projects`) the user has, as the list's `total` says.
pub async fn total(app: &TestApp, user: &TestUser, route: &str) -> i64 {
    let response = app
        .get(&format!("{route}?limit=1"), Some(&user.token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await["total"]
        .as_i64()
        .expect("a total")
}

/// How many of the user's tasks have `title`, counted behind the API's back.
async fn tasks_titled(app: &TestApp, user: &TestUser, title: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM tasks WHERE owner_id = $1 AND title = $2",
            &[&user.id, &title],
        )
        .await
        .unwrap()
        .get(0)
}

// ---------------------------------------------------------------------------------------
// Replays.

#[tokio::test]
async fn a_repeated_task_create_replays_the_first_answer_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": "Once", "labels": ["x", "y"], "priority": "high"});
    let first = post_keyed(&app, &user, "/tasks", &k, &body).await;
    first.assert_created("/tasks");
    assert_eq!(first.body["title"], "Once");

    for attempt in 0..3 {
        let again = post_keyed(&app, &user, "/tasks", &k, &body).await;
        again.assert_replays(&first, &format!("repeat {attempt}"));
    }
    // The key is the user's, not the token's.
    let login = app.login(&user.email, crate::helpers::PASSWORD).await;
    let token = json_body(login).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let same_user = TestUser {
        token,
        ..user.clone()
    };
    post_keyed(&app, &same_user, "/tasks", &k, &body)
        .await
        .assert_replays(&first, "with a new token of the same user");

    assert_eq!(total(&app, &user, "/tasks").await, 1);
    assert_eq!(tasks_titled(&app, &user, "Once").await, 1);
}

#[tokio::test]
async fn a_repeated_project_create_replays_the_first_answer_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"name": "Home"});
    let first = post_keyed(&app, &user, "/projects", &k, &body).await;
    first.assert_created("/projects");
    for attempt in 0..3 {
        // Not a 409 for the taken name: the replay of the first answer.
        let again = post_keyed(&app, &user, "/projects", &k, &body).await;
        again.assert_replays(&first, &format!("repeat {attempt}"));
    }
    assert_eq!(total(&app, &user, "/projects").await, 1);
}

#[tokio::test]
async fn the_replay_is_the_first_answer_even_after_the_task_changed_or_was_deleted() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": "Original"});
    let first = post_keyed(&app, &user, "/tasks", &k, &body).await;
    first.assert_created("/tasks");
    let path = task_path(&first.body);

    let patched = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"title": "Changed", "status": "done"})),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let current_tag = etag(&patched);
    assert_ne!(Some(&current_tag), first.etag.as_ref());

    let replay = post_keyed(&app, &user, "/tasks", &k, &body).await;
    replay.assert_replays(&first, "after a PATCH");
    assert_eq!(replay.body["title"], "Original");
    let now = json_body(app.get(&path, Some(&user.token)).await).await;
    assert_eq!(now["title"], "Changed", "the replay changed nothing");
    assert_eq!(total(&app, &user, "/tasks").await, 1);

    let deleted = write(&app, &user, Method::DELETE, &path, None, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let replay = post_keyed(&app, &user, "/tasks", &k, &body).await;
    replay.assert_replays(&first, "after the DELETE");
    assert_problem(
        app.get(&path, Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(total(&app, &user, "/tasks").await, 0, "nothing recreated");
    assert_eq!(tasks_titled(&app, &user, "Original").await, 0);
}

#[tokio::test]
async fn the_replay_is_the_first_answer_even_after_the_project_changed_or_was_deleted() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"name": "Garden"});
    let first = post_keyed(&app, &user, "/projects", &k, &body).await;
    first.assert_created("/projects");
    let path = project_path(&first.body);

    let renamed = write(
        &app,
        &user,
        Method::PATCH,
        &path,
        None,
        Some(&json!({"name": "Yard"})),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let replay = post_keyed(&app, &user, "/projects", &k, &body).await;
    replay.assert_replays(&first, "after a rename");
    assert_eq!(replay.body["name"], "Garden");
    let now = json_body(app.get(&path, Some(&user.token)).await).await;
    assert_eq!(now["name"], "Yard");

    let deleted = write(&app, &user, Method::DELETE, &path, None, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let replay = post_keyed(&app, &user, "/projects", &k, &body).await;
    replay.assert_replays(&first, "after the DELETE");
    assert_problem(
        app.get(&path, Some(&user.token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        total(&app, &user, "/projects").await,
        0,
        "nothing recreated"
    );
}

#[tokio::test]
async fn bodies_are_compared_as_json_values_not_as_text() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let first = post_raw(
        &app,
        &user,
        "/tasks",
        &k,
        r#"{"title":"Café/1","description":"d","labels":["a","b"],"priority":"low"}"#,
    )
    .await;
    first.assert_created("/tasks");
    let variants = [
        // Members in another order.
        r#"{"labels":["a","b"],"priority":"low","description":"d","title":"Café/1"}"#,
        // Whitespace everywhere it may be.
        "\n{ \"title\" :\t\"Café/1\" ,\r\n  \"description\": \"d\",\n  \"labels\": [ \"a\" , \"b\" ],\n  \"priority\": \"low\"\n}\n",
        // The same strings, escaped differently.
        r#"{"title":"Caf\u00e9\/1","description":"\u0064","labels":["\u0061","b"],"priority":"low"}"#,
    ];
    for raw in variants {
        let again = post_raw(&app, &user, "/tasks", &k, raw).await;
        again.assert_replays(&first, &format!("the same JSON as {raw:?}"));
    }
    assert_eq!(total(&app, &user, "/tasks").await, 1);

    let k = fresh_key();
    let first = post_raw(&app, &user, "/projects", &k, r#"{"name":"Zoë"}"#).await;
    first.assert_created("/projects");
    for raw in ["  {\n\t\"name\" : \"Zoë\" }  ", r#"{"name":"Zo\u00eb"}"#] {
        post_raw(&app, &user, "/projects", &k, raw)
            .await
            .assert_replays(&first, &format!("the same JSON as {raw:?}"));
    }
    assert_eq!(total(&app, &user, "/projects").await, 1);
}

#[tokio::test]
async fn a_different_body_with_the_same_key_is_422_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": "First", "labels": ["a", "b"]});
    let first = post_keyed(&app, &user, "/tasks", &k, &body).await;
    first.assert_created("/tasks");
    for other in [
        json!({"title": "Second", "labels": ["a", "b"]}),
        json!({"title": "First", "labels": ["a"]}),
        json!({"title": "First"}),
        json!({"title": "first", "labels": ["a", "b"]}),
    ] {
        let response = keyed_request(
            &app,
            &user.token,
            "/tasks",
            Some(key(&k)),
            &other.to_string(),
        )
        .send()
        .await
        .unwrap();
        assert!(
            response.headers().get(REPLAYED).is_none_or(|v| v != "true"),
            "{other}: not a replay"
        );
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    assert_eq!(total(&app, &user, "/tasks").await, 1, "nothing created");
    assert_eq!(tasks_titled(&app, &user, "Second").await, 0);
    // The key still stands for the first create.
    post_keyed(&app, &user, "/tasks", &k, &body)
        .await
        .assert_replays(&first, "the first body again");

    let k = fresh_key();
    let first = post_keyed(&app, &user, "/projects", &k, &json!({"name": "Work"})).await;
    first.assert_created("/projects");
    // Another name, and the same name in another case (which would otherwise be a 409).
    for other in [json!({"name": "Play"}), json!({"name": "WORK"})] {
        let response = keyed_request(
            &app,
            &user.token,
            "/projects",
            Some(key(&k)),
            &other.to_string(),
        )
        .send()
        .await
        .unwrap();
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    assert_eq!(total(&app, &user, "/projects").await, 1, "nothing created");
}

#[tokio::test]
async fn a_body_that_would_create_the_same_thing_but_is_other_json_is_still_422() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": "Same", "labels": ["a", "b"]});
    post_keyed(&app, &user, "/tasks", &k, &body)
        .await
        .assert_created("/tasks");
    for other in [
        // The default, spelled out.
        json!({"title": "Same", "labels": ["a", "b"], "status": "todo"}),
        json!({"title": "Same", "labels": ["a", "b"], "description": null}),
        // Trimmed to the same title.
        json!({"title": "  Same  ", "labels": ["a", "b"]}),
        // An array is ordered.
        json!({"title": "Same", "labels": ["b", "a"]}),
    ] {
        let response = keyed_request(
            &app,
            &user.token,
            "/tasks",
            Some(key(&k)),
            &other.to_string(),
        )
        .send()
        .await
        .unwrap();
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    assert_eq!(total(&app, &user, "/tasks").await, 1);
}

// ---------------------------------------------------------------------------------------
// The key itself.

#[tokio::test]
async fn a_malformed_key_is_400_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let malformed: Vec<(&str, HeaderValue)> = vec![
        ("empty", HeaderValue::from_static("")),
        ("256 characters", key(&"k".repeat(256))),
        ("1000 characters", key(&"k".repeat(1000))),
        ("a space inside", key("two words")),
        ("a tab inside", key("tab\there")),
        (
            "a non-ASCII character (UTF-8)",
            HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        ),
        (
            "a lone obs-text byte",
            HeaderValue::from_bytes(b"key\xff").unwrap(),
        ),
    ];
    for route in ["/tasks", "/projects"] {
        for (what, value) in &malformed {
            let body = if route == "/tasks" {
                json!({"title": format!("Malformed key: {what}")})
            } else {
                json!({"name": format!("Malformed key: {what}")})
            };
            let response = keyed_request(
                &app,
                &user.token,
                route,
                Some(value.clone()),
                &body.to_string(),
            )
            .send()
            .await
            .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "POST {route} with a key with {what}"
            );
            assert_problem(response, StatusCode::BAD_REQUEST).await;
        }
        assert_eq!(
            total(&app, &user, route).await,
            0,
            "{route}: nothing created"
        );
    }
}

/// Sends a create whose `Idempotency-Key` holds raw `key_bytes` (which no HTTP library
/// lets through) on a raw socket; the status line.
async fn raw_create_with_key(app: &TestApp, user: &TestUser, key_bytes: &[u8]) -> String {
    let body = br#"{"title":"Raw key"}"#;
    let mut request = Vec::new();
    request.extend_from_slice(b"POST /tasks HTTP/1.1\r\nHost: localhost\r\n");
    request.extend_from_slice(format!("Authorization: Bearer {}\r\n", user.token).as_bytes());
    request.extend_from_slice(b"Content-Type: application/json\r\nIdempotency-Key: ");
    request.extend_from_slice(key_bytes);
    request.extend_from_slice(
        format!(
            "\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .ok();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_key_with_control_characters_is_400_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for bytes in [&b"a\x01b"[..], b"a\x7fb", b"a\x1bb"] {
        let status_line = raw_create_with_key(&app, &user, bytes).await;
        assert!(
            status_line.starts_with("HTTP/1.1 400"),
            "key {bytes:?}: {status_line:?}"
        );
    }
    assert_eq!(total(&app, &user, "/tasks").await, 0);
}

#[tokio::test]
async fn keys_of_1_and_255_characters_and_of_every_visible_character_are_accepted() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let every_visible: String = (0x21u8..=0x7e).map(char::from).collect();
    let keys = ["k".to_owned(), "x".repeat(255), every_visible];
    for (i, k) in keys.iter().enumerate() {
        let body = json!({"title": format!("Edge key {i}")});
        let first = post_keyed(&app, &user, "/tasks", k, &body).await;
        first.assert_created("/tasks");
        post_keyed(&app, &user, "/tasks", k, &body)
            .await
            .assert_replays(&first, &format!("key {k:?}"));
        let body = json!({"name": format!("Edge key {i}")});
        let first = post_keyed(&app, &user, "/projects", k, &body).await;
        first.assert_created("/projects");
        post_keyed(&app, &user, "/projects", k, &body)
            .await
            .assert_replays(&first, &format!("key {k:?}"));
    }
    assert_eq!(total(&app, &user, "/tasks").await, 3);
    assert_eq!(total(&app, &user, "/projects").await, 3);
}

#[tokio::test]
async fn keys_are_case_sensitive() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let body = json!({"title": "Case"});
    let lower = post_keyed(&app, &user, "/tasks", "abc-key", &body).await;
    lower.assert_created("/tasks");
    let upper = post_keyed(&app, &user, "/tasks", "ABC-KEY", &body).await;
    upper.assert_created("/tasks");
    assert_ne!(lower.body["id"], upper.body["id"]);
    assert_eq!(total(&app, &user, "/tasks").await, 2);
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = TestApp::spawn().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": "Shared key"});
    let hers = post_keyed(&app, &alice, "/tasks", &k, &body).await;
    hers.assert_created("/tasks");
    // Bob's identical key and body: his own, independent create.
    let his = post_keyed(&app, &bob, "/tasks", &k, &body).await;
    his.assert_created("/tasks");
    assert_ne!(his.body["id"], hers.body["id"]);
    // And Bob's key with a body of his own is not "a different body" either.
    let k2 = fresh_key();
    post_keyed(&app, &alice, "/tasks", &k2, &json!({"title": "Alice's"}))
        .await
        .assert_created("/tasks");
    post_keyed(&app, &bob, "/tasks", &k2, &json!({"title": "Bob's"}))
        .await
        .assert_created("/tasks");
    // Each replays their own.
    post_keyed(&app, &alice, "/tasks", &k, &body)
        .await
        .assert_replays(&hers, "Alice again");
    post_keyed(&app, &bob, "/tasks", &k, &body)
        .await
        .assert_replays(&his, "Bob again");
    assert_eq!(total(&app, &alice, "/tasks").await, 2);
    assert_eq!(total(&app, &bob, "/tasks").await, 2);

    // The same for projects.
    let k3 = fresh_key();
    let hers = post_keyed(&app, &alice, "/projects", &k3, &json!({"name": "Same"})).await;
    hers.assert_created("/projects");
    let his = post_keyed(&app, &bob, "/projects", &k3, &json!({"name": "Same"})).await;
    his.assert_created("/projects");
    assert_ne!(his.body["id"], hers.body["id"]);
}

#[tokio::test]
async fn keys_belong_to_their_route() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let task = post_keyed(&app, &user, "/tasks", &k, &json!({"title": "T"})).await;
    task.assert_created("/tasks");
    // The same key on the other route is another key: no 422 for "a different body".
    let project = post_keyed(&app, &user, "/projects", &k, &json!({"name": "P"})).await;
    project.assert_created("/projects");
    post_keyed(&app, &user, "/tasks", &k, &json!({"title": "T"}))
        .await
        .assert_replays(&task, "the task route");
    post_keyed(&app, &user, "/projects", &k, &json!({"name": "P"}))
        .await
        .assert_replays(&project, "the project route");
    // A body that is valid on both routes' terms does not cross over either.
    let k2 = fresh_key();
    let p = post_keyed(
        &app,
        &user,
        "/projects",
        &k2,
        &json!({"name": "Only a project"}),
    )
    .await;
    p.assert_created("/projects");
    let t = post_keyed(&app, &user, "/tasks", &k2, &json!({"title": "Only a task"})).await;
    t.assert_created("/tasks");
    assert_eq!(total(&app, &user, "/tasks").await, 2);
    assert_eq!(total(&app, &user, "/projects").await, 2);
}

// ---------------------------------------------------------------------------------------
// Only successes are remembered.

#[tokio::test]
async fn a_task_create_that_failed_is_not_remembered_and_may_be_retried_with_its_key() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;

    // 422: an invalid title; then a good body with the same key creates.
    let k = fresh_key();
    let failed = post_keyed(&app, &user, "/tasks", &k, &json!({"title": "   "})).await;
    assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!failed.replayed);
    let first = post_keyed(&app, &user, "/tasks", &k, &json!({"title": "Good"})).await;
    first.assert_created("/tasks");
    post_keyed(&app, &user, "/tasks", &k, &json!({"title": "Good"}))
        .await
        .assert_replays(&first, "after the retry");

    // 422 for a project that does not exist; the very same body, once it does, creates.
    let project = create_project(&app, &user, "Later").await;
    let project_id = project["id"].as_str().unwrap();
    let deleted = write(
        &app,
        &user,
        Method::DELETE,
        &project_path(&project),
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let k = fresh_key();
    let body = json!({"title": "In a project", "project_id": project_id});
    let failed = post_keyed(&app, &user, "/tasks", &k, &body).await;
    assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let again = post_keyed(&app, &user, "/tasks", &k, &body).await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "still failing"
    );
    assert!(!again.replayed, "a failure is not replayed");
    let other = create_project(&app, &user, "Now").await;
    let body = json!({"title": "In a project", "project_id": other["id"]});
    post_keyed(&app, &user, "/tasks", &k, &body)
        .await
        .assert_created("/tasks");

    // 400 (not JSON) and 415 (not application/json) with a key: not remembered either.
    let k = fresh_key();
    let response = keyed_request(&app, &user.token, "/tasks", Some(key(&k)), "{\"title\":")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST).await;
    let response = app
        .request(Method::POST, "/tasks", Some(&user.token))
        .header(IDEMPOTENCY_KEY, &k)
        .header(CONTENT_TYPE, "text/plain")
        .body(r#"{"title":"Good too"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    post_keyed(&app, &user, "/tasks", &k, &json!({"title": "Good too"}))
        .await
        .assert_created("/tasks");

    assert_eq!(total(&app, &user, "/tasks").await, 3);
}

#[tokio::test]
async fn a_project_create_that_failed_is_not_remembered_and_may_be_retried_with_its_key() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let taken = create_project(&app, &user, "Taken").await;

    // 409 for a taken name; a free name with the same key creates.
    let k = fresh_key();
    let failed = post_keyed(&app, &user, "/projects", &k, &json!({"name": "taken"})).await;
    assert_eq!(failed.status, StatusCode::CONFLICT);
    assert!(!failed.replayed);
    post_keyed(&app, &user, "/projects", &k, &json!({"name": "Free"}))
        .await
        .assert_created("/projects");

    // 409, then the very same body once the name is free again: created, not a replayed 409.
    let k = fresh_key();
    let body = json!({"name": "Taken"});
    let failed = post_keyed(&app, &user, "/projects", &k, &body).await;
    assert_eq!(failed.status, StatusCode::CONFLICT);
    let deleted = write(
        &app,
        &user,
        Method::DELETE,
        &project_path(&taken),
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let first = post_keyed(&app, &user, "/projects", &k, &body).await;
    first.assert_created("/projects");
    post_keyed(&app, &user, "/projects", &k, &body)
        .await
        .assert_replays(&first, "after the retry");

    // 422 for an empty name; then a good one.
    let k = fresh_key();
    let failed = post_keyed(&app, &user, "/projects", &k, &json!({"name": ""})).await;
    assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY);
    post_keyed(&app, &user, "/projects", &k, &json!({"name": "Fine"}))
        .await
        .assert_created("/projects");

    assert_eq!(total(&app, &user, "/projects").await, 3);
}

#[tokio::test]
async fn without_a_key_creates_behave_as_always() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let body = json!({"title": "Twice"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .send_json(Method::POST, "/tasks", Some(&user.token), &body)
            .await;
        let answer = Answer::of(response).await;
        answer.assert_created("/tasks");
        ids.push(answer.body["id"].clone());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(tasks_titled(&app, &user, "Twice").await, 2);

    let body = json!({"name": "Twice"});
    let response = app
        .send_json(Method::POST, "/projects", Some(&user.token), &body)
        .await;
    Answer::of(response).await.assert_created("/projects");
    let response = app
        .send_json(Method::POST, "/projects", Some(&user.token), &body)
        .await;
    assert_problem(response, StatusCode::CONFLICT).await;
}

/// API.md "Account security": row-level security on every table that holds a user's
/// data, "whatever the change feed and idempotency keys keep" included. Checked behind the
/// API's back on every table that points at a user (a foreign key to `users`, or an
/// `owner_id` / `user_id` column), so the new tables are covered whatever their names.
#[tokio::test]
async fn every_table_holding_a_users_rows_is_under_forced_row_level_security() {
    let app = TestApp::spawn().await;
    let rows = app
        .db()
        .await
        .query(
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND c.relname <> 'users'
                AND (EXISTS (SELECT 1 FROM pg_constraint k
                              WHERE k.conrelid = c.oid AND k.contype = 'f'
                                AND k.confrelid = 'users'::regclass)
                     OR EXISTS (SELECT 1 FROM pg_attribute a
                                 WHERE a.attrelid = c.oid AND NOT a.attisdropped
                                   AND a.attname IN ('owner_id', 'user_id')))
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let tables: Vec<(String, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        tables.iter().any(|(name, ..)| name == "tasks"),
        "the query finds the tables: {tables:?}"
    );
    for (name, enabled, forced) in &tables {
        assert!(
            *enabled && *forced,
            "{name} holds users' rows without forced row-level security"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Concurrency.

/// Fires `count` identical keyed creates at once; their answers.
async fn at_once(
    app: &TestApp,
    user: &TestUser,
    route: &str,
    k: &str,
    bodies: Vec<String>,
) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(bodies.len()));
    let mut requests = JoinSet::new();
    for raw in bodies {
        let request = keyed_request(app, &user.token, route, Some(key(k)), &raw);
        let barrier = Arc::clone(&barrier);
        requests.spawn(async move {
            barrier.wait().await;
            Answer::of(request.send().await.expect("request sent")).await
        });
    }
    requests.join_all().await
}

/// Checks the answers of concurrent identical creates: each 201 (one first, the rest
/// replays of it) or 409 (problem+json); the one first answer.
fn one_created_the_rest_replayed_or_409(answers: &[Answer], route: &str) -> Answer {
    let created: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED && !a.replayed)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one request creates; statuses {:?}",
        answers
            .iter()
            .map(|a| (a.status, a.replayed))
            .collect::<Vec<_>>()
    );
    let first = created[0].clone();
    first.assert_created(route);
    for answer in answers {
        match answer.status {
            StatusCode::CREATED if answer.replayed => answer.assert_replays(&first, "a twin"),
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => {
                assert!(!answer.replayed);
                assert_eq!(answer.content_type, "application/problem+json");
                assert_eq!(answer.body["status"], 409);
            }
            other => panic!("a twin got {other}: {}", answer.body),
        }
    }
    first
}

#[tokio::test]
async fn of_20_concurrent_identical_task_creates_with_one_key_exactly_one_creates() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": "Concurrent", "labels": ["c"]});
    let answers = at_once(&app, &user, "/tasks", &k, vec![body.to_string(); 20]).await;
    let first = one_created_the_rest_replayed_or_409(&answers, "/tasks");
    assert_eq!(tasks_titled(&app, &user, "Concurrent").await, 1);
    assert_eq!(total(&app, &user, "/tasks").await, 1);
    // Once it is over, the key replays.
    post_keyed(&app, &user, "/tasks", &k, &body)
        .await
        .assert_replays(&first, "after the storm");
}

#[tokio::test]
async fn of_20_concurrent_identical_project_creates_with_one_key_exactly_one_creates() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"name": "Concurrent"});
    let answers = at_once(&app, &user, "/projects", &k, vec![body.to_string(); 20]).await;
    let first = one_created_the_rest_replayed_or_409(&answers, "/projects");
    assert_eq!(total(&app, &user, "/projects").await, 1);
    post_keyed(&app, &user, "/projects", &k, &body)
        .await
        .assert_replays(&first, "after the storm");
}

#[tokio::test]
async fn of_concurrent_creates_with_one_key_and_different_bodies_exactly_one_creates() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let k = fresh_key();
    let bodies: Vec<String> = (0..10)
        .map(|i| json!({"title": format!("Variant {i}")}).to_string())
        .collect();
    let answers = at_once(&app, &user, "/tasks", &k, bodies).await;
    let created: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "one creates");
    assert!(!created[0].replayed);
    for answer in &answers {
        assert!(
            [
                StatusCode::CREATED,
                StatusCode::UNPROCESSABLE_ENTITY,
                StatusCode::CONFLICT
            ]
            .contains(&answer.status),
            "{}: {}",
            answer.status,
            answer.body
        );
    }
    assert_eq!(total(&app, &user, "/tasks").await, 1);
    let listed = json_body(app.get("/tasks", Some(&user.token)).await).await;
    assert_eq!(listed["items"][0]["title"], created[0].body["title"]);
}

// ---------------------------------------------------------------------------------------
// Faults: the answer is lost, the client retries with its key.

/// Retries `POST route` with key `k` and `body` until it is a 201, as a client that lost
/// its answer would; its 201, and every earlier outcome. Anything but a 503, a 409 (the
/// first still in flight) or a transport error is a failure.
async fn retry_until_created(
    app: &TestApp,
    user: &TestUser,
    route: &str,
    k: &str,
    body: &Value,
) -> (Answer, Vec<String>) {
    let mut history = Vec::new();
    for _ in 0..50 {
        let sent = keyed_request(app, &user.token, route, Some(key(k)), &body.to_string())
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match sent {
            Ok(response) => {
                let answer = Answer::of(response).await;
                if answer.status == StatusCode::CREATED {
                    return (answer, history);
                }
                assert!(
                    answer.status == StatusCode::SERVICE_UNAVAILABLE
                        || answer.status == StatusCode::CONFLICT,
                    "a retry got {}: {}",
                    answer.status,
                    answer.body
                );
                history.push(answer.status.to_string());
            }
            Err(error) => history.push(format!("transport error: {error}")),
        }
        // A client's back-off between retries (not a wait for some state).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no 201 after 50 retries: {history:?}");
}

/// A TCP proxy in front of the API that lets its first connection's request through and
/// closes that connection as soon as the answer starts: the server did the work, the
/// client never hears of it. Later connections are relayed untouched.
async fn lose_the_first_answer(app: &TestApp) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let target = app.address.trim_start_matches("http://").to_owned();
    let lost = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&lost);
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let mut server = TcpStream::connect(&target).await.unwrap();
            if !first {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                continue;
            }
            first = false;
            let flag = Arc::clone(&flag);
            tokio::spawn(async move {
                let mut up = [0u8; 16 * 1024];
                let mut down = [0u8; 1];
                loop {
                    tokio::select! {
                        read = client.read(&mut up) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(n) => if server.write_all(&up[..n]).await.is_err() { return },
                        },
                        read = server.read(&mut down) => {
                            if matches!(read, Ok(n) if n > 0) {
                                flag.store(true, Ordering::SeqCst);
                            }
                            return; // both sockets close here: the answer is lost
                        }
                    }
                }
            });
        }
    });
    (address, lost)
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_on_the_way_to_the_client_is_replayed_on_retry() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (proxied, lost) = lose_the_first_answer(&app).await;
    let k = fresh_key();
    let body = json!({"title": "Lost answer"});

    // A client of its own, so that the request takes the proxy's first connection.
    let client = reqwest::Client::new();
    let outcome = client
        .post(format!("{proxied}/tasks"))
        .bearer_auth(&user.token)
        .header(IDEMPOTENCY_KEY, &k)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    assert!(outcome.is_err(), "the answer never reaches the client");
    assert!(
        lost.load(Ordering::SeqCst),
        "the server had started answering"
    );
    assert_eq!(
        tasks_titled(&app, &user, "Lost answer").await,
        1,
        "the server created it"
    );

    let (answer, history) = retry_until_created(&app, &user, "/tasks", &k, &body).await;
    assert!(
        answer.replayed,
        "the retry is the replay of the lost answer (after {history:?})"
    );
    assert_eq!(answer.location, Some(task_path(&answer.body)));
    assert_eq!(tasks_titled(&app, &user, "Lost answer").await, 1);
    assert_eq!(total(&app, &user, "/tasks").await, 1);
}

// ---------------------------------------------------------------------------------------
// A PostgreSQL wire-protocol proxy that can cut or hold one connection: used here to break
// the server's connection in the middle of a create, and by the change feed's tests to
// hold a transaction's COMMIT while other writes commit.

/// What the proxy does to the one connection on which a message carrying its needle (for
/// example a unique task title, in the `Bind` of an `INSERT`) first passes.
#[derive(Debug)]
pub enum Trap {
    /// Cut the connection instead of passing that message on: the transaction never
    /// reaches its COMMIT, nothing is committed, the server sees its connection die.
    CutBefore,
    /// Pass everything on, and cut the connection when PostgreSQL says the transaction
    /// has ended (a `ReadyForQuery` with status idle, after the `COMMIT` or after the `Sync`
    /// that commits a pipeline without `BEGIN`): the commit lands, the server never hears.
    CutAfterCommit,
    /// Hold what commits the transaction (the `COMMIT` that follows, or the `Sync` that
    /// closes a pipeline without `BEGIN`: a `Flush` goes in its place) until `release`
    /// fires, after telling `held` once PostgreSQL has answered everything sent before it.
    HoldCommit {
        held: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    },
}

type Armed = Arc<Mutex<Option<(Vec<u8>, Trap)>>>;

/// Forwards TCP connections to the test database, message by message, until dropped.
#[derive(Debug)]
pub struct DbProxy {
    pub port: u16,
    armed: Armed,
    fired: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl DbProxy {
    pub async fn start() -> Self {
        let upstream = database().await.config.driver_config().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let host = upstream.get_hosts()[0].clone();
        let upstream_port = upstream.get_ports().first().copied().unwrap_or(5432);
        let armed: Armed = Arc::new(Mutex::new(None));
        let fired = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let (accept_armed, accept_fired) = (Arc::clone(&armed), Arc::clone(&fired));
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let host = host.clone();
                let armed = Arc::clone(&accept_armed);
                let fired = Arc::clone(&accept_fired);
                connections.spawn(async move {
                    match host {
                        Host::Unix(dir) => {
                            let path = dir.join(format!(".s.PGSQL.{upstream_port}"));
                            let server = tokio::net::UnixStream::connect(path).await.unwrap();
                            relay(client, server, armed, fired).await;
                        }
                        Host::Tcp(name) => {
                            let server = TcpStream::connect((name.as_str(), upstream_port))
                                .await
                                .unwrap();
                            relay(client, server, armed, fired).await;
                        }
                    }
                });
            }
        });
        Self {
            port,
            armed,
            fired,
            tasks,
        }
    }

    /// The configuration that reaches the database through this proxy.
    pub async fn config(&self) -> tokio_postgres::Config {
        let upstream = database().await.config.driver_config();
        let mut config = tokio_postgres::Config::new();
        config
            .user(upstream.get_user().unwrap_or("postgres"))
            .dbname(upstream.get_dbname().unwrap_or("postgres"))
            .host("127.0.0.1")
            .port(self.port);
        if let Some(password) = upstream.get_password() {
            config.password(password);
        }
        config
    }

    /// Sets `trap` for the next connection whose traffic carries `needle`.
    pub async fn arm(&self, needle: &str, trap: Trap) {
        *self.armed.lock().await = Some((needle.as_bytes().to_vec(), trap));
    }

    /// Whether the armed needle was seen (and its trap taken).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Splits complete protocol messages off the front of a byte stream.
struct Messages {
    buffer: Vec<u8>,
    /// Messages without a type byte still to come (the start-up, an SSL request).
    untyped: bool,
    /// Single-byte answers still to come (to SSL or GSS encryption requests).
    single_bytes: usize,
}

impl Messages {
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.single_bytes > 0 {
            if self.buffer.is_empty() {
                return None;
            }
            self.single_bytes -= 1;
            let byte = self.buffer.remove(0);
            return Some((0, vec![byte]));
        }
        let (header, kind) = if self.untyped { (0, 0) } else { (1, 1) };
        if self.buffer.len() < header + 4 {
            return None;
        }
        let length = u32::from_be_bytes(self.buffer[header..header + 4].try_into().unwrap());
        let total = header + length as usize;
        if self.buffer.len() < total {
            return None;
        }
        let message: Vec<u8> = self.buffer.drain(..total).collect();
        let kind = if kind == 1 { message[0] } else { 0 };
        Some((kind, message))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A `Flush`: the server sends what it has answered so far.
const FLUSH: &[u8] = b"H\0\0\0\x04";
const SSL_REQUEST: u32 = 80_877_103;
const GSS_REQUEST: u32 = 80_877_104;
const STARTUP: u32 = 196_608;

/// What to do after some bytes arrived.
enum Step {
    /// Send these bytes on (possibly none).
    Forward(Vec<u8>),
    /// Close both sides now.
    Cut,
}

/// The state of one relayed connection.
struct Connection {
    armed: Armed,
    fired: Arc<AtomicBool>,
    from_client: Messages,
    from_server: Messages,
    /// Relay raw bytes once the stream can no longer be read (encryption, a cancel).
    opaque: bool,
    /// `ReadyForQuery` messages the server owes for what was forwarded, and those seen.
    owed: usize,
    ready: usize,
    trap: Option<Trap>,
    /// Whether the client opened a transaction with `BEGIN` (as a simple query) that its
    /// `COMMIT` has not closed yet.
    explicit: bool,
    /// `Execute` messages forwarded that PostgreSQL has not answered yet.
    executes: usize,
    /// The held COMMIT (and anything sent after it), and the answers it will owe.
    held: Option<Vec<u8>>,
    held_owes: usize,
    held_signal: Option<oneshot::Sender<()>>,
}

impl Connection {
    async fn client_bytes(&mut self, bytes: &[u8]) -> Step {
        if self.opaque {
            return Step::Forward(bytes.to_vec());
        }
        self.from_client.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some((kind, message)) = self.from_client.next() {
            if self.from_client.untyped {
                let code = u32::from_be_bytes(message[4..8].try_into().unwrap());
                out.extend_from_slice(&message);
                if code == SSL_REQUEST || code == GSS_REQUEST {
                    self.from_server.single_bytes += 1;
                } else if code == STARTUP {
                    self.from_client.untyped = false;
                    self.owed += 1;
                } else {
                    self.opaque = true;
                    out.append(&mut self.from_client.buffer);
                    break;
                }
                continue;
            }
            let answered = usize::from(kind == b'S' || kind == b'Q');
            if let Some(held) = &mut self.held {
                self.held_owes += answered;
                held.extend_from_slice(&message);
                continue;
            }
            if self.trap.is_none() {
                let mut armed = self.armed.lock().await;
                if armed
                    .as_ref()
                    .is_some_and(|(needle, _)| contains(&message, needle))
                {
                    self.trap = armed.take().map(|(_, trap)| trap);
                    self.fired.store(true, Ordering::SeqCst);
                    if matches!(self.trap, Some(Trap::CutBefore)) {
                        return Step::Cut;
                    }
                }
            }
            let commit = kind == b'Q' && message[5..] == *b"COMMIT\0";
            let commits = commit || (kind == b'S' && !self.explicit);
            if kind == b'Q' {
                self.explicit = message[5..].starts_with(b"BEGIN");
            }
            if commits && matches!(self.trap, Some(Trap::HoldCommit { .. })) {
                let Some(Trap::HoldCommit { held, release }) = self.trap.take() else {
                    unreachable!("just matched")
                };
                self.held_signal = Some(held);
                if kind == b'S' {
                    // PostgreSQL answers what it ran so far, and the transaction stays open.
                    out.extend_from_slice(FLUSH);
                }
                self.held = Some(message);
                self.held_owes = answered;
                // The release is awaited by the relay loop.
                self.trap = Some(Trap::HoldCommit {
                    held: oneshot::channel().0,
                    release,
                });
                continue;
            }
            self.owed += answered;
            self.executes += usize::from(kind == b'E');
            out.extend_from_slice(&message);
        }
        Step::Forward(out)
    }

    fn server_bytes(&mut self, bytes: &[u8]) -> Step {
        if self.opaque {
            return Step::Forward(bytes.to_vec());
        }
        self.from_server.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some((kind, message)) = self.from_server.next() {
            if kind == 0 {
                // The answer to an SSL or GSS request: anything but "no" encrypts.
                out.extend_from_slice(&message);
                if message != b"N" {
                    self.opaque = true;
                    out.append(&mut self.from_server.buffer);
                    break;
                }
                continue;
            }
            self.ready += usize::from(kind == b'Z');
            match kind {
                // CommandComplete, EmptyQueryResponse, PortalSuspended: one Execute answered.
                b'C' | b'I' | b's' => self.executes = self.executes.saturating_sub(1),
                // After an error the server skips to the Sync: nothing more is answered.
                b'E' | b'Z' => self.executes = 0,
                _ => {}
            }
            let idle = kind == b'Z' && message.get(5) == Some(&b'I');
            if idle && matches!(self.trap, Some(Trap::CutAfterCommit)) {
                return Step::Cut;
            }
            out.extend_from_slice(&message);
        }
        Step::Forward(out)
    }

    /// Tells the test once everything before the held COMMIT has been answered.
    fn signal_if_drained(&mut self) {
        if self.held.is_some()
            && self.ready == self.owed
            && self.executes == 0
            && let Some(signal) = self.held_signal.take()
        {
            let _ = signal.send(());
        }
    }

    /// Whether a COMMIT is held, waiting for its release.
    fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// The held bytes, to send now that the release came.
    fn release(&mut self) -> Vec<u8> {
        self.trap = None;
        self.owed += self.held_owes;
        self.held_owes = 0;
        self.held.take().unwrap_or_default()
    }
}

/// Waits for the release of a held COMMIT (forever if there is none).
async fn released(trap: &mut Option<Trap>) {
    match trap {
        Some(Trap::HoldCommit { release, .. }) => {
            let _ = release.await;
        }
        _ => std::future::pending().await,
    }
}

/// Relays one connection message by message, springing the armed trap if its needle
/// passes.
async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: TcpStream,
    mut server: S,
    armed: Armed,
    fired: Arc<AtomicBool>,
) {
    let mut connection = Connection {
        armed,
        fired,
        from_client: Messages {
            buffer: Vec::new(),
            untyped: true,
            single_bytes: 0,
        },
        from_server: Messages {
            buffer: Vec::new(),
            untyped: false,
            single_bytes: 0,
        },
        opaque: false,
        owed: 0,
        ready: 0,
        trap: None,
        explicit: false,
        executes: 0,
        held: None,
        held_owes: 0,
        held_signal: None,
    };
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        let holding = connection.holding();
        let step = tokio::select! {
            read = client.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => (true, connection.client_bytes(&up[..n]).await),
            },
            read = server.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => (false, connection.server_bytes(&down[..n])),
            },
            () = released(&mut connection.trap), if holding => {
                (true, Step::Forward(connection.release()))
            }
        };
        match step {
            (_, Step::Cut) => return,
            (to_server, Step::Forward(bytes)) => {
                let sent = if to_server {
                    server.write_all(&bytes).await
                } else {
                    client.write_all(&bytes).await
                };
                if sent.is_err() {
                    return;
                }
            }
        }
        connection.signal_if_drained();
    }
}

/// A create made through a server whose database connection the proxy breaks with a
/// trap in the middle of that create, then retried with its key until a 201.
struct BrokenCreate {
    app: TestApp,
    user: TestUser,
    /// The status of the first attempt (None: no answer at all).
    first: Option<StatusCode>,
    /// Whether the task existed before the first retry.
    committed_before_retry: bool,
    answer: Answer,
    history: Vec<String>,
    /// Kept alive: the server reaches its database through it.
    _proxy: DbProxy,
}

async fn create_through_a_broken_connection(trap: Trap, title: &str) -> BrokenCreate {
    let proxy = DbProxy::start().await;
    let app = TestApp::spawn_on(proxy.config().await).await;
    let user = app.new_user().await;
    let k = fresh_key();
    let body = json!({"title": title});
    proxy.arm(title, trap).await;
    let first = keyed_request(
        &app,
        &user.token,
        "/tasks",
        Some(key(&k)),
        &body.to_string(),
    )
    .timeout(Duration::from_secs(20))
    .send()
    .await
    .ok()
    .map(|r| r.status());
    assert!(proxy.fired(), "the proxy never saw the create go by");
    let committed_before_retry = tasks_titled(&app, &user, title).await == 1;
    if first != Some(StatusCode::CREATED) {
        // The cut landed: the server could not know how it ended, and says so.
        assert_eq!(
            first,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "a broken database connection is a 503"
        );
    }
    let (answer, history) = retry_until_created(&app, &user, "/tasks", &k, &body).await;
    answer.assert_created_or_replayed("/tasks");
    BrokenCreate {
        app,
        user,
        first,
        committed_before_retry,
        answer,
        history,
        _proxy: proxy,
    }
}

#[tokio::test]
async fn a_create_cut_off_from_the_database_before_its_commit_is_retried_into_exactly_one_task() {
    let title = format!("Cut before commit {}", uuid::Uuid::new_v4());
    let run = create_through_a_broken_connection(Trap::CutBefore, &title).await;
    if run.first != Some(StatusCode::CREATED) {
        assert!(!run.committed_before_retry, "nothing was committed");
        assert!(
            !run.answer.replayed,
            "the retry is the first create to succeed (after {:?})",
            run.history
        );
    }
    assert_eq!(tasks_titled(&run.app, &run.user, &title).await, 1);
    assert_eq!(total(&run.app, &run.user, "/tasks").await, 1);
}

#[tokio::test]
async fn a_create_whose_commit_landed_but_whose_answer_was_lost_is_replayed_on_retry() {
    let title = format!("Cut after commit {}", uuid::Uuid::new_v4());
    let run = create_through_a_broken_connection(Trap::CutAfterCommit, &title).await;
    // The proxy cut the connection before the answer: the server cannot have said 201.
    assert_ne!(run.first, Some(StatusCode::CREATED));
    {
        assert!(
            run.committed_before_retry,
            "the proxy cut the connection only once PostgreSQL had answered the COMMIT"
        );
        assert!(
            run.answer.replayed,
            "the commit landed, so the retry is a replay (after {:?})",
            run.history
        );
    }
    assert_eq!(tasks_titled(&run.app, &run.user, &title).await, 1);
    assert_eq!(total(&run.app, &run.user, "/tasks").await, 1);
}
