//! The front end means what SQLite means: every construct of the dialect
//! is planned by `kuvert_sql::prepare`, evaluated by the plaintext
//! evaluator `kuvert_sql::plain`, and run by SQLite on the same random
//! tables; the formatted answers (and the column names) must agree.
//!
//! Tables are small (0 to 24 rows) with small value domains so that joins,
//! groups and semi-joins hit; empty tables exercise global aggregates over
//! no rows (COUNT 0, SUM/MIN/MAX NULL). Randomness: ChaCha20 with fixed
//! seeds, so a failure names its seed and reproduces.

use std::collections::BTreeMap;

use kuvert_data::{read_csv, ColumnType, CsvOptions, Date, Schema, Table};
use kuvert_sql::plain::{evaluate, format_row};
use kuvert_sql::{prepare, Catalog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const SEEDS: u64 = 24;

/// Tables of the dialect tests and of the six reference analyses.
const TABLES: &[(&str, &str)] = &[
    ("t1", "k:int,g:int,v:int,d:date,b:bool,p:idnr,s:text"),
    ("t2", "k:int,p:idnr,d:date,w:int,s:text"),
    ("t3", "p:idnr,d1:date,d2:date,n:int"),
    ("fk", "pnr:idnr,forman:text,fran:date,till:date,belopp:int"),
    ("ek", "pnr:idnr,fran:date,till:date,belopp:int"),
    ("hushall", "pnr:idnr,hushall:int"),
    ("inkomst", "pnr:idnr,inkomst:int"),
    ("reg_a", "pnr:idnr"),
    ("reg_b", "pnr:idnr"),
    ("holder", "rad:int,pnr:idnr"),
    ("optout", "pnr:idnr"),
    ("bistand_1", "pnr:idnr,manad:int"),
    ("bistand_2", "pnr:idnr,manad:int"),
    ("bistand_3", "pnr:idnr,manad:int"),
    ("region_01", "region:int,vardtid:int,aterinskriven:bool"),
    ("region_02", "region:int,vardtid:int,aterinskriven:bool"),
];

/// Valid identity numbers (check digits computed, not typed in).
fn idnrs() -> Vec<String> {
    [
        "811228987",
        "121212121",
        "640823323",
        "701063239",
        "900101123",
    ]
    .iter()
    .map(|nine| {
        let d: Vec<u8> = nine.bytes().map(|c| c - b'0').collect();
        let mut a = [0u8; 9];
        a.copy_from_slice(&d);
        let c = kuvert_data::idnr::luhn_check_digit(&a);
        format!("19{nine}{c}")
    })
    .collect()
}

fn int_range(col: &str) -> (i64, i64) {
    match col {
        "v" => (-5, 10),
        "w" | "n" => (-2, 8),
        "belopp" => (0, 50_000),
        "inkomst" => (0, 120_000),
        "vardtid" => (0, 30),
        "region" | "manad" => (1, 3),
        "hushall" => (1, 4),
        "rad" => (1, 60),
        _ => (0, 4),
    }
}

fn random_csv(rng: &mut ChaCha20Rng, schema: &Schema, rows: usize) -> String {
    let ids = idnrs();
    let texts = ["a", "b", "ab", "", "Åsa"];
    let mut csv = schema
        .columns()
        .iter()
        .map(|c| c.name.clone())
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    for _ in 0..rows {
        let cells: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| match c.ty {
                ColumnType::Int => {
                    let (lo, hi) = int_range(&c.name);
                    rng.gen_range(lo..=hi).to_string()
                }
                ColumnType::Bool => rng.gen_bool(0.5).to_string(),
                ColumnType::Date => {
                    let day = rng.gen_range(1..=12);
                    format!("2024-01-{day:02}")
                }
                ColumnType::Idnr => ids[rng.gen_range(0..ids.len())].clone(),
                ColumnType::Text => texts[rng.gen_range(0..texts.len())].to_string(),
            })
            .collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}

struct World {
    catalog: Catalog,
    tables: BTreeMap<String, Table>,
    db: rusqlite::Connection,
}

fn world(seed: u64) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let db = rusqlite::Connection::open_in_memory().unwrap();
    let mut catalog = Catalog::new();
    let mut tables = BTreeMap::new();
    let opts = CsvOptions {
        delimiter: b',',
        today: Date {
            year: 2026,
            month: 11,
            day: 23,
        },
    };
    for (name, compact) in TABLES {
        let schema = Schema::parse_compact(compact).unwrap();
        // Every fifth world has some empty tables.
        let rows = if seed % 5 == 4 && rng.gen_bool(0.5) {
            0
        } else {
            rng.gen_range(1..=24)
        };
        let csv = random_csv(&mut rng, &schema, rows);
        let table = read_csv(csv.as_bytes(), name, &schema, &opts).unwrap();
        let cols: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| {
                let t = match c.ty {
                    ColumnType::Int | ColumnType::Bool => "INTEGER",
                    _ => "TEXT",
                };
                format!("{} {t}", c.name)
            })
            .collect();
        db.execute(&format!("CREATE TABLE {name} ({})", cols.join(", ")), [])
            .unwrap();
        let marks = vec!["?"; schema.len()].join(", ");
        let mut ins = db
            .prepare(&format!("INSERT INTO {name} VALUES ({marks})"))
            .unwrap();
        for line in csv.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            let vals: Vec<rusqlite::types::Value> = schema
                .columns()
                .iter()
                .zip(&cells)
                .map(|(c, s)| match c.ty {
                    ColumnType::Int => rusqlite::types::Value::Integer(s.parse().unwrap()),
                    ColumnType::Bool => rusqlite::types::Value::Integer((*s == "true") as i64),
                    _ => rusqlite::types::Value::Text(s.to_string()),
                })
                .collect();
            ins.execute(rusqlite::params_from_iter(vals)).unwrap();
        }
        drop(ins);
        catalog.add(name, schema);
        tables.insert(name.to_string(), table);
    }
    World {
        catalog,
        tables,
        db,
    }
}

