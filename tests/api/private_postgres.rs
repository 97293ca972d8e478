//! The private PostgreSQL used when no `DATABASE_URL` is set: data survives a restart,
//! and a second taskapi on the same data directory gets a clear error. As root, a data
//! directory the `postgres` OS user cannot reach keeps its cluster in a fallback directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Parser;
use taskapi::config::{Cli, Database};
use taskapi::db::{self, private};

fn temp_data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("taskapi-private-{}", uuid::Uuid::new_v4().simple()))
}

async fn start(options: private::Options) -> Result<private::PrivatePostgres, private::StartError> {
    tokio::task::spawn_blocking(move || private::PrivatePostgres::start(&options))
        .await
        .expect("start task")
}

async fn stop(mut server: private::PrivatePostgres) {
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop task");
}

#[tokio::test]
async fn data_written_before_a_restart_is_there_after_it() {
    let data_dir = temp_data_dir();
    let options = private::Options::new(data_dir.clone(), false);
    let server = start(options.clone()).await.expect("first start");
    let client = db::connect(&server.config("postgres")).await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    drop(client);
    stop(server).await;
    assert!(
        data_dir.join("postgres/PG_VERSION").is_file(),
        "the cluster is kept"
    );

    let server = start(options).await.expect("second start");
    let client = db::connect(&server.config("postgres")).await.unwrap();
    let note: String = client
        .query_one("SELECT note FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "still here");
    drop(client);
    stop(server).await;
    std::fs::remove_dir_all(&data_dir).unwrap();
}

#[tokio::test]
async fn a_second_instance_on_the_same_data_directory_is_refused_clearly() {
    let options = private::Options::new(temp_data_dir(), true);
    let first = start(options.clone()).await.expect("first start");
    let second = start(options.clone()).await;
    match second {
        Err(error @ private::StartError::AlreadyRunning(_)) => {
            assert!(
                error
                    .to_string()
                    .contains("already using the data directory")
            );
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    // The first one is unharmed.
    let client = db::connect(&first.config("postgres")).await.unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);
    stop(first).await;
    assert!(
        !options.data_dir.exists(),
        "an ephemeral cluster is removed when it stops"
    );
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn postgres_uid() -> u32 {
    private::run_as()
        .expect("the postgres OS user")
        .expect("root runs the server as postgres")
        .uid
}

/// A fresh "home" like Debian's /root (mode 0700, ours), and a fallback base next to it
/// (not created).
fn private_home_and_fallback() -> (PathBuf, PathBuf) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let home = std::env::temp_dir().join(format!("taskapi-home-{id}"));
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let fallback = std::env::temp_dir().join(format!("taskapi-fb-{}", &id[..8]));
    (home, fallback)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

async fn note(server: &private::PrivatePostgres) -> String {
    let client = db::connect(&server.config("postgres")).await.unwrap();
    client
        .query_one("SELECT note FROM kept", &[])
        .await
        .unwrap()
        .get(0)
}

/// `git clone` into /root (0700) and `cargo run` as root: the `postgres` user cannot
/// reach ./data, so the cluster and its socket go to a directory of their own under the
/// fallback base, found again on the next start; the key, the lock and the log stay.
#[tokio::test]
async fn as_root_a_data_directory_postgres_cannot_reach_keeps_its_cluster_in_the_fallback() {
    let (home, fallback_base) = private_home_and_fallback();
    let data_dir = home.join("checkout").join("data");
    // The settings as `cargo run` builds them: this also creates the secret key.
    let mut raw = Cli::try_parse_from(["taskapi", "--data-dir", data_dir.to_str().unwrap()])
        .unwrap()
        .settings;
    raw.database_url = None;
    raw.database_owner_url = None;
    raw.secret_key = None;
    let Database::Private(mut options) = raw.validate().unwrap().database else {
        panic!("no DATABASE_URL: a private server");
    };
    assert_eq!(
        options.fallback_base,
        Path::new(private::DEFAULT_FALLBACK_BASE)
    );
    options.fallback_base = fallback_base.clone();

    let server = start(options.clone()).await.expect("first start");
    let client = db::connect(&server.config("postgres")).await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')")
        .await
        .unwrap();
    drop(client);
    match start(options.clone()).await {
        Err(private::StartError::AlreadyRunning(dir)) => {
            assert_eq!(dir, data_dir.canonicalize().unwrap());
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    assert_eq!(
        note(&server).await,
        "still here",
        "the first one is unharmed"
    );
    stop(server).await;

    for kept in ["secret_key", "taskapi.lock", "postgres.log"] {
        assert!(
            data_dir.join(kept).is_file(),
            "{kept} stays in the data directory"
        );
    }
    if is_root() {
        assert!(!data_dir.join("postgres").exists(), "no cluster in ./data");
        let base = std::fs::symlink_metadata(&fallback_base).unwrap();
        assert!(base.is_dir());
        assert_eq!((base.uid(), mode(&fallback_base)), (0, 0o755));
        let entries: Vec<PathBuf> = std::fs::read_dir(&fallback_base)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "one directory for this data directory");
        let cluster_home = &entries[0];
        let name = cluster_home.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("checkout-data-"), "{name}");
        let owner = std::fs::symlink_metadata(cluster_home).unwrap().uid();
        assert_eq!((owner, mode(cluster_home)), (postgres_uid(), 0o700));
        assert!(cluster_home.join("postgres/PG_VERSION").is_file());
    } else {
        eprintln!("not root: the server runs as this user, so no fallback is needed or made");
        assert!(data_dir.join("postgres/PG_VERSION").is_file());
        assert!(!fallback_base.exists());
    }

    let server = start(options).await.expect("second start");
    assert_eq!(note(&server).await, "still here");
    stop(server).await;
    std::fs::remove_dir_all(&home).unwrap();
    if is_root() {
        std::fs::remove_dir_all(&fallback_base).unwrap();
    }
}

/// An ephemeral cluster in the fallback leaves nothing behind but the (shared) base.
#[tokio::test]
async fn an_ephemeral_cluster_in_the_fallback_is_removed_when_it_stops() {
    if !is_root() {
        eprintln!("skipped: the fallback is only used as root");
        return;
    }
    let (home, fallback_base) = private_home_and_fallback();
    let options = private::Options {
        fallback_base: fallback_base.clone(),
        ..private::Options::new(home.join("data"), true)
    };
    let server = start(options.clone()).await.expect("start");
    let client = db::connect(&server.config("postgres")).await.unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);
    assert_eq!(std::fs::read_dir(&fallback_base).unwrap().count(), 1);
    stop(server).await;
    assert!(!options.data_dir.exists());
    assert_eq!(std::fs::read_dir(&fallback_base).unwrap().count(), 0);
    std::fs::remove_dir(&home).unwrap();
    std::fs::remove_dir(&fallback_base).unwrap();
}

/// A fallback base that someone else could have prepared (a link, or not root's) is
/// refused, not followed; nothing is created where it points.
#[tokio::test]
async fn a_fallback_base_that_is_a_link_or_not_roots_is_refused() {
    if !is_root() {
        eprintln!("skipped: the fallback is only used as root");
        return;
    }
    let (home, fallback_base) = private_home_and_fallback();
    let elsewhere = home.with_extension("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &fallback_base).unwrap();
    let options = private::Options {
        fallback_base: fallback_base.clone(),
        ..private::Options::new(home.join("data"), false)
    };
    match start(options.clone()).await {
        Err(error @ private::StartError::UnsafeDirectory { .. }) => {
            assert!(error.to_string().contains("symbolic link"), "{error}");
        }
        other => panic!("expected UnsafeDirectory, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    std::fs::remove_file(&fallback_base).unwrap();

    std::fs::create_dir(&fallback_base).unwrap();
    std::fs::set_permissions(&fallback_base, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&fallback_base, Some(postgres_uid()), None).unwrap();
    match start(options).await {
        Err(error @ private::StartError::UnsafeDirectory { .. }) => {
            assert!(error.to_string().contains("not root"), "{error}");
        }
        other => panic!("expected UnsafeDirectory, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&fallback_base).unwrap().count(), 0);
    for dir in [&home, &elsewhere, &fallback_base] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
