//! Access tokens: HS256 JWTs with `sub` (user id), `iat`, `nbf`, `exp` and `jti`, checked
//! strictly: HS256 only, no leeway, `exp` and `nbf` enforced, `sub` a UUID.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::verified_tokens::VerifiedTokens;
use crate::config::SecretKey;

/// What a token says about its bearer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The account's token version when issued; logout-all and password changes bump it.
    pub ver: i32,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A unique id per token, so that one token can later be revoked on its own.
    pub jti: Uuid,
}

/// A freshly issued token.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: i64,
}

/// Why a token was refused. Every variant is a 401; the detail is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token issued in the future")]
    IssuedInFuture,
}

impl Claims {
    /// Whether the time claims hold at `now` (unix seconds), exactly as jsonwebtoken checks
    /// them with no leeway (`exp` passed once `now` is beyond it; `nbf` not before it), and
    /// `iat` not in the future.
    fn check_times(&self, now: i64) -> Result<(), TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        if self.exp < now {
            return Err(jsonwebtoken::errors::Error::from(ErrorKind::ExpiredSignature).into());
        }
        if self.nbf > now {
            return Err(jsonwebtoken::errors::Error::from(ErrorKind::ImmatureSignature).into());
        }
        if self.iat > now {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(())
    }
}

/// Issues and verifies access tokens with one key.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime_secs: i64,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    pub fn new(key: &SecretKey, lifetime_minutes: u32) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // jsonwebtoken allows 60 s past `exp` by default and ignores `nbf` (DECISIONS.md).
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(key.expose()),
            decoding: DecodingKey::from_secret(key.expose()),
            validation,
            lifetime_secs: i64::from(lifetime_minutes) * 60,
            verified: VerifiedTokens::default(),
        }
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        token_version: i32,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: user_id,
            ver: token_version,
            iat: now,
            nbf: now,
            exp: now + self.lifetime_secs,
            jti: Uuid::new_v4(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_in: self.lifetime_secs,
        })
    }

    /// The token's claims, if its signature and time claims hold now. A token seen before
    /// skips the signature check, never the time checks (`auth::verified_tokens`).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if let Some(claims) = self.verified.recall(token) {
            claims.check_times(now)?;
            return Ok(claims);
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        claims.check_times(now)?;
        self.verified.remember(token, &claims);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(&SecretKey::new(b"k".repeat(32)).unwrap(), 30)
    }

    fn sign(claims: &serde_json::Value, key: &[u8], alg: Algorithm) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn claims(offset_iat: i64, offset_nbf: i64, offset_exp: i64) -> serde_json::Value {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        serde_json::json!({
            "sub": Uuid::new_v4(), "jti": Uuid::new_v4(), "ver": 1,
            "iat": now + offset_iat, "nbf": now + offset_nbf, "exp": now + offset_exp,
        })
    }

    #[test]
    fn issued_tokens_verify_and_name_their_user() {
        let service = service();
        let user = Uuid::new_v4();
        let issued = service.issue(user, 1).unwrap();
        assert_eq!(issued.expires_in, 1800);
        assert_eq!(service.verify(&issued.token).unwrap().sub, user);
    }

    #[test]
    fn a_remembered_token_is_still_refused_once_expired() {
        let service = service();
        let issued = service.issue(Uuid::new_v4(), 1).unwrap();
        let verified = service.verify(&issued.token).unwrap();
        assert!(service.verified.recall(&issued.token).is_some());
        // The boundary, as jsonwebtoken draws it: valid through the second of `exp`.
        assert!(verified.check_times(verified.exp + 1).is_err());
        assert!(verified.check_times(verified.exp).is_ok());
        // The token as remembered, seen once the clock has passed its `exp`: the signature is
        // not checked again, so only the time checks of a hit can refuse it.
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let expired = Claims {
            iat: now - 100,
            nbf: now - 100,
            exp: now - 1,
            ..verified
        };
        service.verified.remember(&issued.token, &expired);
        assert!(service.verify(&issued.token).is_err());
    }

    #[test]
    fn a_tampered_copy_of_a_remembered_token_is_refused() {
        let service = service();
        let issued = service.issue(Uuid::new_v4(), 1).unwrap();
        service.verify(&issued.token).unwrap();
        let mut tampered = issued.token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(service.verify(&tampered).is_err());
        assert!(service.verify(&issued.token).is_ok());
    }

    #[test]
    fn expired_tokens_are_refused_without_leeway() {
        let token = sign(&claims(-100, -100, -1), &b"k".repeat(32), Algorithm::HS256);
        assert!(service().verify(&token).is_err());
    }

    #[test]
    fn tokens_not_yet_valid_are_refused() {
        let token = sign(&claims(0, 60, 600), &b"k".repeat(32), Algorithm::HS256);
        assert!(service().verify(&token).is_err());
        let token = sign(&claims(60, 0, 600), &b"k".repeat(32), Algorithm::HS256);
        assert!(service().verify(&token).is_err());
    }

    #[test]
    fn other_keys_and_algorithms_are_refused() {
        let good = claims(0, 0, 600);
        assert!(
            service()
                .verify(&sign(&good, &b"x".repeat(32), Algorithm::HS256))
                .is_err()
        );
        assert!(
            service()
                .verify(&sign(&good, &b"k".repeat(32), Algorithm::HS512))
                .is_err()
        );
    }

    #[test]
    fn a_non_uuid_subject_is_refused() {
        let mut bad = claims(0, 0, 600);
        bad["sub"] = serde_json::json!("admin");
        assert!(
            service()
                .verify(&sign(&bad, &b"k".repeat(32), Algorithm::HS256))
                .is_err()
        );
    }
}
