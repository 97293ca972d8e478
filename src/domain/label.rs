//! Labels on tasks (API.md "Tasks", "Labels"): 0 to 20 per task, each 1 to 50 characters once
//! trimmed (stored trimmed), no two equal, case-sensitive, kept in the order sent.

use super::reject_nul;

const LABEL_MAX_CHARS: usize = 50;
const LABELS_MAX: usize = 20;

/// One label, trimmed and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(raw: &str) -> Result<Self, String> {
        reject_nul(raw)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("a label must not be empty or only whitespace".to_owned());
        }
        if trimmed.chars().count() > LABEL_MAX_CHARS {
            return Err(format!(
                "a label must be at most {LABEL_MAX_CHARS} characters"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A task's labels, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Vec<Label>);

impl Labels {
    pub fn parse(raw: Vec<String>) -> Result<Self, String> {
        if raw.len() > LABELS_MAX {
            return Err(format!("must hold at most {LABELS_MAX} labels"));
        }
        let mut labels: Vec<Label> = Vec::with_capacity(raw.len());
        for item in &raw {
            let label = Label::parse(item)?;
            if labels.contains(&label) {
                return Err(format!("holds {:?} twice", label.as_str()));
            }
            labels.push(label);
        }
        Ok(Self(labels))
    }

    /// The labels as the database stores them.
    pub fn to_vec(&self) -> Vec<&str> {
        self.0.iter().map(Label::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn labels_are_trimmed_kept_in_order_and_case_sensitive() {
        let labels = Labels::parse(strings(&[" work ", "Home", "home"])).unwrap();
        assert_eq!(labels.to_vec(), ["work", "Home", "home"]);
    }

    #[test]
    fn duplicates_blanks_long_labels_and_too_many_are_refused() {
        assert!(Labels::parse(strings(&["a", " a"])).is_err());
        assert!(Labels::parse(strings(&["  "])).is_err());
        assert!(Labels::parse(vec!["é".repeat(50)]).is_ok());
        assert!(Labels::parse(vec!["é".repeat(51)]).is_err());
        assert!(Labels::parse((0..20).map(|i| i.to_string()).collect()).is_ok());
        assert!(Labels::parse((0..21).map(|i| i.to_string()).collect()).is_err());
        assert!(Labels::parse(strings(&["nul\0"])).is_err());
    }
}
