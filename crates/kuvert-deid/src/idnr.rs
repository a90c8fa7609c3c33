//! Swedish identity numbers: personnummer and samordningsnummer.
//!
//! Validation and normalisation are `kuvert_data::idnr`'s, the one
//! implementation in Kuvert (accepted forms, Luhn check digit over the
//! 10-digit form, samordningsnummer day + 60, century of 10-digit forms from
//! the reference date, `+` for 100 years or more). This module adapts it to
//! the string-valued tables of de-identification.

pub use kuvert_data::idnr::{IdnrError, IdnrKind};

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

/// Whether the string looks like an identity number in one of the written
/// forms (digits and separator only; no check digit or date test).
pub fn looks_like(s: &str) -> bool {
    let b = s.trim().as_bytes();
    let digits: Vec<u8> = match b.len() {
        10 | 12 => b.to_vec(),
        11 | 13 if b[b.len() - 5] == b'-' || b[b.len() - 5] == b'+' => {
            let mut v = b[..b.len() - 5].to_vec();
            v.extend_from_slice(&b[b.len() - 4..]);
            v
        }
        _ => return false,
    };
    digits.iter().all(u8::is_ascii_digit)
}

/// Parse and validate against today's date.
pub fn parse(s: &str) -> Result<Idnr, IdnrError> {
    parse_at(s, crate::date::today())
}

/// Parse and validate with an explicit reference date `(year, month, day)`
/// for choosing the century of a 10-digit number.
pub fn parse_at(s: &str, today: (i64, u32, u32)) -> Result<Idnr, IdnrError> {
    let today = kuvert_data::Date {
        year: today.0 as i32,
        month: today.1,
        day: today.2,
    };
    let n = kuvert_data::idnr::parse(s, today)?;
    Ok(Idnr {
        normalized: kuvert_data::idnr::format(n),
        kind: kuvert_data::idnr::kind(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_data::idnr::luhn_check_digit;

    fn luhn(d: &[u8]) -> u8 {
        luhn_check_digit(d.try_into().expect("nine digits"))
    }

    const TODAY: (i64, u32, u32) = (2026, 11, 23);

    #[test]
    fn luhn_known_numbers() {
        // Skatteverket's documentation example 811218-9876.
        assert_eq!(luhn(&[8, 1, 1, 2, 1, 8, 9, 8, 7]), 6);
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
        let c = luhn(&d);
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
        assert!(matches!(
            parse_at("811218-9875", TODAY),
            Err(IdnrError::CheckDigit { .. })
        ));
        assert_eq!(parse_at("81121-89876", TODAY), Err(IdnrError::Format));
        assert_eq!(parse_at("abcdefghij", TODAY), Err(IdnrError::Format));
        // Month 13 with a correct check digit.
        let mut d = vec![8, 1, 1, 3, 1, 8, 9, 8, 7];
        d.push(luhn(&d));
        let s: String = d.iter().map(|x| (x + b'0') as char).collect();
        assert!(matches!(parse_at(&s, TODAY), Err(IdnrError::Month(13))));
        // 12-digit number in the future.
        let mut d = vec![3, 0, 0, 1, 0, 1, 1, 2, 3];
        d.push(luhn(&d));
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
            digits.push(luhn(&digits));
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
            let broken = matches!(parse_at(&sb, TODAY), Err(IdnrError::CheckDigit { .. }));
            proptest::prop_assert!(broken, "{} was accepted", sb);
        }
    }
}
