//! Authentication: access tokens, password hashing, and the `CurrentUser` extractor.

pub mod extract;
pub mod jwt;
pub mod password;
pub mod throttle;

pub use extract::CurrentUser;
pub use jwt::TokenService;
pub use password::PasswordHasher;
