//! Cell values: parsing, ring encoding (Z_2^64 words) and formatting back.

use crate::idnr;
use crate::schema::ColumnType;

/// Words per `text` cell.
pub const TEXT_WORDS: usize = 4;
/// Maximum bytes of a `text` cell.
pub const TEXT_BYTES: usize = 8 * TEXT_WORDS;

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// Today's date in UTC, from the system clock.
    pub fn today_utc() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        civil_from_days(secs.div_euclid(86_400))
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in a month of a year (0 for a month outside 1..=12).
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 (negative before). The "days from civil"
/// algorithm of H. Hinnant, valid for the whole proleptic Gregorian range.
pub fn days_from_civil(d: Date) -> i64 {
    let y = d.year as i64 - if d.month <= 2 { 1 } else { 0 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = d.month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d.day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// [`days_from_civil`] on a `(year, month, day)` triple.
pub fn days_from_ymd(year: i64, month: u32, day: u32) -> i64 {
    days_from_civil(Date {
        year: year as i32,
        month,
        day,
    })
}

/// [`civil_from_days`] as a `(year, month, day)` triple.
pub fn ymd_from_days(z: i64) -> (i64, u32, u32) {
    let d = civil_from_days(z);
    (d.year as i64, d.month, d.day)
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> Date {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
    Date { year, month, day }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Parse `YYYY-MM-DD` (years 0001 to 9999).
pub fn parse_date(s: &str) -> Result<Date, String> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err("expected a date as YYYY-MM-DD".into());
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(0..4) as i32, num(5..7), num(8..10));
    if year == 0 {
        return Err("year 0000 does not exist".into());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} does not exist"));
    }
    let dim = days_in_month(year, month);
    if day == 0 || day > dim {
        return Err(format!(
            "{} {year} has {dim} days",
            MONTHS[month as usize - 1]
        ));
    }
    Ok(Date { year, month, day })
}

/// Validate one cell and encode it into `out` (`ty.words()` words).
/// `today` decides the century of 10-digit identity numbers. The error is
/// the reason, quoting the value, ready to be prefixed with its location.
pub fn encode_cell(ty: ColumnType, raw: &str, today: Date, out: &mut [u64]) -> Result<(), String> {
    debug_assert_eq!(out.len(), ty.words());
    if ty != ColumnType::Text && raw.trim().is_empty() {
        return Err(
            "empty cell: kuvert has no missing values; fill in a value or drop the row".into(),
        );
    }
    match ty {
        ColumnType::Int => {
            let t = raw.trim();
            let v: i64 = t
                .parse()
                .map_err(|_| format!("invalid int {raw:?}: expected a whole number from -9223372036854775808 to 9223372036854775807, without spaces or separators"))?;
            out[0] = v as u64;
        }
        ColumnType::Date => {
            let d = parse_date(raw.trim()).map_err(|e| format!("invalid date {raw:?}: {e}"))?;
            out[0] = days_from_civil(d) as u64;
        }
        ColumnType::Bool => {
            out[0] = match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => 1,
                "false" | "0" => 0,
                _ => {
                    return Err(format!(
                        "invalid bool {raw:?}: expected true, false, 1 or 0"
                    ))
                }
            };
        }
        ColumnType::Idnr => {
            let v = idnr::parse(raw, today)
                .map_err(|e| format!("invalid identity number {raw:?}: {e}"))?;
            out[0] = v as u64;
        }
        ColumnType::Text => {
            let b = raw.as_bytes();
            if b.len() > TEXT_BYTES {
                return Err(format!(
                    "text {raw:?} is {} bytes long in UTF-8; at most {TEXT_BYTES} fit",
                    b.len()
                ));
            }
            if b.contains(&0) {
                return Err(format!("text {raw:?} contains a NUL character"));
            }
            let mut buf = [0u8; TEXT_BYTES];
            buf[..b.len()].copy_from_slice(b);
            for (w, o) in buf.chunks_exact(8).zip(out.iter_mut()) {
                let mut a = [0u8; 8];
                a.copy_from_slice(w);
                *o = u64::from_be_bytes(a);
            }
            zeroize::Zeroize::zeroize(&mut buf);
        }
    }
    Ok(())
}

