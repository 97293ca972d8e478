//! Idempotent creates (API.md "Conventions"): the `Idempotency-Key` a client sends, and the
//! digest that tells a retry of the same request from a different one.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// 1 to 255 visible ASCII characters (`!` to `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &[u8]) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err("must be 1 to 255 characters");
        }
        if !raw.iter().all(|b| (b'!'..=b'~').contains(b)) {
            return Err("must be visible ASCII characters only (no spaces or control characters)");
        }
        // Visible ASCII is UTF-8.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of the body's canonical form: objects with their members sorted by name, no
/// whitespace. Two bodies that are the same JSON (members in another order, other spacing,
/// other escapes of the same string) have the same digest.
pub fn body_digest(body: &Value) -> [u8; 32] {
    let mut canonical = Vec::new();
    write_canonical(body, &mut canonical);
    Sha256::digest(&canonical).into()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            let mut sorted: Vec<_> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(text) => write_string(text, out),
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(text.to_owned()).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(&[b'~'; 255]).is_ok());
        assert!(IdempotencyKey::parse(b"!key-1_/.:=").is_ok());
        for bad in [
            &b""[..],
            &[b'a'; 256],
            b"a b",
            b"a\tb",
            b"caf\xc3\xa9",
            b"\x7f",
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_digest_ignores_member_order_and_spacing_but_not_values() {
        let a: Value =
            serde_json::from_str(r#"{"title":"x","labels":["a","b"],"n":{"z":1,"y":2}}"#).unwrap();
        let b: Value = serde_json::from_str(
            r#" { "n" : { "y":2, "z":1 }, "labels":["a","b"], "title":"\u0078" }"#,
        )
        .unwrap();
        assert_eq!(body_digest(&a), body_digest(&b));
        let c: Value =
            serde_json::from_str(r#"{"title":"x","labels":["b","a"],"n":{"z":1,"y":2}}"#).unwrap();
        assert_ne!(body_digest(&a), body_digest(&c));
        let d: Value = serde_json::from_str(
            r#"{"title":"x","labels":["a","b"],"n":{"z":1,"y":2},"description":null}"#,
        )
        .unwrap();
        assert_ne!(body_digest(&a), body_digest(&d));
    }
}
