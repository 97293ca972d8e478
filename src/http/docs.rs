//! `/openapi.json` and `/docs`: the OpenAPI 3.1 document and Swagger UI, whose assets are
//! compiled into the binary (no CDN: the docs work offline).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_swagger_ui::Config;

use crate::http::error::ApiError;
use crate::state::AppState;

pub const OPENAPI_PATH: &str = "/openapi.json";

/// This OpenAPI 3.1 document.
///
/// Public: no token needed. Every operation of the API, as this server implements it.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    security(),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    let mut response = state.openapi_json.as_ref().clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn swagger_config() -> Arc<Config<'static>> {
    Arc::new(Config::from(OPENAPI_PATH))
}

fn swagger_file(path: &str) -> Result<Response, ApiError> {
    let file = utoipa_swagger_ui::serve(path, swagger_config())
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let mut bytes = file.bytes.into_owned();
    if path.is_empty() {
        // `/docs` itself serves the page (no redirect); its assets live under `/docs/`.
        let html =
            String::from_utf8_lossy(&bytes).replacen("<head>", "<head><base href=\"/docs/\">", 1);
        bytes = html.into_bytes();
    }
    let mut response = (StatusCode::OK, bytes).into_response();
    if let Ok(content_type) = HeaderValue::from_str(&file.content_type) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

/// Interactive API documentation (Swagger UI), served entirely by the API itself.
///
/// Public: no token needed. Swagger UI for `/openapi.json`; its assets come from `/docs/`
/// on this server, nothing from a CDN.
#[utoipa::path(
    get, path = "/docs", tag = "operations",
    security(),
    responses((status = 200, description = "The documentation page", content_type = "text/html", body = String))
)]
pub async fn docs_index() -> Result<Response, ApiError> {
    swagger_file("")
}

/// Swagger UI's assets.
pub async fn docs_asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    swagger_file(&path)
}
