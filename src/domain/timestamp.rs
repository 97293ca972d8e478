//! RFC 3339 timestamps: strict parsing (an explicit offset is required) and UTC output.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

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
    use std::fmt::Write;
    // Written by hand: on the list route this runs three times per task, and the
    // general-purpose formatter showed up in the profile (docs/PERFORMANCE.md).
    let utc = instant.to_offset(UtcOffset::UTC);
    let mut out = String::with_capacity(27);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    );
    match utc.microsecond() {
        0 => out.push('Z'),
        micros => {
            let _ = write!(out, ".{micros:06}Z");
        }
    }
    out
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
    fn formatting_matches_rfc_3339_at_the_edges() {
        for (raw, formatted) in [
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("2026-02-28T23:30:00-01:00", "2026-03-01T00:30:00Z"),
        ] {
            assert_eq!(format(parse(raw).unwrap()), formatted);
        }
    }

    #[test]
    fn fractions_are_kept_to_the_microsecond() {
        let instant = parse("2026-12-01T17:00:00.123456Z").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00.123456Z");
        let instant = parse("2026-12-01T17:00:00.5Z").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00.500000Z");
    }
}
