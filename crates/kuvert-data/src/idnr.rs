//! Swedish identity numbers: personnummer and samordningsnummer.
//!
//! Accepted written forms (`YY`/`YYYY` year, `MM` month, `DD` day, `NNN`
//! serial, `C` check digit):
//!
//! | form            | example         |
//! |-----------------|-----------------|
//! | `YYMMDD-NNNC`   | `811228-9874`   |
//! | `YYMMDD+NNNC`   | `121212+1212` (100 years or older) |
//! | `YYMMDDNNNC`    | `8112289874`    |
//! | `YYYYMMDD-NNNC` | `19121212-1212` |
//! | `YYYYMMDDNNNC`  | `191212121212`  |
//!
//! Rules:
//! - The check digit is the Luhn digit of the 10-digit form `YYMMDDNNN`.
//! - A samordningsnummer (coordination number) has 60 added to the day
//!   (`701063-2391` is born 1970-10-03); the day minus 60 must be a valid day.
//! - In the 10-digit form the century is implied: with `-` (or no
//!   separator) the person is under 100 in the current year, with `+` 100 or
//!   older (the separator changes in the year of the 100th birthday).
//! - The normalised value is the 12-digit number `YYYYMMDDNNNC` (with the
//!   day as written, so a samordningsnummer stays recognisable).

use crate::value::{days_in_month, Date};

/// Why a string is not a valid identity number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdnrError {
    #[error("expected YYMMDD-NNNN, YYMMDDNNNN, YYYYMMDD-NNNN or YYYYMMDDNNNN")]
    Format,
    #[error("the '+' separator is only used in the 10-digit form; write YYYYMMDD-NNNN")]
    PlusWithCentury,
    #[error("month {0:02} does not exist")]
    Month(u32),
    #[error("day {day:02} does not exist in {year:04}-{month:02}")]
    Day { year: i32, month: u32, day: u32 },
    #[error("check digit should be {expected}")]
    CheckDigit { expected: u8, found: u8 },
    #[error("the birth date is in the future")]
    Future,
}

/// The kind of a valid identity number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdnrKind {
    Personnummer,
    Samordningsnummer,
}

