//! The SQLite oracle: hand-computed answers on tiny hand-written tables
//! (so each analysis' SQL means what its README says), and on generated
//! data an independent Rust computation of the same question.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kuvert_data::{read_csv_file, CsvOptions, Schema, Table};
use kuvert_examples::sqlite::{self, answer, sorted, tables_in};
use kuvert_examples::{get, write_inputs, Error};

/// Write `files` (table, csv) into `dir` and return them with the
/// analysis' schemas, ready for `answer`.
fn setup(analysis: &str, dir: &Path, files: &[(&str, String)]) -> Vec<(String, Schema, PathBuf)> {
    let a = get(analysis).unwrap();
    for (t, csv) in files {
        std::fs::write(dir.join(format!("{t}.csv")), csv).unwrap();
    }
    tables_in(&a, dir)
}

fn run(analysis: &str, output: &str, tables: &[(String, Schema, PathBuf)]) -> Vec<Vec<String>> {
    let sql = get(analysis).unwrap().output(output).unwrap().sql.clone();
    answer(&sql, tables).unwrap_or_else(|e| panic!("{analysis}/{output}: {e}"))
}

fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

// Valid identity numbers (check digits computed by hand / Luhn).
const P1: &str = "198112289874";
const P2: &str = "191212121212";
const P3: &str = "197010632391"; // samordningsnummer, born 1970-10-03
const P4: &str = "196503151232";
const P5: &str = "199007074561";
const P6: &str = "197502207892";
const P7: &str = "200109112342";
const P8: &str = "200505050500";
const P9: &str = "195511305558";
const P10: &str = "198801010029";
const P11: &str = "199206060700";
const P12: &str = "194512243009";

#[test]
fn overlapping_benefits_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    // P1: first period touches an ek period on its last day (overlap),
    //     second period ends the day before the next ek period (none).
    // P2: its ek period starts the day after the fk period (none).
    // P3: one fk period overlapped by two ek periods (counted once), a
    //     second fk period with none.
    // P4: only in ek.
    let fk = format!(
        "pnr,forman,fran,till,belopp\n\
         {P1},sjukpenning,2024-01-01,2024-01-31,1000\n\
         {P1},sjukpenning,2024-03-01,2024-03-31,2000\n\
         19121212-1212,bostadsbidrag,2024-05-01,2024-05-31,500\n\
         {P3},föräldrapenning,2024-01-01,2024-12-31,700\n\
         {P3},föräldrapenning,2025-01-01,2025-01-31,300\n"
    );
    let ek = format!(
        "pnr,fran,till,belopp\n\
         8112289874,2024-01-31,2024-02-10,50\n\
         {P1},2024-04-01,2024-04-30,60\n\
         {P2},2024-06-01,2024-06-30,70\n\
         701063-2391,2024-06-01,2024-06-30,80\n\
         {P3},2024-12-01,2024-12-31,90\n\
         {P4},2024-01-01,2025-12-31,100\n"
    );
    let t = setup(
        "overlapping-benefits",
        dir.path(),
        &[("fk", fk), ("ek", ek)],
    );
    // Persons P1 and P3; fk amounts of the overlapping periods: 1000 + 700.
    assert_eq!(
        run("overlapping-benefits", "persons", &t),
        rows(&[&["2", "1700"]])
    );
    assert_eq!(
        sorted(run("overlapping-benefits", "ids", &t)),
        rows(&[&[P3], &[P1]])
    );
}