fn sqlite_rows(db: &rusqlite::Connection, sql: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut st = db
        .prepare(sql)
        .unwrap_or_else(|e| panic!("SQLite refuses {sql}: {e}"));
    let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let n = names.len();
    let rows = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Null => String::new(),
                        rusqlite::types::Value::Integer(v) => v.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => panic!("unexpected SQLite value {other:?} in {sql}"),
                    })
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    (names, rows)
}

/// Run `sql` in both engines over `SEEDS` random worlds. `ordered`: the
/// ORDER BY determines the row order completely, so compare in order.
fn check(sql: &str, ordered: bool) {
    let mut rows_seen = 0;
    for seed in 0..SEEDS {
        let w = world(seed);
        let q = prepare(sql, &w.catalog).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let fields = q.fields();
        let mut ours: Vec<Vec<String>> = evaluate(&q, &w.tables)
            .unwrap()
            .iter()
            .map(|r| format_row(&fields, r))
            .collect();
        let (names, mut theirs) = sqlite_rows(&w.db, sql);
        if !ordered {
            ours.sort();
            theirs.sort();
        }
        assert_eq!(ours, theirs, "seed {seed}: {sql}");
        rows_seen += ours.len();
        let ours_names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        assert_eq!(ours_names, names, "column names of {sql}");
    }
    // The data must exercise the query: some world gives some answer row
    // (LIMIT 0 is the one query meant to answer nothing).
    assert!(
        rows_seen > 0 || sql.ends_with("LIMIT 0"),
        "no world answers {sql}: the test data do not exercise it"
    );
}

