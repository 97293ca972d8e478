//! What every single resource (task, project) answers with: its strong `ETag`, a
//! `Location` when created, and the `If-Match` precondition of a write.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::domain::etag::{Precondition, etag};

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

/// The `If-Match` precondition for resource `id`.
pub fn precondition(headers: &HeaderMap, id: Uuid) -> Precondition {
    let values = headers
        .get_all(header::IF_MATCH)
        .iter()
        .map(|value| value.to_str().unwrap_or("<opaque>"));
    Precondition::from_if_match(values, id)
}
