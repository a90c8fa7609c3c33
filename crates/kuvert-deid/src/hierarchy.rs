//! Generalisation hierarchies.
//!
//! A hierarchy turns each distinct value of a column into coarser labels,
//! level by level; level 0 is the value itself and the top level is always
//! `*` (the column suppressed). Each level must be a function of the level
//! below it, which [`Hierarchy::build`] checks, so that the levels form the
//! lattice the search walks.

use crate::error::{DeidError, Result};
use crate::table::{Column, Table};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Label of the fully suppressed level.
pub const STAR: &str = "*";

/// Granularity of a date level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateLevel {
    /// ISO week, `2024-W05`.
    Week,
    /// `2024-03`.
    Month,
    /// `2024`.
    Year,
    /// Decade, `1980s`.
    Decade,
}

/// How a column is generalised (the `[hierarchy.COL]` tables of the config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HierarchySpec {
    /// Numeric intervals `[a,b)` of the given widths; each width must divide the next.
    Interval { widths: Vec<f64> },
    /// Dates (`YYYY-MM-DD`) to week, month, year or decade.
    Date { levels: Vec<DateLevel> },
    /// Keep the first `n` characters and mask the rest with `*`, for each `n` in `lengths` (decreasing).
    Prefix { lengths: Vec<usize> },
    /// A user hierarchy: a CSV file without header, one row per value:
    /// `value,level1,level2,...` (`;` also accepted as separator).
    Csv { file: PathBuf },
    /// A user hierarchy written inline: `map = { "Bachelors" = ["Higher"], ... }`,
    /// each value followed by its labels at levels 1, 2, ...
    Map {
        map: std::collections::BTreeMap<String, Vec<String>>,
    },
    /// Only the original value or `*`.
    Suppress,
}

/// A built hierarchy for one column.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Column name.
    pub column: String,
    /// `maps[l][v]` is the level-`l` code of base value `v`.
    pub maps: Vec<Vec<u32>>,
    /// `labels[l][c]` is the text of level-`l` code `c`.
    pub labels: Vec<Vec<String>>,
}

/// Empty cells and cells already suppressed (`*`) pass through every level unchanged.
fn is_missing(v: &str) -> bool {
    let t = v.trim();
    t.is_empty() || t == STAR
}

/// A default hierarchy chosen from the values, for quasi-identifiers without
/// a `[hierarchy.COL]` entry: numbers get intervals (about 20 bins, then
/// doubling widths), dates get month, year and decade, digit codes of one
/// length (postcodes) get prefixes, anything else only `*`.
pub fn auto_spec(col: &Column) -> HierarchySpec {
    let vals: Vec<&str> = col
        .dict
        .iter()
        .map(|s| s.trim())
        .filter(|s| !is_missing(s))
        .collect();
    if vals.is_empty() {
        return HierarchySpec::Suppress;
    }
    if vals
        .iter()
        .all(|v| crate::date::parse_ymd(v).is_some() && v.len() == 10)
    {
        return HierarchySpec::Date {
            levels: vec![DateLevel::Month, DateLevel::Year, DateLevel::Decade],
        };
    }
    let len0 = vals[0].len();
    if len0 >= 3
        && vals
            .iter()
            .all(|v| v.len() == len0 && v.bytes().all(|b| b.is_ascii_digit()))
        && (len0 >= 5 || vals.iter().any(|v| v.starts_with('0')))
    {
        return HierarchySpec::Prefix {
            lengths: (1..len0).rev().collect(),
        };
    }
    let nums: Option<Vec<f64>> = vals
        .iter()
        .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    if let Some(nums) = nums {
        let lo = nums.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = nums.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let range = hi - lo;
        if range <= 0.0 || col.dict.len() <= 2 {
            return HierarchySpec::Suppress;
        }
        let raw = range / 20.0;
        let p = 10f64.powf(raw.log10().floor());
        let mut w = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * p)
            .find(|&c| c >= raw)
            .unwrap_or(10.0 * p);
        if nums.iter().all(|x| x.fract() == 0.0) {
            w = w.max(1.0).round();
        }
        let mut widths = vec![w];
        while *widths.last().unwrap_or(&w) * 2.0 < range {
            let next = widths.last().unwrap_or(&w) * 2.0;
            widths.push(next);
        }
        return HierarchySpec::Interval { widths };
    }
    HierarchySpec::Suppress
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn first_row_with(col: &Column, code: usize) -> usize {
    col.codes
        .iter()
        .position(|&c| c as usize == code)
        .unwrap_or(0)
}

