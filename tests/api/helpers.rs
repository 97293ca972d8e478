//! The test harness: one real PostgreSQL per test binary (a private, throwaway cluster
//! unless `DATABASE_URL` is set), and one real server per test on 127.0.0.1:0.
//! Tests isolate themselves by registering fresh random users.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use taskapi::app::{Application, ReadyDatabase};
use taskapi::config::{Database, SecretKey, Settings};
use taskapi::db::private;
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
                    app: Box::new(url.parse().expect("DATABASE_URL must be valid")),
                    // The owner, for migrations and for the checks behind the API's back.
                    owner: std::env::var("DATABASE_OWNER_URL").ok().map(|owner| {
                        Box::new(owner.parse().expect("DATABASE_OWNER_URL must be valid"))
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

pub fn settings(config: tokio_postgres::Config) -> Settings {
    Settings {
        database: Database::External {
            app: Box::new(config),
            owner: None,
        },
        secret_key: SecretKey::new(SECRET.to_vec()).expect("the test key is long enough"),
        access_token_expire_minutes: 30,
        host: "127.0.0.1".to_owned(),
        port: 0,
        database_pool_size: 4,
        cors_allowed_origins: Vec::new(),
        trusted_proxies: Vec::new(),
        login_failures_per_address: 300,
        registrations_per_address: 10_000,
        database_timeouts: Default::default(),
        statement_mode: Default::default(),
        request_timeout: taskapi::http::deadline::REQUEST_TIMEOUT,
        allow_rls_bypass: false,
        changes_retention: std::time::Duration::from_secs(30 * 86_400),
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db_config: tokio_postgres::Config,
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
    pub async fn spawn_on(config: tokio_postgres::Config) -> Self {
        Self::spawn_with(config, |_| {}).await
    }

    /// A server with settings adjusted by `adjust`.
    pub async fn spawn_with(
        config: tokio_postgres::Config,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
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
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            db_config: admin_config,
        }
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
