//! Argon2id password hashing (m = 19456 KiB, t = 2, p = 1; DECISIONS.md), run on the
//! blocking pool behind a bound on concurrent hashes: each holds 19 MiB and a core, so a
//! login storm queues here instead of exhausting memory or starving other requests.
//!
//! The 19 MiB working memory of each hash comes from a fixed set of buffers, one per
//! permit, allocated once: memory stays bounded (glibc would otherwise keep freed 19 MiB
//! blocks in one arena per thread), and no hash pays for faulting in fresh pages.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

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
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn hash_error(error: impl std::fmt::Display) -> HashError {
    HashError::Hash(error.to_string())
}

type Memory = Vec<Block>;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// One working memory per permit: whoever holds a permit finds one here.
    memories: Arc<Mutex<Vec<Memory>>>,
    /// Verified against when the email is unknown, so both login failures cost the same.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
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
    /// `max_concurrent` hashes at once (usually the number of cores).
    pub async fn new(max_concurrent: usize) -> Result<Self, HashError> {
        let permits = max_concurrent.max(1);
        let (memories, dummy) = tokio::task::spawn_blocking(move || {
            let mut memories: Vec<Memory> = (0..permits).map(|_| new_memory()).collect();
            let dummy = hash_with(&mut memories[0], "taskapi dummy password");
            (memories, dummy)
        })
        .await?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(permits)),
            memories: Arc::new(Mutex::new(memories)),
            dummy_hash: dummy?.into(),
        })
    }

    /// Runs `work` with a permit and a working memory, on the blocking pool.
    async fn with_memory<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let taken = self
            .memories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut memory = taken.unwrap_or_else(new_memory);
        let (memory, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            (memory, result)
        })
        .await?;
        self.memories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(memory);
        Ok(result)
    }

    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.with_memory(move |memory| hash_with(memory, password.expose()))
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
            .with_memory(move |memory| verify_with(memory, password.expose(), &phc))
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

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let guess = Password::offered("taskapi dummy password".to_owned());
        assert!(!hasher.verify(guess, None).await.unwrap());
    }
}
