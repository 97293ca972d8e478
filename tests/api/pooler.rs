//! Through a real PgBouncer in transaction mode (Debian's package; 1.18 there, which keeps
//! no prepared statements): with `DATABASE_PREPARED_STATEMENTS=false` every route works
//! while a handful of server connections are shared by many more client connections, and
//! migrations through the pooler are refused with a clear message.
//!
//! PgBouncer is not part of "nothing set up": without `/usr/sbin/pgbouncer` these tests say
//! so and pass, unless `REQUIRE_PGBOUNCER=1` (CI installs PgBouncer and sets it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_postgres::config::Host;
use uuid::Uuid;

use taskapi::db::private;

use crate::helpers::{TestApp, database, json_body};

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";
/// Server connections per (database, user): far fewer than the API's pool, so client
/// connections keep landing on server connections other clients used last.
const SERVER_CONNECTIONS: u32 = 2;

/// A PgBouncer process in front of the test database, stopped when dropped.
struct Bouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Bouncer {
    /// `None` (after saying why) when PgBouncer is not installed and not required.
    async fn start() -> Option<Self> {
        if !Path::new(PGBOUNCER).exists() {
            assert!(
                std::env::var("REQUIRE_PGBOUNCER").as_deref() != Ok("1"),
                "REQUIRE_PGBOUNCER=1 but {PGBOUNCER} is missing (apt-get install pgbouncer)"
            );
            eprintln!("skipped: {PGBOUNCER} is not installed (apt-get install pgbouncer)");
            return None;
        }
        Some(Self::spawn().await)
    }

