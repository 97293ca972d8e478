//! `Idempotency-Key` on `POST /tasks` and `POST /projects` (API.md "Conventions"): the
//! header, and how a keyed create answers. The exactly-once part is in
//! `store::idempotency`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use crate::domain::ValidationErrors;
use crate::domain::idempotency::IdempotencyKey;
use crate::http::error::ApiError;
use crate::store::idempotency::{KeyedCreate, Once};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` header, as the OpenAPI document describes it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "documents the header; it is parsed by IdempotencyHeader"
)]
pub struct IdempotencyKeyParam {
    /// Makes the create safe to retry: for 24 hours, the same key with the same body (compared
    /// as JSON) replays the first response (`Idempotent-Replayed: true`) and creates nothing;
    /// with another body, 422. 1 to 255 visible ASCII characters (else 400). Keys are the
    /// caller's own, and per route.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        min_length = 1,
        max_length = 255,
        example = "3f1c9a7e-create-report"
    )]
    idempotency_key: Option<String>,
}

/// The request's `Idempotency-Key`, if it sent one. Malformed (empty, over 255 characters,
/// anything but visible ASCII) or sent twice: 400.
#[derive(Debug, Clone)]
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(malformed("must be sent once"));
        }
        IdempotencyKey::parse(value.as_bytes())
            .map(|key| Self(Some(key)))
            .map_err(malformed)
    }
}

fn malformed(why: &str) -> ApiError {
    ApiError::MalformedHeader(format!("the Idempotency-Key header {why}"))
}

impl IdempotencyHeader {
    /// The keyed create, when a key was sent (`digest` is then always there: `KeyedJson`
    /// computes it whenever the header is present).
    pub fn keyed(self, digest: Option<[u8; 32]>) -> Option<KeyedCreate> {
        Some(KeyedCreate::new(self.0?, digest?))
    }
}

/// The response to a keyed create: the resource's (`render`), replays marked as such;
/// another body under the same key is 422 and a key still in flight 409.
pub fn respond<T>(
    outcome: Once<T>,
    render: impl FnOnce(T) -> Response,
) -> Result<Response, ApiError> {
    match outcome {
        Once::Created(resource) => Ok(render(resource)),
        Once::Replayed(resource) => {
            let mut response = render(resource);
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            Ok(response)
        }
        Once::OtherBody => Err(ApiError::Validation(ValidationErrors::single(
            "Idempotency-Key",
            "was already used for a create with a different body; use a new key for a new request",
        ))),
        Once::InFlight => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is still in progress; retry it shortly",
        )),
    }
}
