//! Our extractors: every rejection speaks problem+json with the status API.md names
//! (415 wrong media type, 413 too large, 400 unparseable, 422 invalid, 404 bad id).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::ValidationErrors;
use crate::http::error::ApiError;
use crate::state::AppState;

/// A JSON body, deserialised strictly: unknown fields and wrong types are 422, with the
/// offending field named.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 17
            && essence[..12].eq_ignore_ascii_case("application/")
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                    _ => ApiError::MalformedBody("the request body could not be read".to_owned()),
                })?;
        parse_json(&bytes).map(Self)
    }
}

/// Syntax errors (bad JSON, invalid UTF-8, trailing data) are 400; data that does not fit
/// the expected shape is 422.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is a JSON object. serde would also read a struct from an array, by
    // position (`["title"]`), so anything else is refused here first.
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| b != b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => {
                    ApiError::Validation(ValidationErrors::single("body", "must be a JSON object"))
                }
                Err(error) => classify(error, ""),
            },
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
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

/// serde names unknown and missing fields only in its message (`unknown field `x``).
fn field_name(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_owned();
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

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(Self(client_address(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

/// A task id from the path. Anything that is not a UUID is a 404, like a missing task.
#[derive(Debug, Clone, Copy)]
pub struct TaskId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for TaskId {
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
    fn invalid_utf8_is_a_400() {
        let bytes = b"{\"name\":\"\xff\"}";
        assert!(matches!(
            parse_json::<Body>(bytes),
            Err(ApiError::MalformedBody(_))
        ));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.1".parse().unwrap(),
        );
        let peer: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(client_address(peer, &headers, &[proxy]), peer);
        assert_eq!(
            client_address(proxy, &headers, &[proxy]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }

    #[test]
    fn json_media_types_are_recognised() {
        let mut headers = HeaderMap::new();
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
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
