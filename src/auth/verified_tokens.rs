//! Tokens whose signature and claims were already checked, so that a client sending the
//! same token on every request pays for the HMAC and the JSON parsing once per token, not
//! once per request (28 % of a `GET /tasks/{id}`'s instructions before, by the counts in
//! docs/PERFORMANCE.md). Only tokens that passed the full check are
//! remembered, keyed by their whole text, so a forged or altered token always misses and
//! gets the full check. The time claims are checked again on every hit.
//!
//! Hand-written rather than a caching crate: it needs a bounded map and nothing else
//! (no eviction policy worth a dependency: when full, it starts again empty).

use std::collections::HashMap;
use std::sync::Mutex;

use super::jwt::Claims;

/// How many tokens are remembered at most (about 300 bytes each).
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub struct VerifiedTokens {
    tokens: Mutex<HashMap<Box<str>, Claims>>,
}

impl VerifiedTokens {
    /// The claims of `token`, if it passed the full check before.
    pub fn recall(&self, token: &str) -> Option<Claims> {
        self.lock().get(token).cloned()
    }

    /// Remembers that `token`, with `claims`, passed the full check.
    pub fn remember(&self, token: &str, claims: &Claims) {
        let mut tokens = self.lock();
        if tokens.len() >= CAPACITY {
            tokens.clear();
        }
        tokens.insert(token.into(), claims.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Claims>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn claims() -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            ver: 1,
            iat: 0,
            nbf: 0,
            exp: 1,
            jti: Uuid::new_v4(),
        }
    }

    #[test]
    fn only_the_exact_token_is_recalled() {
        let tokens = VerifiedTokens::default();
        let remembered = claims();
        tokens.remember("a.b.c", &remembered);
        assert_eq!(tokens.recall("a.b.c").map(|c| c.jti), Some(remembered.jti));
        assert!(tokens.recall("a.b.C").is_none());
        assert!(tokens.recall("a.b.c ").is_none());
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let tokens = VerifiedTokens::default();
        for n in 0..CAPACITY + 10 {
            tokens.remember(&format!("token-{n}"), &claims());
        }
        assert!(tokens.lock().len() <= CAPACITY);
        assert!(tokens.recall(&format!("token-{}", CAPACITY + 9)).is_some());
    }
}
