//! TLS to PostgreSQL, against a real server: one private cluster for all these tests, also
//! listening on 127.0.0.1 with `ssl = on` and a certificate for `localhost` (and only that
//! name) signed by a CA made here with the `openssl` command. The API is started with each
//! `sslmode` and must serve, or refuse to start, as libpq would; `pg_stat_ssl` says whether
//! its connections are really encrypted.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use taskapi::app::{Application, ReadyDatabase, StartupError};
use taskapi::config::Database;
use taskapi::db::tls::TlsPolicy;
use taskapi::db::{self, Endpoint, private};
use tokio::sync::OnceCell;

use crate::helpers::{PASSWORD, TestApp, database, settings, unique_email};

/// In every URL below, so that the messages can be checked not to show it.
const URL_PASSWORD: &str = "not-to-be-shown";

/// The TLS-enabled cluster, its TCP port and the CA files.
struct TlsServer {
    ready: ReadyDatabase,
    port: u16,
    /// Signed the server's certificate.
    ca: PathBuf,
    /// Signed nothing the server shows.
    wrong_ca: PathBuf,
}

static TLS_SERVER: OnceCell<TlsServer> = OnceCell::const_new();

async fn tls_server() -> &'static TlsServer {
    TLS_SERVER.get_or_init(start_tls_server).await
}

async fn start_tls_server() -> TlsServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let data_dir = std::env::temp_dir().join(format!("taskapi-tls-{}", uuid::Uuid::new_v4()));
    let options = private::Options {
        loopback_port: Some(port),
        ..private::Options::new(&data_dir, true)
    };
    // Started, with its roles and database, and migrated, as the private server always is.
    let ready = ReadyDatabase::prepare(&Database::Private(options))
        .await
        .expect("the TLS test cluster should start");
    let cluster = ready
        .server
        .as_ref()
        .expect("a private server")
        .cluster_dir();
    let owner = std::fs::metadata(cluster).expect("the cluster directory");

    let certs = data_dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certificates(&certs);
    for name in ["server.crt", "server.key"] {
        let installed = cluster.join(name);
        std::fs::copy(certs.join(name), &installed).unwrap();
        // PostgreSQL wants its key private and owned by its own OS user.
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&installed, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    // The watchdog removes the ephemeral data directory as the server's user.
    for entry in std::fs::read_dir(&certs).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    std::os::unix::fs::chown(&certs, Some(owner.uid()), Some(owner.gid())).unwrap();
    // TCP from the loopback, with or without TLS; the password is not what is tested.
    std::fs::write(
        cluster.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let admin = db::connect(&ready.admin_config).await.unwrap();
    // ALTER SYSTEM refuses to run inside a transaction, even an implicit one.
    admin
        .batch_execute("ALTER SYSTEM SET ssl = on")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    wait_for_tls(port).await;
    TlsServer {
        ready,
        port,
        ca: certs.join("ca.pem"),
        wrong_ca: certs.join("wrong-ca.pem"),
    }
}

/// A CA, another CA, and a certificate for `localhost` (DNS name only, no IP address)
/// signed by the first, with the `openssl` command (Debian's PostgreSQL depends on it).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the TLS tests need the `openssl` command (apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=taskapi test CA"),
        ("wrong-ca", "/CN=another CA"),
    ] {
        let key = format!("{name}.key");
        let cert = format!("{name}.pem");
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &cert]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(&args);
    }
    let mut request = vec!["req", "-new", "-subj", "/CN=localhost"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}

