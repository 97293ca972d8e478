//! What every single resource (task, project) answers with: its strong `ETag`, a
//! `Location` when created, `304` for a matching `If-None-Match`, and the `If-Match`
//! precondition of a write.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::domain::etag::{Precondition, etag, none_match_matches};

/// `body` with `status`, the resource's `ETag`, and `Location` when given.
pub fn tagged(
    status: StatusCode,
    body: impl IntoResponse,
    id: Uuid,
    version: i32,
    location: Option<String>,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag(id, version)) {
        headers.insert(header::ETAG, value);
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// `304 Not Modified` with the current `ETag` and no body, when the request's
/// `If-None-Match` matches the resource's current version.
pub fn not_modified(headers: &HeaderMap, id: Uuid, version: i32) -> Option<Response> {
    let values = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok());
    none_match_matches(values, id, version)
        .then(|| tagged(StatusCode::NOT_MODIFIED, (), id, version, None))
}

/// The `If-Match` precondition for resource `id`.
pub fn precondition(headers: &HeaderMap, id: Uuid) -> Precondition {
    let values = headers
        .get_all(header::IF_MATCH)
        .iter()
        .map(|value| value.to_str().unwrap_or("<opaque>"));
    Precondition::from_if_match(values, id)
}
