//! Tasks: their fields' rules (API.md "Tasks") and the shape of a creation or a change.

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use uuid::Uuid;

use super::label::Labels;
use super::{ValidationErrors, reject_nul, timestamp};

const TITLE_MAX_CHARS: usize = 200;
const DESCRIPTION_MAX_CHARS: usize = 10_000;

/// Where a task stands. `completed_at` is set exactly while it is `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[default]
    Todo,
    InProgress,
    Done,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 3] = [Self::Todo, Self::InProgress, Self::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::InProgress => "in_progress",
            Self::Done => "done",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| "must be one of todo, in_progress, done".to_owned())
    }
}

/// How urgent a task is; the variants are in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str() == raw)
            .ok_or_else(|| "must be one of low, medium, high, urgent".to_owned())
    }
}

/// A title: 1 to 200 characters once surrounding whitespace is trimmed; stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub fn parse(raw: &str) -> Result<Self, String> {
        reject_nul(raw)?;
        let title = raw.trim();
        if title.is_empty() {
            return Err("must not be empty or only whitespace".to_owned());
        }
        if title.chars().count() > TITLE_MAX_CHARS {
            return Err(format!("must be at most {TITLE_MAX_CHARS} characters"));
        }
        Ok(Self(title.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A description: at most 10,000 characters, stored exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: String) -> Result<Self, String> {
        reject_nul(&raw)?;
        if raw.chars().count() > DESCRIPTION_MAX_CHARS {
            return Err(format!(
                "must be at most {DESCRIPTION_MAX_CHARS} characters"
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One field of a JSON input, telling "not sent" apart from "sent as null"
/// (PATCH: only the fields sent change, and `null` clears a nullable one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Present(T),
}

impl<R> Field<R> {
    /// A member that may be omitted but never null: `None` when omitted.
    pub fn optional<T>(
        self,
        name: &str,
        parse: impl FnOnce(R) -> Result<T, String>,
    ) -> Result<Option<T>, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let parsed = parse_required(&mut errors, name, self, parse);
        errors.into_result(|| parsed)
    }

    /// A member that must be sent, and not as null.
    pub fn required<T>(
        self,
        name: &str,
        parse: impl FnOnce(R) -> Result<T, String>,
    ) -> Result<T, ValidationErrors> {
        if matches!(self, Self::Absent) {
            return Err(ValidationErrors::single(name, "is required"));
        }
        self.optional(name, parse)
            .map(|parsed| parsed.expect("present: checked above"))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Self::Present(value),
            None => Self::Null,
        })
    }
}

/// The fields of a task as a client sent them, before validation.
#[derive(Debug, Default)]
pub struct TaskInput {
    pub title: Field<String>,
    pub description: Field<String>,
    pub status: Field<String>,
    pub priority: Field<String>,
    pub due_at: Field<String>,
    pub project_id: Field<String>,
    pub labels: Field<Vec<String>>,
}

/// A whole task as the client wants it (POST, and PUT's full replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub title: TaskTitle,
    pub description: Option<Description>,
    pub status: TaskStatus,
    pub priority: Priority,
    pub due_at: Option<OffsetDateTime>,
    pub project_id: Option<Uuid>,
    pub labels: Labels,
}

/// What a PATCH changes: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskChanges {
    pub title: Option<TaskTitle>,
    pub description: Option<Option<Description>>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub due_at: Option<Option<OffsetDateTime>>,
    pub project_id: Option<Option<Uuid>>,
    pub labels: Option<Labels>,
}

impl TaskChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl From<NewTask> for TaskChanges {
    fn from(task: NewTask) -> Self {
        Self {
            title: Some(task.title),
            description: Some(task.description),
            status: Some(task.status),
            priority: Some(task.priority),
            due_at: Some(task.due_at),
            project_id: Some(task.project_id),
            labels: Some(task.labels),
        }
    }
}

impl TaskInput {
    /// Validates a complete task: `title` is required, omitted optional fields take
    /// their defaults, and `null` is refused where the field is not nullable.
    pub fn into_new_task(self) -> Result<NewTask, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.title == Field::Absent {
            errors.add("title", "is required");
        }
        let changes = self.parse(&mut errors);
        errors.into_result(|| NewTask {
            title: changes.title.expect("title checked above"),
            description: changes.description.flatten(),
            status: changes.status.unwrap_or_default(),
            priority: changes.priority.unwrap_or_default(),
            due_at: changes.due_at.flatten(),
            project_id: changes.project_id.flatten(),
            labels: changes.labels.unwrap_or_default(),
        })
    }

    /// Validates a partial change: only the fields sent are checked and changed.
    pub fn into_changes(self) -> Result<TaskChanges, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let changes = self.parse(&mut errors);
        errors.into_result(|| changes)
    }

    /// Parses every field that was sent, recording what is invalid.
    fn parse(self, errors: &mut ValidationErrors) -> TaskChanges {
        TaskChanges {
            title: parse_required(errors, "title", self.title, |t| TaskTitle::parse(&t)),
            description: parse_nullable(
                errors,
                "description",
                self.description,
                Description::parse,
            ),
            status: parse_required(errors, "status", self.status, |s| TaskStatus::parse(&s)),
            priority: parse_required(errors, "priority", self.priority, |p| Priority::parse(&p)),
            due_at: parse_nullable(errors, "due_at", self.due_at, |d| {
                timestamp::parse(&d).map(timestamp::floor_to_micros)
            }),
            // Whether the project is one of the caller's is the database's answer (a
            // composite foreign key): here only the shape.
            project_id: parse_nullable(errors, "project_id", self.project_id, |id| {
                Uuid::try_parse(&id).map_err(|_| UNKNOWN_PROJECT.to_owned())
            }),
            labels: parse_required(errors, "labels", self.labels, Labels::parse),
        }
    }
}

