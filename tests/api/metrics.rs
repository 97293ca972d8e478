//! Prometheus metrics on their own listener (`METRICS_ADDR`), scraped over real HTTP. Each
//! server has its own registry, so the counts below are exact, whatever other tests run.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskapi::config::Settings;

use crate::helpers::{PASSWORD, TestApp, database, unique_email};

async fn spawn_with_metrics(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let config = database().await.config.clone();
    TestApp::spawn_with(config, |settings| {
        settings.metrics_addr = Some("127.0.0.1:0".parse().expect("an address"));
        adjust(settings);
    })
    .await
    // Per-address counts live in the shared database: an address of this server's own.
    .with_own_address()
}

/// One sample of the exposition: its labels and value.
#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a scrape, by metric name (histograms as their `_bucket`, `_sum` and
/// `_count` series).
struct Scrape(BTreeMap<String, Vec<Sample>>);

impl Scrape {
    async fn take(app: &TestApp) -> Self {
        let metrics = app.metrics_address.as_ref().expect("a metrics listener");
        let response = app
            .client
            .get(format!("{metrics}/metrics"))
            .send()
            .await
            .expect("the metrics listener answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4"
        );
        Self::parse(&response.text().await.expect("a body"))
    }

    fn parse(text: &str) -> Self {
        let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value = match value {
                "+Inf" => f64::INFINITY,
                value => value.parse().unwrap_or_else(|_| panic!("a number: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            samples
                .entry(name.to_owned())
                .or_default()
                .push(Sample { labels, value });
        }
        Self(samples)
    }

    /// The value of the one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<&Sample> = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no metric {name}"))
            .iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(matching.len(), 1, "{name} {labels:?}: {matching:?}");
        matching[0].value
    }

    fn series(&self, name: &str) -> &[Sample] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }
}

/// `a="x",b="y"`: label values are quoted, with `\"`, `\\` and `\n` escaped.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("name=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("an escaped character").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

