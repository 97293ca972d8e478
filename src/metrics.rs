//! Prometheus metrics (`METRICS_ADDR`; the list is in docs/OPERATIONS.md): what the request
//! path and the login handler record, and what is sampled when a scrape asks (the pool, the
//! hashing queue). Each server has its own registry, held in its state: nothing global, so
//! the many servers of one test process never see each other's counts (DECISIONS.md).

use std::sync::Arc;
use std::time::Duration;

use crate::db::Pool;
use axum::http::{Method, StatusCode};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::auth::PasswordHasher;

/// The exposition format the scrape answers in (`text/plain; version=0.0.4`).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Request-duration buckets, in seconds: 0.5 ms (a cached read) to 10 s (near the deadline).
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `route` label of a request no route matched: one value, whatever the path, so that
/// clients cannot grow the number of series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Why a login was refused (`taskapi_login_rejections_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRejection {
    /// No account has that email (401, after the same hashing work as a wrong password).
    UnknownAccount,
    /// The account exists and the password is wrong (401).
    WrongPassword,
    /// The account has had 10 failures in the window (429, no hashing).
    AccountLocked,
    /// The client address has reached `LOGIN_FAILURES_PER_ADDRESS` (429, no hashing).
    AddressThrottled,
    /// The hashing queue was full (503).
    HashingBusy,
}

impl LoginRejection {
    pub const ALL: [Self; 5] = [
        Self::UnknownAccount,
        Self::WrongPassword,
        Self::AccountLocked,
        Self::AddressThrottled,
        Self::HashingBusy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownAccount => "unknown_account",
            Self::WrongPassword => "wrong_password",
            Self::AccountLocked => "account_locked",
            Self::AddressThrottled => "address_throttled",
            Self::HashingBusy => "hashing_busy",
        }
    }
}

/// A metric could not be defined or rendered (a bug: never the client's doing).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The server's metrics; cheap to clone. `disabled()` (no `METRICS_ADDR`) records nothing,
/// so a server without metrics pays one branch per request.
#[derive(Clone, Debug, Default)]
pub struct Metrics(Option<Arc<Recorders>>);

#[derive(Debug)]
struct Recorders {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// One counter per `LoginRejection`, in `LoginRejection::ALL` order: no label lookup.
    login_rejections: [IntCounter; LoginRejection::ALL.len()],
}

impl Metrics {
    pub fn disabled() -> Self {
        Self(None)
    }

    /// A fresh registry with every metric, the pool and the hasher sampled at each scrape.
    pub fn new(pool: Pool, hasher: PasswordHasher) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let request_labels = ["method", "route", "status"];
        let http_requests = IntCounterVec::new(
            Opts::new(
                "taskapi_http_requests_total",
                "HTTP requests answered, by method, matched route template and status",
            ),
            &request_labels,
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "taskapi_http_request_duration_seconds",
                "Time from receiving a request to its response headers, by method, matched \
                 route template and status",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &request_labels,
        )?;
        let rejections = IntCounterVec::new(
            Opts::new(
                "taskapi_login_rejections_total",
                "Logins refused (POST /auth/login), by reason",
            ),
            &["reason"],
        )?;
        // Every reason from the start, at 0: a rate over a series that appears late is wrong.
        let login_rejections =
            LoginRejection::ALL.map(|r| rejections.with_label_values(&[r.label()]));
        let build_info = IntGaugeVec::new(
            Opts::new(
                "taskapi_build_info",
                "Always 1; the version of the running binary",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(rejections))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(SampledAtScrape::new(pool, hasher)?))?;
        Ok(Self(Some(Arc::new(Recorders {
            registry,
            http_requests,
            http_duration,
            login_rejections,
        }))))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Counts one answered request and its duration. `route` is the matched route template
    /// (`/tasks/{id}`), never the path: the label values stay a small fixed set.
    pub fn record_request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let Some(recorders) = &self.0 else {
            return;
        };
        // Borrowed strings: a lookup by their hash under a read lock, no allocation once the
        // series exists.
        let labels = [
            method_label(method),
            route.unwrap_or(UNMATCHED_ROUTE),
            status.as_str(),
        ];
        recorders.http_requests.with_label_values(&labels).inc();
        recorders
            .http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn login_rejected(&self, reason: LoginRejection) {
        if let Some(recorders) = &self.0 {
            // Declaration order is `ALL`'s order (a test checks it).
            recorders.login_rejections[reason as usize].inc();
        }
    }

