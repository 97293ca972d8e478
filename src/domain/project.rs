//! Projects (API.md "Projects"): a name, 1 to 100 characters once trimmed, stored trimmed.

use super::reject_nul;

const NAME_MAX_CHARS: usize = 100;

/// A project's name, trimmed and bounded. Uniqueness (case-insensitive, per owner) is the
/// database's to enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        reject_nul(raw)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty or only whitespace".to_owned());
        }
        if trimmed.chars().count() > NAME_MAX_CHARS {
            return Err(format!("must be at most {NAME_MAX_CHARS} characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(ProjectName::parse("  Home \n").unwrap().as_str(), "Home");
        assert!(ProjectName::parse(" \t").is_err());
        assert!(ProjectName::parse(&"ü".repeat(100)).is_ok());
        assert!(ProjectName::parse(&"ü".repeat(101)).is_err());
        assert!(ProjectName::parse("a\0b").is_err());
    }
}