const REQUESTS: &str = "taskapi_http_requests_total";

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_show_the_pool_and_the_build() {
    let app = spawn_with_metrics(|_| {}).await;
    let user = app.new_user().await;
    app.create_task(&user, json!({"title": "counted"})).await;
    let missing = format!("/tasks/{}", uuid::Uuid::new_v4());
    let not_found = app.get(&missing, Some(&user.token)).await;
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    let unrouted = app.get("/no/such/thing", None).await;
    assert_eq!(unrouted.status(), StatusCode::NOT_FOUND);
    let custom = app
        .request(Method::from_bytes(b"BREW").unwrap(), "/tasks", None)
        .send()
        .await
        .unwrap();
    assert_eq!(custom.status(), StatusCode::METHOD_NOT_ALLOWED);

    let scrape = Scrape::take(&app).await;
    let count = |method, route, status| {
        scrape.value(
            REQUESTS,
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(count("POST", "/auth/register", "201"), 1.0);
    assert_eq!(count("POST", "/auth/login", "200"), 1.0);
    assert_eq!(count("POST", "/tasks", "201"), 1.0);
    // The route template, never the path with the id in it.
    assert_eq!(count("GET", "/tasks/{id}", "404"), 1.0);
    assert_eq!(count("GET", "unmatched", "404"), 1.0);
    assert_eq!(count("other", "/tasks", "405"), 1.0);
    let routes: Vec<&str> = scrape
        .series(REQUESTS)
        .iter()
        .map(|s| s.labels["route"].as_str())
        .collect();
    assert!(
        !routes.iter().any(|r| r.contains(&missing[7..])),
        "{routes:?}"
    );
    // Scrapes are served apart from the API and not counted as API requests.
    assert!(!routes.contains(&"/metrics"), "{routes:?}");
    assert_eq!(scrape.series(REQUESTS).len(), 6, "{routes:?}");

    let duration = "taskapi_http_request_duration_seconds";
    let created = [("method", "POST"), ("route", "/tasks"), ("status", "201")];
    assert_eq!(scrape.value(&format!("{duration}_count"), &created), 1.0);
    assert!(scrape.value(&format!("{duration}_sum"), &created) > 0.0);
    let buckets: Vec<(String, f64)> = scrape
        .series(&format!("{duration}_bucket"))
        .iter()
        .filter(|s| created.iter().all(|(k, v)| s.labels[*k] == *v))
        .map(|s| (s.labels["le"].clone(), s.value))
        .collect();
    let bounds: Vec<&str> = buckets.iter().map(|(le, _)| le.as_str()).collect();
    assert_eq!(
        bounds,
        [
            "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
            "1", "2.5", "5", "10", "+Inf"
        ]
    );
    // Cumulative, and the one request is in the last one.
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().unwrap().1, 1.0);

    // The test settings' pool: at most 4 connections; nobody waits between requests.
    assert_eq!(scrape.value("taskapi_db_pool_connections_max", &[]), 4.0);
    let open = scrape.value("taskapi_db_pool_connections", &[]);
    assert!((1.0..=4.0).contains(&open), "{open}");
    let idle = scrape.value("taskapi_db_pool_connections_idle", &[]);
    assert!(idle <= open, "{idle} idle of {open}");
    assert_eq!(scrape.value("taskapi_db_pool_waiting", &[]), 0.0);
    assert_eq!(scrape.value("taskapi_password_hash_queue_depth", &[]), 0.0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(
        scrape.value("taskapi_password_hash_queue_capacity", &[]),
        (cores * taskapi::auth::password::QUEUE_PER_WORKER) as f64
    );
    assert_eq!(
        scrape.value(
            "taskapi_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // A second scrape sees the first one's requests again, and no more: counts are kept.
    app.get("/livez", None).await;
    let again = Scrape::take(&app).await;
    assert_eq!(
        again.value(
            REQUESTS,
            &[("method", "POST"), ("route", "/tasks"), ("status", "201")]
        ),
        1.0
    );
    assert_eq!(
        again.value(
            REQUESTS,
            &[("method", "GET"), ("route", "/livez"), ("status", "200")]
        ),
        1.0
    );
}

#[tokio::test]
async fn rejected_logins_are_counted_by_reason() {
    // Room for 11 failures from this address: 10 lock the account, one more is its own.
    let app = spawn_with_metrics(|settings| settings.login_failures_per_address = 11).await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let rejections = |scrape: &Scrape, reason| {
        scrape.value("taskapi_login_rejections_total", &[("reason", reason)])
    };
    let before = Scrape::take(&app).await;
    for reason in [
        "unknown_account",
        "wrong_password",
        "account_locked",
        "address_throttled",
        "hashing_busy",
    ] {
        assert_eq!(rejections(&before, reason), 0.0, "{reason} starts at 0");
    }

    for _ in 0..10 {
        let wrong = app.login(&email, "not the password at all").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // The account is locked now: refused before the password is checked (the address's
    // slot is given back).
    let locked = app.login(&email, PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    // The address's 11th failure, then the address is at its limit.
    let unknown = app.login(&unique_email(), PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let throttled = app.login(&unique_email(), PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

    let after = Scrape::take(&app).await;
    assert_eq!(rejections(&after, "wrong_password"), 10.0);
    assert_eq!(rejections(&after, "account_locked"), 1.0);
    assert_eq!(rejections(&after, "unknown_account"), 1.0);
    assert_eq!(rejections(&after, "address_throttled"), 1.0);
    assert_eq!(rejections(&after, "hashing_busy"), 0.0);
    let login = |status| {
        after.value(
            REQUESTS,
            &[
                ("method", "POST"),
                ("route", "/auth/login"),
                ("status", status),
            ],
        )
    };
    assert_eq!((login("401"), login("429")), (11.0, 2.0));
}

#[tokio::test]
async fn the_api_port_does_not_serve_metrics() {
    let app = spawn_with_metrics(|_| {}).await;
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // And the metrics listener serves nothing but `/metrics`.
    let metrics = app.metrics_address.as_ref().unwrap();
    for path in ["/", "/tasks", "/livez", "/openapi.json"] {
        let other = app.client.get(format!("{metrics}{path}")).send().await;
        assert_eq!(other.unwrap().status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn without_metrics_addr_there_is_no_metrics_listener() {
    let app = TestApp::spawn().await;
    assert_eq!(app.metrics_address, None);
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_metrics_listener_stops_with_the_server() {
    let ready = database().await;
    let mut settings = crate::helpers::settings(ready.config.clone());
    settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let app = taskapi::app::Application::build_on(
        settings,
        taskapi::app::ReadyDatabase {
            config: ready.config.clone(),
            admin_config: ready.admin_config.clone(),
            server: None,
        },
    )
    .await
    .unwrap();
    let metrics = format!("http://{}/metrics", app.metrics_addr().unwrap().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    // A kept-alive connection, as a scraper holds one, must not keep the listener up.
    let client = reqwest::Client::new();
    let scraped = client.get(&metrics).send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let after = reqwest::Client::new().get(&metrics).send().await;
    assert!(
        after.as_ref().is_err_and(reqwest::Error::is_connect),
        "{after:?}"
    );
}
