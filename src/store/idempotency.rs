//! Exactly-once creates (migration V5). Three statements, pipelined in the create's own
//! transaction (one round trip, no decision in between):
//!
//! 1. the claim: insert the key, or take over an expired one. A fresh key that another
//!    request holds is left alone; if that request is still in flight, the unique index makes
//!    this insert wait for its end (bounded by `lock_timeout`), so of any number of requests
//!    with one key, one claims and the others see its committed row;
//! 2. the create, only when this request holds the claim (the route's `INSERT_CLAIMED`),
//!    which also stores the created row in the key's `response`;
//! 3. the earlier response, when another request holds the claim.
//!
//! A create that fails rolls its claim back with it: only a create that succeeded is
//! remembered.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{CallerTransaction, StoreError};
use crate::domain::idempotency::IdempotencyKey;

const CLAIM: &str = "INSERT INTO idempotency_keys AS k (owner_id, route, key, request_digest, claim) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (owner_id, route, key) DO UPDATE \
         SET request_digest = excluded.request_digest, claim = excluded.claim, \
             response = NULL, claimed_at = now() \
         WHERE k.claimed_at < now() - interval '24 hours'";

// The resource as first created, rebuilt from its JSON as a row of its table, so it is read
// exactly as the table's own rows are. The key's columns are named apart from the tables'.
macro_rules! prior {
    ($table:literal, $columns:literal) => {
        concat!(
            "SELECT k.request_digest, ",
            $columns,
            " FROM idempotency_keys k, jsonb_populate_record(NULL::",
            $table,
            ", k.response) r \
             WHERE k.owner_id = $1 AND k.route = '",
            $table,
            "' AND k.key = $2 AND k.claim <> $3 AND k.response IS NOT NULL \
               AND k.claimed_at >= now() - interval '24 hours'"
        )
    };
}

// The create of a keyed request, for the route's own `INSERT … SELECT` (`$insert`, no
// `WHERE`): it runs only when this request holds the key's claim (`$key` and `$claim` name the
// statement's parameters), and it stores the created row in the key's `response`; the created
// row's `$columns` come back.
macro_rules! insert_claimed {
    ($insert:literal, $route:literal, $key:literal, $claim:literal, $($columns:tt)+) => {
        concat!(
            "WITH created AS (",
            $insert,
            " WHERE EXISTS (SELECT 1 FROM idempotency_keys \
                           WHERE owner_id = $1 AND route = '",
            $route,
            "' AND key = ",
            $key,
            " AND claim = ",
            $claim,
            ") RETURNING *), \
             remembered AS ( \
                 UPDATE idempotency_keys k SET response = to_jsonb(created) FROM created \
                 WHERE k.owner_id = $1 AND k.route = '",
            $route,
            "' AND k.key = ",
            $key,
            " AND k.claim = ",
            $claim,
            ") SELECT ",
            $($columns)+,
            " FROM created"
        )
    };
}
pub(super) use insert_claimed;

const PRIOR_TASK: &str = prior!(
    "tasks",
    "id, title, description, status::text, priority::text, due_at, completed_at, version, \
     created_at, updated_at, project_id, labels"
);
const PRIOR_PROJECT: &str = prior!("projects", "id, name, version, created_at, updated_at");

pub(super) const STATEMENTS: [&str; 3] = [CLAIM, PRIOR_TASK, PRIOR_PROJECT];

/// Which create a key belongs to (keys of different routes are unrelated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Tasks,
    Projects,
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tasks => "tasks",
            Self::Projects => "projects",
        }
    }

    fn prior(self) -> &'static str {
        match self {
            Self::Tasks => PRIOR_TASK,
            Self::Projects => PRIOR_PROJECT,
        }
    }
}

/// A create that carries an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct KeyedCreate {
    pub key: IdempotencyKey,
    /// The digest of the request body's canonical JSON.
    pub digest: [u8; 32],
    /// This request's own mark on the claim.
    pub claim: Uuid,
}

impl KeyedCreate {
    pub fn new(key: IdempotencyKey, digest: [u8; 32]) -> Self {
        Self {
            key,
            digest,
            claim: Uuid::new_v4(),
        }
    }
}

/// How a keyed create ended.
#[derive(Debug)]
pub enum Once<T> {
    /// This request created it.
    Created(T),
    /// An earlier request with the same key and body did; this is what it created.
    Replayed(T),
    /// An earlier request with the same key had another body; nothing was created.
    OtherBody,
    /// Another request with the key neither committed nor gave up in time.
    InFlight,
}

/// Runs the claim, the route's conditional create (`create`, issued by the caller between
/// the two statements here) and the look-up of an earlier response, pipelined in this order.
pub(super) async fn create_once<T>(
    tx: &CallerTransaction<'_>,
    owner: Uuid,
    route: Route,
    keyed: &KeyedCreate,
    create: impl Future<Output = Result<Option<Row>, StoreError>>,
    read: impl Fn(&Row, usize) -> Result<T, StoreError>,
) -> Result<Once<T>, StoreError> {
    let route_name = route.as_str();
    let key = keyed.key.as_str();
    let digest = keyed.digest.as_slice();
    let claim: [&(dyn ToSql + Sync); 5] = [&owner, &route_name, &key, &digest, &keyed.claim];
    let prior: [&(dyn ToSql + Sync); 3] = [&owner, &key, &keyed.claim];
    let (claimed, created, prior) = tokio::join!(
        biased;
        tx.execute(CLAIM, &claim),
        create,
        tx.query_opt(route.prior(), &prior),
    );
    claimed?;
    if let Some(row) = created? {
        return Ok(Once::Created(read(&row, 0)?));
    }
    match prior? {
        Some(row) => {
            let earlier: &[u8] = row.try_get(0)?;
            if earlier == digest {
                Ok(Once::Replayed(read(&row, 1)?))
            } else {
                Ok(Once::OtherBody)
            }
        }
        None => Ok(Once::InFlight),
    }
}
