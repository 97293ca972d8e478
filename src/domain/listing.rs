//! The `GET /tasks` query: paging (by `offset` or by `cursor`), filters and sort order,
//! parsed from the raw query string (API.md "Tasks"). Anything invalid, unknown or repeated
//! is a 422. Also the cursors themselves: what a position in a list is, and how it is
//! written into (and read back from) an opaque, sealed cursor.

use time::{Duration, OffsetDateTime, macros::datetime};
use uuid::Uuid;

use super::cursor::{CursorKey, Purpose};
use super::task::{Priority, TaskStatus};
use super::{ValidationErrors, reject_nul, timestamp};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// What a list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    DueAt,
    Priority,
    Title,
}

impl SortField {
    pub const ALL: [SortField; 5] = [
        Self::CreatedAt,
        Self::UpdatedAt,
        Self::DueAt,
        Self::Priority,
        Self::Title,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::DueAt => "due_at",
            Self::Priority => "priority",
            Self::Title => "title",
        }
    }
}

/// A sort key and direction. Ties are always broken by id in the same direction, so the
/// order is total and paging with `offset` neither repeats nor skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
}

impl Sort {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, raw),
        };
        SortField::ALL
            .into_iter()
            .find(|field| field.as_str() == name)
            .map(|field| Self { field, descending })
            .ok_or_else(|| {
                "must be one of created_at, updated_at, due_at, priority, title, \
                 optionally prefixed by - for descending order"
                    .to_owned()
            })
    }
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    pub limit: i64,
    pub offset: i64,
    /// Empty: any status.
    pub statuses: Vec<TaskStatus>,
    /// Empty: any priority.
    pub priorities: Vec<Priority>,
    pub due_before: Option<OffsetDateTime>,
    pub due_after: Option<OffsetDateTime>,
    /// Words that must all appear in the title or description; `None`: no text filter.
    pub q: Option<String>,
    pub project: ProjectFilter,
    /// Labels every task must carry (exactly as given); empty: no label filter.
    pub labels: Vec<String>,
    pub sort: Sort,
    /// Given by `cursor`: the page starts strictly after this position (and `offset` is 0).
    pub after: Option<Position>,
}

/// The `project_id` filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProjectFilter {
    #[default]
    Any,
    /// `project_id=none`: tasks in no project.
    NoProject,
    /// That project's tasks (none when it is not one of the caller's).
    Is(Uuid),
}

impl ProjectFilter {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "none" {
            return Ok(Self::NoProject);
        }
        Uuid::try_parse(raw)
            .map(Self::Is)
            .map_err(|_| "must be a project id, or none".to_owned())
    }
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
            statuses: Vec::new(),
            priorities: Vec::new(),
            due_before: None,
            due_after: None,
            q: None,
            project: ProjectFilter::Any,
            labels: Vec::new(),
            sort: Sort::default(),
            after: None,
        }
    }
}

impl TaskQuery {
    /// Whether any filter narrows the list (paging and sorting do not).
    pub fn has_filters(&self) -> bool {
        !self.statuses.is_empty()
            || !self.priorities.is_empty()
            || self.due_before.is_some()
            || self.due_after.is_some()
            || self.q.is_some()
            || self.project != ProjectFilter::Any
            || !self.labels.is_empty()
    }

    /// Whether the only filter is one project: its `total` is the project's own count.
    pub fn only_project(&self) -> Option<Uuid> {
        match self.project {
            ProjectFilter::Is(id)
                if self.labels.is_empty() && self.filters_but_project_and_labels_are_empty() =>
            {
                Some(id)
            }
            _ => None,
        }
    }

    /// Whether the only filter is one label: its `total` is the label's own count.
    pub fn only_label(&self) -> Option<&str> {
        match self.labels.as_slice() {
            [label]
                if self.project == ProjectFilter::Any
                    && self.filters_but_project_and_labels_are_empty() =>
            {
                Some(label)
            }
            _ => None,
        }
    }

    fn filters_but_project_and_labels_are_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.priorities.is_empty()
            && self.due_before.is_none()
            && self.due_after.is_none()
            && self.q.is_none()
    }
}

