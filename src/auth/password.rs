//! Argon2id password hashing (m = 19456 KiB, t = 2, p = 1; DECISIONS.md), run on the
//! blocking pool behind a bound on concurrent hashes: each holds 19 MiB and a core, so a
//! login storm queues here instead of exhausting memory or starving other requests.

use std::sync::Arc;

use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// Why hashing failed: never the client's fault (a 500).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so both login failures cost the same.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the Argon2 parameters are valid constants");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(HashError::Hash)
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|hash| argon2().verify_password(password.as_bytes(), &hash))
        .is_ok()
}

impl PasswordHasher {
    /// `max_concurrent` hashes at once (usually the number of cores).
    pub async fn new(max_concurrent: usize) -> Result<Self, HashError> {
        let dummy =
            tokio::task::spawn_blocking(|| hash_blocking("taskapi dummy password")).await??;
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || hash_blocking(password.expose())).await?
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
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let matches =
            tokio::task::spawn_blocking(move || verify_blocking(password.expose(), &phc)).await?;
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
    async fn unknown_accounts_never_verify() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let guess = Password::offered("taskapi dummy password".to_owned());
        assert!(!hasher.verify(guess, None).await.unwrap());
    }
}
