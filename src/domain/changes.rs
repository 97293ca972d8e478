//! The change feed's query and cursor (API.md "Sync: the change feed").
//!
//! A position is `(seq, kind, id)`: the account's change counter value of a change, then its
//! kind and id, which order the objects one transaction changed. A cursor seals a position
//! with `valid_since`, the instant from which the client's copy is known to be complete
//! (see `FeedCursor::after_page`); it expires `CHANGES_RETENTION_DAYS` after that instant,
//! because tombstones older than that may be gone.

use uuid::Uuid;

use super::ValidationErrors;
use super::cursor::{CursorKey, Purpose};
use super::listing::{first_time, parse_int};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Project,
    Task,
}

impl ChangeKind {
    /// As stored (`changes.kind`), which is also the order of kinds within one counter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Task => "task",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "project" => Some(Self::Project),
            "task" => Some(Self::Task),
            _ => None,
        }
    }
}

/// A place in one account's feed: everything at or before it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedPosition {
    pub seq: i64,
    /// `None` before the first change of `seq` (the kind sorts as the empty string).
    pub kind: Option<ChangeKind>,
    pub id: Uuid,
}

impl FeedPosition {
    /// Before every change: the feed from the beginning.
    pub const START: Self = Self {
        seq: -1,
        kind: None,
        id: Uuid::nil(),
    };

    /// The kind as the statement compares it.
    pub fn kind_text(&self) -> &'static str {
        self.kind.map_or("", ChangeKind::as_str)
    }
}

/// A position, and since when the client's copy has been complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedCursor {
    pub position: FeedPosition,
    /// Unix seconds.
    pub valid_since: i64,
}

const PAYLOAD_LEN: usize = 8 + 1 + 16 + 8;

impl FeedCursor {
    /// The cursor to hand out after a page read at `now`, ending at `position`.
    ///
    /// A client's copy is complete as of the last page that said `has_more: false`: every
    /// object it holds existed then, so its deletion comes after. Within a walk (more pages
    /// to come) that instant is the walk's first page, so the cursor keeps `since`'s instant;
    /// a walk from the beginning starts at `now`. A caught-up page starts the clock again.
    pub fn after_page(
        since: Option<&FeedCursor>,
        position: FeedPosition,
        has_more: bool,
        now: i64,
    ) -> Self {
        let valid_since = match since {
            Some(since) if has_more => since.valid_since,
            _ => now,
        };
        Self {
            position,
            valid_since,
        }
    }

    /// Whether tombstones this cursor may still need can have been purged.
    pub fn has_expired(&self, now: i64, retention_secs: i64) -> bool {
        self.valid_since < now.saturating_sub(retention_secs)
    }

    pub fn seal(&self, key: &CursorKey, owner: Uuid) -> String {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&self.position.seq.to_be_bytes());
        payload.push(match self.position.kind {
            None => 0,
            Some(ChangeKind::Project) => 1,
            Some(ChangeKind::Task) => 2,
        });
        payload.extend_from_slice(self.position.id.as_bytes());
        payload.extend_from_slice(&self.valid_since.to_be_bytes());
        key.seal(Purpose::Changes, owner, &[], &payload)
    }

    /// The cursor `text` seals for `owner`; `None` if it is malformed, altered or another
    /// user's.
    pub fn open(key: &CursorKey, owner: Uuid, text: &str) -> Option<Self> {
        let payload = key.open(Purpose::Changes, owner, &[], text)?;
        if payload.len() != PAYLOAD_LEN {
            return None;
        }
        let seq = i64::from_be_bytes(payload[0..8].try_into().ok()?);
        let kind = match payload[8] {
            0 => None,
            1 => Some(ChangeKind::Project),
            2 => Some(ChangeKind::Task),
            _ => return None,
        };
        let id = Uuid::from_slice(&payload[9..25]).ok()?;
        let valid_since = i64::from_be_bytes(payload[25..33].try_into().ok()?);
        Some(Self {
            position: FeedPosition { seq, kind, id },
            valid_since,
        })
    }
}

/// A validated `GET /changes` query; `since` is still sealed (opening it needs the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub since: Option<String>,
    pub limit: i64,
}

impl FeedQuery {
    pub fn parse(raw: &str) -> Result<Self, ValidationErrors> {
        let mut query = Self {
            since: None,
            limit: DEFAULT_LIMIT,
        };
        let mut errors = ValidationErrors::default();
        let mut seen = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.as_ref();
            match key {
                "since" | "limit" if !first_time(&mut seen, key, &mut errors) => {}
                "since" => query.since = Some(value.into_owned()),
                "limit" => {
                    if let Some(limit) = errors.check(key, parse_int(&value, 1, MAX_LIMIT)) {
                        query.limit = limit;
                    }
                }
                unknown => errors.add(unknown, "is not a known parameter (since, limit)"),
            }
        }
        errors.into_result(|| query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::derive(b"a test secret that is long enough to use")
    }

    #[test]
    fn a_cursor_round_trips_for_its_owner_only() {
        let owner = Uuid::new_v4();
        let cursor = FeedCursor {
            position: FeedPosition {
                seq: 42,
                kind: Some(ChangeKind::Task),
                id: Uuid::new_v4(),
            },
            valid_since: 1_800_000_000,
        };
        let text = cursor.seal(&key(), owner);
        assert_eq!(FeedCursor::open(&key(), owner, &text), Some(cursor));
        assert_eq!(FeedCursor::open(&key(), Uuid::new_v4(), &text), None);
    }

    #[test]
    fn a_walk_keeps_its_first_instant_and_a_caught_up_page_restarts_it() {
        let since = FeedCursor {
            position: FeedPosition::START,
            valid_since: 100,
        };
        let next = FeedCursor::after_page(Some(&since), FeedPosition::START, true, 500);
        assert_eq!(next.valid_since, 100);
        let done = FeedCursor::after_page(Some(&since), FeedPosition::START, false, 500);
        assert_eq!(done.valid_since, 500);
        let first = FeedCursor::after_page(None, FeedPosition::START, true, 500);
        assert_eq!(first.valid_since, 500);
        assert!(since.has_expired(200, 50));
        assert!(!since.has_expired(120, 50));
    }

    #[test]
    fn the_query_takes_since_and_a_limit_of_1_to_1000() {
        assert_eq!(
            FeedQuery::parse("").unwrap(),
            FeedQuery {
                since: None,
                limit: 100
            }
        );
        assert_eq!(FeedQuery::parse("limit=1000&since=x").unwrap().limit, 1000);
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "limit=1&limit=2",
            "other=1",
        ] {
            assert!(FeedQuery::parse(bad).is_err(), "{bad}");
        }
    }
}
