//! Swedish identity numbers: personnummer and samordningsnummer.
//!
//! Accepted written forms: `YYMMDD-NNNC`, `YYMMDD+NNNC` (`+` marks a person
//! aged 100 or more), `YYMMDDNNNC`, `YYYYMMDDNNNC` and `YYYYMMDD-NNNC`.
//! The Luhn check digit `C` is verified over the 10-digit form. A
//! samordningsnummer (coordination number) has 60 added to the day.
//!
//! The normal form is 12 digits without separator, `YYYYMMDDNNNC`. For a
//! 10-digit input the century is the most recent one that puts the birth
//! date on or before the reference date, moved back 100 years when the
//! separator is `+`.

use std::fmt;

/// Why a string is not a valid identity number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdnrError {
    /// Not 10 or 12 digits with an optional `-`/`+` before the last four.
    Format,
    /// Month or day (after removing the samordningsnummer offset) is not a date.
    Date,
    /// The Luhn check digit does not match.
    CheckDigit,
    /// A 10-digit number with `+` that would be born in the future.
    Future,
}

impl fmt::Display for IdnrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdnrError::Format => "not an identity number: expected YYMMDD-NNNC, YYMMDD+NNNC, YYMMDDNNNC or YYYYMMDDNNNC",
            IdnrError::Date => "identity number holds an impossible birth date",
            IdnrError::CheckDigit => "identity number has a wrong check digit (Luhn); check for a typing error",
            IdnrError::Future => "identity number would be born in the future",
        })
    }
}

/// Kind of a valid identity number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdnrKind {
    /// Personnummer.
    Personnummer,
    /// Samordningsnummer (day + 60).
    Samordningsnummer,
}

/// A validated identity number in normal form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Idnr {
    normalized: String,
    kind: IdnrKind,
}

impl Idnr {
    /// The 12-digit normal form `YYYYMMDDNNNC`.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }
    /// Personnummer or samordningsnummer.
    pub fn kind(&self) -> IdnrKind {
        self.kind
    }
}

