//! Pure types and rules of the product: parsed once at the edge, trusted everywhere after.
//! No HTTP and no SQL here.

pub mod changes;
pub mod cursor;
pub mod email;
pub mod etag;
pub mod idempotency;
pub mod label;
pub mod listing;
pub mod password;
pub mod project;
pub mod task;
pub mod timestamp;

pub use email::Email;
pub use password::Password;

/// One invalid input field, as reported in a problem's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects every invalid field of one input, so a client learns all its mistakes at once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Keeps the parsed value, or records its error under `field`.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|message| self.add(field, message)).ok()
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }
}

/// PostgreSQL text cannot hold U+0000 (API.md: such a string is 422, never 500).
pub(crate) fn reject_nul(value: &str) -> Result<(), String> {
    if value.contains('\0') {
        Err("must not contain the NUL character (U+0000)".to_owned())
    } else {
        Ok(())
    }
}
