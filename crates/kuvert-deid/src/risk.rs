//! Re-identification risk of a released table, measured against the
//! original (which plays the population).
//!
//! With `f_j` the size of released equivalence class `j` (records sharing
//! the quasi-identifiers) and `F_j` the number of original records that
//! match it:
//!
//! * **prosecutor** (the attacker knows the target is in the release):
//!   risk of a record `1/f_j`; maximum `1/min f_j`; average `|J|/n`.
//! * **journalist** (the attacker knows only that the target is in the
//!   population): `1/F_j`; maximum `1/min F_j`; average `|J|/sum F_j`.
//! * **marketer** (the attacker links as many records as possible): the
//!   expected share of correct links, `sum_j (f_j/F_j) / n`.
//! * **sample uniques**: released records alone in their class;
//!   **population uniques**: released classes that match exactly one
//!   original record; and, for when the original is itself only a sample,
//!   a model estimate (Zayatz 1991) of the share of sample uniques that
//!   are unique in the population, given the sampling fraction.
//!
//! Matching a released (possibly generalised) value to an original value
//! understands the labels that `kuvert deid` writes: `*`, intervals
//! `[a,b)`, masked prefixes `114**`, and dates cut to `YYYY-MM`, `YYYY`,
//! `YYYY-Www` or `1980s`. Other labels (user hierarchies) match only equal
//! values, so journalist and marketer risk are then upper bounds.

use crate::error::Result;
use crate::table::Table;
use serde::Serialize;
use std::collections::HashMap;

/// Whether released label `label` covers original value `value`.
pub fn label_matches(label: &str, value: &str) -> bool {
    let (l, v) = (label.trim(), value.trim());
    if l == v || l == crate::hierarchy::STAR {
        return true;
    }
    if l.starts_with('[') && l.ends_with(')') {
        if let (Some((a, b)), Ok(x)) = (l[1..l.len() - 1].split_once(','), v.parse::<f64>()) {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                return a <= x && x < b;
            }
        }
        return false;
    }
    if l.ends_with('*') && l.chars().count() == v.chars().count() {
        return l.chars().zip(v.chars()).all(|(a, b)| a == '*' || a == b);
    }
    if let Some((y, m, d)) = crate::date::parse_ymd(v) {
        if l.len() == 7 && l.as_bytes()[4] == b'-' && l.as_bytes()[5] != b'W' {
            return l == format!("{y:04}-{m:02}");
        }
        if l.len() == 4 {
            return l == format!("{y:04}");
        }
        if l.len() == 8 && &l[4..6] == "-W" {
            let (iy, w) = crate::date::iso_week(y, m, d);
            return l == format!("{iy:04}-W{w:02}");
        }
        if l.len() == 5 && l.ends_with('s') {
            return l == format!("{}s", y.div_euclid(10) * 10);
        }
    }
    false
}

/// Maximum, average and share of records above the threshold.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RiskSummary {
    /// Highest risk of any record.
    pub max: f64,
    /// Average risk over records.
    pub avg: f64,
    /// Share of records whose risk exceeds the threshold.
    pub records_at_risk: f64,
}

/// All re-identification risk measures.
#[derive(Debug, Clone, Serialize)]
pub struct ReidRisk {
    /// Released records.
    pub records: usize,
    /// Original (population) records.
    pub population_records: usize,
    /// Equivalence classes in the release.
    pub classes: usize,
    /// Risk threshold for "at risk" (default 0.2, i.e. class size below 5).
    pub threshold: f64,
    /// Prosecutor model.
    pub prosecutor: RiskSummary,
    /// Journalist model (released classes that match no original record carry no risk).
    pub journalist: RiskSummary,
    /// Released records whose class matches no original record (e.g. noise or synthetic data).
    pub records_without_match: usize,
    /// Marketer risk.
    pub marketer: f64,
    /// Released records unique in the release.
    pub sample_uniques: usize,
    /// Share of released records that are sample uniques.
    pub sample_uniqueness: f64,
    /// Released records whose class matches exactly one original record.
    pub population_uniques: usize,
    /// Share of released records that are population uniques.
    pub population_uniqueness: f64,
    /// Sampling fraction used by the model estimate.
    pub sampling_fraction: f64,
    /// Zayatz estimate of the number of population uniques among the sample uniques.
    pub population_uniques_estimate: f64,
    /// Share of records estimated to be population unique (Zayatz).
    pub population_uniqueness_estimate: f64,
    /// Caveats (e.g. columns whose released labels could not be matched to original values).
    pub notes: Vec<String>,
    /// Records per class size: `(size, records)` for sizes 1..=10, then 11+ as 11.
    pub class_size_histogram: Vec<(u64, u64)>,
}

