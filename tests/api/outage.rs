//! A database that goes away mid-life gives a quick 503, never a hang or a 500
//! (API.md "Conventions"). The outage is real: the server reaches PostgreSQL through a
//! proxy that the test shuts down, dropping every connection.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_postgres::config::Host;

use crate::helpers::{TestApp, assert_problem, database};

/// Forwards TCP connections to the test database until dropped (byte for byte: the TLS
/// tests use it as a server that refuses TLS).
pub struct Proxy {
    pub port: u16,
    tasks: JoinSet<()>,
}

impl Proxy {
    pub async fn start(upstream: &tokio_postgres::Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let host = upstream.get_hosts()[0].clone();
        let upstream_port = upstream.get_ports().first().copied().unwrap_or(5432);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                let host = host.clone();
                connections.spawn(async move {
                    match host {
                        Host::Unix(dir) => {
                            let path = dir.join(format!(".s.PGSQL.{upstream_port}"));
                            let mut server = tokio::net::UnixStream::connect(path).await.unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                        Host::Tcp(name) => {
                            let mut server =
                                tokio::net::TcpStream::connect((name.as_str(), upstream_port))
                                    .await
                                    .unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }
                });
            }
        });
        Self { port, tasks }
    }

    /// The outage: stop accepting and cut every open connection.
    fn cut(mut self) {
        self.tasks.abort_all();
    }
}

fn only_tcp(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut clean = tokio_postgres::Config::new();
    clean
        .user(config.get_user().unwrap_or("postgres"))
        .dbname(config.get_dbname().unwrap_or("postgres"));
    if let Some(password) = config.get_password() {
        clean.password(password);
    }
    clean
}

#[tokio::test]
async fn an_unreachable_database_gives_a_quick_503_on_health_and_task_routes() {
    let upstream = database().await.config.driver_config().clone();
    let proxy = Proxy::start(&upstream).await;
    let mut config = only_tcp(&upstream);
    config.host("127.0.0.1").port(proxy.port);
    let app = TestApp::spawn_on(config).await;
    let user = app.new_user().await;
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/tasks", Some(&user.token)).await.status(),
        StatusCode::OK
    );

    proxy.cut();

    for path in ["/health", "/tasks", "/health", "/auth/me", "/tasks"] {
        let started = Instant::now();
        let response =
            tokio::time::timeout(Duration::from_secs(10), app.get(path, Some(&user.token)))
                .await
                .expect("a 503, not a hang");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            started.elapsed()
        );
        let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(!problem.to_string().contains("127.0.0.1"));
    }
}
