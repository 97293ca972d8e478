//! The `address_attempts` table (migration V6): failed logins and registrations per client
//! address, in PostgreSQL so that a limit holds across API instances (API.md "Account
//! security"; the per-account count is `login_failures`).
//!
//! An attempt is counted *before* it is made, in the one statement that checks the limit
//! (the row lock of `ON CONFLICT DO UPDATE` serialises concurrent attempts), so "300 in 15
//! minutes" means 300 at any concurrency and on any number of instances. An attempt that
//! turns out not to count (a right password, a locked account, an error) is given back.
//!
//! Why not a rate-limiting crate (governor, tower-governor): they limit a *rate* in one
//! process's memory (GCRA tokens refilled over time), not "N failures in a fixed window,
//! refunded on success", shared by every instance, which is what the contract asks for.

use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use super::StoreError;
use crate::db::{Connection, DbError, Pool};

/// What is counted per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// Failed logins (and failed password confirmations).
    Login,
    Registration,
}

impl AttemptKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Registration => "registration",
        }
    }
}

/// A limit: so many attempts per address in a fixed window.
#[derive(Debug, Clone, Copy)]
pub struct AddressLimit {
    pub kind: AttemptKind,
    pub attempts: u32,
    pub window: Duration,
}

// One row, always: the window the attempt was counted in, or (not counted: the address is at
// its limit) the seconds until that window ends, from the statement's snapshot.
const COUNT: &str = concat!(
    "WITH counted AS (",
    count_in_window!(
        into "address_attempts" ("kind, address", "attempts") from "VALUES ($1, $2, 1, now())",
        limit "$3", window "$4", returning "window_started_at"
    ),
    ") \
     SELECT (SELECT window_started_at FROM counted), \
            (SELECT greatest(1, ceil(extract(epoch FROM \
                 a.window_started_at + make_interval(secs => $4) - now())))::int8 \
             FROM address_attempts a \
             WHERE a.kind = $1 AND a.address = $2 AND NOT EXISTS (SELECT 1 FROM counted))"
);

// Only in the window it was counted in: a new window has already forgotten it.
const GIVE_BACK: &str = "UPDATE address_attempts SET attempts = attempts - 1 \
     WHERE kind = $1 AND address = $2 AND window_started_at = $3 AND attempts > 0";

const PURGE_EXPIRED: &str =
    "DELETE FROM address_attempts WHERE window_started_at < now() - make_interval(secs => $1)";

pub(super) const STATEMENTS: [&str; 3] = [COUNT, GIVE_BACK, PURGE_EXPIRED];

/// Why an attempt was not counted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The address is at its limit: try again in so many seconds.
    #[error("too many attempts from this address")]
    AtLimit { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One counted attempt. `keep` makes it count; dropped without `keep` it is given back
/// (in the background when dropped, at once with `give_back`).
#[derive(Debug)]
#[must_use = "an attempt is given back when dropped; call keep() to count it"]
pub struct Attempt {
    pool: Pool,
    kind: AttemptKind,
    address: IpAddr,
    window_started_at: OffsetDateTime,
    settled: bool,
}

/// Counts an attempt from `address`, unless the address is at `limit`.
pub async fn count(pool: &Pool, limit: AddressLimit, address: IpAddr) -> Result<Attempt, Refused> {
    let client = pool.checkout().await.map_err(StoreError::from)?;
    let row = client
        .query_one(
            COUNT,
            &[
                &limit.kind.as_str(),
                &address,
                &i32::try_from(limit.attempts).unwrap_or(i32::MAX),
                &limit.window.as_secs_f64(),
            ],
        )
        .await
        .map_err(StoreError::from)?;
    let counted: Option<OffsetDateTime> = row.try_get(0).map_err(StoreError::from)?;
    match counted {
        Some(window_started_at) => Ok(Attempt {
            pool: pool.clone(),
            kind: limit.kind,
            address,
            window_started_at,
            settled: false,
        }),
        None => {
            let wait: Option<i64> = row.try_get(1).map_err(StoreError::from)?;
            Err(Refused::AtLimit {
                retry_after_secs: wait.and_then(|w| u64::try_from(w).ok()).unwrap_or(1),
            })
        }
    }
}

impl Attempt {
    /// The attempt counts against the address (a failed login, a registration).
    pub fn keep(mut self) {
        self.settled = true;
    }

    /// The attempt does not count after all (a right password): given back now.
    pub async fn give_back(mut self) -> Result<(), StoreError> {
        self.settled = true;
        give_back(&self.pool, self.kind, self.address, self.window_started_at).await
    }
}

impl Drop for Attempt {
    /// Neither kept nor given back: the request ended early (an error, a refusal, a client
    /// that went away). The attempt is given back in the background; if that fails, the
    /// address is charged one attempt too many until its window ends.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (pool, kind, address, window) = (
            self.pool.clone(),
            self.kind,
            self.address,
            self.window_started_at,
        );
        // A server shutting down has closed its pool: the count lapses with its window.
        if self.pool.is_closed() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = give_back(&pool, kind, address, window).await
                    && !pool.is_closed()
                {
                    tracing::warn!(%error, "an attempt could not be given back");
                }
            });
        }
    }
}

/// Deletes the rows whose window (`window` long) has passed; how many.
pub async fn purge_expired(client: &Connection, window: Duration) -> Result<u64, DbError> {
    client
        .execute(PURGE_EXPIRED, &[&window.as_secs_f64()])
        .await
}

async fn give_back(
    pool: &Pool,
    kind: AttemptKind,
    address: IpAddr,
    window_started_at: OffsetDateTime,
) -> Result<(), StoreError> {
    let client = pool.checkout().await?;
    client
        .execute(GIVE_BACK, &[&kind.as_str(), &address, &window_started_at])
        .await?;
    Ok(())
}
