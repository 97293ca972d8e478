//! Entity tags of tasks and projects, and the `If-Match` precondition (API.md "Concurrency").

use uuid::Uuid;

/// The strong, quoted ETag of one version of one task or project. It names the resource
/// too, so a tag copied from another one never matches.
pub fn etag(id: Uuid, version: i32) -> String {
    format!("\"{}-{version}\"", id.simple())
}

/// What a write requires of the task's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`, or `If-Match: *` (any existing task matches).
    AnyVersion,
    /// One of these versions; an empty list can never match (every tag was stale,
    /// weak, malformed or another task's).
    OneOf(Vec<i32>),
}

impl Precondition {
    /// Reads the `If-Match` header values (already split into lines) for task `id`.
    /// If-Match uses strong comparison (RFC 9110 §13.1.1): weak tags never match.
    pub fn from_if_match<'a>(values: impl IntoIterator<Item = &'a str>, id: Uuid) -> Self {
        let mut seen_header = false;
        let mut versions = Vec::new();
        for tag in values.into_iter().flat_map(|value| value.split(',')) {
            seen_header = true;
            let tag = tag.trim();
            if tag == "*" {
                return Self::AnyVersion;
            }
            if let Some(version) = parse_own_tag(tag, id) {
                versions.push(version);
            }
        }
        if seen_header {
            Self::OneOf(versions)
        } else {
            Self::AnyVersion
        }
    }

    /// Whether a resource at `version` satisfies it (for a write that changes nothing and
    /// so checks in Rust what the UPDATE's `WHERE` would otherwise check).
    pub fn allows(&self, version: i32) -> bool {
        self.versions()
            .is_none_or(|versions| versions.contains(&version))
    }

    /// The versions for SQL: `None` means any.
    pub fn versions(&self) -> Option<&[i32]> {
        match self {
            Self::AnyVersion => None,
            Self::OneOf(versions) => Some(versions),
        }
    }
}

/// Whether an `If-None-Match` header (its values, already split into lines) matches the
/// current version of resource `id`: RFC 9110 §13.1.2, weak comparison (`W/"…"` matches
/// the strong tag with the same opaque part), `*` matches any existing resource.
pub fn none_match_matches<'a>(
    values: impl IntoIterator<Item = &'a str>,
    id: Uuid,
    version: i32,
) -> bool {
    let mut tags = values
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .peekable();
    // Most requests send no `If-None-Match`: no tag to format for them.
    if tags.peek().is_none() {
        return false;
    }
    let current = etag(id, version);
    tags.any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current)
}

/// The version named by one of our own tags for task `id`. Strong comparison is
/// character by character, so only the exact spelling we issue counts (`"…-01"` is not
/// `"…-1"`).
fn parse_own_tag(tag: &str, id: Uuid) -> Option<i32> {
    let opaque = tag.strip_prefix('"')?.strip_suffix('"')?;
    let (_, version) = opaque.split_once('-')?;
    let version = version.parse().ok()?;
    (etag(id, version) == tag).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_star_matches() {
        let id = Uuid::new_v4();
        let tag = etag(id, 3);
        assert!(none_match_matches([tag.as_str()], id, 3));
        assert!(none_match_matches([format!("W/{tag}").as_str()], id, 3));
        assert!(none_match_matches(
            [format!("\"x\", {tag}").as_str()],
            id,
            3
        ));
        assert!(none_match_matches(["\"x\"", tag.as_str()], id, 3));
        assert!(none_match_matches(["*"], id, 3));
        assert!(!none_match_matches([tag.as_str()], id, 4));
        assert!(!none_match_matches(
            [etag(Uuid::new_v4(), 3).as_str()],
            id,
            3
        ));
        assert!(!none_match_matches([], id, 3));
    }

    #[test]
    fn own_tags_round_trip() {
        let id = Uuid::new_v4();
        let tag = etag(id, 7);
        assert_eq!(
            Precondition::from_if_match([tag.as_str()], id),
            Precondition::OneOf(vec![7])
        );
    }

    #[test]
    fn star_and_absence_match_any_version() {
        let id = Uuid::new_v4();
        assert_eq!(
            Precondition::from_if_match([], id),
            Precondition::AnyVersion
        );
        let listed = format!("{}, *", etag(id, 1));
        assert_eq!(
            Precondition::from_if_match([listed.as_str()], id),
            Precondition::AnyVersion
        );
    }

    #[test]
    fn weak_foreign_and_malformed_tags_never_match() {
        let id = Uuid::new_v4();
        let weak = format!("W/{}", etag(id, 1));
        let foreign = etag(Uuid::new_v4(), 1);
        let values = [weak.as_str(), foreign.as_str(), "garbage", "\"\""];
        assert_eq!(
            Precondition::from_if_match(values, id),
            Precondition::OneOf(vec![])
        );
    }

    #[test]
    fn tags_match_only_when_spelled_exactly_as_issued() {
        let id = Uuid::new_v4();
        for variant in ["01", "+1", " 1"] {
            let tag = format!("\"{}-{variant}\"", id.simple());
            assert_eq!(
                Precondition::from_if_match([tag.as_str()], id),
                Precondition::OneOf(vec![]),
                "{tag}"
            );
        }
    }

    #[test]
    fn lists_keep_every_own_version() {
        let id = Uuid::new_v4();
        let list = format!("{}, {}", etag(id, 2), etag(id, 3));
        assert_eq!(
            Precondition::from_if_match([list.as_str()], id),
            Precondition::OneOf(vec![2, 3])
        );
    }
}