#[test]
fn non_take_up_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    // Household 1: one person, 140 000 in two rows  < 150 000 -> below.
    // Household 2: one person, exactly 150 000             -> not below.
    // Household 3: two persons, 239 999 < 240 000          -> below.
    // Household 4: four persons, 300 000 < 360 000         -> below.
    // Household 5: three persons, exactly 300 000 = norm   -> not below.
    // P12 has income but no household: ignored.
    let hushall = format!(
        "pnr,hushall\n{P1},1\n{P2},2\n{P3},3\n{P4},3\n{P5},4\n{P6},4\n{P7},4\n{P8},4\n{P9},5\n{P10},5\n{P11},5\n"
    );
    let inkomst = format!(
        "pnr,inkomst\n{P1},100000\n{P1},40000\n{P2},150000\n{P3},100000\n{P4},139999\n\
         {P5},150000\n{P5},50000\n{P6},100000\n{P7},0\n{P8},0\n{P9},300000\n{P10},0\n{P11},0\n{P12},0\n"
    );
    let t = setup(
        "non-take-up",
        dir.path(),
        &[("hushall", hushall), ("inkomst", inkomst)],
    );
    assert_eq!(
        sorted(run("non-take-up", "households", &t)),
        rows(&[&["1"], &["3"], &["4"]])
    );
}

#[test]
fn double_registration_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let reg_a = format!("pnr,kommun\n{P1},180\n{P2},1480\n{P3},1280\n");
    // P2 and P3 in both, written differently; P4 only in B.
    let reg_b = format!("pnr,kommun\n19121212-1212,180\n701063-2391,180\n{P4},2480\n");
    let t = setup(
        "double-registration",
        dir.path(),
        &[("reg_a", reg_a), ("reg_b", reg_b)],
    );
    assert_eq!(run("double-registration", "count", &t), rows(&[&["2"]]));
}

#[test]
fn opt_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let optout = format!("pnr\n{P1}\n{P4}\n");
    let holder = format!("rad,pnr,diagnos\n1,{P1},E11\n2,{P2},I10\n3,{P1},J45\n4,{P3},E11\n");
    let t = setup(
        "opt-out",
        dir.path(),
        &[("optout", optout), ("holder", holder)],
    );
    assert_eq!(sorted(run("opt-out", "rows", &t)), rows(&[&["1"], &["3"]]));
}

#[test]
fn parallel_assistance_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    // P1: 2024-02 in all three municipalities; 2024-01 only in the first.
    // P2: two municipalities but different months.
    // P3: 2024-01 in the second and third.
    let b1 = format!("pnr,manad,belopp\n{P1},202401,5000\n{P1},202402,5000\n{P2},202401,3000\n");
    let b2 = format!("pnr,manad,belopp\n{P1},202402,4000\n{P2},202402,3000\n{P3},202401,2000\n");
    let b3 = format!("pnr,manad,belopp\n{P1},202402,100\n{P3},202401,2000\n{P3},202403,2000\n");
    let t = setup(
        "parallel-assistance",
        dir.path(),
        &[("bistand_1", b1), ("bistand_2", b2), ("bistand_3", b3)],
    );
    assert_eq!(
        sorted(run("parallel-assistance", "months", &t)),
        rows(&[&[P3, "202401", "2"], &[P1, "202402", "3"]])
    );
}

#[test]
fn quality_indicators_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let head = "region,vardtid,aterinskriven\n";
    let mut files = vec![
        ("region_01", format!("{head}1,3,true\n1,5,false\n")),
        ("region_02", format!("{head}3,2,0\n")),
    ];
    let names: Vec<String> = (3..=21).map(|i| format!("region_{i:02}")).collect();
    for (i, n) in names.iter().enumerate() {
        let code = kuvert_examples::REGIONS[i + 2].0;
        let row = if n == "region_21" {
            format!("{code},10,1\n")
        } else {
            format!("{code},1,false\n")
        };
        files.push((n.as_str(), format!("{head}{row}")));
    }
    let t = setup("quality-indicators", dir.path(), &files);
    let got = run("quality-indicators", "regions", &t);
    assert_eq!(got.len(), 21);
    assert_eq!(got[0], ["1", "2", "8", "1"]);
    assert_eq!(got[1], ["3", "1", "2", "0"]);
    assert_eq!(got[2], ["4", "1", "1", "0"]);
    assert_eq!(got[20], ["25", "1", "10", "1"]);
    // ORDER BY region: county codes ascending.
    let codes: Vec<i64> = got.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(codes.windows(2).all(|w| w[0] < w[1]));
    // 2 + 1 + 18 + 1 patients; 8 + 2 + 18 + 10 days; 2 readmissions.
    assert_eq!(
        run("quality-indicators", "national", &t),
        rows(&[&["22", "38", "2"]])
    );
}

