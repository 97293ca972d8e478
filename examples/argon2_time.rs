//! The benchmark's login ceiling: how many password verifications per second taskapi's own
//! hashing path sustains. It builds the `PasswordHasher` as the server does (one hashing thread
//! per core, each hashing into its own preallocated working memory) and keeps every thread
//! busy with `verify`, what a login runs. Prints one JSON object: the threads, the
//! verifications per second (median of several rounds), and one verification's time alone.

use std::time::Instant;

use taskapi::auth::PasswordHasher;
use taskapi::domain::Password;

const PASSWORD: &str = "benchmark password";
const ROUNDS: usize = 7;
/// Verifications per requester per round.
const PER_REQUESTER: usize = 8;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[expect(
    clippy::print_stdout,
    reason = "the benchmark reads the figures from stdout"
)]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let hasher = PasswordHasher::new(threads).await.expect("hasher");
    let stored = hasher
        .hash(Password::offered(PASSWORD.to_owned()))
        .await
        .expect("hash");
    let verify = async |hasher: &PasswordHasher, stored: &str| {
        let ok = hasher
            .verify(
                Password::offered(PASSWORD.to_owned()),
                Some(stored.to_owned()),
            )
            .await
            .expect("verify");
        assert!(ok, "the password verifies");
    };

    let mut alone = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        verify(&hasher, &stored).await;
        alone.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    // Two requesters per thread: whenever a thread finishes a hash, the next is queued.
    let requesters = 2 * threads;
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..requesters {
            let (hasher, stored) = (hasher.clone(), stored.clone());
            set.spawn(async move {
                for _ in 0..PER_REQUESTER {
                    verify(&hasher, &stored).await;
                }
            });
        }
        set.join_all().await;
        rates.push((requesters * PER_REQUESTER) as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "threads": threads,
            "verifies_per_s": median(rates),
            "ms_one_alone": median(alone),
        })
    );
}
