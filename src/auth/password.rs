//! Argon2id password hashing (m = 19456 KiB, t = 2, p = 1; DECISIONS.md) on a fixed set of
//! hashing threads, one per core, each owning its 19 MiB working memory (allocated once:
//! memory stays bounded, and no hash pays for faulting in fresh pages). A login storm queues
//! here instead of exhausting memory, and the hashing threads run at a lower scheduling
//! priority (nice 10), so the async workers and PostgreSQL keep serving other requests while
//! hashes use whatever CPU is left (docs/PERFORMANCE.md "login storm").

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::domain::Password;

const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
const OUTPUT_LEN: usize = 32;

/// Why hashing failed: never the client's fault (a 500).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password hashing threads are gone")]
    WorkersGone,
    /// Every hashing thread is busy and the queue is full: refuse now (503) rather than
    /// make the client wait behind a queue that only grows.
    #[error("the password hashing queue is full")]
    QueueFull,
}

fn hash_error(error: impl std::fmt::Display) -> HashError {
    HashError::Hash(error.to_string())
}

type Memory = Vec<Block>;
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Hashes waiting per hashing thread before the queue counts as full. A hash takes about
/// 12 to 20 ms on one core, so a full queue is well under a second of work.
pub const QUEUE_PER_WORKER: usize = 32;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::SyncSender<Job>,
    workers: usize,
    /// Room in the queue (jobs that may wait).
    capacity: usize,
    /// Jobs queued and not yet taken by a hashing thread (the channel cannot tell).
    queued: Arc<AtomicUsize>,
    /// Jobs dropped unrun because their requester had already given up.
    skipped: Arc<AtomicU64>,
    /// Verified against when the email is unknown, so both login failures cost the same.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("workers", &self.workers)
            .field("queued", &self.queued)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

/// Nice 10 (thread-priority maps 0..=99 onto nice 19..=-20): a hash yields to a request.
const HASHING_PRIORITY: u8 = 22;

fn hashing_thread(jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    if let Ok(value) = ThreadPriorityValue::try_from(HASHING_PRIORITY) {
        // Lowering one's own priority needs no privilege; if it fails, hash at normal priority.
        let _ = set_current_thread_priority(ThreadPriority::Crossplatform(value));
    }
    let mut memory = new_memory();
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match job {
            Ok(job) => job(&mut memory),
            // Every `PasswordHasher` is gone.
            Err(mpsc::RecvError) => return,
        }
    }
}

fn params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(OUTPUT_LEN))
        .expect("the Argon2 parameters are valid constants")
}

fn new_memory() -> Memory {
    vec![Block::default(); params().block_count()]
}

/// Hashes into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
fn hash_with(memory: &mut Memory, password: &str) -> Result<String, HashError> {
    let params = params();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(hash_error)?;
    let mut out = [0u8; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_raw,
            &mut out,
            memory.as_mut_slice(),
        )
        .map_err(hash_error)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(hash_error)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(hash_error)?),
    };
    Ok(phc.to_string())
}

/// Verifies against a stored PHC string, with the parameters it records. A hash that is
/// not Argon2id, or asks for more memory than ours, never verifies.
fn verify_with(memory: &mut Memory, password: &str, phc: &str) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (stored.hash, stored.salt) else {
        return false;
    };
    let Ok(Algorithm::Argon2id) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let Ok(params) = Params::try_from(&stored) else {
        return false;
    };
    let version = stored
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    if params.block_count() > memory.len() || expected.len() > 64 {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; 64];
    let out = &mut out[..expected.len()];
    let computed = Argon2::new(Algorithm::Argon2id, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, out, memory.as_mut_slice());
    // `Output` compares in constant time.
    computed.is_ok() && Output::new(out).is_ok_and(|out| out == expected)
}

impl PasswordHasher {
    /// `workers` hashing threads (usually one per core): at most that many hashes at once,
    /// and `QUEUE_PER_WORKER` waiting for each.
    pub async fn new(workers: usize) -> Result<Self, HashError> {
        Self::with_queue(workers, workers.max(1) * QUEUE_PER_WORKER).await
    }

