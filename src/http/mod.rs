//! The HTTP layer: one file per resource with its DTOs and handlers, and the router that
//! shows every route in one place.

pub mod access_log;
pub mod auth;
pub mod changes;
pub mod client_address;
pub mod current_user;
pub mod deadline;
pub mod docs;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod json_body;
pub mod labels;
pub mod projects;
pub mod resource;
pub mod responses;
pub mod scrape;
pub mod tasks;
pub mod unread_body;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, PROBLEM_JSON, Problem};
use crate::metrics::Metrics;
use crate::state::AppState;

/// API.md: bodies over 64 KiB are 413; exactly 64 KiB is accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskapi",
        description = "Register, log in with a short-lived JWT, and manage your own tasks.\n\n\
            Every error is `application/problem+json` (RFC 9457). Choices where the contract is \
            silent: unknown query parameters are 422; `q` matches whole words (all of them, any \
            case); `due_before`/`due_after` are strict; ETags name the task and its version.",
    ),
    servers((url = "/", description = "The server that serves this document")),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and access tokens"),
        (name = "tasks", description = "The caller's own tasks"),
        (name = "projects", description = "The caller's projects, which group tasks"),
        (name = "labels", description = "The labels on the caller's tasks"),
        (name = "sync", description = "The change feed: what changed since a cursor, for offline clients"),
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

/// utoipa makes an optional header parameter `["string", "null"]`; a header is never null.
/// Its other constraints (a pattern, lengths) stay.
struct HeadersAreStrings;

impl Modify for HeadersAreStrings {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if parameter.parameter_in != ParameterIn::Header {
                        continue;
                    }
                    match parameter.schema.as_mut() {
                        Some(RefOr::T(Schema::Object(object))) => {
                            object.schema_type = SchemaType::new(Type::String);
                        }
                        _ => {
                            parameter.schema =
                                Some(ObjectBuilder::new().schema_type(Type::String).into());
                        }
                    }
                }
            }
        }
    }
}

/// Every operation of the document.
fn operations_mut(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// Any path answers a method it does not have with 405 and `Allow` (axum does, for every
/// route): one shared response, referenced by every operation.
struct MethodNotAllowed;

impl Modify for MethodNotAllowed {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Ref;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            responses::METHOD_NOT_ALLOWED.to_owned(),
            responses::method_not_allowed().into(),
        );
        for operation in operations_mut(openapi) {
            let reference = Ref::from_response_name(responses::METHOD_NOT_ALLOWED);
            operation
                .responses
                .responses
                .insert("405".to_owned(), reference.into());
        }
    }
}

/// Every 401 carries `WWW-Authenticate` (RFC 6750 §3; `ApiError` adds it to each one).
struct AuthChallenge;

impl Modify for AuthChallenge {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{HeaderBuilder, RefOr};
        for operation in operations_mut(openapi) {
            if let Some(RefOr::T(response)) = operation.responses.responses.get_mut("401") {
                let challenge = HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("How to authenticate: `Bearer realm=\"taskapi\"`"))
                    .build();
                response
                    .headers
                    .insert("WWW-Authenticate".to_owned(), challenge);
            }
        }
    }
}

/// utoipa puts a `default` beside a `$ref` as a one-item `oneOf`, which linters rightly call
/// illogical (one schema is no choice); a one-item `allOf` says the same thing. utoipa makes
/// these only for a field with such attributes, so the properties of the component schemas
/// are all there is to look at.
struct SingleOneOfAsAllOf;

impl Modify for SingleOneOfAsAllOf {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AllOf, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for schema in components.schemas.values_mut() {
            let RefOr::T(Schema::Object(object)) = schema else {
                continue;
            };
            for property in object.properties.values_mut() {
                let RefOr::T(Schema::OneOf(one_of)) = property else {
                    continue;
                };
                if one_of.items.len() != 1 || one_of.discriminator.is_some() {
                    continue;
                }
                let mut all_of = AllOf::new();
                all_of.items = std::mem::take(&mut one_of.items);
                all_of.title = one_of.title.take();
                all_of.description = one_of.description.take();
                all_of.default = one_of.default.take();
                all_of.example = one_of.example.take();
                all_of.examples = std::mem::take(&mut one_of.examples);
                all_of.extensions = one_of.extensions.take();
                if let [RefOr::Ref(reference)] = all_of.items.as_mut_slice()
                    && all_of.description.is_none()
                    && !reference.description.is_empty()
                {
                    all_of.description = Some(std::mem::take(&mut reference.description));
                }
                *property = RefOr::T(Schema::AllOf(all_of));
            }
        }
    }
}

/// Response headers that are sent on every response they are documented for.
const ALWAYS_SENT_HEADERS: [&str; 5] = [
    "Allow",
    "ETag",
    "Location",
    "Retry-After",
    "WWW-Authenticate",
];

