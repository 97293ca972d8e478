//! The login lock-out policy (API.md "Account security"; OWASP API4:2023). Per account the
//! attempts are counted in PostgreSQL (`store::login_failures`) so the limit holds across
//! instances; per client address they are counted here, in memory, with a higher limit and
//! failures only, so that one locked account never locks out its neighbours.
//!
//! Both counts are taken *before* the password is checked, atomically with the check of the
//! limit, so that a burst of concurrent attempts cannot slip past it: a limit of ten means
//! ten, at any concurrency. A per-address slot is given back when the attempt turns out not
//! to be a failure (a right password, a locked account, an error).
//!
//! Why not a rate-limiting crate (governor, tower-governor): they limit a *rate* (GCRA
//! tokens refilled over time), not "N failures in a fixed window, refunded on success",
//! which is what the contract asks for; the counter is a dozen lines under one mutex.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one account before it is locked.
pub const ACCOUNT_MAX_FAILURES: i32 = 10;
/// The window they are counted in; the lock lasts until it ends.
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Beyond this many tracked addresses, expired entries are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// A fixed-window counter per client address.
#[derive(Debug)]
pub struct AddressThrottle {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    started: Instant,
    count: u32,
}

/// One counted event for an address. Dropped without `keep`, it is given back (the
/// attempt was not a failure after all); `keep` makes it count.
#[derive(Debug)]
#[must_use = "a slot is given back when dropped; call keep() to count it"]
pub struct Slot<'a> {
    throttle: &'a AddressThrottle,
    address: IpAddr,
    window_started: Instant,
    kept: bool,
}

impl Slot<'_> {
    /// The event counts against the address (a failed login, a registration).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut entries = self.throttle.lock();
        if let Some(window) = entries.get_mut(&self.address)
            && window.started == self.window_started
        {
            window.count = window.count.saturating_sub(1);
        }
    }
}

impl AddressThrottle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one slot for `address`, or says how many seconds to wait when the address is
    /// at its limit. The check and the count are one step under one lock.
    pub fn acquire(&self, address: IpAddr) -> Result<Slot<'_>, u64> {
        let mut entries = self.lock();
        if entries.len() > PRUNE_ABOVE {
            let window = self.window;
            entries.retain(|_, w| w.started.elapsed() < window);
        }
        let now = Instant::now();
        let window = entries.entry(address).or_insert(Window {
            started: now,
            count: 0,
        });
        let elapsed = window.started.elapsed();
        if elapsed >= self.window {
            *window = Window {
                started: now,
                count: 0,
            };
        } else if window.count >= self.limit {
            let wait = (self.window - elapsed).as_secs_f64().ceil().max(1.0);
            return Err(wait as u64);
        }
        window.count = window.count.saturating_add(1);
        Ok(Slot {
            throttle: self,
            address,
            window_started: window.started,
            kept: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_is_blocked_at_the_limit_and_only_that_address() {
        let throttle = AddressThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            throttle.acquire(ip(1)).unwrap().keep();
        }
        let retry = throttle.acquire(ip(1)).unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(throttle.acquire(ip(2)).is_ok());
    }

    #[test]
    fn slots_held_at_once_never_exceed_the_limit() {
        let throttle = AddressThrottle::new(3, Duration::from_secs(60));
        let held: Vec<_> = (0..10)
            .filter_map(|_| throttle.acquire(ip(1)).ok())
            .collect();
        assert_eq!(held.len(), 3);
        drop(held);
        // Given back (none kept): the address may try again.
        assert!(throttle.acquire(ip(1)).is_ok());
    }

    #[test]
    fn a_slot_given_back_frees_its_place_and_a_kept_one_does_not() {
        let throttle = AddressThrottle::new(1, Duration::from_secs(60));
        drop(throttle.acquire(ip(1)).unwrap());
        throttle.acquire(ip(1)).unwrap().keep();
        assert!(throttle.acquire(ip(1)).is_err());
    }

    #[test]
    fn the_window_expires() {
        let throttle = AddressThrottle::new(1, Duration::from_millis(20));
        throttle.acquire(ip(1)).unwrap().keep();
        assert!(throttle.acquire(ip(1)).is_err());
        std::thread::sleep(Duration::from_millis(30));
        throttle.acquire(ip(1)).unwrap().keep();
        assert!(throttle.acquire(ip(1)).is_err());
    }
}
