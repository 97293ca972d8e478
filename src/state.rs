//! `AppState`: what every handler shares (pool, token service, hasher, limits). `app`
//! builds it and `http` reads it; neither imports the other.

use std::sync::Arc;

use crate::auth::lockout::AddressThrottle;
use crate::auth::{PasswordHasher, TokenService};
use crate::domain::cursor::CursorKey;

/// What every handler can reach. One `Arc`: axum clones the state for every request.
#[derive(Clone, Debug)]
pub struct AppState(pub(crate) Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state shared by all requests.
#[derive(Debug)]
pub struct Shared {
    pub pool: crate::db::Pool,
    pub tokens: TokenService,
    /// Seals and opens the opaque cursors of `/changes` and `/tasks`.
    pub cursors: CursorKey,
    /// How long the change feed remembers deletions (`CHANGES_RETENTION_DAYS`).
    pub changes_retention: std::time::Duration,
    pub hasher: PasswordHasher,
    /// `/openapi.json`, rendered once.
    pub openapi_json: Arc<String>,
    /// Failed logins per client address (the per-account count is in PostgreSQL).
    pub login_throttle: AddressThrottle,
    /// Registrations per client address.
    pub registration_throttle: AddressThrottle,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl AppState {
    /// A pooled connection for this request (a quick 503 when none can be had). While it
    /// is held, the request deadline waits for the request rather than abandon a
    /// statement that may commit.
    pub async fn database(&self) -> Result<crate::db::Connection, crate::db::DbError> {
        self.pool.checkout().await
    }
}