const SINGLE_VALUED: [&str; 8] = [
    "limit",
    "offset",
    "due_before",
    "due_after",
    "q",
    "sort",
    "project_id",
    "cursor",
];

impl TaskQuery {
    /// Parses `application/x-www-form-urlencoded` query text (without the `?`); a `cursor`
    /// must be one that `cursors` (the caller's) sealed for this very sort and filters.
    pub fn parse(raw: &str, cursors: ListCursors<'_>) -> Result<Self, ValidationErrors> {
        let mut query = Self::default();
        let mut errors = ValidationErrors::default();
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.as_ref();
            if SINGLE_VALUED.contains(&key) && !first_time(&mut seen, key, &mut errors) {
                continue;
            }
            if page_param(
                key,
                &value,
                &mut errors,
                &mut query.limit,
                &mut query.offset,
            ) {
                continue;
            }
            match key {
                "status" => {
                    if let Some(status) = errors.check(key, TaskStatus::parse(&value)) {
                        query.statuses.push(status);
                    }
                }
                "priority" => {
                    if let Some(priority) = errors.check(key, Priority::parse(&value)) {
                        query.priorities.push(priority);
                    }
                }
                // Stored instants have microsecond precision: a finer bound is rounded up
                // for "strictly before" and down for "strictly after", so that both keep
                // their meaning on the microsecond grid.
                "due_before" => {
                    query.due_before =
                        errors.check(key, timestamp::parse(&value).map(timestamp::ceil_to_micros))
                }
                "due_after" => {
                    query.due_after = errors.check(
                        key,
                        timestamp::parse(&value).map(timestamp::floor_to_micros),
                    )
                }
                "q" => {
                    if let Some(()) = errors.check(key, reject_nul(&value)) {
                        let words = value.trim();
                        query.q = (!words.is_empty()).then(|| words.to_owned());
                    }
                }
                "sort" => {
                    if let Some(sort) = errors.check(key, Sort::parse(&value)) {
                        query.sort = sort;
                    }
                }
                "project_id" => {
                    if let Some(project) = errors.check(key, ProjectFilter::parse(&value)) {
                        query.project = project;
                    }
                }
                "label" => {
                    if let Some(()) = errors.check(key, reject_nul(&value)) {
                        query.labels.push(value.into_owned());
                    }
                }
                // Opened below, once the sort and filters it must have been issued for are
                // known.
                "cursor" => cursor = Some(value.into_owned()),
                unknown => errors.add(
                    unknown,
                    "is not a known parameter (limit, offset, cursor, status, priority, \
                     due_before, due_after, q, project_id, label, sort)",
                ),
            }
        }
        if let Some(text) = cursor {
            if seen.iter().any(|key| key == "offset") {
                // Even `offset=0`: the two would be two answers to "where does the page
                // start", and silently preferring one would hide a client's mistake.
                errors.add(
                    "cursor",
                    "cannot be combined with offset: the cursor says where the page starts",
                );
            } else if errors.0.is_empty() {
                // Only a valid query can be compared with the one the cursor was issued
                // for; otherwise the other parameters' errors are the ones to fix first.
                match cursors.open(&query, &text) {
                    Some(position) => query.after = Some(position),
                    None => errors.add(
                        "cursor",
                        "is not a cursor this list gave out: it is malformed, or was issued \
                         for another sort, other filters or another user",
                    ),
                }
            }
        }
        errors.into_result(|| query)
    }

    /// A canonical encoding of the sort and the filters: what a cursor is bound to. Paging
    /// (`limit`, `offset`, the cursor itself) is left out, so the page size may change
    /// during a walk; repeated filters are sets, so their order and repetitions do not
    /// count.
    fn cursor_context(&self) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        fn put_set<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = &'a str>) {
            let mut values: Vec<&str> = values.collect();
            values.sort_unstable();
            values.dedup();
            out.extend_from_slice(
                &u32::try_from(values.len())
                    .unwrap_or(u32::MAX)
                    .to_be_bytes(),
            );
            for value in values {
                put(out, value.as_bytes());
            }
        }
        fn put_instant(out: &mut Vec<u8>, instant: Option<OffsetDateTime>) {
            match instant {
                None => out.push(0),
                Some(instant) => {
                    out.push(1);
                    out.extend_from_slice(&instant.unix_timestamp_nanos().to_be_bytes());
                }
            }
        }
        let mut out = b"tasks v1".to_vec();
        put(&mut out, self.sort.field.as_str().as_bytes());
        out.push(u8::from(self.sort.descending));
        put_set(&mut out, self.statuses.iter().map(|s| s.as_str()));
        put_set(&mut out, self.priorities.iter().map(|p| p.as_str()));
        put_instant(&mut out, self.due_before);
        put_instant(&mut out, self.due_after);
        match &self.q {
            None => out.push(0),
            Some(q) => {
                out.push(1);
                put(&mut out, q.as_bytes());
            }
        }
        match self.project {
            ProjectFilter::Any => out.push(0),
            ProjectFilter::NoProject => out.push(1),
            ProjectFilter::Is(id) => {
                out.push(2);
                out.extend_from_slice(id.as_bytes());
            }
        }
        put_set(&mut out, self.labels.iter().map(String::as_str));
        out
    }
}

