//! Authentication services: access tokens, password hashing, and the login lock-out policy.
//! No HTTP here: the `CurrentUser` extractor that uses them lives in `http::current_user`.

pub mod jwt;
pub mod lockout;
pub mod password;
mod verified_tokens;

pub use jwt::TokenService;
pub use password::PasswordHasher;