fn group_counts(table: &Table, cols: &[usize]) -> (Vec<u32>, Vec<u64>, Vec<Vec<u32>>) {
    let mut map: HashMap<Vec<u32>, u32> = HashMap::new();
    let mut gid = Vec::with_capacity(table.nrows());
    let mut sizes = Vec::new();
    let mut keys = Vec::new();
    for r in 0..table.nrows() {
        let key: Vec<u32> = cols.iter().map(|&c| table.columns[c].codes[r]).collect();
        let next = map.len() as u32;
        let g = *map.entry(key.clone()).or_insert_with(|| {
            sizes.push(0);
            keys.push(key);
            next
        });
        sizes[g as usize] += 1;
        gid.push(g);
    }
    (gid, sizes, keys)
}

/// Zayatz's estimate of P(population unique | sample unique).
pub fn zayatz_unique_probability(class_sizes: &[u64], pi: f64) -> f64 {
    if pi >= 1.0 {
        return 1.0;
    }
    let mut count_by_size: HashMap<u64, u64> = HashMap::new();
    for &s in class_sizes {
        *count_by_size.entry(s).or_default() += 1;
    }
    let total: f64 = class_sizes.len().max(1) as f64;
    let p1 = *count_by_size.get(&1).unwrap_or(&0) as f64 / total;
    let denom: f64 = count_by_size
        .iter()
        .map(|(&i, &ni)| (ni as f64 / total) * i as f64 * pi * (1.0 - pi).powi(i as i32 - 1))
        .sum();
    if denom > 0.0 {
        (p1 * pi / denom).min(1.0)
    } else {
        0.0
    }
}

