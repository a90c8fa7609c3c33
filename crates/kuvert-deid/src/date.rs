//! Civil-calendar helpers (proleptic Gregorian) for date generalisation:
//! parsing the written forms found in exports, and ISO weeks.

// The calendar arithmetic is kuvert-data's (one encoding of dates in the
// whole system); these wrappers keep the (year, month, day) tuples that
// generalisation works with.

/// Days since 1970-01-01 of a civil date, and back: kuvert-data's
/// encoding, shared by every crate.
pub use kuvert_data::value::{days_from_ymd as days_from_civil, ymd_from_days as civil_from_days};

/// Whether `y` is a leap year.
pub fn is_leap(y: i64) -> bool {
    days_in_month(y, 2) == 29
}

/// Number of days in month `m` of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    kuvert_data::value::days_in_month(y as i32, m)
}

/// Today's civil date (UTC) from the system clock.
pub fn today() -> (i64, u32, u32) {
    let d = kuvert_data::Date::today_utc();
    (d.year as i64, d.month, d.day)
}

/// Parse `YYYY-MM-DD` (also `YYYYMMDD`). Returns `None` for anything else.
pub fn parse_ymd(s: &str) -> Option<(i64, u32, u32)> {
    let s = s.trim();
    let (y, m, d) = if s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        (&s[0..4], &s[5..7], &s[8..10])
    } else if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        (&s[0..4], &s[4..6], &s[6..8])
    } else {
        return None;
    };
    let y: i64 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    let d: u32 = d.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

/// ISO 8601 week of a date: (ISO year, week 1..=53).
pub fn iso_week(y: i64, m: u32, d: u32) -> (i64, u32) {
    let days = days_from_civil(y, m, d);
    // 1970-01-01 was a Thursday; weekday Monday=1 .. Sunday=7.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days + (4 - weekday);
    let (ty, _, _) = civil_from_days(thursday);
    let ordinal = thursday - days_from_civil(ty, 1, 1);
    (ty, (ordinal / 7 + 1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_days() {
        for z in [-800_000i64, -1, 0, 1, 10_957, 19_723, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn iso_weeks_known() {
        // Values from the ISO calendar.
        assert_eq!(iso_week(2021, 1, 3), (2020, 53));
        assert_eq!(iso_week(2021, 1, 4), (2021, 1));
        assert_eq!(iso_week(2024, 12, 30), (2025, 1));
        assert_eq!(iso_week(2026, 11, 23), (2026, 48));
    }

    #[test]
    fn parse_dates() {
        assert_eq!(parse_ymd("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(parse_ymd("2023-02-29"), None);
        assert_eq!(parse_ymd("20240131"), Some((2024, 1, 31)));
        assert_eq!(parse_ymd("2024-13-01"), None);
    }
}
