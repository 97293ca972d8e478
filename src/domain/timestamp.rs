//! RFC 3339 timestamps: strict parsing (an explicit offset is required) and UTC output.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `±hh:mm`), as UTC.
pub fn parse(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(|instant| instant.to_offset(UtcOffset::UTC))
        .map_err(|_| {
            "must be an RFC 3339 timestamp with an offset, such as 2026-12-01T17:00:00Z".to_owned()
        })
}

/// Formats as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`: UTC, microseconds (PostgreSQL's precision)
/// only when there are any.
pub fn format(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(UtcOffset::UTC);
    let whole = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let base = utc.format(&whole).unwrap_or_default();
    match utc.microsecond() {
        0 => format!("{base}Z"),
        micros => format!("{base}.{micros:06}Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_required_and_converted_to_utc() {
        let instant = parse("2026-12-01T19:00:00+02:00").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00Z");
        assert!(parse("2026-12-01T17:00:00").is_err());
        assert!(parse("2026-12-01").is_err());
        assert!(parse("next tuesday").is_err());
    }

    #[test]
    fn fractions_are_kept_to_the_microsecond() {
        let instant = parse("2026-12-01T17:00:00.123456Z").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00.123456Z");
        let instant = parse("2026-12-01T17:00:00.5Z").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00.500000Z");
    }
}