/// Luhn check digit for nine digits.
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().enumerate() {
        let mut v = d as u32 * if i % 2 == 0 { 2 } else { 1 };
        if v > 9 {
            v -= 9;
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Whether the string looks like an identity number in one of the written
/// forms (digits and separator only; no check digit or date test).
pub fn looks_like(s: &str) -> bool {
    split_form(s.trim()).is_some()
}

/// Split into (digits, separator).
fn split_form(s: &str) -> Option<(Vec<u8>, Option<u8>)> {
    let b = s.as_bytes();
    let (digits, sep): (Vec<u8>, Option<u8>) = match b.len() {
        10 | 12 => (b.to_vec(), None),
        11 | 13 if b[b.len() - 5] == b'-' || b[b.len() - 5] == b'+' => {
            let mut v = b[..b.len() - 5].to_vec();
            v.extend_from_slice(&b[b.len() - 4..]);
            (v, Some(b[b.len() - 5]))
        }
        _ => return None,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((digits.iter().map(|d| d - b'0').collect(), sep))
}

/// Parse and validate against today's date.
pub fn parse(s: &str) -> Result<Idnr, IdnrError> {
    parse_at(s, crate::date::today())
}

/// Parse and validate with an explicit reference date `(year, month, day)`
/// for choosing the century of a 10-digit number.
pub fn parse_at(s: &str, today: (i64, u32, u32)) -> Result<Idnr, IdnrError> {
    let (digits, sep) = split_form(s.trim()).ok_or(IdnrError::Format)?;
    let ten = &digits[digits.len() - 10..];
    let num = |d: &[u8]| d.iter().fold(0u32, |a, &x| a * 10 + x as u32);
    let yy = num(&ten[0..2]) as i64;
    let month = num(&ten[2..4]);
    let raw_day = num(&ten[4..6]);
    let (kind, day) = if raw_day > 60 {
        (IdnrKind::Samordningsnummer, raw_day - 60)
    } else {
        (IdnrKind::Personnummer, raw_day)
    };
    if luhn_check_digit(&ten[0..9]) != ten[9] {
        return Err(IdnrError::CheckDigit);
    }
    if !(1..=12).contains(&month) {
        return Err(IdnrError::Date);
    }
    let year = if digits.len() == 12 {
        num(&digits[0..4]) as i64
    } else {
        let (ty, tm, td) = today;
        let mut y = ty - (ty - yy).rem_euclid(100);
        // Born later this year than today? Then one century earlier.
        if (month, day) > (tm, td) && y == ty {
            y -= 100;
        }
        if sep == Some(b'+') {
            y -= 100;
        }
        y
    };
    if day == 0 || day > crate::date::days_in_month(year, month) {
        return Err(IdnrError::Date);
    }
    if digits.len() == 12 && (year, month, day) > today {
        return Err(IdnrError::Future);
    }
    let normalized = format!(
        "{year:04}{}",
        ten[2..]
            .iter()
            .map(|d| (d + b'0') as char)
            .collect::<String>()
    );
    Ok(Idnr { normalized, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (i64, u32, u32) = (2026, 11, 23);

    #[test]
    fn luhn_known_numbers() {
        // Skatteverket's documentation example 811218-9876.
        assert_eq!(luhn_check_digit(&[8, 1, 1, 2, 1, 8, 9, 8, 7]), 6);
        assert_eq!(
            parse_at("811218-9876", TODAY).unwrap().as_str(),
            "198112189876"
        );
    }

    #[test]
    fn all_written_forms_normalise_alike() {
        for s in [
            "811218-9876",
            "8112189876",
            "198112189876",
            "19811218-9876",
            " 811218-9876 ",
        ] {
            assert_eq!(parse_at(s, TODAY).unwrap().as_str(), "198112189876", "{s}");
        }
    }

    #[test]
    fn plus_means_a_hundred_years_more() {
        assert_eq!(
            parse_at("811218+9876", TODAY).unwrap().as_str(),
            "188112189876"
        );
    }

    #[test]
    fn century_is_most_recent_plausible() {
        // 2012-12-12: born 2012, not 1912.
        let n = "121212-1212";
        let p = parse_at(n, TODAY).unwrap();
        assert_eq!(p.as_str(), "201212121212");
        // A date later this year than today belongs to the previous century.
        let mut d = vec![2, 6, 1, 2, 2, 4, 1, 2, 3];
        let c = luhn_check_digit(&d);
        d.push(c);
        let s: String = d.iter().map(|x| (x + b'0') as char).collect();
        assert!(parse_at(&s, TODAY).unwrap().as_str().starts_with("1926"));
    }

    #[test]
    fn samordningsnummer_day_plus_sixty() {
        // 701063-2391 is a commonly cited valid samordningsnummer (23 Oct 1970).
        let p = parse_at("701063-2391", TODAY).unwrap();
        assert_eq!(p.kind(), IdnrKind::Samordningsnummer);
        assert_eq!(p.as_str(), "197010632391");
    }

    #[test]
    fn rejects() {
        assert_eq!(parse_at("811218-9875", TODAY), Err(IdnrError::CheckDigit));
        assert_eq!(parse_at("81121-89876", TODAY), Err(IdnrError::Format));
        assert_eq!(parse_at("abcdefghij", TODAY), Err(IdnrError::Format));
        // Month 13 with a correct check digit.
        let mut d = vec![8, 1, 1, 3, 1, 8, 9, 8, 7];
        d.push(luhn_check_digit(&d));
        let s: String = d.iter().map(|x| (x + b'0') as char).collect();
        assert_eq!(parse_at(&s, TODAY), Err(IdnrError::Date));
        // 12-digit number in the future.
        let mut d = vec![3, 0, 0, 1, 0, 1, 1, 2, 3];
        d.push(luhn_check_digit(&d));
        let s: String = "20"
            .chars()
            .chain(d.iter().map(|x| (x + b'0') as char))
            .collect();
        assert_eq!(parse_at(&s, TODAY), Err(IdnrError::Future));
    }

    proptest::proptest! {
        #[test]
        fn any_valid_ten_digit_round_trips(yy in 0u8..100, m in 1u8..=12, d in 1u8..=28, serial in 0u16..1000) {
            let mut digits = vec![yy / 10, yy % 10, m / 10, m % 10, d / 10, d % 10,
                (serial / 100) as u8, (serial / 10 % 10) as u8, (serial % 10) as u8];
            digits.push(luhn_check_digit(&digits));
            let s: String = digits.iter().map(|x| (x + b'0') as char).collect();
            let p = parse_at(&s, TODAY).unwrap();
            // The 12-digit form parses to itself.
            let again = parse_at(p.as_str(), TODAY).unwrap();
            proptest::prop_assert_eq!(again.as_str(), p.as_str());
            proptest::prop_assert!(p.as_str().ends_with(&s[..]));
            // Changing the check digit breaks it.
            let mut bad = digits.clone();
            bad[9] = (bad[9] + 1) % 10;
            let sb: String = bad.iter().map(|x| (x + b'0') as char).collect();
            proptest::prop_assert_eq!(parse_at(&sb, TODAY), Err(IdnrError::CheckDigit));
        }
    }
}
