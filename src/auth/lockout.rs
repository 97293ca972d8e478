//! The login lock-out policy (API.md "Account security"; OWASP API4:2023). Both counts live
//! in PostgreSQL, so that the limits hold across instances: per account in
//! `store::login_failures` (these constants), per client address in
//! `store::address_attempts` (a higher limit, `LOGIN_FAILURES_PER_ADDRESS`, failures only, so
//! that one locked account never locks out its neighbours).
//!
//! Both counts are taken *before* the password is checked, atomically with the check of the
//! limit, so that a burst of concurrent attempts cannot slip past it: a limit of ten means
//! ten, at any concurrency. An attempt is given back when it turns out not to be a failure
//! (a right password, a locked account, an error).

use std::time::Duration;

/// Failures of one account before it is locked.
pub const ACCOUNT_MAX_FAILURES: i32 = 10;
/// The window they are counted in (the per-address windows too); the lock lasts until it
/// ends.
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
