//! Synthetic Swedish identity numbers: valid (Luhn check digit, a real
//! calendar date), with the modelled birth date and sex (the ninth digit,
//! the last of the serial number, is odd for men and even for women); the
//! other two serial digits are uniformly random. Nothing is taken from an
//! input number.

use rand::Rng;

/// A personnummer `YYYYMMDDNNNC` (12-digit normal form) for a person born
/// on day `days` (since 1970-01-01) of the given sex.
pub fn synthetic_personnummer<R: Rng + ?Sized>(days: i64, male: bool, rng: &mut R) -> String {
    let (y, m, d) = kuvert_deid::date::civil_from_days(days);
    let first: u32 = rng.gen_range(0..100);
    let last: u32 = 2 * rng.gen_range(0..5u32) + u32::from(male);
    let serial = first * 10 + last;
    let yy = (y.rem_euclid(100)) as u32;
    let nine_s = format!("{yy:02}{m:02}{d:02}{serial:03}");
    let mut nine = [0u8; 9];
    for (o, b) in nine.iter_mut().zip(nine_s.bytes()) {
        *o = b - b'0';
    }
    let c = kuvert_data::idnr::luhn_check_digit(&nine);
    format!("{y:04}{m:02}{d:02}{serial:03}{c}")
}
