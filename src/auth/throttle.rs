//! Throttling of failed logins (API.md "Account security"; OWASP API4:2023). Per account it
//! is counted in PostgreSQL (`store::throttle`) so the limit holds across instances; per
//! client address it is counted here, in memory, with a higher limit and failures only,
//! so that one locked account never locks out its neighbours.

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

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl AddressThrottle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `address` may try again, if it is over the limit.
    pub fn retry_after(&self, address: IpAddr) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let window = entries.get(&address)?;
        let elapsed = window.started.elapsed();
        (window.count >= self.limit && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Counts one event (a failure, or a registration) for `address`.
    pub fn record(&self, address: IpAddr) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > PRUNE_ABOVE {
            let window = self.window;
            entries.retain(|_, w| w.started.elapsed() < window);
        }
        let now = Instant::now();
        let window = entries.entry(address).or_insert(Window {
            started: now,
            count: 0,
        });
        if window.started.elapsed() >= self.window {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
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
        for _ in 0..2 {
            throttle.record(ip(1));
        }
        assert_eq!(throttle.retry_after(ip(1)), None);
        throttle.record(ip(1));
        let retry = throttle.retry_after(ip(1)).unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(throttle.retry_after(ip(2)), None);
    }

    #[test]
    fn the_window_expires() {
        let throttle = AddressThrottle::new(1, Duration::from_millis(20));
        throttle.record(ip(1));
        assert!(throttle.retry_after(ip(1)).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.retry_after(ip(1)), None);
        throttle.record(ip(1));
        assert!(throttle.retry_after(ip(1)).is_some());
    }
}