/// Compute the risk measures. `sampling_fraction` defaults to released/original size.
///
/// `hierarchies` (from the `deid.toml` used for the release) lets released
/// labels of user hierarchies be matched to original values; without them
/// such labels match nothing, and journalist and marketer risk then fall
/// back to the prosecutor values (conservative), with a note.
pub fn reid_risk(
    original: &Table,
    released: &Table,
    quasi: &[String],
    sampling_fraction: Option<f64>,
    threshold: f64,
    hierarchies: Option<&crate::config::Config>,
) -> Result<ReidRisk> {
    let rcols: Vec<usize> = quasi
        .iter()
        .map(|q| released.col_index(q))
        .collect::<Result<_>>()?;
    let ocols: Vec<usize> = quasi
        .iter()
        .map(|q| original.col_index(q))
        .collect::<Result<_>>()?;
    let n = released.nrows();
    let (_gid, f, keys) = group_counts(released, &rcols);
    // Map original values to released labels, column by column.
    let mut star_code: Vec<Option<u32>> = Vec::new();
    let mut uninterpretable: Vec<String> = Vec::new();
    let mut omap: Vec<Vec<Option<u32>>> = Vec::new();
    for (&rc, &oc) in rcols.iter().zip(&ocols) {
        let rd = &released.columns[rc].dict;
        let od = &original.columns[oc].dict;
        let star = rd
            .iter()
            .position(|l| l == crate::hierarchy::STAR)
            .map(|x| x as u32);
        let exact: HashMap<&str, u32> = rd
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();
        // A configured hierarchy whose level holds every released label maps exactly.
        let via_hierarchy: Option<Vec<Option<u32>>> = hierarchies.and_then(|cfg| {
            let spec = cfg.hierarchy.get(&original.headers[oc])?;
            let h = crate::hierarchy::Hierarchy::build(original, oc, spec, &cfg.base_dir).ok()?;
            (0..h.levels()).find_map(|l| {
                let labels: std::collections::HashSet<&str> =
                    h.labels[l].iter().map(String::as_str).collect();
                if !rd
                    .iter()
                    .all(|x| x == crate::hierarchy::STAR || labels.contains(x.as_str()))
                {
                    return None;
                }
                Some(
                    (0..od.len())
                        .map(|b| {
                            exact
                                .get(h.labels[l][h.maps[l][b] as usize].as_str())
                                .copied()
                        })
                        .collect(),
                )
            })
        });
        let m: Vec<Option<u32>> = match via_hierarchy {
            Some(m) => m,
            None => od
                .iter()
                .map(|v| {
                    exact.get(v.as_str()).copied().or_else(|| {
                        rd.iter()
                            .enumerate()
                            .find(|(i, l)| Some(*i as u32) != star && label_matches(l, v))
                            .map(|(i, _)| i as u32)
                    })
                })
                .collect(),
        };
        // Released labels that no original value matches cannot be interpreted.
        let mut hit = vec![false; rd.len()];
        for c in m.iter().flatten() {
            hit[*c as usize] = true;
        }
        if rd
            .iter()
            .zip(&hit)
            .any(|(l, &h)| !h && l != crate::hierarchy::STAR && !l.trim().is_empty())
            && !m.iter().any(Option::is_some)
        {
            uninterpretable.push(released.headers[rc].clone());
        }
        star_code.push(star);
        omap.push(m);
    }
    // Population counts per star pattern.
    let mut by_pattern: HashMap<Vec<bool>, HashMap<Vec<u32>, u64>> = HashMap::new();
    let mut big_f = Vec::with_capacity(keys.len());
    for key in keys.iter() {
        let pattern: Vec<bool> = key
            .iter()
            .enumerate()
            .map(|(q, &c)| star_code[q] == Some(c))
            .collect();
        let counts = by_pattern.entry(pattern.clone()).or_insert_with(|| {
            let mut h: HashMap<Vec<u32>, u64> = HashMap::new();
            'rows: for r in 0..original.nrows() {
                let mut k = Vec::with_capacity(key.len());
                for (q, &oc) in ocols.iter().enumerate() {
                    if pattern[q] {
                        continue;
                    }
                    match omap[q][original.columns[oc].codes[r] as usize] {
                        Some(c) => k.push(c),
                        None => continue 'rows,
                    }
                }
                *h.entry(k).or_default() += 1;
            }
            h
        });
        let k: Vec<u32> = key
            .iter()
            .enumerate()
            .filter(|(q, _)| !pattern[*q])
            .map(|(_, &c)| c)
            .collect();
        let pop = counts.get(&k).copied().unwrap_or(0);
        // Labels we cannot interpret: assume the release is its own population (conservative).
        let pop = if uninterpretable.is_empty() {
            pop
        } else {
            pop.max(f[big_f.len()])
        };
        // 0 when the released class matches no original record (noise,
        // synthetic data): it re-identifies nobody.
        big_f.push(pop);
    }
    let nf = n.max(1) as f64;
    let classes = f.len();
    let min_f = f.iter().copied().min().unwrap_or(0);
    let min_big_f = big_f.iter().copied().filter(|&x| x > 0).min().unwrap_or(0);
    let prosecutor = RiskSummary {
        max: if min_f > 0 { 1.0 / min_f as f64 } else { 0.0 },
        avg: classes as f64 / nf,
        records_at_risk: f
            .iter()
            .filter(|&&s| 1.0 / s as f64 > threshold)
            .sum::<u64>() as f64
            / nf,
    };
    let sum_big_f: u64 = big_f.iter().sum();
    let journalist = RiskSummary {
        max: if min_big_f > 0 {
            1.0 / min_big_f as f64
        } else {
            0.0
        },
        avg: if sum_big_f > 0 {
            classes as f64 / sum_big_f as f64
        } else {
            0.0
        },
        records_at_risk: f
            .iter()
            .zip(&big_f)
            .filter(|(_, &bf)| bf > 0 && 1.0 / bf as f64 > threshold)
            .map(|(&s, _)| s)
            .sum::<u64>() as f64
            / nf,
    };
    // At most min(f, F) of a class's records can be linked correctly.
    let marketer = f
        .iter()
        .zip(&big_f)
        .filter(|(_, &bf)| bf > 0)
        .map(|(&s, &bf)| s.min(bf) as f64 / bf as f64)
        .sum::<f64>()
        / nf;
    let sample_uniques = f.iter().filter(|&&s| s == 1).count();
    let population_uniques = f
        .iter()
        .zip(&big_f)
        .filter(|(_, &bf)| bf == 1)
        .map(|(&s, _)| s as usize)
        .sum();
    let pi = sampling_fraction
        .unwrap_or(n as f64 / original.nrows().max(1) as f64)
        .clamp(1e-9, 1.0);
    let pu = zayatz_unique_probability(&f, pi) * sample_uniques as f64;
    let mut hist = [0u64; 11];
    for &s in &f {
        hist[(s.min(11) - 1) as usize] += s;
    }
    Ok(ReidRisk {
        records: n,
        population_records: original.nrows(),
        classes,
        threshold,
        prosecutor,
        journalist,
        records_without_match: f
            .iter()
            .zip(&big_f)
            .filter(|(_, &bf)| bf == 0)
            .map(|(&s, _)| s as usize)
            .sum(),
        marketer,
        sample_uniques,
        sample_uniqueness: sample_uniques as f64 / nf,
        population_uniques,
        population_uniqueness: population_uniques as f64 / nf,
        sampling_fraction: pi,
        population_uniques_estimate: pu,
        population_uniqueness_estimate: pu / nf,
        notes: if uninterpretable.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "released labels of {} match no original value (user hierarchy?); journalist and marketer risk assume the release is its own population (conservative). Pass the deid configuration (--config) to match them",
                uninterpretable.join(", ")
            )]
        },
        class_size_histogram: hist
            .iter()
            .enumerate()
            .map(|(i, &r)| (i as u64 + 1, r))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(cols: &[(&str, &[&str])]) -> Table {
        Table::from_columns(
            "t.csv",
            cols.iter()
                .map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn matcher() {
        assert!(label_matches("[20,25)", "23"));
        assert!(!label_matches("[20,25)", "25"));
        assert!(label_matches("114**", "11453"));
        assert!(!label_matches("114**", "11553"));
        assert!(label_matches("2024-03", "2024-03-05"));
        assert!(label_matches("2024", "2024-03-05"));
        assert!(label_matches("2025-W01", "2024-12-30"));
        assert!(label_matches("1980s", "1987-01-01"));
        assert!(label_matches("*", "anything"));
        assert!(!label_matches("Higher", "Bachelors"));
    }

    #[test]
    fn hand_computed_small_table() {
        // Population of 8; the release keeps 5 records.
        // Released classes on (age, sex): A=([20,30),F) x2, B=([20,30),M) x1, C=([30,40),F) x2.
        let original = tab(&[
            ("age", &["21", "25", "27", "22", "33", "35", "38", "29"]),
            ("sex", &["F", "F", "M", "M", "F", "F", "F", "F"]),
        ]);
        // Population counts: A: ages 21,25,29 F -> 3; B: 27 M, 22 M -> 2; C: 33,35,38 F -> 3.
        let released = tab(&[
            (
                "age",
                &["[20,30)", "[20,30)", "[20,30)", "[30,40)", "[30,40)"],
            ),
            ("sex", &["F", "F", "M", "F", "F"]),
        ]);
        let r = reid_risk(
            &original,
            &released,
            &["age".into(), "sex".into()],
            None,
            0.2,
            None,
        )
        .unwrap();
        assert_eq!(r.classes, 3);
        assert_eq!(r.prosecutor.max, 1.0);
        assert!((r.prosecutor.avg - 3.0 / 5.0).abs() < 1e-12);
        // Classes of size < 5 are all at risk with threshold 0.2.
        assert_eq!(r.prosecutor.records_at_risk, 1.0);
        assert_eq!(r.journalist.max, 0.5);
        assert!((r.journalist.avg - 3.0 / 8.0).abs() < 1e-12);
        // Journalist at risk: 1/F > 0.2 for every class (F = 3, 2, 3).
        assert_eq!(r.journalist.records_at_risk, 1.0);
        // Marketer: (2/3 + 1/2 + 2/3) / 5.
        assert!((r.marketer - (2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 5.0).abs() < 1e-12);
        assert_eq!(r.sample_uniques, 1);
        assert_eq!(r.population_uniques, 0);
        assert!((r.sampling_fraction - 5.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn user_hierarchy_labels_via_config() {
        let original = tab(&[("edu", &["Bachelors", "Masters", "HS-grad", "Bachelors"])]);
        let released = tab(&[("edu", &["Higher", "Higher"])]);
        // Without the hierarchy: conservative fallback and a note.
        let r = reid_risk(&original, &released, &["edu".into()], None, 0.2, None).unwrap();
        assert_eq!(r.journalist.max, 0.5);
        assert_eq!(r.notes.len(), 1);
        let mut cfg = crate::config::Config::default();
        let map = [
            ("Bachelors", "Higher"),
            ("Masters", "Higher"),
            ("HS-grad", "Secondary"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), vec![b.to_string()]))
        .collect();
        cfg.hierarchy
            .insert("edu".into(), crate::hierarchy::HierarchySpec::Map { map });
        let r = reid_risk(&original, &released, &["edu".into()], None, 0.2, Some(&cfg)).unwrap();
        // Three original records are "Higher".
        assert!((r.journalist.max - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.marketer - (2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!(r.notes.is_empty());
    }

    #[test]
    fn zayatz_hand_computed() {
        // Classes sizes 1,1,2 with pi = 0.5: p1 = 2/3, p2 = 1/3.
        // denom = 2/3*1*0.5 + 1/3*2*0.5*0.5 = 1/3 + 1/6 = 1/2; P = (2/3*0.5)/(1/2) = 2/3.
        let p = zayatz_unique_probability(&[1, 1, 2], 0.5);
        assert!((p - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(zayatz_unique_probability(&[1, 2], 1.0), 1.0);
    }

    #[test]
    fn release_equal_to_original_is_all_unique() {
        let t = tab(&[("a", &["1", "2", "3"]), ("b", &["x", "y", "z"])]);
        let r = reid_risk(&t, &t, &["a".into(), "b".into()], None, 0.2, None).unwrap();
        assert_eq!(r.prosecutor.max, 1.0);
        assert_eq!(r.prosecutor.avg, 1.0);
        assert_eq!(r.marketer, 1.0);
        assert_eq!(r.population_uniques, 3);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]
        /// For a sample of the original rows (no generalisation), every measure
        /// equals a direct computation from its definition.
        #[test]
        fn measures_match_definitions(
            rows in proptest::collection::vec((0u8..4, 0u8..3), 5..60),
            keep in proptest::collection::vec(proptest::bool::ANY, 60),
        ) {
            let a: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
            let b: Vec<String> = rows.iter().map(|r| format!("v{}", r.1)).collect();
            let orig = Table::from_columns("o.csv", vec![("a".into(), a.clone()), ("b".into(), b.clone())]);
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| keep[i]).collect();
            proptest::prop_assume!(!idx.is_empty());
            let rel = Table::from_columns(
                "r.csv",
                vec![
                    ("a".into(), idx.iter().map(|&i| a[i].clone()).collect()),
                    ("b".into(), idx.iter().map(|&i| b[i].clone()).collect()),
                ],
            );
            let r = reid_risk(&orig, &rel, &["a".into(), "b".into()], None, 0.2, None).unwrap();
            let mut f: HashMap<(String, String), f64> = HashMap::new();
            for &i in &idx {
                *f.entry((a[i].clone(), b[i].clone())).or_default() += 1.0;
            }
            let mut pop: HashMap<(String, String), f64> = HashMap::new();
            for i in 0..rows.len() {
                *pop.entry((a[i].clone(), b[i].clone())).or_default() += 1.0;
            }
            let n = idx.len() as f64;
            let min_f = f.values().cloned().fold(f64::INFINITY, f64::min);
            let min_pf = f.keys().map(|k| pop[k]).fold(f64::INFINITY, f64::min);
            let marketer: f64 = f.iter().map(|(k, &fj)| fj / pop[k]).sum::<f64>() / n;
            let sum_pf: f64 = f.keys().map(|k| pop[k]).sum();
            proptest::prop_assert!((r.prosecutor.max - 1.0 / min_f).abs() < 1e-12);
            proptest::prop_assert!((r.prosecutor.avg - f.len() as f64 / n).abs() < 1e-12);
            proptest::prop_assert!((r.journalist.max - 1.0 / min_pf).abs() < 1e-12);
            proptest::prop_assert!((r.journalist.avg - f.len() as f64 / sum_pf).abs() < 1e-12);
            proptest::prop_assert!((r.marketer - marketer).abs() < 1e-12);
            proptest::prop_assert_eq!(r.sample_uniques, f.values().filter(|&&x| x == 1.0).count());
            let pu: usize = f.iter().filter(|(k, _)| pop[*k] == 1.0).map(|(_, &x)| x as usize).sum();
            proptest::prop_assert_eq!(r.population_uniques, pu);
        }
    }
}
