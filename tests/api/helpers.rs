//! The test harness: one real PostgreSQL per test binary (a private, throwaway cluster
//! unless `DATABASE_URL` is set), and one real server per test on 127.0.0.1:0.
//! Tests isolate themselves by registering fresh random users.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use taskapi::app::{Application, ReadyDatabase};
use taskapi::config::{Database, SecretKey, Settings};
use taskapi::db::{Endpoint, private};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const SECRET: &[u8] = b"test-secret-key-that-is-at-least-32-bytes-long";
pub const PASSWORD: &str = "correct horse battery staple";

static DATABASE: OnceCell<Arc<ReadyDatabase>> = OnceCell::const_new();

/// The migrated database shared by the tests of this binary.
pub async fn database() -> &'static ReadyDatabase {
    DATABASE
        .get_or_init(|| async {
            let target = match std::env::var("DATABASE_URL") {
                Ok(url) => Database::External {
                    app: Box::new(
                        Endpoint::parse(&url, "DATABASE_URL").expect("DATABASE_URL must be valid"),
                    ),
                    // The owner, for migrations and for the checks behind the API's back.
                    owner: std::env::var("DATABASE_OWNER_URL").ok().map(|owner| {
                        Box::new(
                            Endpoint::parse(&owner, "DATABASE_OWNER_URL")
                                .expect("DATABASE_OWNER_URL must be valid"),
                        )
                    }),
                },
                Err(_) => Database::Private(private::Options::new(
                    std::env::temp_dir().join(format!("taskapi-test-{}", Uuid::new_v4())),
                    true,
                )),
            };
            Arc::new(
                ReadyDatabase::prepare(&target)
                    .await
                    .expect("the test database should start"),
            )
        })
        .await
}

/// How the test servers send statements: prepared (the default), or unnamed with
/// `TEST_STATEMENTS=unnamed`, so the whole suite can run the way a transaction pooler
/// needs (CI runs it both ways).
pub fn statement_mode() -> taskapi::db::StatementMode {
    match std::env::var("TEST_STATEMENTS").as_deref() {
        Ok("unnamed") => taskapi::db::StatementMode::Unnamed,
        Ok("prepared") | Err(_) => taskapi::db::StatementMode::Prepared,
        Ok(other) => panic!("TEST_STATEMENTS must be prepared or unnamed, not {other:?}"),
    }
}

/// Settings for a server on `config` (a `tokio_postgres::Config` is taken as libpq would
/// take its `sslmode` without `sslrootcert`).
pub fn settings(config: impl Into<Endpoint>) -> Settings {
    Settings {
        database: Database::External {
            app: Box::new(config.into()),
            owner: None,
        },
        secret_key: SecretKey::new(SECRET.to_vec()).expect("the test key is long enough"),
        access_token_expire_minutes: 30,
        host: "127.0.0.1".to_owned(),
        port: 0,
        database_pool_size: 4,
        cors_allowed_origins: Vec::new(),
        trusted_proxies: Vec::new(),
        // The per-address counts live in the shared test database, and every test's
        // client is 127.0.0.1: tests of those limits use an address of their own
        // (`with_own_address`), the rest must never meet them.
        login_failures_per_address: 1_000_000,
        registrations_per_address: 1_000_000,
        database_timeouts: Default::default(),
        statement_mode: statement_mode(),
        request_timeout: taskapi::http::deadline::REQUEST_TIMEOUT,
        allow_rls_bypass: false,
        changes_retention: std::time::Duration::from_secs(30 * 86_400),
        metrics_addr: None,
    }
}

/// A random address in 127.0.0.0/8 (which all routes to this machine).
pub fn random_loopback() -> std::net::IpAddr {
    let [a, b, c, ..] = Uuid::new_v4().into_bytes();
    std::net::IpAddr::from([127, a, b, c.clamp(1, 254)])
}

/// A client whose connections come from `address`.
pub fn loopback_client(address: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(address)
        .build()
        .expect("client")
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    /// `http://host:port` of the metrics listener, when the settings asked for one.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub db_config: Endpoint,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}

impl TestApp {
    pub async fn spawn() -> Self {
        let config = database().await.config.clone();
        Self::spawn_on(config).await
    }

    /// A server on a database reached through `config` (already migrated).
    pub async fn spawn_on(config: impl Into<Endpoint>) -> Self {
        Self::spawn_with(config, |_| {}).await
    }

    /// A server with settings adjusted by `adjust`.
    pub async fn spawn_with(
        config: impl Into<Endpoint>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        let config = config.into();
        let admin_config = database().await.admin_config.clone();
        let ready = ReadyDatabase {
            config: config.clone(),
            admin_config: admin_config.clone(),
            server: None,
        };
        let mut settings = settings(config.clone());
        adjust(&mut settings);
        let app = Application::build_on(settings, ready)
            .await
            .expect("the application should start");
        let address = format!("http://{}", app.local_addr().expect("bound"));
        let metrics_address = app
            .metrics_addr()
            .expect("bound")
            .map(|metrics| format!("http://{metrics}"));
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            address,
            metrics_address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            db_config: admin_config,
        }
    }

    /// This server, through a client of its own connecting from a random loopback address
    /// (127.x.y.z), whose per-address counts no other test shares.
    pub fn with_own_address(mut self) -> Self {
        self.client = loopback_client(random_loopback());
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        self.request(method, path, token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.send_json(
            Method::POST,
            "/auth/register",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.send_json(
            Method::POST,
            "/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// A login attempt that owns its inputs (for spawning many at once); its status.
    pub fn login_owned(
        &self,
        email: String,
        password: String,
    ) -> impl std::future::Future<Output = StatusCode> + Send + 'static {
        let request = self
            .client
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": password}));
        async move { request.send().await.expect("request sent").status() }
    }

    /// Registers and logs in a fresh user.
    pub async fn new_user(&self) -> TestUser {
        let email = unique_email();
        let registered = self.register(&email, PASSWORD).await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        let id = json_body(registered).await["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("an id");
        let login = self.login(&email, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK);
        let token = json_body(login).await["access_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        TestUser { id, email, token }
    }

    /// Creates a task for `user` and returns its JSON.
    pub async fn create_task(&self, user: &TestUser, body: Value) -> Value {
        let response = self
            .send_json(Method::POST, "/tasks", Some(&user.token), &body)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "creating {body}");
        json_body(response).await
    }

    /// A direct connection to the database with the owner's (or superuser's) rights, for
    /// checks behind the API's back.
    pub async fn db(&self) -> tokio_postgres::Client {
        taskapi::db::connect(&self.db_config)
            .await
            .expect("db connection")
    }
}

pub async fn json_body(response: Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an RFC 9457 problem with `status`, and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body = json_body(response).await;
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    let text = body.to_string().to_lowercase();
    for leak in [
        "select ",
        "insert ",
        "update tasks",
        "argon2",
        "$argon",
        "eyj",
        "panicked",
    ] {
        assert!(!text.contains(leak), "problem leaks {leak:?}: {text}");
    }
    body
}

/// The fields named in a 422's `errors`.
pub async fn assert_invalid_fields(response: Response) -> Vec<String> {
    let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    body["errors"]
        .as_array()
        .expect("errors on a 422")
        .iter()
        .map(|e| {
            assert!(e["message"].is_string());
            e["field"].as_str().expect("a field").to_owned()
        })
        .collect()
}