/// The Luhn check digit of nine decimal digits.
pub fn luhn_check_digit(d: &[u8; 9]) -> u8 {
    let mut sum = 0u32;
    for (i, &x) in d.iter().enumerate() {
        let p = x as u32 * if i % 2 == 0 { 2 } else { 1 };
        sum += p / 10 + p % 10;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Validate and normalise an identity number written in any accepted form.
/// `today` decides the century of the 10-digit forms. Returns the 12-digit
/// number `YYYYMMDDNNNC`.
pub fn parse(s: &str, today: Date) -> Result<i64, IdnrError> {
    let b = s.trim().as_bytes();
    // Split off the separator, if any.
    let (digits, sep): (Vec<u8>, Option<u8>) = match b.len() {
        10 | 12 => (b.to_vec(), None),
        11 | 13 if matches!(b[b.len() - 5], b'-' | b'+') => {
            let mut v = b[..b.len() - 5].to_vec();
            v.extend_from_slice(&b[b.len() - 4..]);
            (v, Some(b[b.len() - 5]))
        }
        _ => return Err(IdnrError::Format),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(IdnrError::Format);
    }
    let d: Vec<u8> = digits.iter().map(|c| c - b'0').collect();
    let num = |x: &[u8]| x.iter().fold(0u32, |a, &v| a * 10 + v as u32);
    // rest = YYMMDDNNNC: the last ten digits in both forms.
    let rest = &d[d.len() - 10..];
    let month = num(&rest[2..4]);
    let day_written = num(&rest[4..6]);
    if !(1..=12).contains(&month) {
        return Err(IdnrError::Month(month));
    }
    let day = if day_written > 60 {
        day_written - 60
    } else {
        day_written
    };
    let not_after_today = |y: i32| (y, month, day) <= (today.year, today.month, today.day);
    let year = if d.len() == 12 {
        if sep == Some(b'+') {
            return Err(IdnrError::PlusWithCentury);
        }
        let y = num(&d[..4]) as i32;
        if !not_after_today(y) {
            return Err(IdnrError::Future);
        }
        y
    } else {
        let yy = num(&d[..2]) as i32;
        // The latest birth date with these digits that is not after today...
        let mut y = today.year - (today.year - yy).rem_euclid(100);
        if !not_after_today(y) {
            y -= 100;
        }
        // ...or a century earlier for the 100-year-olds.
        if sep == Some(b'+') {
            y -= 100;
        }
        y
    };
    if day == 0 || day > days_in_month(year, month) {
        return Err(IdnrError::Day {
            year,
            month,
            day: day_written,
        });
    }
    let mut nine = [0u8; 9];
    nine.copy_from_slice(&rest[..9]);
    let expected = luhn_check_digit(&nine);
    if expected != rest[9] {
        return Err(IdnrError::CheckDigit {
            expected,
            found: rest[9],
        });
    }
    let mut v = year as i64;
    for &x in &rest[2..] {
        v = v * 10 + x as i64;
    }
    Ok(v)
}

/// Whether a normalised 12-digit number is a samordningsnummer.
pub fn kind(normalised: i64) -> IdnrKind {
    let day = (normalised / 10_000) % 100;
    if day > 60 {
        IdnrKind::Samordningsnummer
    } else {
        IdnrKind::Personnummer
    }
}

/// The 12-digit form, `YYYYMMDDNNNC`.
pub fn format(normalised: i64) -> String {
    format!("{normalised:012}")
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

    #[test]
    fn known_valid_numbers() {
        assert_eq!(parse("811228-9874", TODAY), Ok(198112289874));
        assert_eq!(parse("8112289874", TODAY), Ok(198112289874));
        assert_eq!(parse("19121212-1212", TODAY), Ok(191212121212));
        assert_eq!(parse("191212121212", TODAY), Ok(191212121212));
        assert_eq!(parse("121212+1212", TODAY), Ok(191212121212));
        // Without the '+', 121212 is a child born 2012.
        assert_eq!(parse("121212-1212", TODAY), Ok(201212121212));
        // Samordningsnummer: born 1970-10-03.
        assert_eq!(parse("701063-2391", TODAY), Ok(197010632391));
        assert_eq!(kind(197010632391), IdnrKind::Samordningsnummer);
        assert_eq!(kind(198112289874), IdnrKind::Personnummer);
        assert_eq!(format(191212121212), "191212121212");
        // Surrounding blanks are ignored.
        assert_eq!(parse(" 811228-9874 ", TODAY), Ok(198112289874));
    }

    #[test]
    fn known_invalid_numbers_say_why() {
        assert_eq!(
            parse("19121212-1213", TODAY),
            Err(IdnrError::CheckDigit {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            parse("19121212-1213", TODAY).unwrap_err().to_string(),
            "check digit should be 2"
        );
        assert_eq!(parse("811328-9874", TODAY), Err(IdnrError::Month(13)));
        assert!(matches!(
            parse("810230-9874", TODAY),
            Err(IdnrError::Day { day: 30, .. })
        ));
        // Day 92 would be a coordination number for the 32nd.
        assert!(matches!(
            parse("701092-2391", TODAY),
            Err(IdnrError::Day { day: 92, .. })
        ));
        assert_eq!(parse("81122-89874", TODAY), Err(IdnrError::Format));
        assert_eq!(parse("811228_9874", TODAY), Err(IdnrError::Format));
        assert_eq!(parse("81122898745", TODAY), Err(IdnrError::Format));
        assert_eq!(parse("", TODAY), Err(IdnrError::Format));
        assert_eq!(
            parse("19121212+1212", TODAY),
            Err(IdnrError::PlusWithCentury)
        );
        // 2000-02-29 exists, 1900-02-29 does not.
        let ok = oracle_make(2000, 2, 29, 123, false);
        assert!(parse(&ok, TODAY).is_ok());
        let bad = oracle_make(1900, 2, 29, 123, false);
        assert!(matches!(parse(&bad, TODAY), Err(IdnrError::Day { .. })));
    }

    /// Independent oracle: build the 12-digit string from its parts,
    /// computing the Luhn digit by doubling as text.
    fn oracle_make(year: i32, month: u32, day: u32, serial: u32, coord: bool) -> String {
        let d = if coord { day + 60 } else { day };
        let nine = format!("{:02}{month:02}{d:02}{serial:03}", year % 100);
        let mut s = 0;
        for (i, c) in nine.chars().enumerate() {
            let v = c.to_digit(10).unwrap() * (2 - (i as u32 % 2));
            s += v
                .to_string()
                .chars()
                .map(|c| c.to_digit(10).unwrap())
                .sum::<u32>();
        }
        let check = (10 - s % 10) % 10;
        format!("{year:04}{month:02}{d:02}{serial:03}{check}")
    }

    fn oracle_days(year: i32, month: u32) -> u32 {
        match month {
            4 | 6 | 9 | 11 => 30,
            2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
            2 => 28,
            _ => 31,
        }
    }

    proptest! {
        #[test]
        fn every_written_form_of_a_valid_number_normalises(
            year in 1827i32..=2026, month in 1u32..=12, day in 1u32..=31,
            serial in 0u32..1000, coord in any::<bool>(), form in 0usize..4,
        ) {
            prop_assume!(day <= oracle_days(year, month));
            // Nobody is born after today.
            prop_assume!((year, month, day) <= (TODAY.year, TODAY.month, TODAY.day));
            let twelve = oracle_make(year, month, day, serial, coord);
            let ten = &twelve[2..];
            // '+' once the person has turned 100.
            let hundred = (year, month, day) <= (TODAY.year - 100, TODAY.month, TODAY.day);
            let sep = if hundred { "+" } else { "-" };
            let written = match form {
                0 => twelve.clone(),
                1 => format!("{}-{}", &twelve[..8], &twelve[8..]),
                2 => format!("{}{sep}{}", &ten[..6], &ten[6..]),
                _ if sep == "-" => ten.to_string(),
                _ => format!("{}{sep}{}", &ten[..6], &ten[6..]),
            };
            prop_assert_eq!(parse(&written, TODAY), Ok(twelve.parse::<i64>().unwrap()));
            // Any other check digit is refused and the right one named.
            let good = twelve.as_bytes()[11] - b'0';
            let wrong = (good + 1 + (serial % 9) as u8) % 10;
            let mut bad = twelve.clone();
            bad.replace_range(11..12, &wrong.to_string());
            prop_assert_eq!(parse(&bad, TODAY), Err(IdnrError::CheckDigit { expected: good, found: wrong }));
        }

        #[test]
        fn birth_dates_after_today_are_refused_or_a_century_earlier(
            month in 1u32..=12, day in 1u32..=28, serial in 0u32..1000,
        ) {
            // A date in the coming year: after TODAY whatever the month.
            let (y, m, d) = (TODAY.year + 1, month, day);
            let twelve = oracle_make(y, m, d, serial, false);
            prop_assert_eq!(parse(&twelve, TODAY), Err(IdnrError::Future));
            // The 10-digit form means the person born a century earlier.
            let want: i64 = oracle_make(y - 100, m, d, serial, false).parse().unwrap();
            prop_assert_eq!(parse(&twelve[2..], TODAY), Ok(want));
        }

        #[test]
        fn random_strings_never_panic(s in "[0-9+\\- ]{0,16}") {
            let _ = parse(&s, TODAY);
        }
    }
}
