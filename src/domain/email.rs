//! `Email`: a trimmed, lower-cased, syntactically valid address (API.md "Authentication").

use std::fmt;

const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// A normalised email address: compared and stored in lower case.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and validates. The address must be ASCII (no SMTPUTF8), with a
    /// dot-atom local part and a domain of at least two DNS labels.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_ascii_lowercase();
        if email.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if email.chars().count() > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address such as name@example.com".to_owned());
        };
        if !is_valid_local_part(local) || !is_valid_domain(domain) {
            return Err("must be an email address such as name@example.com".to_owned());
        }
        Ok(Self(email))
    }

    /// Normalises the way `parse` does, without judging validity: used to look up an
    /// account at login, where a malformed address is just an unknown one.
    pub fn normalize_for_lookup(raw: &str) -> String {
        raw.trim().to_ascii_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Email addresses are personal data: keep them out of logs by accident.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn is_valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice.Smith+tasks@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith+tasks@example.com");
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@@example.com",
            "alice@exa mple.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@example..com",
            "alice@example.123",
            "ålice@example.com",
            "alice\0@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn length_limits_are_enforced() {
        let local = "a".repeat(64);
        let ok = format!("{local}@{}.com", "b".repeat(63));
        assert!(Email::parse(&ok).is_ok());
        assert!(Email::parse(&format!("{}a@example.com", local)).is_err());
        let long_domain = vec!["c".repeat(60); 4].join(".");
        let too_long = format!("{local}@{long_domain}.com");
        assert!(too_long.len() > 254);
        assert!(Email::parse(&too_long).is_err());
    }

    #[test]
    fn debug_output_does_not_reveal_the_address() {
        let email = Email::parse("secret@example.com").unwrap();
        assert!(!format!("{email:?}").contains("secret"));
    }
}
