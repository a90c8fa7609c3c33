//! A generator of Adult-like synthetic person data with Swedish flavour,
//! for benchmarks, examples and tests. Deterministic for a given seed.
//! The data are random; no real person is described.

use crate::config::Config;
use crate::hierarchy::HierarchySpec;
use crate::table::Table;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;

const EDUCATION: &[(&str, &str)] = &[
    ("Preschool", "Primary"),
    ("1st-4th", "Primary"),
    ("5th-6th", "Primary"),
    ("7th-8th", "Primary"),
    ("9th", "Secondary"),
    ("10th", "Secondary"),
    ("11th", "Secondary"),
    ("12th", "Secondary"),
    ("HS-grad", "Secondary"),
    ("Some-college", "Higher"),
    ("Assoc-voc", "Higher"),
    ("Assoc-acdm", "Higher"),
    ("Bachelors", "Higher"),
    ("Masters", "Graduate"),
    ("Prof-school", "Graduate"),
    ("Doctorate", "Graduate"),
];
const MARITAL: &[(&str, &str)] = &[
    ("Never-married", "Single"),
    ("Divorced", "Single"),
    ("Separated", "Single"),
    ("Widowed", "Single"),
    ("Married-civ-spouse", "Married"),
    ("Married-AF-spouse", "Married"),
    ("Married-spouse-absent", "Married"),
];
const OCCUPATION: &[(&str, &str)] = &[
    ("Tech-support", "White-collar"),
    ("Sales", "White-collar"),
    ("Exec-managerial", "White-collar"),
    ("Prof-specialty", "White-collar"),
    ("Adm-clerical", "White-collar"),
    ("Craft-repair", "Blue-collar"),
    ("Machine-op-inspct", "Blue-collar"),
    ("Transport-moving", "Blue-collar"),
    ("Handlers-cleaners", "Blue-collar"),
    ("Farming-fishing", "Blue-collar"),
    ("Other-service", "Service"),
    ("Priv-house-serv", "Service"),
    ("Protective-serv", "Service"),
    ("Armed-Forces", "Service"),
];
const WORKCLASS: &[(&str, &str)] = &[
    ("Private", "Private"),
    ("Self-emp-not-inc", "Self-employed"),
    ("Self-emp-inc", "Self-employed"),
    ("Federal-gov", "Government"),
    ("Local-gov", "Government"),
    ("State-gov", "Government"),
    ("Without-pay", "Other"),
    ("Never-worked", "Other"),
];
const COUNTRY: &[(&str, &str)] = &[
    ("Sverige", "Norden"),
    ("Finland", "Norden"),
    ("Norge", "Norden"),
    ("Danmark", "Norden"),
    ("Island", "Norden"),
    ("Polen", "Europa"),
    ("Tyskland", "Europa"),
    ("Bosnien", "Europa"),
    ("Grekland", "Europa"),
    ("Italien", "Europa"),
    ("Irak", "Asien"),
    ("Iran", "Asien"),
    ("Syrien", "Asien"),
    ("Indien", "Asien"),
    ("Kina", "Asien"),
    ("Somalia", "Afrika"),
    ("Eritrea", "Afrika"),
    ("Etiopien", "Afrika"),
    ("Chile", "Amerika"),
    ("USA", "Amerika"),
];
const DIAGNOSIS: &[&str] = &[
    "A00-B99", "C00-D48", "D50-D89", "E00-E90", "F00-F99", "G00-G99", "H00-H59", "I00-I99",
    "J00-J99", "K00-K93", "L00-L99", "M00-M99", "N00-N99", "O00-O99", "R00-R99", "S00-T98",
    "Z00-Z99",
];

/// Pick from a skewed (Zipf-like, exponent 1) distribution over `n` items.
fn zipf(rng: &mut ChaCha20Rng, n: usize) -> usize {
    let h: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
    let mut u = rng.gen::<f64>() * h;
    for i in 1..=n {
        u -= 1.0 / i as f64;
        if u <= 0.0 {
            return i - 1;
        }
    }
    n - 1
}

fn pnr(rng: &mut ChaCha20Rng) -> String {
    let year = rng.gen_range(1930..2008);
    let month = rng.gen_range(1..=12u32);
    let day = rng.gen_range(1..=crate::date::days_in_month(year as i64, month));
    let serial = rng.gen_range(0..1000u32);
    let nine = format!("{:02}{month:02}{day:02}{serial:03}", year % 100);
    let mut sum = 0;
    for (i, b) in nine.bytes().enumerate() {
        let mut v = (b - b'0') as u32 * if i % 2 == 0 { 2 } else { 1 };
        if v > 9 {
            v -= 9;
        }
        sum += v;
    }
    format!("{year}{}{}", &nine[2..], (10 - sum % 10) % 10)
}

/// Quasi-identifiers of the generated data (ten of them).
pub const QUASI: &[&str] = &[
    "age",
    "sex",
    "postcode",
    "visit_date",
    "education",
    "marital_status",
    "occupation",
    "country_of_birth",
    "workclass",
    "hours_per_week",
];