/// A task's value of the key a list is sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt(OffsetDateTime),
    UpdatedAt(OffsetDateTime),
    /// `None`: undated (such tasks come after every dated one, in both directions).
    DueAt(Option<OffsetDateTime>),
    Priority(Priority),
    Title(String),
}

impl SortKey {
    pub fn field(&self) -> SortField {
        match self {
            Self::CreatedAt(_) => SortField::CreatedAt,
            Self::UpdatedAt(_) => SortField::UpdatedAt,
            Self::DueAt(_) => SortField::DueAt,
            Self::Priority(_) => SortField::Priority,
            Self::Title(_) => SortField::Title,
        }
    }
}

/// A place in a sorted list: the sort key and id of the last task returned. The order is
/// total (ties broken by id), so "strictly after this position" is exact, whether or not
/// that task still exists or still has that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub key: SortKey,
    pub id: Uuid,
}

/// The first byte of a position: which key it holds.
fn kind(field: SortField) -> u8 {
    match field {
        SortField::CreatedAt => 1,
        SortField::UpdatedAt => 2,
        SortField::DueAt => 3,
        SortField::Priority => 4,
        SortField::Title => 5,
    }
}

/// A priority's rank, 0 (low) to 3 (urgent): its index in `Priority::ALL`.
/// A priority's rank: its place in `Priority::ALL`, which is in rank order (and is how
/// `decode` reads it back).
fn rank(priority: Priority) -> u8 {
    Priority::ALL
        .iter()
        .position(|p| *p == priority)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

/// PostgreSQL's epoch: timestamps travel as microseconds since it, PostgreSQL's own
/// representation, so every stored instant is written exactly and the whole range fits.
const PG_EPOCH: OffsetDateTime = datetime!(2000-01-01 00:00 UTC);

impl Position {
    /// `kind ‖ id ‖ value`: the value last, since a title's length varies.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 + 8);
        out.push(kind(self.key.field()));
        out.extend_from_slice(self.id.as_bytes());
        let micros = |instant: OffsetDateTime| {
            let micros = (instant - PG_EPOCH).whole_microseconds();
            // In range for anything PostgreSQL stores; clamped rather than wrapped otherwise.
            i64::try_from(micros)
                .unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
                .to_be_bytes()
        };
        match &self.key {
            SortKey::CreatedAt(instant) | SortKey::UpdatedAt(instant) => {
                out.extend_from_slice(&micros(*instant));
            }
            SortKey::DueAt(None) => {}
            SortKey::DueAt(Some(instant)) => out.extend_from_slice(&micros(*instant)),
            SortKey::Priority(priority) => out.push(rank(*priority)),
            SortKey::Title(title) => out.extend_from_slice(title.as_bytes()),
        }
        out
    }

    /// The position `encode` wrote for a list sorted by `field`; `None` for anything else.
    /// (The MAC already vouches for the bytes; this is strict all the same.)
    fn decode(field: SortField, bytes: &[u8]) -> Option<Self> {
        let (&kind, rest) = bytes.split_first()?;
        if kind != self::kind(field) || rest.len() < 16 {
            return None;
        }
        let (id, value) = rest.split_at(16);
        let id = Uuid::from_slice(id).ok()?;
        let instant = |value: &[u8]| {
            let micros = i64::from_be_bytes(value.try_into().ok()?);
            PG_EPOCH.checked_add(Duration::microseconds(micros))
        };
        let key = match field {
            SortField::CreatedAt => SortKey::CreatedAt(instant(value)?),
            SortField::UpdatedAt => SortKey::UpdatedAt(instant(value)?),
            SortField::DueAt if value.is_empty() => SortKey::DueAt(None),
            SortField::DueAt => SortKey::DueAt(Some(instant(value)?)),
            SortField::Priority => match value {
                [rank] => SortKey::Priority(*Priority::ALL.get(usize::from(*rank))?),
                _ => return None,
            },
            SortField::Title => SortKey::Title(String::from_utf8(value.to_vec()).ok()?),
        };
        Some(Self { key, id })
    }
}