/// The one answer for a `project_id` that is not one of the caller's projects, whether it
/// is malformed, unknown or another user's (API.md: the same 422 in every case).
pub const UNKNOWN_PROJECT: &str = "must be the id of one of your projects, or null";

/// A field that may be omitted but never null.
fn parse_required<R, T>(
    errors: &mut ValidationErrors,
    name: &str,
    field: Field<R>,
    parse: impl FnOnce(R) -> Result<T, String>,
) -> Option<T> {
    match field {
        Field::Absent => None,
        Field::Null => {
            errors.add(name, "must not be null");
            None
        }
        Field::Present(raw) => errors.check(name, parse(raw)),
    }
}

/// A nullable field: `Some(None)` when sent as null.
fn parse_nullable<T>(
    errors: &mut ValidationErrors,
    name: &str,
    field: Field<String>,
    parse: impl FnOnce(String) -> Result<T, String>,
) -> Option<Option<T>> {
    match field {
        Field::Absent => None,
        Field::Null => Some(None),
        Field::Present(raw) => errors.check(name, parse(raw)).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: Field<String>) -> TaskInput {
        TaskInput {
            title,
            ..TaskInput::default()
        }
    }

    #[test]
    fn title_is_trimmed_and_bounded_in_characters() {
        assert_eq!(
            TaskTitle::parse("  Write it \n").unwrap().as_str(),
            "Write it"
        );
        assert!(TaskTitle::parse(" \t ").is_err());
        assert!(TaskTitle::parse(&"é".repeat(200)).is_ok());
        assert!(TaskTitle::parse(&"é".repeat(201)).is_err());
        assert!(TaskTitle::parse(&format!("  {}  ", "a".repeat(200))).is_ok());
        assert!(TaskTitle::parse("nul\0byte").is_err());
    }

    #[test]
    fn description_is_kept_verbatim_and_bounded() {
        let text = "  spaced \u{1F600} ".to_owned();
        assert_eq!(Description::parse(text.clone()).unwrap().as_str(), text);
        assert!(Description::parse("x".repeat(10_000)).is_ok());
        assert!(Description::parse("x".repeat(10_001)).is_err());
    }

    #[test]
    fn new_task_takes_defaults_for_omitted_fields() {
        let task = input(Field::Present("A".into())).into_new_task().unwrap();
        assert_eq!(task.status, TaskStatus::Todo);
        assert_eq!(task.priority, Priority::Medium);
        assert_eq!(task.description, None);
        assert_eq!(task.due_at, None);
    }

    #[test]
    fn new_task_reports_every_invalid_field() {
        let errors = TaskInput {
            title: Field::Absent,
            status: Field::Null,
            priority: Field::Present("huge".into()),
            due_at: Field::Present("tomorrow".into()),
            description: Field::Null,
            project_id: Field::Present("not-a-uuid".into()),
            labels: Field::Null,
        }
        .into_new_task()
        .unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "status",
                "priority",
                "due_at",
                "project_id",
                "labels"
            ]
        );
    }

    #[test]
    fn changes_distinguish_absent_from_null() {
        let changes = TaskInput {
            description: Field::Null,
            ..TaskInput::default()
        }
        .into_changes()
        .unwrap();
        assert_eq!(changes.description, Some(None));
        assert_eq!(changes.due_at, None);
        assert!(!changes.is_empty());
        assert!(TaskInput::default().into_changes().unwrap().is_empty());
    }

    #[test]
    fn changes_refuse_null_for_non_nullable_fields() {
        for field in ["title", "status", "priority"] {
            let mut value = TaskInput::default();
            match field {
                "title" => value.title = Field::Null,
                "status" => value.status = Field::Null,
                _ => value.priority = Field::Null,
            }
            let errors = value.into_changes().unwrap_err();
            assert_eq!(errors.0[0].field, field);
        }
    }

    #[test]
    fn priorities_are_ordered_by_rank() {
        assert!(Priority::Low < Priority::Medium);
        assert!(Priority::High < Priority::Urgent);
    }
}