impl Hierarchy {
    /// Number of levels, including level 0 and the `*` level.
    pub fn levels(&self) -> usize {
        self.maps.len()
    }
    /// Number of distinct labels at `level`.
    pub fn cardinality(&self, level: usize) -> usize {
        self.labels[level].len()
    }

    /// Build the hierarchy of column `c` of `table`. `base_dir` resolves relative hierarchy files.
    pub fn build(
        table: &Table,
        c: usize,
        spec: &HierarchySpec,
        base_dir: &Path,
    ) -> Result<Hierarchy> {
        let col = &table.columns[c];
        let name = table.headers[c].clone();
        let herr = |m: String| DeidError::Hierarchy {
            column: name.clone(),
            message: m,
        };
        // Text labels per level, per distinct value.
        let mut text: Vec<Vec<String>> = vec![col.dict.clone()];
        match spec {
            HierarchySpec::Suppress => {}
            HierarchySpec::Interval { widths } => {
                if widths.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
                    return Err(herr("interval widths must be positive numbers".into()));
                }
                let mut nums = Vec::with_capacity(col.dict.len());
                for (i, v) in col.dict.iter().enumerate() {
                    if is_missing(v) {
                        nums.push(None);
                        continue;
                    }
                    match v.trim().parse::<f64>() {
                        Ok(x) if x.is_finite() => nums.push(Some(x)),
                        _ => {
                            return Err(table.bad_value(
                                first_row_with(col, i),
                                c,
                                format!("`{v}` is not a number, but column `{name}` has an interval hierarchy; fix the value or choose another hierarchy type"),
                            ))
                        }
                    }
                }
                for w in widths {
                    text.push(
                        nums.iter()
                            .zip(&col.dict)
                            .map(|(x, raw)| match x {
                                None => raw.clone(),
                                Some(x) => {
                                    let lo = (x / w).floor() * w;
                                    format!("[{},{})", fmt_num(lo), fmt_num(lo + w))
                                }
                            })
                            .collect(),
                    );
                }
            }
            HierarchySpec::Date { levels } => {
                let mut dates = Vec::with_capacity(col.dict.len());
                for (i, v) in col.dict.iter().enumerate() {
                    if is_missing(v) {
                        dates.push(None);
                        continue;
                    }
                    match crate::date::parse_ymd(v) {
                        Some(d) => dates.push(Some(d)),
                        None => {
                            return Err(table.bad_value(
                                first_row_with(col, i),
                                c,
                                format!("`{v}` is not a date YYYY-MM-DD, but column `{name}` has a date hierarchy"),
                            ))
                        }
                    }
                }
                for l in levels {
                    text.push(
                        dates
                            .iter()
                            .zip(&col.dict)
                            .map(|(d, raw)| match d {
                                None => raw.clone(),
                                Some((y, m, dd)) => match l {
                                    DateLevel::Week => {
                                        let (iy, w) = crate::date::iso_week(*y, *m, *dd);
                                        format!("{iy:04}-W{w:02}")
                                    }
                                    DateLevel::Month => format!("{y:04}-{m:02}"),
                                    DateLevel::Year => format!("{y:04}"),
                                    DateLevel::Decade => format!("{}s", y.div_euclid(10) * 10),
                                },
                            })
                            .collect(),
                    );
                }
            }
            HierarchySpec::Prefix { lengths } => {
                for &n in lengths {
                    text.push(
                        col.dict
                            .iter()
                            .map(|v| {
                                let k = v.chars().count();
                                if k <= n {
                                    v.clone()
                                } else {
                                    let mut s: String = v.chars().take(n).collect();
                                    s.extend(std::iter::repeat_n('*', k - n));
                                    s
                                }
                            })
                            .collect(),
                    );
                }
            }
            HierarchySpec::Csv { file } => {
                let path = if file.is_absolute() {
                    file.clone()
                } else {
                    base_dir.join(file)
                };
                let content = std::fs::read_to_string(&path).map_err(|e| DeidError::Io {
                    path: path.display().to_string(),
                    source: e,
                })?;
                let delim = if content.lines().next().unwrap_or("").contains(';') {
                    b';'
                } else {
                    b','
                };
                let mut rdr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(delim)
                    .flexible(false)
                    .from_reader(content.as_bytes());
                let mut map: HashMap<String, Vec<String>> = HashMap::new();
                let mut width = None;
                for rec in rdr.records() {
                    let rec = rec.map_err(|e| DeidError::Csv {
                        path: path.display().to_string(),
                        line: e.position().map(|p| p.line()).unwrap_or(0),
                        message: e.to_string(),
                    })?;
                    width = Some(rec.len());
                    let mut it = rec.iter();
                    let key = it.next().unwrap_or("").to_string();
                    map.insert(key, it.map(str::to_string).collect());
                }
                let width = width.unwrap_or(1);
                text.extend(levels_from_map(
                    table,
                    c,
                    &map,
                    width,
                    &path.display().to_string(),
                )?);
            }
            HierarchySpec::Map { map } => {
                let width = map.values().map(|v| v.len() + 1).max().unwrap_or(1);
                if map.values().any(|v| v.len() + 1 != width) {
                    return Err(herr(
                        "every value in the map needs the same number of levels".into(),
                    ));
                }
                let map: HashMap<String, Vec<String>> =
                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                text.extend(levels_from_map(table, c, &map, width, "the inline map")?);
            }
        }
        finish(name, col, text)
    }
}