    /// Like `new`, with room for `queue` waiting jobs.
    pub async fn with_queue(workers: usize, capacity: usize) -> Result<Self, HashError> {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(capacity);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || hashing_thread(queue))
                .map_err(hash_error)?;
        }
        let mut hasher = Self {
            jobs,
            workers,
            capacity,
            queued: Arc::default(),
            skipped: Arc::default(),
            dummy_hash: Arc::from(""),
        };
        let dummy = hasher
            .run(|memory| hash_with(memory, "taskapi dummy password"))
            .await??;
        hasher.dummy_hash = dummy.into();
        Ok(hasher)
    }

    /// Queues `work` for a hashing thread and waits for its answer without blocking the
    /// async runtime. A full queue is refused at once; a job whose requester has given up
    /// by the time a thread takes it (the request was cancelled or timed out) is skipped.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        let skipped = self.skipped.clone();
        let queued = self.queued.clone();
        let job: Job = Box::new(move |memory| {
            queued.fetch_sub(1, Ordering::Relaxed);
            if reply.is_closed() {
                skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let _ = reply.send(work(memory));
        });
        // Counted before it is sent, so that the thread's decrement always comes after.
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs.try_send(job).map_err(|error| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            match error {
                mpsc::TrySendError::Full(_) => HashError::QueueFull,
                mpsc::TrySendError::Disconnected(_) => HashError::WorkersGone,
            }
        })?;
        answer.await.map_err(|_| HashError::WorkersGone)
    }

    /// Hashes waiting for a thread right now (not those being computed).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether a hash asked for now would be refused: lets a request that needs one answer
    /// 503 before it does any other work (a hint; the queue itself still decides).
    pub fn is_full(&self) -> bool {
        self.queue_depth() >= self.capacity
    }

    /// Hashes that may wait before the queue counts as full.
    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }

    /// How many queued jobs were dropped unrun because their requester had gone.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.run(move |memory| hash_with(memory, password.expose()))
            .await?
    }

    /// Checks `password` against `stored`; with no stored hash (unknown account) it
    /// verifies against the dummy hash and fails, taking the same time.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let phc: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let matches = self
            .run(move |memory| verify_with(memory, password.expose(), &phc))
            .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let password = Password::offered("correct horse".to_owned());
        let hash = hasher.hash(password.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(password, Some(hash.clone())).await.unwrap());
        let wrong = Password::offered("wrong horse".to_owned());
        assert!(!hasher.verify(wrong, Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_from_the_reference_implementation_verify() {
        // Made by the argon2 crate's own PasswordHasher with the same parameters.
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::generate(&mut OsRng);
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"interoperable", &salt)
            .unwrap()
            .to_string();
        let hasher = PasswordHasher::new(1).await.unwrap();
        let ours = Password::offered("interoperable".to_owned());
        assert!(hasher.verify(ours, Some(reference.clone())).await.unwrap());
        let other = Password::offered("interoperablE".to_owned());
        assert!(!hasher.verify(other, Some(reference)).await.unwrap());
        let garbage = Password::offered("x".to_owned());
        assert!(
            !hasher
                .verify(garbage, Some("$argon2id$nonsense".to_owned()))
                .await
                .unwrap()
        );
    }

    /// Occupies the only hashing thread until the returned sender is dropped or sent to.
    async fn block_the_worker(hasher: &PasswordHasher) -> std::sync::mpsc::Sender<()> {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let busy = hasher.clone();
        tokio::spawn(async move {
            let _ = busy
                .run(move |_| {
                    let _ = started.send(());
                    let _ = blocked.recv();
                })
                .await;
        });
        running.await.expect("the worker took the blocking job");
        release
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let hasher = PasswordHasher::with_queue(1, 2).await.unwrap();
        let release = block_the_worker(&hasher).await;
        for _ in 0..2 {
            assert!(
                hasher.jobs.try_send(Box::new(|_| {})).is_ok(),
                "room for two"
            );
        }
        let refused = hasher.hash(Password::offered("b".repeat(8))).await;
        assert!(matches!(refused, Err(HashError::QueueFull)), "{refused:?}");
        drop(release);
        // The thread drains the queue in a moment; then hashing is accepted again.
        let mut after = Err(HashError::QueueFull);
        for _ in 0..1000 {
            after = hasher.hash(Password::offered("b".repeat(8))).await;
            if !matches!(after, Err(HashError::QueueFull)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(
            after.is_ok(),
            "once the queue drains, hashing works again: {after:?}"
        );
    }

    #[tokio::test]
    async fn the_queue_depth_counts_the_hashes_waiting_for_a_thread() {
        let hasher = PasswordHasher::with_queue(1, 4).await.unwrap();
        assert_eq!((hasher.queue_depth(), hasher.queue_capacity()), (0, 4));
        let release = block_the_worker(&hasher).await;
        // The blocking job is running, so it no longer waits.
        assert_eq!(hasher.queue_depth(), 0);
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(Password::offered("e".repeat(8))).await })
            })
            .collect();
        // Each is queued on its task's first poll, which a yield lets happen.
        for _ in 0..1000 {
            if hasher.queue_depth() == 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(hasher.queue_depth(), 3);
        drop(release);
        for hash in waiting {
            assert!(hash.await.unwrap().is_ok());
        }
        assert_eq!(hasher.queue_depth(), 0);
    }

    #[tokio::test]
    async fn work_whose_requester_gave_up_is_skipped() {
        let hasher = PasswordHasher::with_queue(1, 4).await.unwrap();
        let release = block_the_worker(&hasher).await;
        let abandoned = hasher.clone();
        let waiting =
            tokio::spawn(async move { abandoned.hash(Password::offered("c".repeat(8))).await });
        tokio::task::yield_now().await;
        waiting.abort();
        let _ = waiting.await;
        drop(release);
        // Runs after the abandoned job (one thread, FIFO): by then it has been skipped.
        let kept = hasher.hash(Password::offered("d".repeat(8))).await;
        assert!(kept.is_ok());
        assert_eq!(hasher.skipped(), 1);
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let guess = Password::offered("taskapi dummy password".to_owned());
        assert!(!hasher.verify(guess, None).await.unwrap());
    }
}
