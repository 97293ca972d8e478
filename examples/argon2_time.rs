//! Times one Argon2id hash with taskapi's parameters, single-threaded, for the benchmark's
//! login ceiling (cores × 1 / time of one hash). Prints the median of several runs, in ms.

use std::time::Instant;

use taskapi::auth::PasswordHasher;
use taskapi::domain::Password;

#[expect(
    clippy::print_stdout,
    reason = "the benchmark reads the figure from stdout"
)]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let hasher = PasswordHasher::new(1).await.expect("hasher");
    let mut times = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        hasher
            .hash(Password::offered("benchmark password".to_owned()))
            .await
            .expect("hash");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!("{:.3}", times[times.len() / 2]);
}