fn levels_from_map(
    table: &Table,
    c: usize,
    map: &HashMap<String, Vec<String>>,
    width: usize,
    what: &str,
) -> Result<Vec<Vec<String>>> {
    let col = &table.columns[c];
    let mut text = Vec::new();
    for l in 1..width {
        let mut level = Vec::with_capacity(col.dict.len());
        for (i, v) in col.dict.iter().enumerate() {
            match map.get(v) {
                Some(row) if row.len() >= l => level.push(row[l - 1].clone()),
                Some(_) => {
                    return Err(table.bad_value(
                        first_row_with(col, i),
                        c,
                        format!(
                        "value `{v}` has fewer levels than the others in the hierarchy ({what})"
                    ),
                    ))
                }
                None => {
                    return Err(table.bad_value(
                        first_row_with(col, i),
                        c,
                        format!(
                            "value `{v}` is missing from the hierarchy ({what}); add a row for it"
                        ),
                    ))
                }
            }
        }
        text.push(level);
    }
    Ok(text)
}

fn finish(name: String, col: &Column, mut text: Vec<Vec<String>>) -> Result<Hierarchy> {
    let herr = |m: String| DeidError::Hierarchy {
        column: name.clone(),
        message: m,
    };
    if text
        .last()
        .map(|l| l.iter().any(|x| x != STAR))
        .unwrap_or(true)
    {
        text.push(vec![STAR.to_string(); col.dict.len()]);
    }
    // Encode each level and check it is a function of the previous one.
    let mut maps = Vec::with_capacity(text.len());
    let mut labels = Vec::with_capacity(text.len());
    for (l, level) in text.iter().enumerate() {
        let mut idx: HashMap<&str, u32> = HashMap::new();
        let mut lab = Vec::new();
        let map: Vec<u32> = level
            .iter()
            .map(|s| {
                *idx.entry(s.as_str()).or_insert_with(|| {
                    lab.push(s.clone());
                    (lab.len() - 1) as u32
                })
            })
            .collect();
        if l > 0 {
            let prev: &Vec<u32> = &maps[l - 1];
            let mut up: HashMap<u32, u32> = HashMap::new();
            for (v, (&p, &q)) in prev.iter().zip(map.iter()).enumerate() {
                if let Some(&old) = up.get(&p) {
                    if old != q {
                        return Err(herr(format!(
                                "level {l} is not a coarsening of level {}: `{}` maps to both `{}` and `{}` (value `{}`); make each level group whole groups of the level below (interval widths must divide each other; week cannot be followed by month)",
                                l - 1,
                                labels_at(&labels, l - 1, p),
                                lab[old as usize],
                                lab[q as usize],
                                col.dict[v]
                            )));
                    }
                } else {
                    up.insert(p, q);
                }
            }
        }
        maps.push(map);
        labels.push(lab);
    }
    Ok(Hierarchy {
        column: name,
        maps,
        labels,
    })
}

