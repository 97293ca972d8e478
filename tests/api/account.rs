//! Account lifecycle and abuse resistance (API.md "Account security"; OWASP API2:2023
//! Broken Authentication, API4:2023 Unrestricted Resource Consumption; ASVS 5.0 V6.3
//! throttling, V7.4 session termination).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    PASSWORD, TestApp, TestUser, assert_invalid_fields, assert_problem, database, json_body,
    loopback_client, random_loopback, unique_email,
};

async fn token_for(app: &TestApp, email: &str, password: &str) -> String {
    let response = app.login(email, password).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.request(Method::POST, path, Some(token))
        .send()
        .await
        .unwrap()
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    app.get("/auth/me", Some(token)).await.status()
}

async fn failures(app: &TestApp, email: &str) -> i32 {
    app.db()
        .await
        .query_opt(
            "SELECT failures FROM login_failures WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap()
        .map_or(0, |row| row.get(0))
}

#[tokio::test]
async fn logout_revokes_only_the_token_presented() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let other = token_for(&app, &user.email, PASSWORD).await;
    let response = post(&app, "/auth/logout", &user.token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&app, &user.token).await, StatusCode::UNAUTHORIZED);
    let tasks = app.get("/tasks", Some(&user.token)).await;
    assert_problem(tasks, StatusCode::UNAUTHORIZED).await;
    assert_eq!(me_status(&app, &other).await, StatusCode::OK);
    let again = post(&app, "/auth/logout", &user.token).await;
    assert_problem(again, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn revocations_are_kept_until_the_token_expires_then_purged() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let db = app.db().await;
    let stale = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, now() - interval '1 minute')",
        &[&stale],
    )
    .await
    .unwrap();
    assert_eq!(
        post(&app, "/auth/logout", &user.token).await.status(),
        StatusCode::NO_CONTENT
    );
    let kept: i64 = db
        .query_one(
            "SELECT count(*) FROM revoked_tokens \
             WHERE expires_at BETWEEN now() + interval '29 minutes' AND now() + interval '31 minutes'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        kept >= 1,
        "the logged-out token is remembered until it would expire"
    );
    let purged = db
        .query_opt("SELECT 1 FROM revoked_tokens WHERE jti = $1", &[&stale])
        .await
        .unwrap();
    assert!(purged.is_none(), "expired revocations are cleaned up");
}

#[tokio::test]
async fn logout_all_revokes_every_token_issued_so_far() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let second = token_for(&app, &user.email, PASSWORD).await;
    assert_eq!(
        post(&app, "/auth/logout-all", &second).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me_status(&app, &user.token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &second).await, StatusCode::UNAUTHORIZED);
    let fresh = token_for(&app, &user.email, PASSWORD).await;
    assert_eq!(me_status(&app, &fresh).await, StatusCode::OK);
}