/// The cursors of one caller's task lists: sealed with the server's cursor key, bound to
/// the caller and to the list's sort and filters (the MAC covers them, the text does not
/// carry them), so a cursor replayed by another user or on another query does not open.
#[derive(Debug, Clone, Copy)]
pub struct ListCursors<'a> {
    key: &'a CursorKey,
    owner: Uuid,
}

impl<'a> ListCursors<'a> {
    pub fn new(key: &'a CursorKey, owner: Uuid) -> Self {
        Self { key, owner }
    }

    /// The cursor of the page of `query` that follows `last` (the last task returned).
    pub fn after(&self, query: &TaskQuery, last: &Position) -> String {
        self.key.seal(
            Purpose::TaskList,
            self.owner,
            &query.cursor_context(),
            &last.encode(),
        )
    }

    fn open(&self, query: &TaskQuery, text: &str) -> Option<Position> {
        let payload =
            self.key
                .open(Purpose::TaskList, self.owner, &query.cursor_context(), text)?;
        Position::decode(query.sort.field, &payload)
    }
}

/// Records `key` as given; `false` (and a 422 for it) when it was given before.
pub(super) fn first_time(seen: &mut Vec<String>, key: &str, errors: &mut ValidationErrors) -> bool {
    if seen.iter().any(|k| k == key) {
        errors.add(key, "must be given at most once");
        return false;
    }
    seen.push(key.to_owned());
    true
}

/// Parses `limit` (1..100) or `offset` (≥ 0) into its place; `false` for any other key.
fn page_param(
    key: &str,
    value: &str,
    errors: &mut ValidationErrors,
    limit: &mut i64,
    offset: &mut i64,
) -> bool {
    let (place, min, max) = match key {
        "limit" => (limit, 1, MAX_LIMIT),
        "offset" => (offset, 0, i64::MAX),
        _ => return false,
    };
    if let Some(parsed) = errors.check(key, parse_int(value, min, max)) {
        *place = parsed;
    }
    true
}