#[test]
fn bad_input_names_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let reg_a = format!("pnr,kommun\n{P1},180\n19121212-1213,180\n");
    let t = setup(
        "double-registration",
        dir.path(),
        &[("reg_a", reg_a), ("reg_b", format!("pnr,kommun\n{P2},1\n"))],
    );
    let sql = &get("double-registration").unwrap().outputs[0].sql;
    let e = answer(sql, &t).unwrap_err();
    assert!(e.is_user_error());
    let msg = e.to_string();
    assert!(
        msg.contains(
            "reg_a.csv:3:1: invalid identity number \"19121212-1213\": check digit should be 2"
        ),
        "{msg}"
    );

    // A table the SQL needs was not given.
    let e = answer(sql, &t[1..]).unwrap_err();
    assert!(matches!(e, Error::Query { .. }), "{e}");
    assert!(e.to_string().contains("reg_a"), "{e}");

    // A missing file.
    let e = answer(
        sql,
        &tables_in(
            &get("double-registration").unwrap(),
            Path::new("/nonexistent"),
        ),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/reg_a.csv"), "{e}");

    // The one-call form names unknown analyses and outputs.
    assert!(matches!(
        sqlite::reference("opt-out", "ids", dir.path()),
        Err(Error::UnknownOutput { .. })
    ));

    // A table name that is not an SQL identifier.
    let mut bad = t.clone();
    bad[0].0 = "reg a\"; DROP".into();
    assert!(matches!(answer(sql, &bad), Err(Error::BadTableName(_))));
}

#[test]
fn answer_cells_and_csv() {
    let mut o = sqlite::Oracle::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    std::fs::write(&p, "d,s,b\n2024-02-29,\"a,b\",true\n").unwrap();
    let schema = Schema::parse_compact("d:date,s:text,b:bool").unwrap();
    assert_eq!(o.load_csv("t", &schema, &p).unwrap(), 1);
    let a = o
        .query("SELECT d, s, b, NULL AS n, 2.5 AS r, b + 1 AS c FROM t")
        .unwrap();
    assert_eq!(a.columns, ["d", "s", "b", "n", "r", "c"]);
    assert_eq!(a.rows, rows(&[&["2024-02-29", "a,b", "1", "", "2.5", "2"]]));
    let mut out = Vec::new();
    a.write_csv(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "d,s,b,n,r,c\n2024-02-29,\"a,b\",1,,2.5,2\n"
    );
}

// ---- generated data against an independent Rust computation --------------

fn load(dir: &Path, analysis: &str) -> BTreeMap<String, Table> {
    let a = get(analysis).unwrap();
    a.tables
        .iter()
        .map(|t| {
            let p = dir.join(format!("{}.csv", t.name));
            let table = read_csv_file(&p, &t.schema, &CsvOptions::default()).unwrap();
            (t.name.clone(), table)
        })
        .collect()
}

fn col(t: &Table, col: &str) -> Vec<i64> {
    let i = t.schema().index_of(col).unwrap();
    (0..t.rows()).map(|r| t.cell(r, i)[0] as i64).collect()
}

fn strings<const N: usize>(v: impl IntoIterator<Item = [String; N]>) -> Vec<Vec<String>> {
    v.into_iter().map(|r| r.to_vec()).collect()
}

