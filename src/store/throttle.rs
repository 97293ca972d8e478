//! The `login_failures` table: failed logins per normalised address (see `auth::throttle`
//! for the policy). Rows whose window has passed are purged as new failures arrive.

use deadpool_postgres::Client;

use super::StoreError;
use crate::auth::throttle::ACCOUNT_WINDOW;

const RECORD_FAILURE: &str = "\
    INSERT INTO login_failures AS f (email, failures, window_started_at) VALUES ($1, 1, now()) \
    ON CONFLICT (email) DO UPDATE SET \
        failures = CASE WHEN f.window_started_at > now() - make_interval(secs => $2) \
                        THEN f.failures + 1 ELSE 1 END, \
        window_started_at = CASE WHEN f.window_started_at > now() - make_interval(secs => $2) \
                                 THEN f.window_started_at ELSE now() END";
const PURGE_EXPIRED: &str =
    "DELETE FROM login_failures WHERE window_started_at < now() - make_interval(secs => $1)";
const CLEAR: &str = "DELETE FROM login_failures WHERE email = $1";

pub(super) const STATEMENTS: [&str; 3] = [RECORD_FAILURE, PURGE_EXPIRED, CLEAR];

fn window_secs() -> f64 {
    ACCOUNT_WINDOW.as_secs_f64()
}

/// Counts one failed login (or wrong password confirmation) for `email`.
pub async fn record_failure(client: &Client, email: &str) -> Result<(), StoreError> {
    let (record, purge) = tokio::join!(
        client.prepare_cached(RECORD_FAILURE),
        client.prepare_cached(PURGE_EXPIRED)
    );
    let (record, purge) = (record?, purge?);
    let window = window_secs();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&email, &window];
    let (recorded, purged) = tokio::join!(
        client.execute(&record, &params),
        client.execute(&purge, &params[1..])
    );
    recorded?;
    purged?;
    Ok(())
}

/// A successful login clears the account's count.
pub async fn clear(client: &Client, email: &str) -> Result<(), StoreError> {
    let statement = client.prepare_cached(CLEAR).await?;
    client.execute(&statement, &[&email]).await?;
    Ok(())
}
