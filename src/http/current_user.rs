//! `CurrentUser`: its presence among a handler's arguments is the protection. It accepts
//! only `Authorization: Bearer <valid token>`; anything else is a 401 with
//! `WWW-Authenticate: Bearer` before the handler runs.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::Caller;

/// The caller, as proven by a valid access token. That the token is still current (the
/// account exists, its token version matches, the token was not logged out) is checked by
/// the request's own database round trip (`store::as_caller` and the auth statements).
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub id: Uuid,
    pub token_version: i32,
    pub token_id: Uuid,
    /// When the token expires (Unix seconds): how long a revocation must be kept.
    pub expires_at: i64,
}

impl CurrentUser {
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.id,
            token_version: self.token_version,
            token_id: self.token_id,
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ))?;
        let claims = state.tokens.verify(token).map_err(|error| {
            tracing::debug!(%error, "token refused");
            ApiError::Unauthorized("the access token is invalid or expired")
        })?;
        Ok(Self {
            id: claims.sub,
            token_version: claims.ver,
            token_id: claims.jti,
            expires_at: claims.exp,
        })
    }
}
