//! `/health`, `/openapi.json` (snapshot-tested) and `/docs` (served by the API itself).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, json_body};

const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/snapshots/openapi.json"
);

#[tokio::test]
async fn health_is_ok_when_the_database_answers() {
    let app = TestApp::spawn().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        serde_json::json!({"status": "ok"})
    );
}

/// Any change to the contract shows up in review. `UPDATE_SNAPSHOTS=1 cargo test` rewrites it.
#[tokio::test]
async fn openapi_document_matches_the_snapshot() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = json_body(response).await;
    assert_eq!(document["openapi"], "3.1.0");
    let rendered = serde_json::to_string_pretty(&document).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &rendered).unwrap();
    }
    let expected =
        std::fs::read_to_string(SNAPSHOT).expect("snapshot exists; run with UPDATE_SNAPSHOTS=1");
    assert_eq!(
        rendered, expected,
        "the OpenAPI document changed; review, then UPDATE_SNAPSHOTS=1"
    );
}

#[tokio::test]
async fn openapi_document_describes_every_route_of_the_contract() {
    let app = TestApp::spawn().await;
    let document = json_body(app.get("/openapi.json", None).await).await;
    for (path, methods) in [
        ("/auth/register", &["post"][..]),
        ("/auth/login", &["post"]),
        ("/auth/me", &["get"]),
        ("/tasks", &["get", "post"]),
        ("/tasks/{id}", &["get", "patch", "put", "delete"]),
        ("/health", &["get"]),
        ("/openapi.json", &["get"]),
        ("/docs", &["get"]),
    ] {
        for method in methods {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn docs_page_and_its_assets_are_served_locally() {
    let app = TestApp::spawn().await;
    let page = app.get("/docs", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    assert!(
        !html.contains("https://"),
        "the page must not load anything from a CDN"
    );
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.get(asset, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        if asset.ends_with("initializer.js") {
            assert!(response.text().await.unwrap().contains("/openapi.json"));
        }
    }
}
