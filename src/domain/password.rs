//! `Password`: a candidate password within the contract's length rules, never printable.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

/// The 30,000 most common passwords, most common first: the `passwords` frequency list of
/// zxcvbn 4.5.0 (PyPI `zxcvbn`, MIT licence, © 2016 Daniel Wolf; the list itself derives
/// from Mark Burnett's 10 million leaked passwords, via Dropbox's zxcvbn). Lower case.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

/// Whether `candidate` (compared case-insensitively) is among the most common passwords.
pub fn is_common(candidate: &str) -> bool {
    COMMON.contains(candidate.to_lowercase().as_str())
}

/// A password as typed by the user. Its `Debug` is redacted so it cannot reach a log.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// A new password (registration, password change): 8 to 128 characters, and not one
    /// of the most common passwords (API.md "Authentication", "Account security").
    pub fn parse_new(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(format!("must be at least {MIN_CHARS} characters"));
        }
        if chars > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        if is_common(&raw) {
            return Err("is one of the most commonly used passwords; choose another".to_owned());
        }
        Ok(Self(raw))
    }

    /// A password offered at login: any string is checked against the stored hash, so the
    /// answer never reveals which rule a guess broke.
    pub fn offered(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        assert!(Password::parse_new("ééééééé".to_owned()).is_err());
        assert!(Password::parse_new("éééééééé".to_owned()).is_ok());
        assert!(Password::parse_new("xy".repeat(64)).is_ok());
        assert!(Password::parse_new("x".repeat(129)).is_err());
        assert!(Password::parse_new("1234567".to_owned()).is_err());
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for common in [
            "password",
            "12345678",
            "qwertyuiop",
            "PassWord1",
            "iloveyou",
        ] {
            assert!(Password::parse_new(common.to_owned()).is_err(), "{common}");
        }
        assert!(COMMON.len() >= 10_000);
        assert!(Password::parse_new("correct horse battery staple".to_owned()).is_ok());
    }

    #[test]
    fn debug_output_is_redacted() {
        let password = Password::parse_new("hunter22-secret".to_owned()).unwrap();
        assert!(!format!("{password:?}").contains("hunter"));
    }
}