/// Each output of `analysis` computed in plain Rust from the tables, in
/// the order the SQL promises (sorted where it has no ORDER BY).
fn expected(
    analysis: &str,
    tab: &BTreeMap<String, Table>,
) -> BTreeMap<&'static str, Vec<Vec<String>>> {
    let mut out = BTreeMap::new();
    match analysis {
        "overlapping-benefits" => {
            let (fk, ek) = (&tab["fk"], &tab["ek"]);
            let mut ek_by: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
            for ((p, f), u) in col(ek, "pnr")
                .into_iter()
                .zip(col(ek, "fran"))
                .zip(col(ek, "till"))
            {
                ek_by.entry(p).or_default().push((f, u));
            }
            let (mut persons, mut sum) = (BTreeSet::new(), 0i64);
            for (((p, f), u), b) in col(fk, "pnr")
                .into_iter()
                .zip(col(fk, "fran"))
                .zip(col(fk, "till"))
                .zip(col(fk, "belopp"))
            {
                let hit = ek_by
                    .get(&p)
                    .is_some_and(|v| v.iter().any(|&(ef, et)| ef <= u && f <= et));
                if hit {
                    persons.insert(p);
                    sum += b;
                }
            }
            // SUM over no rows is NULL, printed as "".
            let sum = if persons.is_empty() {
                String::new()
            } else {
                sum.to_string()
            };
            out.insert("persons", vec![vec![persons.len().to_string(), sum]]);
            out.insert("ids", strings(persons.iter().map(|p| [format!("{p:012}")])));
        }
        "non-take-up" => {
            let mut income: BTreeMap<i64, i64> = BTreeMap::new();
            let i = &tab["inkomst"];
            for (p, v) in col(i, "pnr").into_iter().zip(col(i, "inkomst")) {
                *income.entry(p).or_default() += v;
            }
            let mut hh: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            let h = &tab["hushall"];
            for (p, id) in col(h, "pnr").into_iter().zip(col(h, "hushall")) {
                if let Some(v) = income.get(&p) {
                    let e = hh.entry(id).or_default();
                    e.0 += 1;
                    e.1 += v;
                }
            }
            let norm = |n: i64| {
                if n == 1 {
                    150_000
                } else {
                    240_000 + 60_000 * (n - 2)
                }
            };
            let below = hh
                .iter()
                .filter(|(_, &(n, s))| s < norm(n))
                .map(|(h, _)| [h.to_string()]);
            out.insert("households", sorted(strings(below)));
        }
        "double-registration" => {
            let b: BTreeSet<i64> = col(&tab["reg_b"], "pnr").into_iter().collect();
            let n = col(&tab["reg_a"], "pnr")
                .iter()
                .filter(|p| b.contains(p))
                .count();
            out.insert("count", vec![vec![n.to_string()]]);
        }
        "opt-out" => {
            let o: BTreeSet<i64> = col(&tab["optout"], "pnr").into_iter().collect();
            let h = &tab["holder"];
            let drop = col(h, "rad")
                .into_iter()
                .zip(col(h, "pnr"))
                .filter(|(_, p)| o.contains(p))
                .map(|(r, _)| [r.to_string()]);
            out.insert("rows", sorted(strings(drop)));
        }
        "parallel-assistance" => {
            let mut by: BTreeMap<(i64, i64), BTreeSet<usize>> = BTreeMap::new();
            for k in 1..=3 {
                let b = &tab[&format!("bistand_{k}")];
                for (p, m) in col(b, "pnr").into_iter().zip(col(b, "manad")) {
                    by.entry((p, m)).or_default().insert(k);
                }
            }
            let rows = by
                .iter()
                .filter(|(_, s)| s.len() >= 2)
                .map(|((p, m), s)| [format!("{p:012}"), m.to_string(), s.len().to_string()]);
            out.insert("months", sorted(strings(rows)));
        }
        "quality-indicators" => {
            let mut per: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
            for table in tab.values() {
                for ((r, v), a) in col(table, "region")
                    .into_iter()
                    .zip(col(table, "vardtid"))
                    .zip(col(table, "aterinskriven"))
                {
                    let e = per.entry(r).or_default();
                    e[0] += 1;
                    e[1] += v;
                    e[2] += a;
                }
            }
            let t = per
                .values()
                .fold([0i64; 3], |a, x| [a[0] + x[0], a[1] + x[1], a[2] + x[2]]);
            // ORDER BY region: the BTreeMap's order.
            out.insert(
                "regions",
                strings(per.iter().map(|(r, x)| {
                    [
                        r.to_string(),
                        x[0].to_string(),
                        x[1].to_string(),
                        x[2].to_string(),
                    ]
                })),
            );
            out.insert("national", strings([t.map(|x| x.to_string())]));
        }
        other => panic!("no Rust oracle for {other}"),
    }
    out
}

