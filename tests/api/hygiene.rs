//! Response hygiene (issue 3; OWASP API8:2023 Security Misconfiguration): no caching of
//! auth responses, nosniff, no version banner, CORS closed unless configured, and no
//! secret or personal data in any log line.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, database, json_body, unique_email};

#[tokio::test]
async fn every_auth_response_says_no_store_even_errors() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let responses = [
        app.register(&unique_email(), PASSWORD).await,
        app.register("bad", PASSWORD).await,
        app.login(&user.email, PASSWORD).await,
        app.login(&user.email, "wrong password!").await,
        app.get("/auth/me", Some(&user.token)).await,
        app.get("/auth/me", None).await,
    ];
    for response in responses {
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{}",
            response.status()
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(!response.headers().contains_key("server"));
    }
}

#[tokio::test]
async fn cors_is_closed_by_default() {
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::GET, "/health", None)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let preflight = app
        .request(Method::OPTIONS, "/tasks", None)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !preflight
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn cors_allows_exactly_the_configured_origins() {
    let config = database().await.config.clone();
    let app = TestApp::spawn_with(config, |settings| {
        settings.cors_allowed_origins = vec!["https://app.example.com".parse().unwrap()];
    })
    .await;
    let preflight = app
        .request(Method::OPTIONS, "/tasks", None)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = app
        .request(Method::GET, "/health", None)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Captured;

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of this test binary, at the most verbose level an operator
/// could ask for, through the same filter the server uses.
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter(taskapi::telemetry::env_filter(Some(
                "trace,hyper=info,hyper_util=info,reqwest=info",
            )))
            .with_writer(|| Captured)
            .with_ansi(false)
            .init();
    });
}

#[tokio::test]
async fn no_log_line_holds_a_password_hash_token_or_email() {
    capture_logs();
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    app.login(&user.email, "a wrong password").await;
    app.login(&unique_email(), PASSWORD).await;
    app.create_task(&user, json!({"title": "logged?"})).await;
    app.get("/tasks", Some(&user.token)).await;
    app.get("/auth/me", Some(&format!("{}x", user.token))).await;
    let me = json_body(app.get("/auth/me", Some(&user.token)).await).await;
    assert_eq!(me["email"], user.email.as_str());
    let hash: String = app
        .db()
        .await
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);

    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(
        logs.contains("taskapi") || logs.contains("tower_http"),
        "logs were captured"
    );
    let signature = user.token.rsplit('.').next().unwrap();
    for secret in [
        PASSWORD,
        "a wrong password",
        &user.email,
        &hash,
        &hash[30..],
        signature,
    ] {
        assert!(!logs.contains(secret), "a log line holds {secret:?}");
    }
}
