//! Graceful shutdown: once asked to stop, the server accepts no new connection but finishes
//! the requests already in flight (issue 2: SIGINT/SIGTERM finish in-flight requests).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskapi::app::{Application, ReadyDatabase};

use crate::helpers::{PASSWORD, database, json_body, settings, unique_email};

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_and_refuses_new_ones() {
    let ready = database().await;
    let app = Application::build_on(
        settings(ready.config.clone()),
        ReadyDatabase {
            config: ready.config.clone(),
            admin_config: ready.admin_config.clone(),
            server: None,
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let email = unique_email();
    let body = json!({"email": email, "password": PASSWORD});
    client
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let login = client
        .post(format!("{base}/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let token = json_body(login).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = client
        .post(format!("{base}/tasks"))
        .bearer_auth(&token)
        .json(&json!({"title": "in flight"}))
        .send()
        .await
        .unwrap();
    let task_id: uuid::Uuid = json_body(created).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Hold the task's row lock, so that a PATCH is provably in flight inside the server.
    let blocker = taskapi::db::connect(&ready.admin_config).await.unwrap();
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", &[&task_id])
        .await
        .unwrap();
    let patch = tokio::spawn({
        let request = client
            .request(Method::PATCH, format!("{base}/tasks/{task_id}"))
            .bearer_auth(&token)
            .json(&json!({"title": "finished after the signal"}));
        async move { request.send().await }
    });
    let mut waiting = false;
    for _ in 0..200 {
        let row = blocker
            .query_one(
                // Blocked by this very connection's lock: no other test's waiter counts.
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waiting, "the PATCH should be waiting on the row lock");

    stop.send(()).unwrap();
    // New connections are refused once shutdown has begun.
    let mut refused = false;
    for _ in 0..200 {
        let fresh = reqwest::Client::new();
        if fresh.get(format!("{base}/health")).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "no new connection after the shutdown signal");
    assert!(
        !server.is_finished(),
        "the server waits for the request in flight"
    );

    blocker.batch_execute("ROLLBACK").await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), patch)
        .await
        .expect("the in-flight request completes")
        .unwrap()
        .expect("a response, not a dropped connection");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await["title"],
        "finished after the signal"
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once the request is done")
        .unwrap()
        .unwrap();
}