/// Marks the headers of `ALWAYS_SENT_HEADERS` `required: true`. utoipa's `Header` has no
/// `required`, so such a response's headers are written, with it, as the JSON the
/// response's extensions flatten into it (its own `headers`, then empty, are skipped).
struct RequiredHeaders;

impl Modify for RequiredHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Response};
        fn mark(response: &mut RefOr<Response>) {
            let RefOr::T(response) = response else {
                return;
            };
            if !response
                .headers
                .keys()
                .any(|name| ALWAYS_SENT_HEADERS.contains(&name.as_str()))
            {
                return;
            }
            let mut headers = serde_json::Map::new();
            for (name, header) in std::mem::take(&mut response.headers) {
                let mut value = serde_json::to_value(header).unwrap_or_default();
                if let Some(object) = value.as_object_mut()
                    && ALWAYS_SENT_HEADERS.contains(&name.as_str())
                {
                    object.insert("required".to_owned(), true.into());
                }
                headers.insert(name, value);
            }
            response
                .extensions
                .get_or_insert_with(Default::default)
                .insert("headers".to_owned(), headers.into());
        }
        for operation in operations_mut(openapi) {
            operation.responses.responses.values_mut().for_each(mark);
        }
        if let Some(components) = openapi.components.as_mut() {
            components.responses.values_mut().for_each(mark);
        }
    }
}

/// The API routes and their OpenAPI document, from the same handler annotations.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::get_me, auth::delete_me))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::change_password))
        .routes(routes!(tasks::create_task, tasks::list_tasks))
        .routes(routes!(
            tasks::get_task,
            tasks::update_task,
            tasks::replace_task,
            tasks::delete_task
        ))
        .routes(routes!(projects::create_project, projects::list_projects))
        .routes(routes!(
            projects::get_project,
            projects::update_project,
            projects::delete_project
        ))
        .routes(routes!(changes::list_changes))
        .routes(routes!(labels::list_labels))
        .routes(routes!(labels::rename_label, labels::delete_label))
        .routes(routes!(health::health))
        .routes(routes!(health::livez))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_index));
    // After the routes are merged in: a modifier on `ApiDoc` would see no paths yet.
    let (router, mut openapi) = api.split_for_parts();
    HeadersAreStrings.modify(&mut openapi);
    MethodNotAllowed.modify(&mut openapi);
    AuthChallenge.modify(&mut openapi);
    SingleOneOfAsAllOf.modify(&mut openapi);
    // Last: it takes the headers out of utoipa's model.
    RequiredHeaders.modify(&mut openapi);
    (router, openapi)
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// The whole application: API routes, docs, and the layers every request passes through.
/// `cors_origins` empty: no cross-origin access at all.
pub fn router(state: AppState, cors_origins: &[HeaderValue], request_timeout: Duration) -> Router {
    let (api, _) = api_routes();
    let metrics = state.metrics.clone();
    let router = api
        .route("/docs/", get(docs::docs_index))
        .route("/docs/{*path}", get(docs::docs_asset))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    with_outer_layers(router, metrics, cors_origins, request_timeout)
}

/// The layers around every route, innermost first: the request deadline; the panic
/// catcher (last resort: a problem+json 500); problem bodies for responses made by axum
/// or a layer; CORS; security headers; `Connection: close` and a lingering close after a
/// body left unread; the request id, echoed back; the access log and the request metrics,
/// inside the layer that assigns the request id.
fn with_outer_layers(
    router: Router,
    metrics: Metrics,
    cors_origins: &[HeaderValue],
    request_timeout: Duration,
) -> Router {
    let router = router
        .layer(middleware::from_fn_with_state(
            request_timeout,
            deadline::enforce,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::from_fn(problem_for_bare_errors));
    let router = if cors_origins.is_empty() {
        router
    } else {
        router.layer(cors(cors_origins))
    };
    router
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(unread_body::close_when_unread))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn_with_state(metrics, access_log::record))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Responses made by axum or a layer rather than by our handlers (405 with `Allow`, 413 from
/// a declared length) get a problem body too; their headers are kept.
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
        _ => "the request could not be handled",
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::for_status(status, detail).into_response_with_status();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (problem_parts, body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

/// `nosniff` everywhere; `no-store` on everything under `/auth/`, errors included, since
/// those responses carry credentials or personal data.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_auth = request.uri().path().starts_with("/auth/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_auth {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn cors(origins: &[HeaderValue]) -> CorsLayer {
    use axum::http::Method;
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layers around a router with one route that panics, served on a real socket.
    async fn serve_panicking_route() -> String {
        async fn boom() -> &'static str {
            panic!("a bug in a handler")
        }
        let router = with_outer_layers(
            Router::new().route("/boom", get(boom)),
            Metrics::disabled(),
            &[],
            deadline::REQUEST_TIMEOUT,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}/boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_problem_500_with_a_request_id() {
        let url = serve_panicking_route().await;
        let response = reqwest::get(&url)
            .await
            .expect("a response, not a closed connection");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert!(response.headers().contains_key("x-request-id"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("a bug in a handler"), "{body}");
    }
}