fn labels_at(labels: &[Vec<String>], l: usize, c: u32) -> String {
    labels
        .get(l)
        .and_then(|x| x.get(c as usize))
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(vals: &[&str]) -> Table {
        Table::from_columns(
            "t.csv",
            vec![("x".into(), vals.iter().map(|s| s.to_string()).collect())],
        )
    }

    fn label(h: &Hierarchy, l: usize, v: usize) -> &str {
        &h.labels[l][h.maps[l][v] as usize]
    }

    #[test]
    fn intervals() {
        let tb = t(&["23", "27", "41"]);
        let h = Hierarchy::build(
            &tb,
            0,
            &HierarchySpec::Interval {
                widths: vec![5.0, 10.0],
            },
            Path::new("."),
        )
        .unwrap();
        assert_eq!(h.levels(), 4);
        assert_eq!(label(&h, 1, 0), "[20,25)");
        assert_eq!(label(&h, 2, 1), "[20,30)");
        assert_eq!(label(&h, 3, 2), "*");
        assert_eq!(h.cardinality(2), 2);
        // [40,50) would have to go to both [30,45) and [45,60).
        let bad = Hierarchy::build(
            &t(&["41", "47"]),
            0,
            &HierarchySpec::Interval {
                widths: vec![10.0, 15.0],
            },
            Path::new("."),
        );
        assert!(bad.is_err());
        let e = Hierarchy::build(
            &t(&["1", "x"]),
            0,
            &HierarchySpec::Interval { widths: vec![5.0] },
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("t.csv:3:1"), "{e}");
    }

    #[test]
    fn dates_and_prefix() {
        let tb = t(&["2024-03-05", "2024-12-30"]);
        let h = Hierarchy::build(
            &tb,
            0,
            &HierarchySpec::Date {
                levels: vec![DateLevel::Month, DateLevel::Year],
            },
            Path::new("."),
        )
        .unwrap();
        assert_eq!(label(&h, 1, 0), "2024-03");
        assert_eq!(label(&h, 2, 1), "2024");
        let w = Hierarchy::build(
            &tb,
            0,
            &HierarchySpec::Date {
                levels: vec![DateLevel::Week],
            },
            Path::new("."),
        )
        .unwrap();
        assert_eq!(label(&w, 1, 1), "2025-W01");
        let p = Hierarchy::build(
            &t(&["11453", "11460"]),
            0,
            &HierarchySpec::Prefix {
                lengths: vec![3, 1],
            },
            Path::new("."),
        )
        .unwrap();
        assert_eq!(label(&p, 1, 0), "114**");
        assert_eq!(label(&p, 2, 1), "1****");
    }

    #[test]
    fn user_csv() {
        let dir = std::env::temp_dir().join(format!("kuvert-deid-h-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("pc.csv"),
            "11453;Stockholm;Stockholms län\n75236;Uppsala;Uppsala län\n",
        )
        .unwrap();
        let tb = t(&["11453", "75236"]);
        let h = Hierarchy::build(
            &tb,
            0,
            &HierarchySpec::Csv {
                file: "pc.csv".into(),
            },
            &dir,
        )
        .unwrap();
        assert_eq!(h.levels(), 4);
        assert_eq!(label(&h, 2, 1), "Uppsala län");
        let e = Hierarchy::build(
            &t(&["11453", "99999"]),
            0,
            &HierarchySpec::Csv {
                file: "pc.csv".into(),
            },
            &dir,
        )
        .unwrap_err();
        assert!(e.to_string().contains("99999"));
    }
}