#[test]
fn projection_arithmetic_and_filters() {
    check("SELECT * FROM t1", false);
    check("SELECT t2.* FROM t2", false);
    check(
        "SELECT k, v + 1 AS w, -v, v * k - 2, v - (k - 3) * 2 FROM t1 WHERE v > 2 AND NOT b OR k = 1",
        false,
    );
    check(
        "SELECT k FROM t1 WHERE (v >= 0 OR k <> 2) AND NOT (g = 1)",
        false,
    );
    check("SELECT k, v FROM t1 WHERE v BETWEEN 0 AND 4", false);
    check("SELECT k, v FROM t1 WHERE v NOT BETWEEN 0 AND 4", false);
    check("SELECT +v, - -v FROM t1 WHERE -v < -3 + 1", false);
}

#[test]
fn literals_coerce_to_the_column_type() {
    let ids = idnrs();
    check(
        "SELECT k, d FROM t1 WHERE d >= '2024-01-03' AND d < '2024-01-09'",
        false,
    );
    check(
        &format!("SELECT k, p FROM t1 WHERE p = '{}'", ids[1]),
        false,
    );
    check(
        &format!("SELECT k, p FROM t1 WHERE p > '{}'", ids[0]),
        false,
    );
    check(
        "SELECT k, s FROM t1 WHERE s = 'a' OR s <> 'b' AND s = 'Åsa'",
        false,
    );
    check("SELECT k FROM t1 WHERE s = ''", false);
    check("SELECT k FROM t1 WHERE b", false);
    check("SELECT k FROM t1 WHERE b = 1", false);
    check("SELECT k FROM t1 WHERE b = TRUE AND NOT b = FALSE", false);
    check("SELECT k FROM t1 WHERE 0 = b", false);
    check("SELECT b, NOT b, v > 2 AS big, b = (v > 2) FROM t1", false);
}

#[test]
fn in_lists() {
    let ids = idnrs();
    check("SELECT k FROM t1 WHERE k IN (1, 3) AND g NOT IN (0)", false);
    check(
        "SELECT k FROM t1 WHERE s IN ('a', 'ab') OR v IN (-1)",
        false,
    );
    check(
        &format!("SELECT k FROM t1 WHERE p IN ('{}', '{}')", ids[0], ids[2]),
        false,
    );
    check(
        "SELECT k FROM t1 WHERE d NOT IN ('2024-01-01', '2024-01-05')",
        false,
    );
    check("SELECT k, v * 2 IN (2, 4, 6) AS x FROM t1", false);
}

#[test]
fn case_expressions() {
    check(
        "SELECT CASE WHEN v > 5 THEN 'big' WHEN v < 0 THEN 'neg' ELSE 'mid' END AS c, k FROM t1",
        false,
    );
    check(
        "SELECT CASE k WHEN 1 THEN 10 WHEN 2 THEN v ELSE 20 END FROM t1",
        false,
    );
    check(
        "SELECT k FROM t1 WHERE CASE WHEN b THEN v ELSE -v END > 2",
        false,
    );
    check(
        "SELECT CASE WHEN b THEN d ELSE '2024-01-06' END AS dd FROM t1",
        false,
    );
    check(
        "SELECT CASE WHEN k = 1 THEN b ELSE FALSE END FROM t1",
        false,
    );
}

#[test]
fn joins() {
    check(
        "SELECT t1.k, t2.w FROM t1 JOIN t2 ON t1.k = t2.k AND t1.d <= t2.d",
        false,
    );
    check(
        "SELECT a.k, b.w FROM t1 a, t2 b WHERE a.p = b.p AND a.v < b.w",
        false,
    );
    check(
        "SELECT a.k, b.w, c.n FROM t1 a INNER JOIN t2 b ON a.k = b.k JOIN t3 c ON c.p = b.p WHERE a.v > c.n",
        false,
    );
    check("SELECT a.k, b.k FROM t1 a, t2 b WHERE a.v > b.w + 3", false);
    check(
        "SELECT a.k, b.k FROM t1 a CROSS JOIN t2 b WHERE a.g = 1",
        false,
    );
    check(
        "SELECT * FROM t3 a JOIN t3 b ON a.p = b.p AND a.d1 <= b.d2 AND b.d1 <= a.d2",
        false,
    );
    check(
        "SELECT a.*, b.s FROM t1 a JOIN t2 b ON a.s = b.s AND a.k = b.k",
        false,
    );
    check(
        "SELECT a.k FROM t1 a JOIN t2 b ON a.k = b.k WHERE a.k = b.k + 0 OR b.w = 1",
        false,
    );
}

