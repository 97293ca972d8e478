//! API.md "Conventions": media types, body limits, unparseable bodies, 404/405, and
//! problem+json everywhere.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_invalid_fields, assert_problem};

#[tokio::test]
async fn bodies_that_are_not_json_are_415() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .request(Method::POST, "/tasks", Some(&user.token))
            .body(r#"{"title":"x"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_problem(
            request.send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
    }
    let request = app
        .request(Method::POST, "/auth/register", None)
        .header("content-type", "text/plain")
        .body("{}");
    assert_problem(
        request.send().await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    // A charset parameter is fine.
    let request = app
        .request(Method::POST, "/tasks", Some(&user.token))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"title":"x"}"#);
    assert_eq!(request.send().await.unwrap().status(), StatusCode::CREATED);
}

#[tokio::test]
async fn unparseable_bodies_are_400() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let bodies: [&[u8]; 5] = [
        b"{",
        b"",
        b"{\"title\": \"x\"} trailing",
        b"{\"title\": \"\xff\xfe\"}",
        b"nul",
    ];
    for body in bodies {
        let request = app
            .request(Method::POST, "/tasks", Some(&user.token))
            .header("content-type", "application/json")
            .body(body.to_vec());
        assert_problem(request.send().await.unwrap(), StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_accepted_and_one_byte_more_is_413() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let core = r#"{"title":"padded"}"#;
    let exact = format!("{}{core}", " ".repeat(64 * 1024 - core.len()));
    assert_eq!(exact.len(), 65_536);
    let request = app
        .request(Method::POST, "/tasks", Some(&user.token))
        .header("content-type", "application/json")
        .body(exact.clone());
    assert_eq!(request.send().await.unwrap().status(), StatusCode::CREATED);

    let too_big = format!(" {exact}");
    let request = app
        .request(Method::POST, "/tasks", Some(&user.token))
        .header("content-type", "application/json")
        .body(too_big);
    assert_problem(request.send().await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE).await;
    let register = app
        .request(Method::POST, "/auth/register", None)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"email":"a@example.com","password":"{}"}}"#,
            "p".repeat(70_000)
        ));
    assert_problem(
        register.send().await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

#[tokio::test]
async fn unknown_paths_are_problem_404() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/nope", None).await, StatusCode::NOT_FOUND).await;
    assert_problem(app.get("/tasks/a/b", None).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let app = TestApp::spawn().await;
    for (method, path, allowed) in [
        (Method::DELETE, "/health", vec!["GET", "HEAD"]),
        (Method::PUT, "/tasks", vec!["GET", "HEAD", "POST"]),
        (Method::GET, "/auth/login", vec!["POST"]),
        (
            Method::POST,
            "/tasks/00000000-0000-0000-0000-000000000000",
            vec!["DELETE", "GET", "HEAD", "PATCH", "PUT"],
        ),
    ] {
        let response = app.request(method, path, None).send().await.unwrap();
        let mut allow: Vec<String> = response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        allow.sort();
        assert_eq!(allow, allowed, "{path}");
        assert_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[tokio::test]
async fn text_postgresql_cannot_store_is_422_not_500() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for body in [
        json!({"title": "nul\u{0}inside"}),
        json!({"title": "ok", "description": "\u{0}"}),
    ] {
        let response = app
            .send_json(Method::POST, "/tasks", Some(&user.token), &body)
            .await;
        assert_invalid_fields(response).await;
    }
    let response = app.get("/tasks?q=a%00b", Some(&user.token)).await;
    assert_eq!(assert_invalid_fields(response).await, ["q"]);
}

#[tokio::test]
async fn responses_say_nosniff_and_carry_a_request_id() {
    let app = TestApp::spawn().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_422_never_read_by_position() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "kept"})).await;
    let path = format!("/tasks/{}", task["id"].as_str().unwrap());
    for (method, path, body) in [
        (Method::POST, "/tasks", json!(["Array title"])),
        (Method::PATCH, path.as_str(), json!(["t2", "desc", "done"])),
        (Method::PATCH, path.as_str(), json!([])),
        (Method::PUT, path.as_str(), json!(["x"])),
        (
            Method::POST,
            "/auth/register",
            json!(["arr@example.com", "array-password-1"]),
        ),
        (
            Method::POST,
            "/auth/login",
            json!([user.email, crate::helpers::PASSWORD]),
        ),
        (Method::POST, "/tasks", json!("a string")),
        (Method::POST, "/tasks", json!(null)),
    ] {
        let token = Some(user.token.as_str());
        let response = app.send_json(method.clone(), path, token, &body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            problem["errors"][0]["field"], "body",
            "{method} {path} {body}"
        );
        assert!(
            !problem.to_string().contains("struct"),
            "no internal type names: {problem}"
        );
    }
    let unchanged = crate::helpers::json_body(app.get(&path, Some(&user.token)).await).await;
    assert_eq!(unchanged, task);
}

#[tokio::test]
async fn login_with_an_address_postgresql_cannot_store_is_a_plain_401() {
    let app = TestApp::spawn().await;
    let response = app.login("a\u{0}b@example.com", "whatever-123").await;
    let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
    let unknown = assert_problem(
        app.login(&crate::helpers::unique_email(), "whatever-123")
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(problem, unknown);
}