pub(super) fn parse_int(raw: &str, min: i64, max: i64) -> Result<i64, String> {
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == i64::MAX => Err(format!("must be a whole number of at least {min}")),
        _ => Err(format!("must be a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::derive(b"a test secret that is long enough to use")
    }

    const OWNER: Uuid = Uuid::from_u128(1);

    fn parse(raw: &str) -> Result<TaskQuery, ValidationErrors> {
        TaskQuery::parse(raw, cursors())
    }

    fn fields(raw: &str) -> Vec<String> {
        parse(raw)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn empty_query_gives_the_documented_defaults() {
        let query = parse("").unwrap();
        assert_eq!(query, TaskQuery::default());
        assert_eq!(query.limit, 20);
        assert!(query.sort.descending);
        assert_eq!(query.sort.field, SortField::CreatedAt);
    }

    #[test]
    fn repeated_filters_accumulate() {
        let query = parse("status=todo&status=done&priority=urgent").unwrap();
        assert_eq!(query.statuses, [TaskStatus::Todo, TaskStatus::Done]);
        assert_eq!(query.priorities, [Priority::Urgent]);
    }

    #[test]
    fn limits_and_offsets_out_of_range_are_rejected() {
        assert_eq!(fields("limit=0"), ["limit"]);
        assert_eq!(fields("limit=101"), ["limit"]);
        assert_eq!(fields("limit=ten"), ["limit"]);
        assert_eq!(fields("limit="), ["limit"]);
        assert_eq!(fields("offset=-1"), ["offset"]);
        assert_eq!(fields("limit=5&limit=6"), ["limit"]);
        assert_eq!(parse("limit=100&offset=0").unwrap().limit, 100);
    }

    #[test]
    fn unknown_values_and_parameters_are_rejected() {
        assert_eq!(fields("status=later"), ["status"]);
        assert_eq!(fields("sort=-colour"), ["sort"]);
        assert_eq!(fields("due_before=yesterday"), ["due_before"]);
        assert_eq!(fields("page=2"), ["page"]);
        assert_eq!(fields("q=a%00b"), ["q"]);
    }

    #[test]
    fn sort_accepts_every_key_both_ways() {
        for field in SortField::ALL {
            let up = Sort::parse(field.as_str()).unwrap();
            let down = Sort::parse(&format!("-{}", field.as_str())).unwrap();
            assert_eq!((up.field, up.descending), (field, false));
            assert_eq!((down.field, down.descending), (field, true));
        }
    }

    #[test]
    fn due_before_finer_than_a_microsecond_rounds_up() {
        let query = parse("due_before=2026-12-01T17:00:00.0000005Z").unwrap();
        let bound = query.due_before.unwrap();
        assert_eq!(bound.nanosecond(), 1_000);
        let exact = parse("due_before=2026-12-01T17:00:00.000001Z").unwrap();
        assert_eq!(exact.due_before.unwrap().nanosecond(), 1_000);
    }

    static KEY: std::sync::LazyLock<CursorKey> = std::sync::LazyLock::new(key);

    fn cursors() -> ListCursors<'static> {
        ListCursors::new(&KEY, OWNER)
    }

    /// The query text of `raw` followed by a cursor after `last`, issued for `issued_for`.
    fn with_cursor(raw: &str, issued_for: &str, last: &Position) -> String {
        let text = cursors().after(&parse(issued_for).unwrap(), last);
        let cursor: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("cursor", &text)
            .finish();
        if raw.is_empty() {
            cursor
        } else {
            format!("{raw}&{cursor}")
        }
    }

    fn position(key: SortKey) -> Position {
        Position {
            key,
            id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        }
    }

    #[test]
    fn every_kind_of_position_comes_back_from_its_cursor_exactly() {
        let instants = [
            datetime!(2026-12-01 17:00:00.123456 UTC),
            datetime!(1999-12-31 23:59:59.999999 UTC),
            datetime!(0000-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
        ];
        let mut keys = Vec::new();
        for instant in instants {
            keys.push(("created_at", SortKey::CreatedAt(instant)));
            keys.push(("-updated_at", SortKey::UpdatedAt(instant)));
            keys.push(("due_at", SortKey::DueAt(Some(instant))));
        }
        keys.push(("-due_at", SortKey::DueAt(None)));
        for priority in Priority::ALL {
            keys.push(("priority", SortKey::Priority(priority)));
        }
        // The longest title there can be: 200 characters of four bytes each.
        keys.push(("-title", SortKey::Title("😀".repeat(200))));
        keys.push(("title", SortKey::Title("Éclair, a b".to_owned())));
        for (sort, key) in keys {
            let last = position(key);
            let raw = with_cursor(&format!("sort={sort}"), &format!("sort={sort}"), &last);
            let query = parse(&raw).unwrap_or_else(|e| panic!("{sort}: {e:?}"));
            assert_eq!(query.after, Some(last), "{sort}");
            assert_eq!(query.offset, 0);
        }
    }

    #[test]
    fn a_cursor_opens_only_for_the_sort_and_filters_it_was_issued_for() {
        let last = position(SortKey::CreatedAt(datetime!(2026-12-01 17:00 UTC)));
        let issued_for = "status=todo&status=done&label=a&label=b&q=word";
        // The same filters in another order, repeated, or with another page size.
        for same in [
            "status=done&status=todo&label=b&label=a&q=word",
            "status=todo&status=done&status=todo&label=a&label=b&q=word&limit=7",
            "q=word&label=a&status=done&label=b&status=todo&sort=-created_at",
        ] {
            assert_eq!(
                parse(&with_cursor(same, issued_for, &last)).unwrap().after,
                Some(last.clone())
            );
        }
        for other in [
            "status=todo&label=a&label=b&q=word",
            "status=todo&status=done&label=a&q=word",
            "status=todo&status=done&label=a&label=b",
            "status=todo&status=done&label=a&label=b&q=words",
            "status=todo&status=done&label=a&label=b&q=word&priority=low",
            "status=todo&status=done&label=a&label=b&q=word&project_id=none",
            "status=todo&status=done&label=a&label=b&q=word&due_after=2026-01-01T00:00:00Z",
            "status=todo&status=done&label=a&label=b&q=word&sort=created_at",
            "status=todo&status=done&label=a&label=b&q=word&sort=-updated_at",
        ] {
            assert_eq!(
                fields(&with_cursor(other, issued_for, &last)),
                ["cursor"],
                "{other}"
            );
        }
        // Another user's cursor, for the very same query.
        let theirs = ListCursors::new(&KEY, Uuid::from_u128(2));
        let text = theirs.after(&parse(issued_for).unwrap(), &last);
        let raw = format!("{issued_for}&cursor={text}");
        assert_eq!(fields(&raw), ["cursor"]);
    }

    #[test]
    fn a_cursor_with_offset_twice_or_mangled_is_refused_naming_cursor() {
        let last = position(SortKey::Title("x".to_owned()));
        let good = with_cursor("sort=title", "sort=title", &last);
        assert!(parse(&good).is_ok());
        assert_eq!(fields(&format!("{good}&offset=0")), ["cursor"]);
        assert_eq!(fields(&format!("offset=3&{good}")), ["cursor"]);
        assert_eq!(fields(&format!("{good}&offset=-1")), ["offset", "cursor"]);
        assert_eq!(fields(&format!("{good}&cursor=abc")), ["cursor"]);
        for mangled in [
            "cursor=",
            "cursor=abc",
            "cursor=%00",
            "cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(
                fields(&format!("sort=title&{mangled}")),
                ["cursor"],
                "{mangled}"
            );
        }
        // Another parameter's mistake comes first; the cursor is judged on a valid query.
        assert_eq!(fields(&format!("{good}&limit=0")), ["limit"]);
    }

    #[test]
    fn a_position_of_another_kind_or_shape_does_not_decode() {
        let last = position(SortKey::DueAt(None));
        let bytes = last.encode();
        assert_eq!(Position::decode(SortField::DueAt, &bytes), Some(last));
        assert_eq!(Position::decode(SortField::CreatedAt, &bytes), None);
        assert_eq!(Position::decode(SortField::DueAt, &bytes[..10]), None);
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Position::decode(SortField::DueAt, &long), None);
        let mut priority = position(SortKey::Priority(Priority::Urgent)).encode();
        *priority.last_mut().unwrap() = 4;
        assert_eq!(Position::decode(SortField::Priority, &priority), None);
        let mut title = position(SortKey::Title("a".to_owned())).encode();
        *title.last_mut().unwrap() = 0xff;
        assert_eq!(Position::decode(SortField::Title, &title), None);
    }

    #[test]
    fn blank_search_text_is_no_filter() {
        assert_eq!(parse("q=+++").unwrap().q, None);
        assert_eq!(parse("q=%25off").unwrap().q.as_deref(), Some("%off"));
    }
}

/// The query of a plain paged list (`GET /projects`): `limit` 1..100 (default 20) and
/// `offset` ≥ 0, each at most once; anything else is a 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: i64,
    pub offset: i64,
}

impl PageQuery {
    pub fn parse(raw: &str) -> Result<Self, ValidationErrors> {
        let mut page = Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        let mut errors = ValidationErrors::default();
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.as_ref();
            if !first_time(&mut seen, key, &mut errors)
                || page_param(key, &value, &mut errors, &mut page.limit, &mut page.offset)
            {
                continue;
            }
            errors.add(key, "is not a known parameter (limit, offset)");
        }
        errors.into_result(|| page)
    }
}
