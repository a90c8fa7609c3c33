//! Seeded synthetic inputs for the six reference analyses.
//!
//! Every generator is deterministic per `(rows, seed)` (ChaCha20 seeded
//! with `seed`) and writes CSV text with a header row, in the column order
//! of the analysis' schema. What the data looks like, per analysis, is
//! documented in `examples/README.md`; the common parts:
//!
//! - **Identity numbers** are valid: 12 digits `YYYYMMDDNNNC` with the
//!   Luhn check digit of `YYMMDDNNN`, birth dates between 1930 and 2008
//!   for adults (2009 to 2024 for children), serial 001 to 999, and about
//!   4 % samordningsnummer (day + 60). About 10 % are written with a dash,
//!   `YYYYMMDD-NNNC`, as exports often do; the reader normalises both.
//! - Row order is shuffled, so shared persons are not at the top.
//! - `rows` is the size of the main table(s); the others are scaled from
//!   it, as listed for each analysis.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kuvert_data::idnr::luhn_check_digit;
use kuvert_data::value::{days_from_ymd, ymd_from_days};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{get, Error, REGIONS};

/// A generated table: its name and its CSV text (header first).
pub type CsvTable = (String, String);

/// The largest `rows` (and PSI `n`) accepted. The tables are built in
/// memory (about 100 bytes a row, so at most a few gigabytes), and distinct
/// identity numbers of adults run out at about 30 million.
pub const MAX_ROWS: usize = 10_000_000;

fn check_max(analysis: &str, rows: usize) -> Result<(), Error> {
    if rows > MAX_ROWS {
        return Err(Error::TooManyRows {
            analysis: analysis.to_string(),
            rows,
            max: MAX_ROWS,
        });
    }
    Ok(())
}

/// The smallest `rows` each analysis accepts (quality-indicators needs a
/// patient in each of its 21 regions).
pub fn min_rows(analysis: &str) -> usize {
    match analysis {
        "quality-indicators" => REGIONS.len(),
        _ => 1,
    }
}

/// `rows` must be within the analysis' bounds ([`min_rows`], and the cap).
fn check_rows(name: &str, rows: usize) -> Result<(), Error> {
    let min = min_rows(name);
    if rows < min {
        return Err(Error::TooFewRows {
            analysis: name.to_string(),
            rows,
            min,
        });
    }
    check_max(name, rows)
}

/// Generate the input tables of analysis `name`: `rows` rows in its main
/// table(s), deterministic per `seed`. Returns `(table, csv text)` in the
/// analysis' table order.
pub fn generate(name: &str, rows: usize, seed: u64) -> Result<Vec<CsvTable>, Error> {
    let analysis = get(name)?;
    check_rows(name, rows)?;
    let mut g = Gen::new(seed);
    Ok(match analysis.name.as_str() {
        "overlapping-benefits" => g.overlapping_benefits(rows),
        "non-take-up" => g.non_take_up(rows),
        "double-registration" => g.double_registration(rows),
        "opt-out" => g.opt_out(rows),
        "parallel-assistance" => g.parallel_assistance(rows),
        "quality-indicators" => g.quality_indicators(rows),
        other => unreachable!("analysis {other} has no generator"),
    })
}

/// [`generate`], then write `dir/<table>.csv` and `dir/<table>.schema`
/// (the compact schema on one line, which `kuvert run` picks up) for every
/// table. Creates `dir` if needed. Returns the CSV paths.
pub fn write_inputs(name: &str, rows: usize, seed: u64, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let analysis = get(name)?;
    let tables = generate(name, rows, seed)?;
    let with_schema = tables
        .into_iter()
        .map(|(t, csv)| {
            let schema = analysis
                .table(&t)
                .map(|s| s.schema.to_compact())
                .unwrap_or_default();
            (t, csv, schema)
        })
        .collect::<Vec<_>>();
    write_tables(dir, &with_schema)
}