/// `pg_reload_conf` only signals the server: wait until a TLS connection succeeds.
async fn wait_for_tls(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let endpoint = Endpoint::parse(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"),
        "DATABASE_URL",
    )
    .unwrap();
    loop {
        match db::connect(&endpoint).await {
            Ok(_) => return,
            Err(error) if Instant::now() > deadline => {
                panic!("the test server never offered TLS: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl TlsServer {
    /// The API's role over TCP to `host`, with `params` (`sslmode=…&…`).
    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://{}:{URL_PASSWORD}@{host}:{}/{}?{params}",
            db::APP_ROLE,
            self.port,
            private::DATABASE_NAME
        )
    }

    /// Whether the sessions named `application_name` are encrypted (all of them: `Some(true)`,
    /// none: `Some(false)`), or `None` if there is none.
    async fn ssl_of(&self, application_name: &str) -> Option<bool> {
        let admin = db::connect(&self.ready.admin_config).await.unwrap();
        let row = admin
            .query_one(
                "SELECT count(*), bool_and(s.ssl), bool_or(s.ssl) \
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.application_name = $1 AND a.client_addr IS NOT NULL",
                &[&application_name],
            )
            .await
            .unwrap();
        let (sessions, all, any): (i64, Option<bool>, Option<bool>) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            all, any,
            "{application_name}: some sessions encrypted, some not"
        );
        (sessions > 0).then_some(all == Some(true))
    }
}

/// Starts the API on `endpoint`, as `taskapi` would with it as `DATABASE_URL`.
async fn start_api(endpoint: Endpoint) -> Result<TestApp, StartupError> {
    let ready = ReadyDatabase {
        config: endpoint.clone(),
        admin_config: tls_server().await.ready.admin_config.clone(),
        server: None,
    };
    let app = Application::build_on(settings(endpoint), ready).await?;
    let address = format!("http://{}", app.local_addr().expect("bound"));
    tokio::spawn(app.run_until(std::future::pending()));
    Ok(TestApp {
        address,
        client: reqwest::Client::new(),
        db_config: tls_server().await.ready.admin_config.clone(),
        metrics_address: None,
    })
}

/// Starts the API on `url` (parsed as `DATABASE_URL` is) and checks that a real request
/// works through it; whether its database sessions are encrypted.
async fn serves_with(url: &str, application_name: &str) -> bool {
    let server = tls_server().await;
    let endpoint = Endpoint::parse(
        &format!("{url}&application_name={application_name}"),
        "DATABASE_URL",
    )
    .expect("a valid URL");
    let app = start_api(endpoint).await.expect("the API should start");
    let registered = app.register(&unique_email(), PASSWORD).await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    server
        .ssl_of(application_name)
        .await
        .expect("the API's sessions are listed")
}

/// The start-up failure for `url`, as `taskapi` would log it.
async fn refusal_of(url: &str) -> String {
    let endpoint = Endpoint::parse(url, "DATABASE_URL").expect("a valid URL");
    let error = start_api(endpoint)
        .await
        .err()
        .expect("the start-up should be refused");
    let text = db::error::chain(&error);
    assert!(text.contains("DATABASE_URL"), "{text}");
    assert!(
        !text.contains(URL_PASSWORD),
        "the password is shown: {text}"
    );
    text
}

#[tokio::test]
async fn verify_full_with_the_right_ca_serves_over_tls() {
    let server = tls_server().await;
    let url = server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", server.ca.display()),
    );
    assert!(serves_with(&url, "tls-verify-full").await);
}

#[tokio::test]
async fn verify_full_with_the_wrong_ca_refuses_to_start_naming_the_unknown_issuer() {
    let server = tls_server().await;
    let text = refusal_of(&server.url(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.wrong_ca.display()
        ),
    ))
    .await;
    assert!(text.contains("sslmode=verify-full"), "{text}");
    assert!(text.contains("unknown issuer"), "{text}");
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let server = tls_server().await;
    let roots = format!("sslrootcert={}", server.ca.display());
    // The certificate names `localhost`, not 127.0.0.1.
    let text = refusal_of(&server.url("127.0.0.1", &format!("sslmode=verify-full&{roots}"))).await;
    assert!(text.contains("sslmode=verify-full"), "{text}");
    assert!(text.contains("name mismatch"), "{text}");
    let url = server.url("127.0.0.1", &format!("sslmode=verify-ca&{roots}"));
    assert!(serves_with(&url, "tls-verify-ca").await);
}