#[test]
fn using_joins() {
    check("SELECT * FROM t1 JOIN t2 USING (k)", false);
    check(
        "SELECT k, p, t2.w, t1.s FROM t1 JOIN t2 USING (k, p) WHERE w > 0",
        false,
    );
    check("SELECT t2.*, v FROM t1 INNER JOIN t2 USING (s)", false);
    check(
        "SELECT a.k, c.n FROM t1 a JOIN t2 b USING (k) JOIN t3 c ON c.p = b.p",
        false,
    );
}

#[test]
fn exists_and_in_subqueries() {
    check(
        "SELECT k FROM t1 a WHERE EXISTS (SELECT 1 FROM t2 b WHERE b.k = a.k AND b.w > a.v)",
        false,
    );
    check(
        "SELECT k, v FROM t1 a WHERE NOT EXISTS (SELECT * FROM t2 b WHERE b.p = a.p AND b.d >= a.d)",
        false,
    );
    check(
        "SELECT k FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE w > 6)",
        false,
    );
    check(
        "SELECT k FROM t1 a WHERE EXISTS (SELECT 1 FROM t2 b JOIN t3 c ON b.p = c.p WHERE c.n = a.k AND b.w > 2)",
        false,
    );
    check(
        "SELECT k FROM t1 a WHERE EXISTS (SELECT 1 FROM t2 b WHERE b.k + 1 = a.k + a.g)",
        false,
    );
    check(
        "SELECT k FROM t1 WHERE p IN (SELECT p FROM t2 WHERE w > 3)",
        false,
    );
    check("SELECT k FROM t1 WHERE p NOT IN (SELECT p FROM t3)", false);
    check("SELECT k FROM t1 WHERE NOT k IN (SELECT w FROM t2)", false);
    check(
        "SELECT k, v FROM t1 WHERE k + 1 IN (SELECT w FROM t2)",
        false,
    );
    check("SELECT k FROM t1 WHERE k IN (SELECT w - 1 FROM t2)", false);
    check(
        "SELECT k FROM t1 WHERE k IN (SELECT k FROM t2 GROUP BY k HAVING COUNT(*) > 1)",
        false,
    );
    check(
        "SELECT k FROM t1 WHERE s IN (SELECT s FROM t2 UNION SELECT 'Åsa' FROM t3)",
        false,
    );
    check(
        "SELECT k FROM t1 a WHERE a.k IN (SELECT b.k FROM t2 b WHERE b.s = a.s) AND v > 0",
        false,
    );
    check(
        "SELECT a.k, b.w FROM t1 a JOIN t2 b ON a.k = b.k WHERE NOT EXISTS (SELECT 1 FROM t3 c WHERE c.p = b.p AND c.n < a.v)",
        false,
    );
}

