//! The `GET /tasks` query: paging, filters and sort order, parsed from the raw query
//! string (API.md "Tasks"). Anything invalid, unknown or repeated is a 422.

use time::OffsetDateTime;
use uuid::Uuid;

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

const SINGLE_VALUED: [&str; 7] = [
    "limit",
    "offset",
    "due_before",
    "due_after",
    "q",
    "sort",
    "project_id",
];

impl TaskQuery {
    /// Parses `application/x-www-form-urlencoded` query text (without the `?`).
    pub fn parse(raw: &str) -> Result<Self, ValidationErrors> {
        let mut query = Self::default();
        let mut errors = ValidationErrors::default();
        let mut seen: Vec<String> = Vec::new();
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
                unknown => errors.add(
                    unknown,
                    "is not a known parameter (limit, offset, status, priority, due_before, \
                     due_after, q, project_id, label, sort)",
                ),
            }
        }
        errors.into_result(|| query)
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

    fn fields(raw: &str) -> Vec<String> {
        TaskQuery::parse(raw)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn empty_query_gives_the_documented_defaults() {
        let query = TaskQuery::parse("").unwrap();
        assert_eq!(query, TaskQuery::default());
        assert_eq!(query.limit, 20);
        assert!(query.sort.descending);
        assert_eq!(query.sort.field, SortField::CreatedAt);
    }

    #[test]
    fn repeated_filters_accumulate() {
        let query = TaskQuery::parse("status=todo&status=done&priority=urgent").unwrap();
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
        assert_eq!(TaskQuery::parse("limit=100&offset=0").unwrap().limit, 100);
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
        let query = TaskQuery::parse("due_before=2026-12-01T17:00:00.0000005Z").unwrap();
        let bound = query.due_before.unwrap();
        assert_eq!(bound.nanosecond(), 1_000);
        let exact = TaskQuery::parse("due_before=2026-12-01T17:00:00.000001Z").unwrap();
        assert_eq!(exact.due_before.unwrap().nanosecond(), 1_000);
    }

    #[test]
    fn blank_search_text_is_no_filter() {
        assert_eq!(TaskQuery::parse("q=+++").unwrap().q, None);
        assert_eq!(
            TaskQuery::parse("q=%25off").unwrap().q.as_deref(),
            Some("%off")
        );
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