async fn change_password(
    app: &TestApp,
    user: &TestUser,
    current: &str,
    new: &str,
) -> reqwest::Response {
    let body = json!({"current_password": current, "new_password": new});
    app.send_json(Method::POST, "/auth/password", Some(&user.token), &body)
        .await
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_revokes_earlier_tokens() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let other = token_for(&app, &user.email, PASSWORD).await;
    let new = "a brand new passphrase";

    let wrong = change_password(&app, &user, "not my password", new).await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        failures(&app, &user.email).await,
        1,
        "counts as a failed login"
    );
    assert_eq!(
        me_status(&app, &user.token).await,
        StatusCode::OK,
        "nothing else changed"
    );

    for weak in ["password", "short", "qwertyuiop"] {
        let response = change_password(&app, &user, PASSWORD, weak).await;
        assert_eq!(assert_invalid_fields(response).await, ["new_password"]);
    }
    let response = app
        .send_json(
            Method::POST,
            "/auth/password",
            Some(&user.token),
            &json!({"new_password": new}),
        )
        .await;
    assert_eq!(assert_invalid_fields(response).await, ["current_password"]);

    let changed = change_password(&app, &user, PASSWORD, new).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&app, &user.token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &other).await, StatusCode::UNAUTHORIZED);
    assert_problem(
        app.login(&user.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let fresh = token_for(&app, &user.email, new).await;
    assert_eq!(me_status(&app, &fresh).await, StatusCode::OK);
}

async fn delete_account(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.send_json(
        Method::DELETE,
        "/auth/me",
        Some(token),
        &json!({"password": password}),
    )
    .await
}

#[tokio::test]
async fn deleting_the_account_needs_the_password_and_removes_it_with_its_tasks() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "goes too"})).await;

    assert_problem(
        delete_account(&app, &user.token, "wrong password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(me_status(&app, &user.token).await, StatusCode::OK);
    let no_body = app
        .request(Method::DELETE, "/auth/me", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_problem(no_body, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let missing = app
        .send_json(Method::DELETE, "/auth/me", Some(&user.token), &json!({}))
        .await;
    assert_eq!(assert_invalid_fields(missing).await, ["password"]);

    assert_eq!(
        delete_account(&app, &user.token, PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me_status(&app, &user.token).await, StatusCode::UNAUTHORIZED);
    let task_path = format!("/tasks/{}", task["id"].as_str().unwrap());
    assert_problem(
        app.get(&task_path, Some(&user.token)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        app.login(&user.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let db = app.db().await;
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM tasks WHERE owner_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(
        app.register(&user.email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

#[tokio::test]
async fn ten_failed_logins_lock_the_account_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for _ in 0..10 {
        assert_problem(
            app.login(&user.email, "wrong guess!").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let locked = app.login(&user.email, PASSWORD).await;
    let wait = retry_after(&locked);
    assert!((1..=900).contains(&wait), "{wait}");
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        failures(&app, &user.email).await,
        10,
        "a refused attempt changes nothing"
    );
    // The lock holds for password confirmations too.
    let change = change_password(&app, &user, PASSWORD, "another fine passphrase").await;
    assert_problem(change, StatusCode::TOO_MANY_REQUESTS).await;
    // Tokens issued before still work: throttling guards guessing, not sessions.
    assert_eq!(me_status(&app, &user.token).await, StatusCode::OK);
    // The neighbour on the same address is not locked out.
    let neighbour = app.new_user().await;
    assert_eq!(me_status(&app, &neighbour.token).await, StatusCode::OK);
}

#[tokio::test]
async fn unknown_addresses_lock_the_same_way_so_locks_reveal_nothing() {
    let app = TestApp::spawn().await;
    let nobody = unique_email();
    for _ in 0..10 {
        app.login(&nobody, "whatever1").await;
    }
    assert_problem(
        app.login(&nobody, "whatever1").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

#[tokio::test]
async fn a_successful_login_clears_the_count() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for _ in 0..9 {
        app.login(&user.email, "wrong guess!").await;
    }
    assert_eq!(failures(&app, &user.email).await, 9);
    token_for(&app, &user.email, PASSWORD).await;
    assert_eq!(failures(&app, &user.email).await, 0);
    for _ in 0..9 {
        app.login(&user.email, "wrong guess!").await;
    }
    token_for(&app, &user.email, PASSWORD).await;
}

#[tokio::test]
async fn failures_are_also_limited_per_client_address_behind_a_trusted_proxy() {
    let config = database().await.config.clone();
    let app = TestApp::spawn_with(config, |settings| {
        settings.login_failures_per_address = 3;
        settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    .with_own_address();
    let user = app.new_user().await;
    let from = |address: &str, email: &str, password: &str| {
        app.request(Method::POST, "/auth/login", None)
            .header("x-forwarded-for", address)
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    // Addresses of this test's own (the counts live in the shared database).
    let (guesser, elsewhere) = (random_loopback().to_string(), random_loopback().to_string());
    for _ in 0..3 {
        let response = from(&guesser, &unique_email(), "guessing").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = from(&guesser, &user.email, PASSWORD).await.unwrap();
    assert!(retry_after(&blocked) >= 1);
    assert_problem(blocked, StatusCode::TOO_MANY_REQUESTS).await;
    let elsewhere = from(&elsewhere, &user.email, PASSWORD).await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let config = database().await.config.clone();
    let app = TestApp::spawn_with(config, |settings| settings.login_failures_per_address = 2)
        .await
        .with_own_address();
    for address in ["203.0.113.1", "203.0.113.2"] {
        let response = app
            .request(Method::POST, "/auth/login", None)
            .header("x-forwarded-for", address)
            .json(&json!({"email": unique_email(), "password": "guessing"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Both failures counted against the real peer, whatever the header claimed.
    let response = app.login(&unique_email(), "guessing").await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn registrations_are_limited_per_client_address() {
    let config = database().await.config.clone();
    let app = TestApp::spawn_with(config, |settings| settings.registrations_per_address = 2)
        .await
        .with_own_address();
    for _ in 0..2 {
        assert_eq!(
            app.register(&unique_email(), PASSWORD).await.status(),
            StatusCode::CREATED
        );
    }
    let response = app.register(&unique_email(), PASSWORD).await;
    assert!(retry_after(&response) >= 1);
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
}

/// Counts the statuses of `attempts` wrong-password logins sent all at once.
async fn parallel_wrong_logins(
    app: &TestApp,
    emails: impl Fn(usize) -> String,
    attempts: usize,
) -> (usize, usize) {
    let requests = (0..attempts).map(|i| app.login_owned(emails(i), "wrong guess!".to_owned()));
    let statuses: Vec<StatusCode> = futures_join_all(requests).await;
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized + throttled, attempts, "{statuses:?}");
    (unauthorized, throttled)
}

async fn futures_join_all(
    requests: impl Iterator<Item = impl Future<Output = StatusCode> + Send + 'static>,
) -> Vec<StatusCode> {
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn sixty_parallel_wrong_logins_get_exactly_ten_401s() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let (unauthorized, throttled) = parallel_wrong_logins(&app, |_| user.email.clone(), 60).await;
    assert_eq!((unauthorized, throttled), (10, 50));
    assert_eq!(failures(&app, &user.email).await, 10);
    // Locked: even the right password is refused now.
    assert_eq!(
        app.login(&user.email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_per_address_limit_holds_under_a_parallel_burst() {
    let config = database().await.config.clone();
    let app = TestApp::spawn_with(config, |settings| settings.login_failures_per_address = 7)
        .await
        .with_own_address();
    // Forty different (unknown) accounts, so only the address's count can refuse them.
    let (unauthorized, throttled) = parallel_wrong_logins(&app, |_| unique_email(), 40).await;
    assert_eq!((unauthorized, throttled), (7, 33));
}

#[tokio::test]
async fn the_per_address_limits_hold_across_instances_under_a_parallel_burst() {
    let config = database().await.config.clone();
    let address = random_loopback();
    let limited = |settings: &mut taskapi::config::Settings| {
        settings.login_failures_per_address = 5;
        settings.registrations_per_address = 2;
    };
    // Two instances on one database, one client address.
    let mut first = TestApp::spawn_with(config.clone(), limited).await;
    let mut second = TestApp::spawn_with(config, limited).await;
    first.client = loopback_client(address);
    second.client = loopback_client(address);
    let requests = (0..24).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.login_owned(unique_email(), "wrong guess!".to_owned())
    });
    let statuses = futures_join_all(requests).await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 19),
        "{statuses:?}"
    );
    // Registrations: two on the first instance, the third refused by the second.
    for _ in 0..2 {
        assert_eq!(
            first.register(&unique_email(), PASSWORD).await.status(),
            StatusCode::CREATED
        );
    }
    let refused = second.register(&unique_email(), PASSWORD).await;
    assert!(retry_after(&refused) >= 1);
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn a_right_password_gives_its_address_attempt_back() {
    let config = database().await.config.clone();
    let app = TestApp::spawn_with(config, |settings| settings.login_failures_per_address = 2)
        .await
        .with_own_address();
    let user = app.new_user().await;
    // Many right passwords, then two wrong ones: only the wrong ones count.
    for _ in 0..5 {
        assert_eq!(
            app.login(&user.email, PASSWORD).await.status(),
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        assert_eq!(
            app.login(&unique_email(), "guessing").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_problem(
        app.login(&user.email, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}