/// The inputs of analysis `name` with the person's identity number `pnr`
/// as the first column of every table, for the governed templates
/// (`templates/<name>.toml`), which declare one wherever an output caps
/// each person's rows (`WITH PRIVACY (person = pnr, ...)`).
///
/// Only quality-indicators differs from [`generate`]: its reference tables
/// have no patient column, while the template's `region_NN` tables are
/// `pnr:idnr,region:int,vardtid:int,aterinskriven:bool`. Its variant keeps
/// the template's contribution bounds, so the capped and clamped answer
/// equals the plain SQL answer: every patient has 1 to 3 episodes, all in
/// one region (`max_rows = 3`), and lengths of stay are 1 to 60 days
/// (`lo = 0, hi = 60`). `rows` is the number of episodes in all, split by
/// population as in [`generate`]. Every other analysis already has `pnr`
/// in each table: the same tables as [`generate`].
pub fn generate_with_pnr(name: &str, rows: usize, seed: u64) -> Result<Vec<CsvTable>, Error> {
    if get(name)?.name != "quality-indicators" {
        return generate(name, rows, seed);
    }
    check_rows(name, rows)?;
    Ok(Gen::new(seed).quality_indicators_patients(rows))
}

/// The compact schema of table `table` of [`generate_with_pnr`]`(name, ..)`.
pub fn schema_with_pnr(name: &str, table: &str) -> Result<Option<String>, Error> {
    let analysis = get(name)?;
    Ok(analysis.table(table).map(|t| {
        let s = t.schema.to_compact();
        if t.schema.columns().iter().any(|c| c.name == "pnr") {
            s
        } else {
            format!("pnr:idnr,{s}")
        }
    }))
}

/// [`generate_with_pnr`], written like [`write_inputs`] (`dir/<table>.csv`
/// and `dir/<table>.schema`). Returns the CSV paths.
pub fn write_inputs_with_pnr(
    name: &str,
    rows: usize,
    seed: u64,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let tables = generate_with_pnr(name, rows, seed)?;
    let mut with_schema = Vec::with_capacity(tables.len());
    for (t, csv) in tables {
        let schema = schema_with_pnr(name, &t)?.unwrap_or_default();
        with_schema.push((t, csv, schema));
    }
    write_tables(dir, &with_schema)
}

fn write_tables(dir: &Path, tables: &[(String, String, String)]) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        hint: "; choose a directory you can write to",
        source: e,
    })?;
    let mut paths = Vec::with_capacity(tables.len());
    for (name, csv, schema) in tables {
        let csv_path = dir.join(format!("{name}.csv"));
        let schema_path = dir.join(format!("{name}.schema"));
        for (path, text) in [
            (&csv_path, csv.as_str()),
            (&schema_path, &format!("{schema}\n")),
        ] {
            std::fs::write(path, text).map_err(|e| Error::Io {
                path: path.clone(),
                hint: "; check the disk space and permissions",
                source: e,
            })?;
        }
        paths.push(csv_path);
    }
    Ok(paths)
}

/// Two lists of `n` distinct identity numbers (12-digit, normalised) for a
/// private-set-intersection benchmark: exactly `n / 2` numbers are in both,
/// at random positions. Deterministic per `seed`. At most [`MAX_ROWS`].
pub fn psi_ids(n: usize, seed: u64) -> Result<(Vec<i64>, Vec<i64>), Error> {
    check_max("psi", n)?;
    let mut g = Gen::new(seed);
    let shared = n / 2;
    let a: Vec<i64> = (0..n).map(|_| g.adult()).collect();
    let mut b: Vec<i64> = a.choose_multiple(&mut g.rng, shared).copied().collect();
    b.extend((shared..n).map(|_| g.adult()));
    b.shuffle(&mut g.rng);
    Ok((a, b))
}

/// [`psi_ids`] as two CSV tables `a` and `b` with one column `pnr`
/// (schema `pnr:idnr`), 12-digit form.
pub fn generate_psi(n: usize, seed: u64) -> Result<Vec<CsvTable>, Error> {
    let (a, b) = psi_ids(n, seed)?;
    let csv = |ids: &[i64]| {
        let mut s = String::with_capacity(4 + 13 * ids.len());
        s.push_str("pnr\n");
        for id in ids {
            let _ = writeln!(s, "{id:012}");
        }
        s
    };
    Ok(vec![("a".into(), csv(&a)), ("b".into(), csv(&b))])
}

/// [`generate_psi`] written to `dir/a.csv`, `dir/b.csv` with their
/// `.schema` files. Returns the CSV paths.
pub fn write_psi(n: usize, seed: u64, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let tables = generate_psi(n, seed)?
        .into_iter()
        .map(|(t, csv)| (t, csv, "pnr:idnr".to_string()))
        .collect::<Vec<_>>();
    write_tables(dir, &tables)
}

