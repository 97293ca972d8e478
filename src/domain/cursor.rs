//! Opaque cursors: a position the server wrote, sealed with an HMAC (SHA-256, truncated to
//! 128 bits) so that a client can neither forge nor alter one, and bound to one user and one
//! use: the MAC covers a purpose byte, the user's id and whatever else the position must
//! match (the list's sort and filters), so a cursor shown to another user, or to another
//! query, fails to open exactly like a mangled one.
//!
//! Text form: base64url without padding of `purpose ‖ payload ‖ tag`. The key is derived
//! from `SECRET_KEY` (HMAC of a fixed label), so tokens and cursors never share a key, and
//! rotating the secret invalidates both.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;
/// Longer texts are refused before decoding: no cursor we write comes near. The longest is
/// a task list's position after a title of 200 four-byte characters: 834 bytes, 1,112
/// characters of base64.
const MAX_TEXT_LEN: usize = 1536;

/// What a cursor is for; part of what the MAC covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// A position in the change feed (`GET /changes?since=`).
    Changes = 1,
    /// A position in a task list (`GET /tasks?cursor=`).
    TaskList = 2,
}

/// The key cursors are sealed with: the HMAC already keyed, since keying it was two of the
/// five SHA-256 blocks that sealing a list page's cursor computed.
#[derive(Clone)]
pub struct CursorKey(HmacSha256);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

impl CursorKey {
    /// The cursor key for `secret` (the server's `SECRET_KEY`).
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"taskapi cursor key v1");
        let key = mac.finalize().into_bytes();
        Self(HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"))
    }

    fn mac(&self, purpose: Purpose, owner: Uuid, context: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(&[purpose as u8]);
        mac.update(owner.as_bytes());
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context);
        mac.update(payload);
        mac
    }

    /// Seals `payload` for `owner`; `context` (not stored in the text) must be given again,
    /// equal, to open it.
    pub fn seal(&self, purpose: Purpose, owner: Uuid, context: &[u8], payload: &[u8]) -> String {
        let tag = self
            .mac(purpose, owner, context, payload)
            .finalize()
            .into_bytes();
        let mut bytes = Vec::with_capacity(1 + payload.len() + TAG_LEN);
        bytes.push(purpose as u8);
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The payload of a cursor this key sealed for `purpose`, `owner` and `context`; `None`
    /// for anything else (malformed, altered, another user's, another query's).
    pub fn open(
        &self,
        purpose: Purpose,
        owner: Uuid,
        context: &[u8],
        text: &str,
    ) -> Option<Vec<u8>> {
        if text.len() > MAX_TEXT_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < 1 + TAG_LEN || bytes[0] != purpose as u8 {
            return None;
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let payload = &body[1..];
        // Constant time, on the truncated tag.
        self.mac(purpose, owner, context, payload)
            .verify_truncated_left(tag)
            .ok()
            .map(|()| payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::derive(b"a test secret that is long enough to use")
    }

    #[test]
    fn a_sealed_cursor_opens_with_the_same_purpose_owner_and_context() {
        let owner = Uuid::new_v4();
        let text = key().seal(Purpose::Changes, owner, b"ctx", b"position");
        assert_eq!(
            key()
                .open(Purpose::Changes, owner, b"ctx", &text)
                .as_deref(),
            Some(&b"position"[..])
        );
    }

    #[test]
    fn anything_else_does_not_open() {
        let owner = Uuid::new_v4();
        let text = key().seal(Purpose::TaskList, owner, b"ctx", b"position");
        assert!(
            key()
                .open(Purpose::TaskList, Uuid::new_v4(), b"ctx", &text)
                .is_none()
        );
        assert!(
            key()
                .open(Purpose::TaskList, owner, b"other", &text)
                .is_none()
        );
        assert!(key().open(Purpose::Changes, owner, b"ctx", &text).is_none());
        let other_key = CursorKey::derive(b"another secret that is long enough too");
        assert!(
            other_key
                .open(Purpose::TaskList, owner, b"ctx", &text)
                .is_none()
        );
        for mangled in ["", "x", "!!!!", &text[1..], &format!("{text}A")] {
            assert!(
                key()
                    .open(Purpose::TaskList, owner, b"ctx", mangled)
                    .is_none()
            );
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[3] ^= 1;
        let flipped = URL_SAFE_NO_PAD.encode(bytes);
        assert!(
            key()
                .open(Purpose::TaskList, owner, b"ctx", &flipped)
                .is_none()
        );
    }
}