/// Generate, answer every output with SQLite, compare with [`expected`].
/// Returns the expected answers for further checks.
fn check_generated(
    analysis: &str,
    rows: usize,
    seed: u64,
) -> BTreeMap<&'static str, Vec<Vec<String>>> {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(analysis, rows, seed, dir.path()).unwrap();
    let a = get(analysis).unwrap();
    let t = tables_in(&a, dir.path());
    let want = expected(analysis, &load(dir.path(), analysis));
    assert_eq!(want.len(), a.outputs.len());
    for o in &a.outputs {
        let got = run(analysis, &o.name, &t);
        let got = if o.sql.contains("ORDER BY") {
            got
        } else {
            sorted(got)
        };
        assert_eq!(
            got,
            want[o.name.as_str()],
            "{analysis}/{} rows={rows} seed={seed}",
            o.name
        );
    }
    want
}

#[test]
fn generated_overlapping_benefits() {
    for seed in [1, 2] {
        let want = check_generated("overlapping-benefits", 2000, seed);
        // 5 to 20 % of fk's persons overlap (about 2.4 fk rows per person).
        let persons: f64 = want["persons"][0][0].parse().unwrap();
        let rate = persons / (2000.0 / 2.4);
        assert!((0.05..=0.20).contains(&rate), "overlap rate {rate}");
        assert_eq!(want["ids"].len() as f64, persons);
    }
    // Some persons are in both tables without any overlapping period.
    let dir = tempfile::tempdir().unwrap();
    write_inputs("overlapping-benefits", 2000, 1, dir.path()).unwrap();
    let tab = load(dir.path(), "overlapping-benefits");
    let fk: BTreeSet<i64> = col(&tab["fk"], "pnr").into_iter().collect();
    let ek: BTreeSet<i64> = col(&tab["ek"], "pnr").into_iter().collect();
    let both = fk.intersection(&ek).count();
    let overlapping = expected("overlapping-benefits", &tab)["ids"].len();
    assert!(
        both > overlapping + overlapping / 2,
        "{both} in both, {overlapping} overlapping"
    );
}

#[test]
fn reference_is_answer_with_a_header() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs("double-registration", 200, 8, dir.path()).unwrap();
    let a = sqlite::reference("double-registration", "count", dir.path()).unwrap();
    assert_eq!(a.columns, ["personer"]);
    assert_eq!(a.rows, [["20"]]);
}

#[test]
fn generated_non_take_up() {
    let want = check_generated("non-take-up", 2000, 3);
    // Some households but not all: about a quarter of ~950.
    let n = want["households"].len();
    assert!((100..400).contains(&n), "{n} households below the norm");
}

#[test]
fn generated_double_registration_and_opt_out() {
    let want = check_generated("double-registration", 3000, 4);
    assert_eq!(want["count"], [["300"]]);
    let want = check_generated("opt-out", 3000, 4);
    let n = want["rows"].len();
    assert!((50..600).contains(&n), "{n} rows to drop");
}

#[test]
fn generated_parallel_assistance() {
    let want = check_generated("parallel-assistance", 3000, 5);
    let m = &want["months"];
    assert!(m.len() > 10);
    assert!(m.iter().any(|r| r[2] == "3"));
}

#[test]
fn generated_quality_indicators() {
    let want = check_generated("quality-indicators", 5000, 6);
    assert_eq!(want["regions"].len(), 21);
    let n = &want["national"][0];
    assert_eq!(n[0], "5000");
    let re: i64 = n[2].parse().unwrap();
    assert!(re > 0 && re < 5000 / 4);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Any analysis, size and seed: SQLite and the Rust computation agree.
    #[test]
    fn sqlite_agrees_with_rust_on_generated_data(which in 0usize..6, rows in 1usize..300, seed in proptest::prelude::any::<u64>()) {
        let name = kuvert_examples::names()[which];
        check_generated(name, rows.max(kuvert_examples::gen::min_rows(name)), seed);
    }
}
