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

async fn served_document() -> Value {
    let app = TestApp::spawn().await;
    json_body(app.get("/openapi.json", None).await).await
}

/// Every operation, as (method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((method.clone(), path.clone(), operation));
        }
    }
    assert!(found.len() >= 16, "{} operations", found.len());
    found
}

/// Follows a local `$ref` (`#/components/...`) once.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {reference}")),
        None => value,
    }
}

#[tokio::test]
async fn every_operation_has_a_summary_a_description_and_its_security() {
    let document = served_document().await;
    let public = [
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("get", "/health"),
        ("get", "/livez"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
    ];
    for (method, path, operation) in operations(&document) {
        for field in ["summary", "description"] {
            assert!(
                operation[field]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{method} {path} has no {field}"
            );
        }
        let expected = if public.contains(&(method.as_str(), path.as_str())) {
            serde_json::json!([])
        } else {
            serde_json::json!([{"bearer": []}])
        };
        assert_eq!(operation["security"], expected, "{method} {path}");
    }
}

#[tokio::test]
async fn every_error_response_is_a_problem_with_its_headers() {
    let document = served_document().await;
    let required_header = |response: &Value, name: &str| {
        let header = &response["headers"][name];
        header["required"] == true && header["schema"]["type"] == "string"
    };
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.contains_key("405"), "{method} {path}: no 405");
        for (status, response) in responses {
            let response = resolve(&document, response);
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"].as_object().unwrap();
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
            match status.as_str() {
                "401" => assert!(
                    required_header(response, "WWW-Authenticate"),
                    "{method} {path}: 401 without WWW-Authenticate"
                ),
                "405" => assert!(required_header(response, "Allow"), "{method} {path}"),
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn task_responses_name_their_always_sent_headers_as_required() {
    let document = served_document().await;
    let task = &document["paths"]["/tasks/{id}"];
    for (response, headers) in [
        (
            &document["paths"]["/tasks"]["post"]["responses"]["201"],
            &["ETag", "Location"][..],
        ),
        (&task["get"]["responses"]["200"], &["ETag"]),
        (&task["patch"]["responses"]["200"], &["ETag"]),
        (&task["put"]["responses"]["200"], &["ETag"]),
    ] {
        for header in headers {
            assert_eq!(response["headers"][header]["required"], true, "{header}");
        }
    }
}

/// Responses always carry every field (possibly null), so a client may rely on each.
#[tokio::test]
async fn every_field_of_a_response_schema_is_required() {
    let document = served_document().await;
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut checked = 0;
    for (name, schema) in schemas
        .iter()
        .filter(|(name, _)| name.ends_with("Response"))
    {
        let mut properties: Vec<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        properties.sort();
        required.sort_unstable();
        assert_eq!(properties, required, "{name}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked} response schemas");
}

/// The domain's enums carry no OpenAPI; the document's copies of them must keep up.
#[tokio::test]
async fn document_enums_match_the_domain() {
    use taskapi::domain::listing::SortField;
    use taskapi::domain::task::{Priority, TaskStatus};
    let document = served_document().await;
    let schemas = &document["components"]["schemas"];
    let serialized = |value: serde_json::Value| value.as_str().unwrap().to_owned();
    let statuses: Vec<String> = TaskStatus::ALL
        .into_iter()
        .map(|s| serialized(serde_json::to_value(s).unwrap()))
        .collect();
    assert_eq!(schemas["TaskStatus"]["enum"], serde_json::json!(statuses));
    let priorities: Vec<String> = Priority::ALL
        .into_iter()
        .map(|p| serialized(serde_json::to_value(p).unwrap()))
        .collect();
    assert_eq!(schemas["Priority"]["enum"], serde_json::json!(priorities));
    let sorts: Vec<String> = SortField::ALL
        .into_iter()
        .flat_map(|field| [field.as_str().to_owned(), format!("-{}", field.as_str())])
        .collect();
    let parameters = document["paths"]["/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let sort = parameters.iter().find(|p| p["name"] == "sort").unwrap();
    assert_eq!(sort["schema"]["enum"], serde_json::json!(sorts));
    assert_eq!(sort["schema"]["default"], "-created_at");
}