#[test]
fn grouping_and_aggregates() {
    check(
        "SELECT g, COUNT(*), COUNT(v), COUNT(DISTINCT v), SUM(v), MIN(v), MAX(d), MIN(p), MAX(b) FROM t1 GROUP BY g",
        false,
    );
    check("SELECT v * 2 AS vv, COUNT(*) FROM t1 GROUP BY v * 2", false);
    check("SELECT g + 1, COUNT(*) FROM t1 GROUP BY g", false);
    check("SELECT s, b, d, COUNT(*) FROM t1 GROUP BY s, b, d", false);
    check("SELECT g, SUM(v) AS total FROM t1 GROUP BY 1", false);
    check(
        "SELECT g, k, SUM(v) FROM t1 GROUP BY g, k HAVING SUM(v) > 3 AND COUNT(*) >= 2",
        false,
    );
    check(
        "SELECT g, SUM(v) + COUNT(*) * 2 AS x, SUM(v) AS y, MAX(v) - MIN(v) FROM t1 GROUP BY g",
        false,
    );
    check(
        "SELECT g, SUM(CASE WHEN b THEN 1 ELSE 0 END) AS n FROM t1 GROUP BY g HAVING MIN(d) < '2024-01-05'",
        false,
    );
    check("SELECT COUNT(DISTINCT s), COUNT(DISTINCT p) FROM t1", false);
    check(
        "SELECT COUNT(*), SUM(v), MIN(d), MAX(p), COUNT(DISTINCT s) FROM t1 WHERE v > 100",
        false,
    );
    check(
        "SELECT SUM(v) + 1, MIN(v) < 3, COUNT(*) FROM t1 WHERE k = 2",
        false,
    );
    check("SELECT COUNT(*) FROM t1 HAVING COUNT(*) > 12", false);
    check(
        "SELECT t2.k, COUNT(*), SUM(t1.v) FROM t1 JOIN t2 ON t1.p = t2.p GROUP BY t2.k",
        false,
    );
    check("SELECT g, COUNT(*) FROM t1 WHERE b GROUP BY g", false);
    check(
        "SELECT g, COUNT(*) AS n, SUM(v) AS total FROM t1 GROUP BY g HAVING n > 2 AND total <> 0",
        false,
    );
}

/// The one NULL: a global SUM/MIN/MAX over no rows, and what is computed
/// from it (comparisons, IN, CASE, joins, DISTINCT, ORDER BY).
#[test]
fn nulls_of_global_aggregates() {
    // `k = 3` selects no row in some worlds, `k >= 0` always some.
    let empty_or_not = "(SELECT SUM(v) AS s, MAX(d) AS m FROM t1 WHERE k = 3)";
    check(
        &format!("SELECT x.s, x.s + 1, x.s > 2, x.s IN (1, 2), x.s NOT IN (1), x.m FROM {empty_or_not} x"),
        false,
    );
    check(
        &format!("SELECT x.s FROM {empty_or_not} x WHERE NOT x.s > 2 OR x.s = 5"),
        false,
    );
    check(
        &format!("SELECT CASE WHEN x.s > 0 THEN 1 ELSE 2 END, x.s > 0 AND FALSE, x.s > 0 OR TRUE FROM {empty_or_not} x"),
        false,
    );
    check(
        &format!("SELECT a.k FROM t1 a JOIN {empty_or_not} x ON a.v = x.s"),
        false,
    );
    check(
        "SELECT SUM(v) FROM t1 WHERE k = 3 UNION SELECT SUM(w) FROM t2 WHERE k = 3 UNION ALL SELECT MIN(n) FROM t3",
        false,
    );
    check(
        "SELECT SUM(v) AS s FROM t1 WHERE k = 3 UNION ALL SELECT SUM(w) FROM t2 ORDER BY s DESC",
        true,
    );
    check(
        "SELECT SUM(v) AS s FROM t1 WHERE k = 3 UNION ALL SELECT SUM(w) FROM t2 ORDER BY s",
        true,
    );
}