#[tokio::test]
async fn verify_ca_still_refuses_a_certificate_from_another_ca() {
    let server = tls_server().await;
    let text = refusal_of(&server.url(
        "127.0.0.1",
        &format!(
            "sslmode=verify-ca&sslrootcert={}",
            server.wrong_ca.display()
        ),
    ))
    .await;
    assert!(text.contains("sslmode=verify-ca"), "{text}");
    assert!(text.contains("unknown issuer"), "{text}");
}

#[tokio::test]
async fn the_key_value_form_verifies_too() {
    let server = tls_server().await;
    let endpoint = Endpoint::parse(
        &format!(
            "host=localhost port={} user={} password={URL_PASSWORD} dbname={} \
             sslmode=verify-full sslrootcert='{}'",
            server.port,
            db::APP_ROLE,
            private::DATABASE_NAME,
            server.wrong_ca.display()
        ),
        "DATABASE_URL",
    )
    .unwrap();
    let error = db::connect(&endpoint).await.unwrap_err().to_string();
    assert!(error.contains("unknown issuer"), "{error}");
}

#[tokio::test]
async fn prefer_uses_tls_when_the_server_offers_it() {
    let server = tls_server().await;
    // No sslmode at all: prefer, libpq's default. Any certificate is accepted.
    let url = server.url("127.0.0.1", "connect_timeout=5");
    assert!(serves_with(&url, "tls-prefer").await);
}

#[tokio::test]
async fn prefer_never_falls_back_to_plaintext_when_the_handshake_fails() {
    let server = tls_server().await;
    // With sslrootcert, prefer checks the chain (as libpq does); it fails here.
    let endpoint = Endpoint::parse(
        &server.url(
            "localhost",
            &format!("sslmode=prefer&sslrootcert={}", server.wrong_ca.display()),
        ),
        "DATABASE_URL",
    )
    .unwrap();
    let error = db::connect(&endpoint).await.unwrap_err().to_string();
    assert!(error.contains("DATABASE_URL (sslmode=prefer"), "{error}");
    assert!(error.contains("unknown issuer"), "{error}");
}

#[tokio::test]
async fn disable_is_plaintext() {
    let server = tls_server().await;
    let url = server.url("localhost", "sslmode=disable");
    assert!(!serves_with(&url, "tls-disable").await);
}

/// A server that answers TLS requests with "no": the test database (ssl off), reached
/// over TCP through a byte-for-byte proxy.
async fn server_without_tls() -> (crate::outage::Proxy, tokio_postgres::Config) {
    let upstream = database().await.config.driver_config().clone();
    let proxy = crate::outage::Proxy::start(&upstream).await;
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(proxy.port)
        .user(upstream.get_user().unwrap_or("postgres"))
        .dbname(upstream.get_dbname().unwrap_or("postgres"));
    if let Some(password) = upstream.get_password() {
        config.password(password);
    }
    (proxy, config)
}

#[tokio::test]
async fn require_against_a_server_without_tls_refuses_to_start_clearly() {
    let (_proxy, config) = server_without_tls().await;
    let require = TlsPolicy::parse(Some("require"), None).unwrap();
    let endpoint = Endpoint::new(config, require, "DATABASE_URL").unwrap();
    let error = start_api(endpoint)
        .await
        .err()
        .expect("require must not go on in plaintext");
    let text = db::error::chain(&error);
    assert!(text.contains("DATABASE_URL (sslmode=require)"), "{text}");
    assert!(text.contains("server does not support TLS"), "{text}");
}

#[tokio::test]
async fn prefer_against_a_server_without_tls_is_plaintext() {
    let (_proxy, config) = server_without_tls().await;
    let prefer = TlsPolicy::parse(Some("prefer"), None).unwrap();
    let endpoint = Endpoint::new(config, prefer, "DATABASE_URL").unwrap();
    let client = db::connect(&endpoint).await.expect("prefer connects");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!ssl);
}
