//! Benchmark data and quality helpers: an Adult-like generator with 15
//! columns (kuvert-deid's 13 plus two correlated ones), and the total
//! variation distance of 1-way and 2-way marginals between two tables.

use std::collections::HashMap;

use kuvert_deid::table::{Column, Table};

/// `kuvert_deid::gen::adult_like` plus `region` (a function of the
/// postcode's county digits, with noise) and `employed` (depends on age
/// and hours): 15 columns, `cols` of them kept (the first ones).
pub fn adult15(rows: usize, cols: usize, seed: u64) -> Table {
    use rand::{Rng, SeedableRng};
    let mut t = kuvert_deid::gen::adult_like(rows, seed);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let pc = t.col_index("postcode").expect("generator column");
    let age = t.col_index("age").expect("generator column");
    let hours = t.col_index("hours_per_week").expect("generator column");
    const REGIONS: [&str; 6] = ["Norr", "Mitt", "Stockholm", "Väst", "Öst", "Syd"];
    let region: Vec<String> = (0..rows)
        .map(|r| {
            let county: usize = t.columns[pc].get(r)[..2].parse().unwrap_or(10);
            let i = if rng.gen::<f64>() < 0.9 {
                (county - 10) * REGIONS.len() / 21
            } else {
                rng.gen_range(0..REGIONS.len())
            };
            REGIONS[i].to_string()
        })
        .collect();
    let employed: Vec<String> = (0..rows)
        .map(|r| {
            let a: u32 = t.columns[age].get(r).parse().unwrap_or(40);
            let h: u32 = t.columns[hours].get(r).parse().unwrap_or(40);
            let p = if a >= 65 {
                0.15
            } else if h >= 30 {
                0.9
            } else {
                0.6
            };
            if rng.gen::<f64>() < p { "yes" } else { "no" }.to_string()
        })
        .collect();
    t.headers.push("region".into());
    t.columns.push(Column::from_values(region));
    t.headers.push("employed".into());
    t.columns.push(Column::from_values(employed));
    let cols = cols.clamp(1, t.headers.len());
    t.headers.truncate(cols);
    t.columns.truncate(cols);
    t
}

/// A column re-coded to a shared dictionary of `a` and `b`'s values
/// (numeric columns binned into `bins` equal-width bins over their joint
/// range, so that TVD compares distributions rather than exact values).
fn shared_codes(a: &Column, b: &Column, bins: usize) -> (Vec<u32>, Vec<u32>, usize) {
    let num = |c: &Column| {
        c.dict
            .iter()
            .all(|v| v.is_empty() || v.parse::<f64>().is_ok())
    };
    if num(a) && num(b) {
        let vals = |c: &Column| -> Vec<Option<f64>> {
            c.dict.iter().map(|v| v.parse::<f64>().ok()).collect()
        };
        let (va, vb) = (vals(a), vals(b));
        let all = va.iter().chain(&vb).flatten();
        let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
        let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
        let w = ((hi - lo) / bins as f64).max(1e-12);
        let code = |v: &Option<f64>| match v {
            None => 0u32,
            Some(x) => 1 + (((x - lo) / w) as usize).min(bins - 1) as u32,
        };
        let ca = a.codes.iter().map(|&k| code(&va[k as usize])).collect();
        let cb = b.codes.iter().map(|&k| code(&vb[k as usize])).collect();
        return (ca, cb, bins + 1);
    }
    let mut index: HashMap<&str, u32> = HashMap::new();
    for v in a.dict.iter().chain(&b.dict) {
        let n = index.len() as u32;
        index.entry(v.as_str()).or_insert(n);
    }
    let ca = a
        .codes
        .iter()
        .map(|&k| index[a.dict[k as usize].as_str()])
        .collect();
    let cb = b
        .codes
        .iter()
        .map(|&k| index[b.dict[k as usize].as_str()])
        .collect();
    (ca, cb, index.len())
}

fn tvd_of(ka: &[u64], kb: &[u64], na: f64, nb: f64) -> f64 {
    0.5 * ka
        .iter()
        .zip(kb)
        .map(|(&x, &y)| (x as f64 / na - y as f64 / nb).abs())
        .sum::<f64>()
}

/// Mean TVD of the 1-way and of the 2-way marginals of the columns the two
/// tables share by name (numeric columns in `bins` bins; identity numbers
/// compared as categorical strings would be meaningless, so columns with
/// more than `max_distinct` distinct values in `real` are skipped).
pub fn mean_tvd(real: &Table, syn: &Table, bins: usize, max_distinct: usize) -> (f64, f64) {
    let mut coded = Vec::new();
    for (i, h) in real.headers.iter().enumerate() {
        let Some(j) = syn.headers.iter().position(|x| x == h) else {
            continue;
        };
        let (a, b, k) = shared_codes(&real.columns[i], &syn.columns[j], bins);
        if k > max_distinct {
            continue;
        }
        coded.push((a, b, k));
    }
    let (na, nb) = (real.nrows().max(1) as f64, syn.nrows().max(1) as f64);
    let count1 = |c: &[u32], k: usize| {
        let mut t = vec![0u64; k];
        c.iter().for_each(|&x| t[x as usize] += 1);
        t
    };
    let one: Vec<f64> = coded
        .iter()
        .map(|(a, b, k)| tvd_of(&count1(a, *k), &count1(b, *k), na, nb))
        .collect();
    let mut two = Vec::new();
    for i in 0..coded.len() {
        for j in i + 1..coded.len() {
            let (ai, bi, ki) = &coded[i];
            let (aj, bj, kj) = &coded[j];
            let count2 = |x: &[u32], y: &[u32]| {
                let mut t = vec![0u64; ki * kj];
                x.iter()
                    .zip(y)
                    .for_each(|(&p, &q)| t[p as usize * kj + q as usize] += 1);
                t
            };
            two.push(tvd_of(&count2(ai, aj), &count2(bi, bj), na, nb));
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    (mean(&one), mean(&two))
}
