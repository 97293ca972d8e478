//! Token attacks: every bad token is a 401 with `WWW-Authenticate: Bearer`
//! (API.md "Authentication": expired, not yet valid, badly signed, another algorithm,
//! malformed, or whose user no longer exists).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::{SECRET, TestApp, assert_problem};

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn sign(claims: &Value, key: &[u8], alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

fn claims_for(user: uuid::Uuid) -> Value {
    json!({"sub": user, "ver": 1, "iat": now(), "nbf": now(), "exp": now() + 600, "jti": uuid::Uuid::new_v4()})
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn assert_refused(app: &TestApp, token: &str) {
    for path in ["/auth/me", "/tasks"] {
        let response = app.get(path, Some(token)).await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "{path}: {token}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_correctly_signed_token_is_accepted() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let token = sign(&claims_for(user.id), SECRET, Algorithm::HS256);
    let me = app.get("/auth/me", Some(&token)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        crate::helpers::json_body(me).await["email"],
        user.email.as_str()
    );
}

#[tokio::test]
async fn expired_tokens_are_refused_even_by_one_second() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut claims = claims_for(user.id);
    claims["iat"] = json!(now() - 1900);
    claims["nbf"] = json!(now() - 1900);
    claims["exp"] = json!(now() - 1);
    assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS256)).await;
}

#[tokio::test]
async fn tokens_not_yet_valid_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let mut claims = claims_for(user.id);
    claims["nbf"] = json!(now() + 120);
    assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS256)).await;
}

#[tokio::test]
async fn tokens_signed_with_another_key_or_algorithm_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let claims = claims_for(user.id);
    assert_refused(
        &app,
        &sign(
            &claims,
            b"another-secret-key-that-is-32-bytes-long!",
            Algorithm::HS256,
        ),
    )
    .await;
    assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS384)).await;
    assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS512)).await;
}

#[tokio::test]
async fn unsigned_alg_none_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let payload = b64(claims_for(user.id).to_string().as_bytes());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"HS256"}"#,
    ] {
        let token = format!("{}.{payload}.", b64(header.as_bytes()));
        assert_refused(&app, &token).await;
    }
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let victim = app.new_user().await;
    // Swap the payload for one naming another user, keeping the signature.
    let parts: Vec<&str> = user.token.split('.').collect();
    let forged_payload = b64(claims_for(victim.id).to_string().as_bytes());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&app, &forged).await;
    // Flip one character of the signature.
    let mut flipped = user.token.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(&app, &flipped).await;
}

#[tokio::test]
async fn malformed_tokens_and_headers_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for token in [
        "",
        "garbage",
        "a.b.c",
        "a.b",
        &format!("{}.extra", user.token),
    ] {
        assert_refused(&app, token).await;
    }
    for header in [
        format!("Basic {}", user.token),
        user.token.clone(),
        "Bearer".to_owned(),
    ] {
        let response = app
            .request(reqwest::Method::GET, "/auth/me", None)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn tokens_without_required_claims_or_with_a_non_uuid_subject_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for missing in ["exp", "sub", "iat", "nbf", "jti", "ver"] {
        let mut claims = claims_for(user.id);
        claims.as_object_mut().unwrap().remove(missing);
        assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS256)).await;
    }
    let mut claims = claims_for(user.id);
    claims["sub"] = json!("admin");
    assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS256)).await;
    let mut claims = claims_for(user.id);
    claims["exp"] = json!(format!("{}", now() + 600));
    assert_refused(&app, &sign(&claims, SECRET, Algorithm::HS256)).await;
}

#[tokio::test]
async fn a_deleted_users_token_is_refused_on_every_protected_route() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "mine"})).await;
    let db = app.db().await;
    db.execute("DELETE FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap();

    assert_refused(&app, &user.token).await;
    let task_path = format!("/tasks/{}", task["id"].as_str().unwrap());
    for (method, path, body) in [
        (reqwest::Method::POST, "/tasks", Some(json!({"title": "x"}))),
        (reqwest::Method::GET, task_path.as_str(), None),
        (
            reqwest::Method::PATCH,
            task_path.as_str(),
            Some(json!({"title": "y"})),
        ),
        (reqwest::Method::PATCH, task_path.as_str(), Some(json!({}))),
        (
            reqwest::Method::PUT,
            task_path.as_str(),
            Some(json!({"title": "z"})),
        ),
        (reqwest::Method::DELETE, task_path.as_str(), None),
    ] {
        let mut request = app.request(method.clone(), path, Some(&user.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
}