    async fn spawn() -> Self {
        let ready = database().await;
        let (socket_dir, port) = unix_socket(ready.config.driver_config());
        let superuser = ready
            .admin_config
            .driver_config()
            .get_user()
            .expect("a superuser")
            .to_owned();
        let dbname = ready
            .config
            .driver_config()
            .get_dbname()
            .expect("a database")
            .to_owned();
        let listen_port = free_port();
        let dir = std::env::temp_dir().join(format!("taskapi-pgbouncer-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // `auth_type = any`: each database entry names the user PgBouncer logs in as (the
        // test cluster trusts its socket); `app` is the API's role, `admin` the superuser.
        let ini = format!(
            "[databases]\n\
             app = host={socket} port={port} dbname={dbname} user=taskapi_app\n\
             admin = host={socket} port={port} dbname={dbname} user={superuser}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {listen_port}\n\
             unix_socket_dir =\n\
             auth_type = any\n\
             pool_mode = transaction\n\
             default_pool_size = {SERVER_CONNECTIONS}\n\
             max_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            socket = socket_dir.display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        let mut command = Command::new(PGBOUNCER);
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // PgBouncer refuses to run as root: as root, it runs as the `postgres` user, like
        // the test cluster itself.
        if let Some(private::RunAs { uid, gid }) = private::run_as().expect("the postgres user") {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        let child = command.spawn().expect("pgbouncer starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen; its log: {}",
                std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            port: listen_port,
            dir,
        }
    }

    /// Connection settings for one of the pooler's databases (`app` or `admin`).
    fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("any")
            .dbname(database);
        config
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unix_socket(config: &tokio_postgres::Config) -> (PathBuf, u16) {
    let Some(Host::Unix(dir)) = config.get_hosts().first() else {
        panic!("the pooler tests need the private test cluster (a Unix socket), not DATABASE_URL");
    };
    (
        dir.clone(),
        config.get_ports().first().copied().unwrap_or(5432),
    )
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn unnamed_statements_serve_every_route_through_a_transaction_pooler() {
    let Some(bouncer) = Bouncer::start().await else {
        return;
    };
    let app = TestApp::spawn_with(bouncer.config("app"), |settings| {
        settings.statement_mode = taskapi::db::StatementMode::Unnamed;
        settings.database_pool_size = 8;
    })
    .await;
    let app = std::sync::Arc::new(app);
    // Four users at once, each creating, reading, patching, listing, syncing and deleting:
    // 8 client connections over 2 server connections, so transactions of different client
    // connections keep landing on the same server connection.
    let mut users = JoinSet::new();
    for _ in 0..4 {
        let app = app.clone();
        users.spawn(async move {
            let user = app.new_user().await;
            let token = Some(user.token.as_str());
            let mut ids = Vec::new();
            for n in 0..5 {
                let response = app
                    .send_json(
                        Method::POST,
                        "/tasks",
                        token,
                        &json!({"title": format!("task {n}"), "labels": ["pooled"]}),
                    )
                    .await;
                assert_eq!(response.status(), StatusCode::CREATED);
                ids.push(json_body(response).await["id"].as_str().unwrap().to_owned());
            }
            let keyed = app
                .request(Method::POST, "/tasks", token)
                .header("Idempotency-Key", Uuid::new_v4().to_string())
                .json(&json!({"title": "once"}));
            let first = keyed.try_clone().unwrap().send().await.unwrap();
            assert_eq!(first.status(), StatusCode::CREATED);
            let replay = keyed.send().await.unwrap();
            assert_eq!(replay.status(), StatusCode::CREATED);
            assert_eq!(replay.headers()["idempotent-replayed"], "true");
            let patched = app
                .send_json(
                    Method::PATCH,
                    &format!("/tasks/{}", ids[0]),
                    token,
                    &json!({"status": "done"}),
                )
                .await;
            assert_eq!(patched.status(), StatusCode::OK);
            let one = app.get(&format!("/tasks/{}", ids[1]), token).await;
            assert_eq!(one.status(), StatusCode::OK);
            let list = json_body(app.get("/tasks?label=pooled&limit=3", token).await).await;
            assert_eq!(list["total"], 5);
            assert_eq!(list["items"].as_array().unwrap().len(), 3);
            let changes = json_body(app.get("/changes?limit=100", token).await).await;
            assert_eq!(changes["changes"].as_array().unwrap().len(), 6);
            let deleted = app
                .request(Method::DELETE, &format!("/tasks/{}", ids[2]), token)
                .send()
                .await
                .unwrap();
            assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
            let me = app.get("/auth/me", token).await;
            assert_eq!(me.status(), StatusCode::OK);
        });
    }
    while let Some(done) = users.join_next().await {
        done.expect("every route answered through the pooler");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_through_a_transaction_pooler_are_refused_clearly() {
    let Some(bouncer) = Bouncer::start().await else {
        return;
    };
    let error = taskapi::db::migrate(
        &bouncer.config("admin").into(),
        Some(taskapi::db::OWNER_ROLE),
    )
    .await
    .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("direct connection") && message.contains("DATABASE_OWNER_URL"),
        "{message}"
    );
    // A direct connection to the same database migrates (nothing pending: 0 applied).
    let direct = &database().await.admin_config;
    assert_eq!(
        taskapi::db::migrate(direct, Some(taskapi::db::OWNER_ROLE))
            .await
            .expect("a direct connection migrates"),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_behind_a_transaction_pooler_sets_its_timeouts_in_every_transaction() {
    let Some(bouncer) = Bouncer::start().await else {
        return;
    };
    // Prepared statements (none here), so only the pooler itself can be what is detected.
    let opens = |endpoint: taskapi::db::Endpoint| async move {
        let pool = taskapi::db::pool(
            endpoint,
            2,
            Default::default(),
            Vec::new(),
            Default::default(),
        )
        .expect("a pool");
        pool.ready_statements().await.expect("ready");
        let connection = pool.checkout().await.expect("a connection");
        (connection.begin().to_owned(), connection.gathers())
    };
    let (pooled, pooled_gathers) = opens(bouncer.config("app").into()).await;
    assert!(pooled.contains("SET LOCAL lock_timeout"), "{pooled}");
    // Behind the pooler each statement goes out between BEGIN and COMMIT; straight to the
    // server, a caller's statements are gathered under one Sync (db::pipeline). Nothing
    // else in the suite would notice if the gathered path were never taken: both work.
    assert!(!pooled_gathers);
    let (direct, direct_gathers) = opens(database().await.config.clone()).await;
    assert_eq!(direct, "BEGIN");
    assert!(direct_gathers);
}
