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

/// An instant that displays and serializes as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`: UTC,
/// microseconds (PostgreSQL's precision) only when there are any; without allocating, since
/// a list page writes four per task (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc(pub OffsetDateTime);

/// The longest form: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const LONGEST: usize = 27;

impl Utc {
    /// The digits, written by hand into `out` (the general formatter was a few percent of
    /// the list route's profile); the length written, or `None` for a year outside
    /// 0000–9999, which `parse` never accepts but a row written behind the API's back could
    /// hold.
    pub fn write(self, out: &mut [u8; LONGEST]) -> Option<usize> {
        fn digits(out: &mut [u8], mut value: u32) {
            for slot in out.iter_mut().rev() {
                // `value % 10` is below 10, so the cast cannot truncate.
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let utc = self.0.to_offset(UtcOffset::UTC);
        let (year, month, day) = utc.to_calendar_date();
        let year = u32::try_from(year).ok().filter(|year| *year <= 9999)?;
        let (hour, minute, second, micros) = utc.to_hms_micro();
        *out = *b"0000-00-00T00:00:00.000000Z";
        digits(&mut out[0..4], year);
        digits(&mut out[5..7], u32::from(u8::from(month)));
        digits(&mut out[8..10], u32::from(day));
        digits(&mut out[11..13], u32::from(hour));
        digits(&mut out[14..16], u32::from(minute));
        digits(&mut out[17..19], u32::from(second));
        if micros == 0 {
            out[19] = b'Z';
            return Some(20);
        }
        digits(&mut out[20..26], micros);
        Some(LONGEST)
    }
}

impl std::fmt::Display for Utc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = [0; LONGEST];
        match self.write(&mut out) {
            // Only ASCII digits and punctuation were written.
            Some(len) => {
                f.write_str(std::str::from_utf8(&out[..len]).map_err(|_| std::fmt::Error)?)
            }
            None => {
                let utc = self.0.to_offset(UtcOffset::UTC);
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    utc.year(),
                    u8::from(utc.month()),
                    utc.day(),
                    utc.hour(),
                    utc.minute(),
                    utc.second()
                )?;
                match utc.microsecond() {
                    0 => f.write_str("Z"),
                    micros => write!(f, ".{micros:06}Z"),
                }
            }
        }
    }
}

impl serde::Serialize for Utc {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(instant: OffsetDateTime) -> String {
        Utc(instant).to_string()
    }

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
    fn the_hand_written_digits_agree_with_the_general_formatter() {
        use time::macros::datetime;
        // Years outside 0000-9999 take the general path; all others the hand-written one.
        for instant in [
            datetime!(2026-12-01 17:00:00 UTC),
            datetime!(2026-12-01 17:00:00.000001 UTC),
            datetime!(0000-01-01 00:00:00 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
            datetime!(1970-01-01 00:00:00 +05:30),
            datetime!(+10000-01-01 00:00:00 UTC),
            datetime!(-0001-12-31 23:59:59 UTC),
        ] {
            let general = instant
                .to_offset(UtcOffset::UTC)
                .format(&Rfc3339)
                .unwrap_or_else(|_| "out of RFC 3339's range".to_owned());
            let ours = format(instant);
            if (0..=9999).contains(&instant.to_offset(UtcOffset::UTC).year()) {
                assert_eq!(ours, general, "{instant}");
            } else {
                assert!(ours.ends_with('Z') && ours.contains('T'), "{ours}");
            }
            assert_eq!(
                serde_json::to_string(&Utc(instant)).unwrap(),
                format!("\"{ours}\"")
            );
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
