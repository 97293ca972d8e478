//! The private PostgreSQL used when no `DATABASE_URL` is set: data survives a restart,
//! and a second taskapi on the same data directory gets a clear error.

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
    let options = private::Options {
        data_dir: data_dir.clone(),
        ephemeral: false,
    };
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
    let options = private::Options {
        data_dir: temp_data_dir(),
        ephemeral: true,
    };
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