#[test]
fn subqueries_in_from_union_distinct() {
    check(
        "SELECT x.g, x.n FROM (SELECT g, COUNT(*) AS n FROM t1 GROUP BY g) x WHERE x.n > 2",
        false,
    );
    check(
        "SELECT a.k, x.n FROM t1 a JOIN (SELECT k, SUM(w) AS n FROM t2 GROUP BY k) x ON a.k = x.k",
        false,
    );
    check(
        "SELECT y.c FROM (SELECT x.k AS c FROM (SELECT k FROM t1 WHERE v > 0) x) y",
        false,
    );
    check("SELECT k, p FROM t1 UNION ALL SELECT k, p FROM t2", false);
    check("SELECT k FROM t1 UNION SELECT k FROM t2", false);
    check(
        "SELECT k FROM t1 UNION ALL SELECT k FROM t2 UNION SELECT n FROM t3",
        false,
    );
    check(
        "SELECT u.k, COUNT(*) FROM (SELECT k, s FROM t1 UNION ALL SELECT w, s FROM t2) u GROUP BY u.k",
        false,
    );
    check("SELECT DISTINCT g, b FROM t1", false);
    check("SELECT DISTINCT s FROM t1", false);
    check("SELECT DISTINCT p FROM t1 WHERE v > 0", false);
    check("SELECT DISTINCT g, COUNT(*) FROM t1 GROUP BY g, k", false);
}

#[test]
fn order_by_and_limit() {
    check("SELECT k, v FROM t1 ORDER BY v DESC, k LIMIT 5", true);
    check("SELECT k, v FROM t1 ORDER BY 2, 1 DESC", true);
    check("SELECT k AS a, v FROM t1 ORDER BY v, a LIMIT 3", true);
    check("SELECT k, v + 1 FROM t1 ORDER BY v + 1, k LIMIT 4", true);
    check("SELECT s, k FROM t1 ORDER BY s DESC, k", true);
    check("SELECT p, d FROM t1 ORDER BY p, d DESC LIMIT 6", true);
    check(
        "SELECT g, COUNT(*) AS n FROM t1 GROUP BY g ORDER BY n DESC, g LIMIT 2",
        true,
    );
    check(
        "SELECT k FROM t1 UNION ALL SELECT k FROM t2 ORDER BY k DESC LIMIT 3",
        true,
    );
    check("SELECT k FROM t1 ORDER BY k LIMIT 0", true);
    check(
        "SELECT SUM(v) AS s FROM t1 WHERE k = 3 ORDER BY s DESC",
        true,
    );
}

/// The six reference analyses of the design brief, as the examples run
/// them.
#[test]
fn reference_analyses() {
    check(
        "SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f \
         WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
        false,
    );
    check(
        "SELECT DISTINCT f.pnr FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
        false,
    );
    check(
        "SELECT h.hushall FROM (SELECT m.hushall AS hushall, COUNT(*) AS personer, SUM(i.belopp) AS inkomst
            FROM hushall m JOIN (SELECT pnr, SUM(inkomst) AS belopp FROM inkomst GROUP BY pnr) i ON m.pnr = i.pnr
            GROUP BY m.hushall) h
          WHERE h.inkomst < CASE WHEN h.personer = 1 THEN 150000 WHEN h.personer = 2 THEN 240000 ELSE 240000 + 60000 * (h.personer - 2) END",
        false,
    );
    check(
        "SELECT COUNT(*) AS personer FROM reg_a a WHERE a.pnr IN (SELECT pnr FROM reg_b)",
        false,
    );
    check(
        "SELECT h.rad FROM holder h WHERE h.pnr IN (SELECT pnr FROM optout)",
        false,
    );
    check(
        "SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (
          SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2
          UNION ALL SELECT pnr, manad, 3 FROM bistand_3) b GROUP BY pnr, manad HAVING COUNT(DISTINCT kommun) >= 2",
        false,
    );
    // The same, naming the aggregate by its alias in HAVING.
    check(
        "SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (
          SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2
          UNION ALL SELECT pnr, manad, 3 FROM bistand_3) b GROUP BY pnr, manad HAVING kommuner >= 2",
        false,
    );
    check(
        "SELECT region, COUNT(*) AS patienter, SUM(vardtid) AS vardtid, SUM(CASE WHEN aterinskriven THEN 1 ELSE 0 END) AS aterinskrivna
          FROM (SELECT * FROM region_01 UNION ALL SELECT * FROM region_02) r GROUP BY region ORDER BY region",
        true,
    );
}

