//! `Password`: a candidate password within the contract's length rules, never printable.

use std::fmt;

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

/// A password as typed by the user. Its `Debug` is redacted so it cannot reach a log.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// A new password (registration): 8 to 128 characters (API.md "Authentication").
    pub fn parse_new(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(format!("must be at least {MIN_CHARS} characters"));
        }
        if chars > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
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
        assert!(Password::parse_new("x".repeat(128)).is_ok());
        assert!(Password::parse_new("x".repeat(129)).is_err());
        assert!(Password::parse_new("1234567".to_owned()).is_err());
    }

    #[test]
    fn debug_output_is_redacted() {
        let password = Password::parse_new("hunter22-secret".to_owned()).unwrap();
        assert!(!format!("{password:?}").contains("hunter"));
    }
}
