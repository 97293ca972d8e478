//! Our extractors: every rejection speaks problem+json with the status API.md names
//! (415 wrong media type, 413 too large, 400 unparseable, 422 invalid, 404 bad id).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::ValidationErrors;
use crate::domain::idempotency::body_digest;
use crate::http::error::ApiError;
use crate::http::idempotency::IDEMPOTENCY_KEY;

/// A JSON body, deserialised strictly: unknown fields and wrong types are 422, with the
/// offending field named.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// API.md "Conventions": `application/json`, with or without parameters (`charset=utf-8`);
/// every other type is 415, other JSON-based ones (`application/merge-patch+json`,
/// `application/problem+json`, `text/json`) included.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// A JSON body, as `ApiJson`, and, when the request carries an `Idempotency-Key`, the digest
/// of its canonical JSON (`domain::idempotency::body_digest`): what tells a retry of the same
/// create from a different one.
#[derive(Debug)]
pub struct KeyedJson<T> {
    pub body: T,
    pub digest: Option<[u8; 32]>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for KeyedJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let keyed = request.headers().contains_key(IDEMPOTENCY_KEY);
        let bytes = json_bytes(request, state).await?;
        let body = parse_json(&bytes)?;
        // `parse_json` has checked the syntax, so this parse cannot fail.
        let digest = keyed
            .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .flatten()
            .map(|value| body_digest(&value));
        Ok(Self { body, digest })
    }
}

/// The body of a request that must be JSON: 415 for another media type, 413 over the limit.
async fn json_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(request.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection: BytesRejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            _ => ApiError::MalformedBody("the request body could not be read".to_owned()),
        })
}

/// Syntax first, then shape (API.md "Conventions"): anything that is not one valid JSON
/// document (invalid UTF-8, truncated, trailing data, bad escapes) is 400 whatever fields
/// it names; only a body that parses is judged field by field (422).
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        ApiError::MalformedBody(format!("the request body is not valid UTF-8: {error}"))
    })?;
    // A syntax-only pass: nothing is built, so it costs a scan of the bytes.
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|error| {
        ApiError::MalformedBody(format!("the request body is not valid JSON: {error}"))
    })?;
    // Every body is a JSON object. serde would also read a struct from an array, by
    // position (`["title"]`), so anything else is refused here first.
    let first = text.bytes().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| b != b'{') {
        return Err(ApiError::Validation(ValidationErrors::single(
            "body",
            "must be a JSON object",
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        classify(error.into_inner(), &path)
    })?;
    // Anything after the JSON value ("{}x") is a syntax error.
    deserializer.end().map_err(|error| classify(error, ""))?;
    Ok(value)
}

fn classify(error: serde_json::Error, path: &str) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => {
            let message = strip_position(&error.to_string());
            ApiError::Validation(ValidationErrors::single(
                &field_name(path, &message),
                message,
            ))
        }
        _ => ApiError::MalformedBody(format!("the request body is not valid JSON: {error}")),
    }
}

/// serde names unknown and missing fields only in its message (`unknown field `x``). An
/// array member's index is dropped: the field is the member (`labels`, not `labels[3]`).
fn field_name(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.split('[').next().unwrap_or(path).to_owned();
    }
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    named.unwrap_or("body").to_owned()
}

/// serde_json appends " at line L column C"; the field name says more to an API client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// A task's or project's id from the path. Anything that is not a UUID is a 404, like a
/// missing resource.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::NotFound)?;
        Uuid::try_parse(&raw)
            .map(Self)
            .map_err(|_| ApiError::NotFound)
    }
}

/// A label from the path (`/labels/{name}`), percent-decoded. One that cannot be stored
/// (holding NUL, or not UTF-8) is carried by no task: a 404, like any unknown label.
#[derive(Debug, Clone)]
pub struct PathLabel(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathLabel {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::NotFound)?;
        if raw.contains('\0') {
            return Err(ApiError::NotFound);
        }
        Ok(Self(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Body {
        name: String,
        count: Option<u32>,
    }

    fn status_and_field(json: &str) -> (StatusCode, Option<String>) {
        match parse_json::<Body>(json.as_bytes()) {
            Ok(_) => (StatusCode::OK, None),
            Err(ApiError::Validation(errors)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(errors.0[0].field.clone()),
            ),
            Err(other) => (other.status(), None),
        }
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_are_422_with_the_field() {
        assert_eq!(status_and_field(r#"{"name":"a"}"#).0, StatusCode::OK);
        assert_eq!(status_and_field(r#"{"name":"#).0, StatusCode::BAD_REQUEST);
        assert_eq!(
            status_and_field(r#"{"name":"a"} x"#).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_and_field("").0, StatusCode::BAD_REQUEST);
        assert_eq!(
            status_and_field(r#"{"name":5}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name".to_owned()))
        );
        assert_eq!(
            status_and_field(r#"{"name":"a","id":1}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("id".to_owned()))
        );
        assert_eq!(
            status_and_field(r#"{"count":1}"#),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name".to_owned()))
        );
        for not_an_object in ["[]", r#"["a", 1]"#, "5", r#""text""#, "null", " [\"a\"]"] {
            assert_eq!(
                status_and_field(not_an_object),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("body".to_owned())),
                "{not_an_object}"
            );
        }
        assert_eq!(status_and_field("[1,"), (StatusCode::BAD_REQUEST, None));
    }

    #[test]
    fn a_body_that_does_not_parse_is_400_whatever_fields_it_names() {
        for broken in [
            r#"{"unknown": "x","#,
            r#"{"count": "not a number"} trailing"#,
            r#"{"name": "a", "id": 1,}"#,
            r#"{"name": "\q"}"#,
            r#"{"name": "a"}{"name": "b"}"#,
        ] {
            assert_eq!(
                status_and_field(broken).0,
                StatusCode::BAD_REQUEST,
                "{broken}"
            );
        }
        let unknown_field_then_bad_utf8 = b"{\"unknown\": 1, \"name\": \"\xff\"}";
        assert!(matches!(
            parse_json::<Body>(unknown_field_then_bad_utf8),
            Err(ApiError::MalformedBody(_))
        ));
    }

    #[test]
    fn invalid_utf8_is_a_400() {
        let bytes = b"{\"name\":\"\xff\"}";
        assert!(matches!(
            parse_json::<Body>(bytes),
            Err(ApiError::MalformedBody(_))
        ));
    }

    #[test]
    fn json_media_types_are_recognised() {
        let mut headers = HeaderMap::new();
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/json ; charset=UTF-8", true),
            ("application/merge-patch+json", false),
            ("application/problem+json", false),
            ("text/json", false),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("application/jsonx", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&headers), ok, "{value}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
