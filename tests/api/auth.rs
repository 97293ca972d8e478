//! Registration, login and `/auth/me` (API.md "Authentication").

use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Instant;

use crate::helpers::{
    PASSWORD, TestApp, assert_invalid_fields, assert_problem, json_body, unique_email,
};

#[tokio::test]
async fn register_returns_201_with_the_account_and_no_secret() {
    let app = TestApp::spawn().await;
    let email = unique_email();
    let response = app.register(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_body(response).await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["created_at", "email", "id"]);
    assert_eq!(body["email"], email);
    assert!(body["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn passwords_are_stored_only_as_argon2id_hashes() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let db = app.db().await;
    let row = db
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn email_is_trimmed_lower_cased_and_unique_whatever_its_case() {
    let app = TestApp::spawn().await;
    let local = uuid::Uuid::new_v4().simple().to_string();
    let response = app
        .register(&format!("  {local}@Example.COM "), PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        json_body(response).await["email"],
        format!("{local}@example.com")
    );

    let again = app
        .register(&format!("{}@EXAMPLE.com", local.to_uppercase()), PASSWORD)
        .await;
    let problem = assert_problem(again, StatusCode::CONFLICT).await;
    assert!(problem["detail"].as_str().unwrap().contains("already"));

    let login = app
        .login(&format!("{}@example.com", local.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_emails_and_passwords_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    for email in [
        "",
        "not-an-email",
        "a@b",
        "two@@example.com",
        &format!("{}@example.com", "a".repeat(250)),
    ] {
        let fields = assert_invalid_fields(app.register(email, PASSWORD).await).await;
        assert_eq!(fields, ["email"], "{email:?}");
    }
    for password in [
        "short",
        "1234567",
        &"x".repeat(129),
        "password",
        "12345678",
        "qwertyuiop",
    ] {
        let fields = assert_invalid_fields(app.register(&unique_email(), password).await).await;
        assert_eq!(fields, ["password"]);
    }
    let fields = assert_invalid_fields(app.register("nope", "short").await).await;
    assert_eq!(fields, ["email", "password"]);
    // 8 and 128 characters are both fine.
    assert_eq!(
        app.register(&unique_email(), "k9#Lm2!q").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.register(&unique_email(), &"p".repeat(128))
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn register_rejects_unknown_missing_and_mistyped_fields() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (
            json!({"email": unique_email(), "password": PASSWORD, "id": "x"}),
            "id",
        ),
        (json!({"email": unique_email()}), "password"),
        (json!({"email": 42, "password": PASSWORD}), "email"),
        (
            json!({"email": unique_email(), "password": null}),
            "password",
        ),
    ] {
        let response = app
            .send_json(Method::POST, "/auth/register", None, &body)
            .await;
        assert_eq!(assert_invalid_fields(response).await, [field], "{body}");
    }
}

#[tokio::test]
async fn login_returns_a_bearer_token_that_opens_auth_me() {
    let app = TestApp::spawn().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let response = app.login(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    let token = body["access_token"].as_str().unwrap();

    let me = app.get("/auth/me", Some(token)).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me = json_body(me).await;
    assert_eq!(me["email"], email);
    assert!(me.get("password_hash").is_none());
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_401() {
    let app = TestApp::spawn().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;

    let started = Instant::now();
    let wrong_password = app.login(&email, "not the password").await;
    let wrong_password_time = started.elapsed();
    let started = Instant::now();
    let unknown = app.login(&unique_email(), PASSWORD).await;
    let unknown_time = started.elapsed();

    assert!(wrong_password.headers().contains_key("www-authenticate"));
    let a = assert_problem(wrong_password, StatusCode::UNAUTHORIZED).await;
    let b = assert_problem(unknown, StatusCode::UNAUTHORIZED).await;
    assert_eq!(a, b);
    // Both pay for one Argon2 verification: neither is many times faster than the other.
    let (fast, slow) = if unknown_time < wrong_password_time {
        (unknown_time, wrong_password_time)
    } else {
        (wrong_password_time, unknown_time)
    };
    assert!(
        slow < fast * 5 + std::time::Duration::from_millis(50),
        "{fast:?} vs {slow:?}"
    );
}

#[tokio::test]
async fn login_with_missing_fields_is_422_and_with_an_empty_password_is_401() {
    let app = TestApp::spawn().await;
    let response = app
        .send_json(
            Method::POST,
            "/auth/login",
            None,
            &json!({"email": "a@example.com"}),
        )
        .await;
    assert_eq!(assert_invalid_fields(response).await, ["password"]);
    let response = app.login(&unique_email(), "").await;
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn auth_me_without_a_token_is_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let response = app.get("/auth/me", None).await;
    assert_eq!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("Bearer")
    );
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
}
