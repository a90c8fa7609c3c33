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

fn ids(v: impl IntoIterator<Item = i64>) -> Vec<Vec<String>> {
    sorted(v.into_iter().map(|x| vec![format!("{x:012}")]).collect())
}

/// Generate, answer with SQLite, and compare with `expect` computed in Rust.
fn generated(
    analysis: &str,
    rows: usize,
    seed: u64,
) -> (tempfile::TempDir, Vec<(String, Schema, PathBuf)>) {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(analysis, rows, seed, dir.path()).unwrap();
    let t = tables_in(&get(analysis).unwrap(), dir.path());
    (dir, t)
}

#[test]
fn generated_overlapping_benefits() {
    for seed in [1, 2] {
        let (dir, t) = generated("overlapping-benefits", 2000, seed);
        let tab = load(dir.path(), "overlapping-benefits");
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
        let fk_persons: BTreeSet<i64> = col(fk, "pnr").into_iter().collect();
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
        // 5 to 20 % of fk's persons overlap.
        let rate = persons.len() as f64 / fk_persons.len() as f64;
        assert!((0.05..=0.20).contains(&rate), "overlap rate {rate}");
        // Some persons are in both tables without overlapping periods.
        let both = fk_persons.iter().filter(|p| ek_by.contains_key(p)).count();
        assert!(both > persons.len());
        assert_eq!(
            run("overlapping-benefits", "persons", &t),
            vec![vec![persons.len().to_string(), sum.to_string()]]
        );
        assert_eq!(sorted(run("overlapping-benefits", "ids", &t)), ids(persons));
    }
}

#[test]
fn generated_non_take_up() {
    let (dir, t) = generated("non-take-up", 2000, 3);
    let tab = load(dir.path(), "non-take-up");
    let mut income: BTreeMap<i64, i64> = BTreeMap::new();
    for (p, v) in col(&tab["inkomst"], "pnr")
        .into_iter()
        .zip(col(&tab["inkomst"], "inkomst"))
    {
        *income.entry(p).or_default() += v;
    }
    let mut hh: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (p, h) in col(&tab["hushall"], "pnr")
        .into_iter()
        .zip(col(&tab["hushall"], "hushall"))
    {
        if let Some(v) = income.get(&p) {
            let e = hh.entry(h).or_default();
            e.0 += 1;
            e.1 += v;
        }
    }
    let norm = |n: i64| match n {
        1 => 150_000,
        n => 240_000 + 60_000 * (n - 2),
    };
    let below: Vec<Vec<String>> = hh
        .iter()
        .filter(|(_, &(n, s))| s < norm(n))
        .map(|(h, _)| vec![h.to_string()])
        .collect();
    assert!(
        !below.is_empty() && below.len() < hh.len() / 2,
        "{} of {}",
        below.len(),
        hh.len()
    );
    assert_eq!(sorted(run("non-take-up", "households", &t)), sorted(below));
}

#[test]
fn generated_double_registration_and_opt_out() {
    let (dir, t) = generated("double-registration", 3000, 4);
    let tab = load(dir.path(), "double-registration");
    let a: BTreeSet<i64> = col(&tab["reg_a"], "pnr").into_iter().collect();
    let b: BTreeSet<i64> = col(&tab["reg_b"], "pnr").into_iter().collect();
    let n = a.intersection(&b).count();
    assert_eq!(n, 300);
    assert_eq!(
        run("double-registration", "count", &t),
        rows(&[&[&n.to_string()]])
    );

    let (dir, t) = generated("opt-out", 3000, 4);
    let tab = load(dir.path(), "opt-out");
    let out: BTreeSet<i64> = col(&tab["optout"], "pnr").into_iter().collect();
    let h = &tab["holder"];
    let drop: Vec<Vec<String>> = col(h, "rad")
        .into_iter()
        .zip(col(h, "pnr"))
        .filter(|(_, p)| out.contains(p))
        .map(|(r, _)| vec![r.to_string()])
        .collect();
    assert!(!drop.is_empty() && drop.len() < h.rows() / 5);
    assert_eq!(sorted(run("opt-out", "rows", &t)), sorted(drop));
}

#[test]
fn generated_parallel_assistance() {
    let (dir, t) = generated("parallel-assistance", 3000, 5);
    let tab = load(dir.path(), "parallel-assistance");
    let mut by: BTreeMap<(i64, i64), BTreeSet<usize>> = BTreeMap::new();
    for k in 1..=3 {
        let b = &tab[&format!("bistand_{k}")];
        for (p, m) in col(b, "pnr").into_iter().zip(col(b, "manad")) {
            by.entry((p, m)).or_default().insert(k);
        }
    }
    let want: Vec<Vec<String>> = by
        .iter()
        .filter(|(_, s)| s.len() >= 2)
        .map(|((p, m), s)| vec![format!("{p:012}"), m.to_string(), s.len().to_string()])
        .collect();
    assert!(want.len() > 10);
    assert!(want.iter().any(|r| r[2] == "3"));
    assert_eq!(
        sorted(run("parallel-assistance", "months", &t)),
        sorted(want)
    );
}

#[test]
fn generated_quality_indicators() {
    let (dir, t) = generated("quality-indicators", 5000, 6);
    let tab = load(dir.path(), "quality-indicators");
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
    let want: Vec<Vec<String>> = per
        .iter()
        .map(|(r, x)| {
            vec![
                r.to_string(),
                x[0].to_string(),
                x[1].to_string(),
                x[2].to_string(),
            ]
        })
        .collect();
    assert_eq!(want.len(), 21);
    assert_eq!(run("quality-indicators", "regions", &t), want);
    let total = per
        .values()
        .fold([0i64; 3], |a, x| [a[0] + x[0], a[1] + x[1], a[2] + x[2]]);
    assert_eq!(total[0], 5000);
    assert!(total[2] > 0 && total[2] < total[0] / 4);
    assert_eq!(
        run("quality-indicators", "national", &t),
        vec![total.iter().map(|x| x.to_string()).collect::<Vec<_>>()]
    );
}