    /// Every metric in the text exposition format (empty when disabled).
    pub fn render(&self) -> Result<String, MetricsError> {
        let Some(recorders) = &self.0 else {
            return Ok(String::new());
        };
        let mut text = Vec::new();
        TextEncoder::new().encode(&recorders.registry.gather(), &mut text)?;
        // The encoder writes only `str`s; a failure here would be its bug.
        String::from_utf8(text).map_err(|e| MetricsError(prometheus::Error::Msg(e.to_string())))
    }
}

/// The method as a label: the standard ones by name, any other (a client may send any
/// token) as `other`, so that clients cannot grow the number of series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Gauges read from their source when a scrape gathers them, not kept up to date by a loop:
/// a scrape every 15 s costs a handful of atomic loads, and no value is ever stale.
struct SampledAtScrape {
    pool: Pool,
    hasher: PasswordHasher,
    pool_max: IntGauge,
    pool_open: IntGauge,
    pool_idle: IntGauge,
    pool_waiting: IntGauge,
    hash_queue_depth: IntGauge,
    hash_queue_capacity: IntGauge,
}

impl SampledAtScrape {
    fn new(pool: Pool, hasher: PasswordHasher) -> Result<Self, prometheus::Error> {
        Ok(Self {
            pool,
            hasher,
            pool_max: IntGauge::new(
                "taskapi_db_pool_connections_max",
                "Database connections the pool may open (DATABASE_POOL_SIZE)",
            )?,
            pool_open: IntGauge::new(
                "taskapi_db_pool_connections",
                "Database connections open, in use or idle",
            )?,
            pool_idle: IntGauge::new(
                "taskapi_db_pool_connections_idle",
                "Database connections open and idle in the pool",
            )?,
            pool_waiting: IntGauge::new(
                "taskapi_db_pool_waiting",
                "Requests waiting for a database connection",
            )?,
            hash_queue_depth: IntGauge::new(
                "taskapi_password_hash_queue_depth",
                "Password hashes waiting for a hashing thread",
            )?,
            hash_queue_capacity: IntGauge::new(
                "taskapi_password_hash_queue_capacity",
                "Password hashes that may wait before a login or registration is refused (503)",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 6] {
        [
            &self.pool_max,
            &self.pool_open,
            &self.pool_idle,
            &self.pool_waiting,
            &self.hash_queue_depth,
            &self.hash_queue_capacity,
        ]
    }
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Collector for SampledAtScrape {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let pool = self.pool.status();
        self.pool_max.set(gauge_value(pool.max_size));
        self.pool_open.set(gauge_value(pool.size));
        self.pool_idle.set(gauge_value(pool.available));
        self.pool_waiting.set(gauge_value(pool.waiting));
        self.hash_queue_depth
            .set(gauge_value(self.hasher.queue_depth()));
        self.hash_queue_capacity
            .set(gauge_value(self.hasher.queue_capacity()));
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        let custom = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }

    #[test]
    fn every_rejection_indexes_its_own_counter() {
        for (index, reason) in LoginRejection::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, index, "{reason:?}");
        }
    }

    #[test]
    fn a_disabled_recorder_records_and_renders_nothing() {
        let metrics = Metrics::disabled();
        metrics.record_request(&Method::GET, None, StatusCode::OK, Duration::ZERO);
        metrics.login_rejected(LoginRejection::WrongPassword);
        assert!(!metrics.is_enabled());
        assert_eq!(metrics.render().unwrap(), "");
    }
}