// ---------------------------------------------------------------------------
// Random expressions: proptest writes WHERE conditions and computed
// columns over t1, both engines evaluate them.

mod random_expressions {
    use super::*;
    use proptest::prelude::*;

    fn int_expr() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("k".to_string()),
            Just("g".to_string()),
            Just("v".to_string()),
            (-3i64..10).prop_map(|i| i.to_string()),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(vec!["+", "-", "*"]),
                    inner.clone()
                )
                    .prop_map(|(a, o, b)| format!("({a} {o} {b})")),
                inner.clone().prop_map(|a| format!("-({a})")),
                (cond_leaf(), inner.clone(), inner.clone())
                    .prop_map(|(c, a, b)| format!("CASE WHEN {c} THEN {a} ELSE {b} END")),
                (inner.clone(), inner.clone(), inner).prop_map(|(x, a, b)| format!(
                    "CASE {x} WHEN 1 THEN {a} WHEN 2 THEN {b} ELSE 0 END"
                )),
            ]
        })
    }

    fn cond_leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("b".to_string()),
            Just("b = 0".to_string()),
            Just("s = 'a'".to_string()),
            Just("s <> 'ab'".to_string()),
            Just("d < '2024-01-06'".to_string()),
            (
                prop::sample::select(vec!["k", "g", "v"]),
                prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]),
                -3i64..10
            )
                .prop_map(|(c, o, i)| format!("{c} {o} {i}")),
            (
                prop::sample::select(vec!["k", "v"]),
                prop::collection::vec(-2i64..6, 1..4),
                any::<bool>()
            )
                .prop_map(|(c, l, neg)| format!(
                    "{c} {}IN ({})",
                    if neg { "NOT " } else { "" },
                    l.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
        ]
    }

    fn cond() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            cond_leaf(),
            (
                int_expr(),
                prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]),
                int_expr()
            )
                .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
            (int_expr(), -3i64..3, 0i64..6)
                .prop_map(|(x, lo, hi)| format!("{x} BETWEEN {lo} AND {hi}")),
        ];
        leaf.prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(vec!["AND", "OR"]),
                    inner.clone()
                )
                    .prop_map(|(a, o, b)| format!("({a} {o} {b})")),
                inner.prop_map(|a| format!("NOT ({a})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn filters_and_computed_columns(e in int_expr(), c in cond(), w in cond(), seed in 0..SEEDS) {
            let sql = format!("SELECT k, {e} AS e, {c} AS c FROM t1 WHERE {w}");
            compare(&sql, seed)?;
        }

        #[test]
        fn grouped_by_an_expression(key in int_expr(), arg in int_expr(), w in cond(), h in -2i64..4, seed in 0..SEEDS) {
            let sql = format!(
                "SELECT {key} AS key, COUNT(*) AS n, SUM({arg}) AS total, MIN({arg}) AS lo FROM t1 WHERE {w} GROUP BY 1 HAVING COUNT(*) > {h}"
            );
            compare(&sql, seed)?;
        }
    }

    fn compare(sql: &str, seed: u64) -> Result<(), TestCaseError> {
        let w = world(seed);
        let q = prepare(sql, &w.catalog).map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
        let fields = q.fields();
        let mut ours: Vec<Vec<String>> = evaluate(&q, &w.tables)
            .map_err(TestCaseError::fail)?
            .iter()
            .map(|r| format_row(&fields, r))
            .collect();
        let (_, mut theirs) = sqlite_rows(&w.db, sql);
        ours.sort();
        theirs.sort();
        prop_assert_eq!(ours, theirs, "seed {}: {}", seed, sql);
        Ok(())
    }
}
