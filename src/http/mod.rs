//! The HTTP layer: one file per resource with its DTOs and handlers, and the router that
//! shows every route in one place.

pub mod auth;
pub mod docs;
pub mod extract;
pub mod health;
pub mod tasks;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{ApiError, PROBLEM_JSON, Problem};

/// API.md: bodies over 64 KiB are 413; exactly 64 KiB is accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that takes longer (a hung database) ends in a 503, never a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskapi",
        description = "Register, log in with a short-lived JWT, and manage your own tasks.\n\n\
            Every error is `application/problem+json` (RFC 9457). Choices where the contract is \
            silent: unknown query parameters are 422; `q` matches whole words (all of them, any \
            case); `due_before`/`due_after` are strict; ETags name the task and its version.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and access tokens"),
        (name = "tasks", description = "The caller's own tasks"),
        (name = "operations", description = "Health and documentation"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API routes and their OpenAPI document, from the same handler annotations.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::get_me))
        .routes(routes!(tasks::create_task, tasks::list_tasks))
        .routes(routes!(
            tasks::get_task,
            tasks::update_task,
            tasks::replace_task,
            tasks::delete_task
        ))
        .routes(routes!(health::health))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_index))
        .split_for_parts()
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// The whole application: API routes, docs, and the layers every request passes through.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes();
    api.route("/docs/", get(docs::docs_index))
        .route("/docs/{*path}", get(docs::docs_asset))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::map_response(security_headers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Responses made by axum or a layer rather than by our handlers (405 with `Allow`, 413 from
/// a declared length, a timeout) get a problem body too; their headers are kept.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed here; see the Allow header",
        StatusCode::SERVICE_UNAVAILABLE => "the request took too long; try again shortly",
        _ => "the request could not be handled",
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::for_status(status, detail).into_response_with_status();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (problem_parts, body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

async fn security_headers(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