/// Swedish municipality codes (kommunkod) of some municipalities, as ints.
const KOMMUNER: [i64; 16] = [
    114, 180, 184, 380, 480, 580, 680, 880, 1280, 1281, 1480, 1880, 1980, 2180, 2480, 2580,
];

const FORMANER: [&str; 6] = [
    "sjukpenning",
    "föräldrapenning",
    "aktivitetsersättning",
    "sjukersättning",
    "bostadsbidrag",
    "assistansersättning",
];

const DIAGNOSER: [&str; 10] = [
    "E11", "I10", "J45", "F32", "C50", "M54", "I21", "K35", "S72", "G40",
];

/// Relative sizes of the 21 regions (roughly their populations in tens of
/// thousands), in the order of [`REGIONS`].
const REGION_WEIGHTS: [usize; 21] = [
    245, 40, 30, 47, 37, 20, 25, 6, 16, 140, 34, 175, 28, 31, 28, 29, 29, 24, 13, 28, 25,
];

/// `rows` episodes split over the 21 regions by population, at least one
/// each.
fn region_sizes(rows: usize) -> Vec<usize> {
    let total: usize = REGION_WEIGHTS.iter().sum();
    let spare = rows - REGIONS.len();
    let mut sizes: Vec<usize> = REGION_WEIGHTS
        .iter()
        .map(|w| 1 + spare * w / total)
        .collect();
    sizes[0] += rows - sizes.iter().sum::<usize>();
    sizes
}

struct Gen {
    rng: ChaCha20Rng,
    seen: HashSet<i64>,
}