/// Format one cell's words back into its CSV text: ints in decimal, dates
/// `YYYY-MM-DD`, bools `true`/`false`, identity numbers as 12 digits, text
/// as itself. Words that are not a valid encoding (e.g. a computed result
/// out of range) are reported, not guessed.
pub fn format_cell(ty: ColumnType, words: &[u64]) -> Result<String, String> {
    if words.len() != ty.words() {
        return Err(format!(
            "a {ty} cell has {} words, not {}",
            ty.words(),
            words.len()
        ));
    }
    let w = words[0];
    Ok(match ty {
        ColumnType::Int => (w as i64).to_string(),
        ColumnType::Date => {
            let d = civil_from_days(w as i64);
            if !(1..=9999).contains(&d.year) || (w as i64).unsigned_abs() > 4_000_000 {
                return Err(format!(
                    "{} days since 1970-01-01 is outside the years 0001-9999",
                    w as i64
                ));
            }
            format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
        }
        ColumnType::Bool => match w {
            0 => "false".into(),
            1 => "true".into(),
            other => return Err(format!("{other} is not a boolean (0 or 1)")),
        },
        ColumnType::Idnr => {
            let v = w as i64;
            if !(100_000_000_000..=999_999_999_999).contains(&v) {
                return Err(format!("{v} is not a 12-digit identity number"));
            }
            idnr::format(v)
        }
        ColumnType::Text => {
            let mut buf = Vec::with_capacity(TEXT_BYTES);
            for w in words {
                buf.extend_from_slice(&w.to_be_bytes());
            }
            while buf.last() == Some(&0) {
                buf.pop();
            }
            String::from_utf8(buf).map_err(|_| "text is not valid UTF-8".to_string())?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 23,
    };

    fn enc(ty: ColumnType, s: &str) -> Result<Vec<u64>, String> {
        let mut out = vec![0; ty.words()];
        encode_cell(ty, s, TODAY, &mut out).map(|()| out)
    }

    #[test]
    fn dates_against_known_day_numbers() {
        // Hand-checked: 1970-01-01 is day 0, 2000-03-01 is day 11017,
        // 1969-12-31 is day -1, 2024-02-29 is day 19782.
        assert_eq!(enc(ColumnType::Date, "1970-01-01"), Ok(vec![0]));
        assert_eq!(enc(ColumnType::Date, "2000-03-01"), Ok(vec![11017]));
        assert_eq!(
            enc(ColumnType::Date, "1969-12-31"),
            Ok(vec![(-1i64) as u64])
        );
        assert_eq!(enc(ColumnType::Date, "2024-02-29"), Ok(vec![19782]));
        assert_eq!(
            enc(ColumnType::Date, "2023-02-29").unwrap_err(),
            "invalid date \"2023-02-29\": February 2023 has 28 days"
        );
        assert!(enc(ColumnType::Date, "2023-2-28").is_err());
        assert!(enc(ColumnType::Date, "2023-13-01").is_err());
        assert_eq!(
            format_cell(ColumnType::Date, &[19782]).unwrap(),
            "2024-02-29"
        );
    }

    #[test]
    fn ints_bools_text() {
        assert_eq!(enc(ColumnType::Int, "-5"), Ok(vec![(-5i64) as u64]));
        assert_eq!(enc(ColumnType::Int, " +42 "), Ok(vec![42]));
        assert!(enc(ColumnType::Int, "1 000").is_err());
        assert!(enc(ColumnType::Int, "9223372036854775808").is_err());
        assert_eq!(enc(ColumnType::Bool, "TRUE"), Ok(vec![1]));
        assert_eq!(enc(ColumnType::Bool, "0"), Ok(vec![0]));
        assert!(enc(ColumnType::Bool, "ja").is_err());
        assert!(enc(ColumnType::Int, "")
            .unwrap_err()
            .starts_with("empty cell"));
        // "åäö" is 6 bytes in UTF-8.
        let w = enc(ColumnType::Text, "åäö").unwrap();
        assert_eq!(
            w[0],
            u64::from_be_bytes([0xc3, 0xa5, 0xc3, 0xa4, 0xc3, 0xb6, 0, 0])
        );
        assert_eq!(&w[1..], &[0, 0, 0]);
        assert_eq!(format_cell(ColumnType::Text, &w).unwrap(), "åäö");
        assert!(enc(ColumnType::Text, &"x".repeat(33)).is_err());
        assert!(enc(ColumnType::Text, &"x".repeat(32)).is_ok());
        assert_eq!(enc(ColumnType::Text, ""), Ok(vec![0; 4]));
    }

    proptest! {
        #[test]
        fn days_round_trip(z in -700_000i64..3_000_000) {
            let d = civil_from_days(z);
            prop_assert_eq!(days_from_civil(d), z);
            prop_assert!(d.day >= 1 && d.day <= days_in_month(d.year, d.month));
        }

        #[test]
        fn next_day_is_one_more(z in -700_000i64..3_000_000) {
            // Independent check of consecutive dates by calendar rules.
            let (a, b) = (civil_from_days(z), civil_from_days(z + 1));
            let expect = if a.day < days_in_month(a.year, a.month) {
                Date { day: a.day + 1, ..a }
            } else if a.month < 12 {
                Date { year: a.year, month: a.month + 1, day: 1 }
            } else {
                Date { year: a.year + 1, month: 1, day: 1 }
            };
            prop_assert_eq!(b, expect);
        }

        #[test]
        fn cells_round_trip(i in any::<i64>(), t in "\\PC{0,8}", b in any::<bool>()) {
            let w = enc(ColumnType::Int, &i.to_string()).unwrap();
            prop_assert_eq!(format_cell(ColumnType::Int, &w).unwrap(), i.to_string());
            let w = enc(ColumnType::Bool, &b.to_string()).unwrap();
            prop_assert_eq!(format_cell(ColumnType::Bool, &w).unwrap(), b.to_string());
            if t.len() <= TEXT_BYTES && !t.contains('\0') {
                let w = enc(ColumnType::Text, &t).unwrap();
                prop_assert_eq!(format_cell(ColumnType::Text, &w).unwrap(), t);
            }
        }
    }
}