/// Generate `n` rows. Columns: `pnr`, the ten [`QUASI`] columns,
/// `diagnosis` (categorical) and `income` (numeric).
pub fn adult_like(n: usize, seed: u64) -> Table {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let names = ["pnr"]
        .iter()
        .chain(QUASI.iter())
        .chain(["diagnosis", "income"].iter())
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    let mut b: Vec<crate::table::ColumnBuilder> =
        names.iter().map(|_| Default::default()).collect();
    let epoch = crate::date::days_from_civil(2020, 1, 1);
    for _ in 0..n {
        let age =
            17 + ((rng.gen::<f64>() + rng.gen::<f64>() + rng.gen::<f64>()) / 3.0 * 74.0) as u32;
        let edu = (zipf(&mut rng, 16) + 8) % 16;
        let occ = zipf(&mut rng, OCCUPATION.len());
        let county = 10 + zipf(&mut rng, 21) as u32;
        let postcode = format!("{county}{:03}", rng.gen_range(0..50u32) * 7 % 1000);
        let (y, m, d) = crate::date::civil_from_days(epoch + rng.gen_range(0..1827));
        let hours = (40.0 + (rng.gen::<f64>() - 0.5) * 30.0 + (rng.gen::<f64>() - 0.5) * 30.0)
            .clamp(1.0, 99.0) as u32;
        let income =
            (150_000.0 + edu as f64 * 20_000.0 + age as f64 * 3_000.0) * (0.5 + rng.gen::<f64>());
        let diag = (zipf(&mut rng, DIAGNOSIS.len()) + (age as usize / 30)) % DIAGNOSIS.len();
        let row = [
            pnr(&mut rng),
            age.to_string(),
            if rng.gen::<bool>() { "F" } else { "M" }.to_string(),
            postcode,
            format!("{y:04}-{m:02}-{d:02}"),
            EDUCATION[edu].0.to_string(),
            MARITAL[zipf(&mut rng, MARITAL.len())].0.to_string(),
            OCCUPATION[occ].0.to_string(),
            COUNTRY[zipf(&mut rng, COUNTRY.len())].0.to_string(),
            WORKCLASS[zipf(&mut rng, WORKCLASS.len())].0.to_string(),
            hours.to_string(),
            DIAGNOSIS[diag].to_string(),
            format!("{}", (income / 100.0).round() * 100.0),
        ];
        for (bb, v) in b.iter_mut().zip(row.iter()) {
            bb.push(v);
        }
    }
    let columns: Vec<_> = b.into_iter().map(|x| x.finish()).collect();
    Table {
        source: format!("generated(n={n}, seed={seed})"),
        headers: names,
        columns,
        lines: (0..n as u64).map(|i| i + 2).collect(),
    }
}

fn map_of(pairs: &[(&str, &str)]) -> HierarchySpec {
    HierarchySpec::Map {
        map: pairs
            .iter()
            .map(|(a, b)| (a.to_string(), vec![b.to_string()]))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A configuration with hierarchies for the first `nqi` quasi-identifiers of the generated data.
pub fn config(nqi: usize, k: u64, max_suppression: f64) -> Config {
    let mut h = BTreeMap::new();
    h.insert(
        "age".into(),
        HierarchySpec::Interval {
            widths: vec![5.0, 10.0, 20.0, 40.0],
        },
    );
    h.insert(
        "postcode".into(),
        HierarchySpec::Prefix {
            lengths: vec![3, 2, 1],
        },
    );
    h.insert(
        "visit_date".into(),
        HierarchySpec::Date {
            levels: vec![
                crate::hierarchy::DateLevel::Month,
                crate::hierarchy::DateLevel::Year,
            ],
        },
    );
    h.insert("education".into(), map_of(EDUCATION));
    h.insert("marital_status".into(), map_of(MARITAL));
    h.insert("occupation".into(), map_of(OCCUPATION));
    h.insert("country_of_birth".into(), map_of(COUNTRY));
    h.insert("workclass".into(), map_of(WORKCLASS));
    h.insert(
        "hours_per_week".into(),
        HierarchySpec::Interval {
            widths: vec![10.0, 20.0, 40.0],
        },
    );
    h.insert("sex".into(), HierarchySpec::Suppress);
    let quasi: Vec<String> = QUASI.iter().take(nqi).map(|s| s.to_string()).collect();
    h.retain(|k, _| quasi.contains(k));
    Config {
        quasi,
        max_suppression,
        models: crate::models::Models {
            k,
            ..Default::default()
        },
        hierarchy: h,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_numbers_are_valid() {
        let t = adult_like(200, 7);
        for r in 0..t.nrows() {
            let v = t.columns[0].get(r);
            assert!(crate::idnr::parse(v).is_ok(), "{v}");
        }
        assert_eq!(t.headers.len(), 13);
    }
}