/// `YYYY-MM-DD` of a day number.
fn date(out: &mut String, day: i64) {
    let (y, m, d) = ymd_from_days(day);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: ChaCha20Rng::seed_from_u64(seed),
            seen: HashSet::new(),
        }
    }

    /// A fresh identity number (never returned before by this generator)
    /// of a person born in `from..=to` (years).
    fn person(&mut self, from: i64, to: i64) -> i64 {
        let lo = days_from_ymd(from, 1, 1);
        let hi = days_from_ymd(to, 12, 31);
        loop {
            let (y, m, d) = ymd_from_days(self.rng.gen_range(lo..=hi));
            let day = if self.rng.gen_bool(0.04) { d + 60 } else { d };
            let serial = self.rng.gen_range(1..=999u32);
            let yy = (y % 100) as u32;
            let nine = [
                yy / 10,
                yy % 10,
                m / 10,
                m % 10,
                day / 10,
                day % 10,
                serial / 100,
                serial / 10 % 10,
                serial % 10,
            ]
            .map(|x| x as u8);
            let check = luhn_check_digit(&nine) as i64;
            let id = y * 100_000_000
                + m as i64 * 1_000_000
                + day as i64 * 10_000
                + serial as i64 * 10
                + check;
            if self.seen.insert(id) {
                return id;
            }
        }
    }

    fn adult(&mut self) -> i64 {
        self.person(1930, 2008)
    }

    /// Append an identity number as exports write it: mostly 12 digits,
    /// sometimes `YYYYMMDD-NNNC`.
    fn idnr(&mut self, out: &mut String, id: i64) {
        if self.rng.gen_bool(0.1) {
            let _ = write!(out, "{:08}-{:04}", id / 10_000, id % 10_000);
        } else {
            let _ = write!(out, "{id:012}");
        }
    }

    // ---- overlapping-benefits --------------------------------------------

    /// fk: `rows` rows, 1 to 4 periods per person within 2023-2025. ek:
    /// about 20 % of fk's persons: three in five of them with a period that
    /// overlaps one of theirs (one in five only touching it) and 0 to 2 more
    /// in the gaps between their fk periods; the others 1 to 3 periods in
    /// those gaps only (some exactly one day apart). Plus rows/12 persons
    /// only in ek, 1 to 3 periods each.
    fn overlapping_benefits(&mut self, rows: usize) -> Vec<CsvTable> {
        let start = days_from_ymd(2023, 1, 1);
        let end = days_from_ymd(2025, 12, 31);
        let mut fk: Vec<(i64, usize, i64, i64, i64)> = Vec::with_capacity(rows);
        let mut ek: Vec<(i64, i64, i64, i64)> = Vec::new();
        while fk.len() < rows {
            let id = self.adult();
            let want = self.rng.gen_range(1..=4).min(rows - fk.len());
            let mut periods = Vec::with_capacity(want);
            let mut cursor = start + self.rng.gen_range(0..400);
            for _ in 0..want {
                let fran = cursor;
                let till = (fran + self.rng.gen_range(13..=180)).min(end);
                periods.push((fran, till));
                cursor = till + self.rng.gen_range(20..=240);
                if cursor > end - 13 {
                    break;
                }
            }
            let forman = self.rng.gen_range(0..FORMANER.len());
            for &(fran, till) in &periods {
                let belopp = self.rng.gen_range(10..=300) * 100;
                fk.push((id, forman, fran, till, belopp));
            }
            if !self.rng.gen_bool(0.2) {
                continue;
            }
            // The gaps around the person's fk periods: before the first,
            // between two, after the last.
            let mut gaps = vec![(start - 400, periods[0].0 - 1)];
            for w in periods.windows(2) {
                gaps.push((w[0].1 + 1, w[1].0 - 1));
            }
            gaps.push((periods[periods.len() - 1].1 + 1, end + 400));
            let mut order: Vec<usize> = (0..gaps.len()).collect();
            order.shuffle(&mut self.rng);
            let overlapping = self.rng.gen_bool(0.6);
            if overlapping {
                // Intersect one fk period; sometimes exactly touching it at
                // one end (still an overlap: the dates are inclusive).
                let (f, t) = periods[self.rng.gen_range(0..periods.len())];
                let (ef, et) = match self.rng.gen_range(0..10) {
                    0 => (t, t + self.rng.gen_range(0..=90)),
                    1 => (f - self.rng.gen_range(0..=90), f),
                    _ => {
                        let ef = self.rng.gen_range(f - 60..=t);
                        (ef, (ef + self.rng.gen_range(13..=120)).max(f))
                    }
                };
                ek.push((id, ef, et, self.rng.gen_range(5..=150) * 100));
            }
            // Periods in the gaps, overlapping none of the person's fk
            // periods: one to three of them for the persons who do not
            // overlap, none to two more for those who do.
            let extra = if overlapping {
                self.rng.gen_range(0..=2)
            } else {
                self.rng.gen_range(1..=3)
            };
            for &g in order.iter().take(extra) {
                let (lo, hi) = gaps[g];
                let (ef, et) = if self.rng.gen_bool(0.2) {
                    // One day apart: ends the day before an fk period
                    // starts, or starts the day after one ends.
                    if g == 0 {
                        (lo.max(hi - 30), hi)
                    } else {
                        (lo, hi.min(lo + 30))
                    }
                } else {
                    let ef = self.rng.gen_range(lo..=hi);
                    (ef, self.rng.gen_range(ef..=hi))
                };
                ek.push((id, ef, et, self.rng.gen_range(5..=150) * 100));
            }
        }
        let ek_only = (rows / 12).max(1);
        for _ in 0..ek_only {
            let id = self.adult();
            let mut cursor = start + self.rng.gen_range(0..600);
            for _ in 0..self.rng.gen_range(1..=3) {
                let till = cursor + self.rng.gen_range(13..=120);
                ek.push((id, cursor, till, self.rng.gen_range(5..=150) * 100));
                cursor = till + self.rng.gen_range(1..=200);
            }
        }
        fk.shuffle(&mut self.rng);
        ek.shuffle(&mut self.rng);

        let mut f = String::with_capacity(64 * fk.len());
        f.push_str("pnr,forman,fran,till,belopp\n");
        for (id, forman, fran, till, belopp) in fk {
            self.idnr(&mut f, id);
            f.push(',');
            f.push_str(FORMANER[forman]);
            f.push(',');
            date(&mut f, fran);
            f.push(',');
            date(&mut f, till);
            let _ = writeln!(f, ",{belopp}");
        }
        let mut e = String::with_capacity(48 * ek.len());
        e.push_str("pnr,fran,till,belopp\n");
        for (id, fran, till, belopp) in ek {
            self.idnr(&mut e, id);
            e.push(',');
            date(&mut e, fran);
            e.push(',');
            date(&mut e, till);
            let _ = writeln!(e, ",{belopp}");
        }
        vec![("fk".into(), f), ("ek".into(), e)]
    }

    // ---- non-take-up -----------------------------------------------------

    /// hushall: `rows` persons in households of 1 to 6 (40/30/12/12/4/2 %).
    /// inkomst: 1 to 3 rows per member (children one row, 0 to 20 000 SEK);
    /// a fifth of the households have low incomes, a tenth incomes near
    /// the norm, the rest well above; plus 10 % persons only in inkomst.
    fn non_take_up(&mut self, rows: usize) -> Vec<CsvTable> {
        let mut members: Vec<(i64, i64)> = Vec::with_capacity(rows);
        let mut incomes: Vec<(i64, i64)> = Vec::with_capacity(2 * rows);
        let mut hushall = 100_000 + self.rng.gen_range(0..50_000i64);
        while members.len() < rows {
            let size = match self.rng.gen_range(0..100) {
                0..=39 => 1,
                40..=69 => 2,
                70..=81 => 3,
                82..=93 => 4,
                94..=97 => 5,
                _ => 6,
            }
            .min(rows - members.len());
            let (lo, hi) = match self.rng.gen_range(0..10) {
                0 | 1 => (0, 110_000),
                2 => (90_000, 170_000),
                _ => (180_000, 650_000),
            };
            for m in 0..size {
                let child = m >= 2;
                let id = if child {
                    self.person(2009, 2024)
                } else {
                    self.adult()
                };
                members.push((id, hushall));
                if child {
                    let v = if self.rng.gen_bool(0.7) {
                        0
                    } else {
                        self.rng.gen_range(1..=20) * 1000
                    };
                    incomes.push((id, v));
                } else {
                    let total = self.rng.gen_range(lo..=hi);
                    self.split_income(&mut incomes, id, total);
                }
            }
            hushall += self.rng.gen_range(1..=3);
        }
        for _ in 0..(rows / 10).max(1) {
            let id = self.adult();
            let total = self.rng.gen_range(0..=700_000);
            self.split_income(&mut incomes, id, total);
        }
        members.shuffle(&mut self.rng);
        incomes.shuffle(&mut self.rng);
        let mut h = String::with_capacity(24 * members.len());
        h.push_str("pnr,hushall\n");
        for (id, hh) in members {
            self.idnr(&mut h, id);
            let _ = writeln!(h, ",{hh}");
        }
        let mut i = String::with_capacity(24 * incomes.len());
        i.push_str("pnr,inkomst\n");
        for (id, v) in incomes {
            self.idnr(&mut i, id);
            let _ = writeln!(i, ",{v}");
        }
        vec![("hushall".into(), h), ("inkomst".into(), i)]
    }

    /// One to three income rows (salary, pension, benefits) summing to
    /// `total`.
    fn split_income(&mut self, out: &mut Vec<(i64, i64)>, id: i64, total: i64) {
        let parts = self.rng.gen_range(1..=3);
        let mut left = total;
        for p in 0..parts {
            let v = if p + 1 == parts {
                left
            } else {
                self.rng.gen_range(0..=left)
            };
            out.push((id, v));
            left -= v;
        }
    }

    // ---- double-registration ---------------------------------------------

    /// reg_a: `rows` persons; reg_b: `rows` persons of whom about 10 % of
    /// reg_a's (possibly in another municipality). Unique pnr in each.
    fn double_registration(&mut self, rows: usize) -> Vec<CsvTable> {
        let a: Vec<i64> = (0..rows).map(|_| self.adult()).collect();
        let shared = (rows / 10).max(1).min(rows);
        let mut b: Vec<i64> = a.choose_multiple(&mut self.rng, shared).copied().collect();
        b.extend((shared..rows).map(|_| self.adult()));
        b.shuffle(&mut self.rng);
        let mut out = Vec::new();
        for (name, ids) in [("reg_a", a), ("reg_b", b)] {
            let mut s = String::with_capacity(20 * ids.len());
            s.push_str("pnr,kommun\n");
            for id in ids {
                self.idnr(&mut s, id);
                let k = KOMMUNER[self.rng.gen_range(0..KOMMUNER.len())];
                let _ = writeln!(s, ",{k}");
            }
            out.push((name.to_string(), s));
        }
        out
    }

    // ---- opt-out -----------------------------------------------------------

    /// holder: `rows` rows numbered 1.. in file order, 1 to 4 rows per
    /// person, all ages. optout: about 6 % of the holder's persons plus as
    /// many persons who are not in the holder's table.
    fn opt_out(&mut self, rows: usize) -> Vec<CsvTable> {
        let mut holder: Vec<(i64, usize)> = Vec::with_capacity(rows);
        let mut persons = Vec::new();
        while holder.len() < rows {
            let id = self.person(1930, 2024);
            persons.push(id);
            for _ in 0..self.rng.gen_range(1..=4).min(rows - holder.len()) {
                holder.push((id, self.rng.gen_range(0..DIAGNOSER.len())));
            }
        }
        holder.shuffle(&mut self.rng);
        let inside = (persons.len() * 6 / 100).max(1);
        let mut optout: Vec<i64> = persons
            .choose_multiple(&mut self.rng, inside)
            .copied()
            .collect();
        optout.extend((0..inside).map(|_| self.person(1930, 2024)));
        optout.shuffle(&mut self.rng);
        let mut o = String::with_capacity(14 * optout.len());
        o.push_str("pnr\n");
        for id in optout {
            self.idnr(&mut o, id);
            o.push('\n');
        }
        let mut h = String::with_capacity(28 * holder.len());
        h.push_str("rad,pnr,diagnos\n");
        for (rad, (id, d)) in holder.into_iter().enumerate() {
            let _ = write!(h, "{},", rad + 1);
            self.idnr(&mut h, id);
            let _ = writeln!(h, ",{}", DIAGNOSER[d]);
        }
        vec![("optout".into(), o), ("holder".into(), h)]
    }

    // ---- parallel-assistance ---------------------------------------------

    /// bistand_1..3: `rows` rows each, one row per person and month
    /// (2024-01 to 2025-12) of a run of 1 to 12 consecutive months. About
    /// rows/50 persons are in two municipalities (one in ten of them in
    /// all three); seven in ten of those have overlapping months, the
    /// others moved (disjoint months).
    fn parallel_assistance(&mut self, rows: usize) -> Vec<CsvTable> {
        const MONTHS: i64 = 24;
        let mut tables: [Vec<(i64, i64, i64)>; 3] = Default::default();
        let run = |g: &mut Gen, t: &mut Vec<(i64, i64, i64)>, id: i64, from: i64, len: i64| {
            for m in from.max(0)..(from + len).min(MONTHS) {
                if t.len() < rows {
                    t.push((id, m, g.rng.gen_range(20..=150) * 100));
                }
            }
        };
        for _ in 0..(rows / 50).max(1) {
            let id = self.adult();
            let mut munis = [0usize, 1, 2];
            munis.shuffle(&mut self.rng);
            let n = if self.rng.gen_bool(0.1) { 3 } else { 2 };
            let from = self.rng.gen_range(0..MONTHS - 1);
            let len = self.rng.gen_range(1..=12);
            run(self, &mut tables[munis[0]], id, from, len);
            for &m in &munis[1..n] {
                let (f2, l2) = if self.rng.gen_bool(0.7) {
                    let f2 = self.rng.gen_range(from - 3..=from + len - 1);
                    (f2, self.rng.gen_range((from - f2 + 1).max(1)..=12))
                } else {
                    (
                        from + len + self.rng.gen_range(0..6),
                        self.rng.gen_range(1..=12),
                    )
                };
                run(self, &mut tables[m], id, f2, l2);
            }
        }
        for t in tables.iter_mut() {
            while t.len() < rows {
                let id = self.adult();
                let from = self.rng.gen_range(0..MONTHS);
                let len = self.rng.gen_range(1..=12);
                run(self, t, id, from, len);
            }
        }
        let mut out = Vec::new();
        for (m, mut t) in tables.into_iter().enumerate() {
            t.shuffle(&mut self.rng);
            let mut s = String::with_capacity(28 * t.len());
            s.push_str("pnr,manad,belopp\n");
            for (id, month, belopp) in t {
                self.idnr(&mut s, id);
                let manad = (2024 + month / 12) * 100 + month % 12 + 1;
                let _ = writeln!(s, ",{manad},{belopp}");
            }
            out.push((format!("bistand_{}", m + 1), s));
        }
        out
    }

    // ---- quality-indicators ----------------------------------------------

    /// region_01..21: `rows` patient episodes in all, split by population
    /// (at least one per region). Length of stay 1 to 120 days,
    /// exponential-like with a mean of 3 to 7 days depending on the
    /// region; readmitted with a probability of 6 to 16 % by region.
    fn quality_indicators(&mut self, rows: usize) -> Vec<CsvTable> {
        let sizes = region_sizes(rows);
        let mut out = Vec::new();
        for (i, ((code, _), n)) in REGIONS.iter().zip(sizes).enumerate() {
            let mean = self.rng.gen_range(3.0..7.0f64);
            let p = self.rng.gen_range(0.06..0.16f64);
            let mut s = String::with_capacity(16 * n);
            s.push_str("region,vardtid,aterinskriven\n");
            for _ in 0..n {
                let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
                let vardtid = (1.0 + (-u.ln() * mean).floor()).min(120.0) as i64;
                let re = self.rng.gen_bool(p);
                let _ = writeln!(s, "{code},{vardtid},{re}");
            }
            out.push((format!("region_{:02}", i + 1), s));
        }
        out
    }

    /// region_01..21 with the patient first: `rows` episodes in all, split
    /// by population as [`Gen::quality_indicators`] does; each patient has
    /// 1 to 3 episodes in one region; length of stay 1 to 60 days,
    /// exponential-like with a mean of 3 to 7 days by region; readmitted
    /// with a probability of 6 to 16 % by region.
    fn quality_indicators_patients(&mut self, rows: usize) -> Vec<CsvTable> {
        let sizes = region_sizes(rows);
        let mut out = Vec::new();
        for (i, ((code, _), n)) in REGIONS.iter().zip(sizes).enumerate() {
            let mean = self.rng.gen_range(3.0..7.0f64);
            let p = self.rng.gen_range(0.06..0.16f64);
            let mut episodes: Vec<(i64, i64, bool)> = Vec::with_capacity(n);
            while episodes.len() < n {
                let id = self.person(1930, 2024);
                let k = self.rng.gen_range(1..=3).min(n - episodes.len());
                for _ in 0..k {
                    let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
                    let vardtid = (1.0 + (-u.ln() * mean).floor()).min(60.0) as i64;
                    episodes.push((id, vardtid, self.rng.gen_bool(p)));
                }
            }
            episodes.shuffle(&mut self.rng);
            let mut s = String::with_capacity(32 * n);
            s.push_str("pnr,region,vardtid,aterinskriven\n");
            for (id, vardtid, re) in episodes {
                self.idnr(&mut s, id);
                let _ = writeln!(s, ",{code},{vardtid},{re}");
            }
            out.push((format!("region_{:02}", i + 1), s));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_data::{CsvOptions, Schema};
    use std::collections::HashMap;

    /// The template-shaped quality-indicators tables parse under their
    /// schema and keep the template's bounds: at most 3 episodes per
    /// patient over all regions, lengths of stay within 0..=60.
    #[test]
    fn quality_indicators_with_pnr_keeps_the_templates_bounds() {
        let rows = 400;
        let tables = generate_with_pnr("quality-indicators", rows, 5).unwrap();
        assert_eq!(tables.len(), REGIONS.len());
        let mut per_patient: HashMap<i64, usize> = HashMap::new();
        let mut total = 0;
        for (name, csv) in &tables {
            let schema = schema_with_pnr("quality-indicators", name)
                .unwrap()
                .unwrap();
            assert_eq!(schema, "pnr:idnr,region:int,vardtid:int,aterinskriven:bool");
            let schema = Schema::parse_compact(&schema).unwrap();
            let t = kuvert_data::read_csv(csv.as_bytes(), name, &schema, &CsvOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(t.rows() >= 1, "{name} is empty");
            total += t.rows();
            for r in 0..t.rows() {
                *per_patient.entry(t.cell(r, 0)[0] as i64).or_default() += 1;
                let vardtid = t.cell(r, 2)[0] as i64;
                assert!((1..=60).contains(&vardtid), "{name}: vardtid {vardtid}");
            }
        }
        assert_eq!(total, rows);
        assert!(per_patient.values().all(|&n| n <= 3));
        assert!(per_patient.values().any(|&n| n > 1));
        // Other analyses: the reference tables unchanged.
        assert_eq!(
            generate_with_pnr("opt-out", 50, 3).unwrap(),
            generate("opt-out", 50, 3).unwrap()
        );
        assert!(generate_with_pnr("quality-indicators", 20, 1).is_err());
    }
}
