//! JSON response bodies written by hand into one buffer, for the bodies the read routes
//! send most (a list page is 20 tasks). serde_json escapes every string it writes, keys and
//! ids included, one byte at a time: that was a fifth of a list request's instructions
//! (docs/PERFORMANCE.md). Here keys, punctuation, ids, timestamps and numbers, which never
//! need escaping, are copied as they are, and only strings that come from users (titles,
//! descriptions, labels) go through serde_json's escaping, so the output is byte for byte
//! what serde_json writes for the same value (the tests of each body compare the two).

use std::io::Write;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::domain::timestamp::{self, Utc};

/// A JSON body being written. Callers write keys and punctuation with `raw`, values with
/// the typed methods.
#[derive(Debug)]
pub struct JsonBody {
    out: Vec<u8>,
}

impl JsonBody {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            out: Vec::with_capacity(bytes),
        }
    }

    /// Text copied as it is: a literal of the caller's (keys, `{`, `,"title":` …), never
    /// anything a user sent.
    pub fn raw(&mut self, literal: &'static str) {
        self.out.extend_from_slice(literal.as_bytes());
    }

    /// A string from a user, escaped as serde_json escapes it.
    pub fn string(&mut self, text: &str) {
        // Writing into a Vec cannot fail, and a `str` always serializes.
        let _ = serde_json::to_writer(&mut self.out, text);
    }

    pub fn optional_string(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.string(text),
            None => self.raw("null"),
        }
    }

    pub fn strings(&mut self, texts: &[String]) {
        self.out.push(b'[');
        for (n, text) in texts.iter().enumerate() {
            if n > 0 {
                self.out.push(b',');
            }
            self.string(text);
        }
        self.out.push(b']');
    }

    /// A UUID, hyphenated, lower case (as uuid's serde writes it).
    pub fn uuid(&mut self, id: Uuid) {
        let mut text = Uuid::encode_buffer();
        self.out.push(b'"');
        self.out
            .extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
        self.out.push(b'"');
    }

    pub fn optional_uuid(&mut self, id: Option<Uuid>) {
        match id {
            Some(id) => self.uuid(id),
            None => self.raw("null"),
        }
    }

    pub fn timestamp(&mut self, instant: Utc) {
        let mut text = [0; timestamp::LONGEST];
        match instant.write(&mut text) {
            // The digits as bytes: no UTF-8 check, no formatter (both showed in the profile).
            Some(len) => {
                self.out.push(b'"');
                self.out.extend_from_slice(&text[..len]);
                self.out.push(b'"');
            }
            None => {
                let _ = write!(self.out, "\"{instant}\"");
            }
        }
    }

    pub fn optional_timestamp(&mut self, instant: Option<Utc>) {
        match instant {
            Some(instant) => self.timestamp(instant),
            None => self.raw("null"),
        }
    }

    pub fn integer(&mut self, value: i64) {
        let _ = write!(self.out, "{value}");
    }

    #[cfg(test)]
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        let mut response = self.out.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let id = Uuid::new_v4();
        let instant = Utc(time::macros::datetime!(2026-12-01 17:00:00.5 UTC));
        // Past year 9999: the formatter's path, not the hand-written digits.
        let far = Utc(time::macros::datetime!(+10000-01-01 00:00:00 UTC));
        let tricky = "quote \" backslash \\ newline \n tab \t nul \0 bell \u{7} é \u{2028} 🦀";
        let labels = vec!["a\"b".to_owned(), String::new(), "\u{1f}".to_owned()];
        let mut body = JsonBody::with_capacity(0);
        body.raw("[");
        body.string(tricky);
        body.raw(",");
        body.optional_string(None);
        body.raw(",");
        body.strings(&labels);
        body.raw(",");
        body.strings(&[]);
        body.raw(",");
        body.uuid(id);
        body.raw(",");
        body.optional_uuid(None);
        body.raw(",");
        body.timestamp(instant);
        body.raw(",");
        body.timestamp(far);
        body.raw(",");
        body.optional_timestamp(None);
        body.raw(",");
        body.integer(i64::MIN);
        body.raw("]");
        let expected = serde_json::to_vec(&serde_json::json!([
            tricky,
            null,
            labels,
            [],
            id,
            null,
            instant,
            far,
            null,
            i64::MIN
        ]))
        .unwrap();
        assert_eq!(
            String::from_utf8(body.into_bytes()).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
