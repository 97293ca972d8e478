//! RFC 3339 timestamps: strict parsing (an explicit offset is required) and UTC output.
//! Only instants that RFC 3339 can write in UTC are accepted (years 0000 to 9999 once
//! converted), so every accepted instant can be given back in the contract's format.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `±hh:mm`), as UTC.
pub fn parse(raw: &str) -> Result<OffsetDateTime, String> {
    let instant = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        "must be an RFC 3339 timestamp with an offset, such as 2026-12-01T17:00:00Z".to_owned()
    })?;
    // `9999-12-31T23:59:59-01:00` is in year 10000 in UTC, `0000-01-01T00:00:00+01:00`
    // in year -1: neither has a four-digit UTC year, so neither can be written back.
    instant
        .checked_to_offset(UtcOffset::UTC)
        .filter(|utc| (0..=9999).contains(&utc.year()))
        .ok_or_else(|| {
            "must be between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z once \
             converted to UTC"
                .to_owned()
        })
}

/// `instant` on PostgreSQL's microsecond grid, rounded down (towards the past, whatever
/// the year: the driver itself would round towards 2000).
pub fn floor_to_micros(instant: OffsetDateTime) -> OffsetDateTime {
    let sub_micro = instant.nanosecond() % 1_000;
    instant - Duration::nanoseconds(i64::from(sub_micro))
}

/// `instant` on the microsecond grid, rounded up. Never overflows for a parsed instant:
/// the crate is built with `large-dates`, so year 10000 exists as an intermediate value.
pub fn ceil_to_micros(instant: OffsetDateTime) -> OffsetDateTime {
    match instant.nanosecond() % 1_000 {
        0 => instant,
        sub_micro => instant
            .checked_add(Duration::nanoseconds(i64::from(1_000 - sub_micro)))
            .unwrap_or(instant),
    }
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
    fn instants_outside_four_digit_utc_years_are_refused() {
        for raw in [
            "9999-12-31T23:59:59-01:00",
            "0000-01-01T00:00:00+01:00",
            "0000-01-01T00:59:59.999999999+01:00",
        ] {
            assert!(parse(raw).is_err(), "{raw}");
        }
        for (raw, formatted) in [
            ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59Z"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("0000-01-01T00:00:00-01:00", "0000-01-01T01:00:00Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ] {
            assert_eq!(format(parse(raw).unwrap()), formatted, "{raw}");
        }
    }

    #[test]
    fn rounding_to_microseconds_works_at_both_ends_of_the_range() {
        let last = parse("9999-12-31T23:59:59.9999999Z").unwrap();
        assert_eq!(format(floor_to_micros(last)), "9999-12-31T23:59:59.999999Z");
        assert_eq!(ceil_to_micros(last).year(), 10_000);
        let first = parse("0000-01-01T00:00:00.0000001Z").unwrap();
        assert_eq!(format(floor_to_micros(first)), "0000-01-01T00:00:00Z");
        assert_eq!(format(ceil_to_micros(first)), "0000-01-01T00:00:00.000001Z");
        let before_2000 = parse("1999-12-31T23:59:59.9999999Z").unwrap();
        assert_eq!(
            format(floor_to_micros(before_2000)),
            "1999-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn fractions_are_kept_to_the_microsecond() {
        let instant = parse("2026-12-01T17:00:00.123456Z").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00.123456Z");
        let instant = parse("2026-12-01T17:00:00.5Z").unwrap();
        assert_eq!(format(instant), "2026-12-01T17:00:00.500000Z");
    }
}
