//! The node side of SQL jobs, with three parties in-process: tables held
//! as uploaded (one share per column), the query planned and run by each
//! node, the result shares encoded as a node sends them, and the
//! recipient's reconstruction compared with a hand-computed answer.

use std::collections::BTreeMap;

use kuvert_data::share::ShareKind;
use kuvert_data::{CsvOptions, Date};
use kuvert_mpc::harness::{run3, Keys};
use kuvert_mpc::{AShare, MpcError};
use kuvert_node::exec::{self, StoredTable};
use kuvert_node::wire::Program;
use kuvert_sql::output::{reconstruct, ResultShares};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const CSV: &str = "pnr,kind,belopp\n\
                   811228-9874,försörjningsstöd,100\n\
                   19121212-1212,bostadsbidrag,-7\n\
                   701063-2391,försörjningsstöd,20\n\
                   198112289874,bostadsbidrag,3\n";

/// Each node's tables, as `Node::upload` stores them.
fn stored() -> [BTreeMap<String, StoredTable>; 3] {
    let opts = CsvOptions {
        delimiter: b',',
        today: Date {
            year: 2026,
            month: 11,
            day: 23,
        },
    };
    let schema = "pnr:idnr,kind:text,belopp:int".parse().unwrap();
    let table = kuvert_data::read_csv(CSV.as_bytes(), "t.csv", &schema, &opts).unwrap();
    let shares = kuvert_data::share_table(
        &table,
        ShareKind::Arithmetic,
        &mut ChaCha20Rng::seed_from_u64(5),
    );
    shares.map(|s| {
        let columns = s
            .columns
            .iter()
            .map(|c| AShare::from_components(c.a.clone(), c.b.clone()).unwrap())
            .collect();
        let mut m = BTreeMap::new();
        m.insert(
            "t".to_string(),
            StoredTable {
                schema: s.schema.clone(),
                rows: s.rows,
                columns,
            },
        );
        m
    })
}

#[test]
fn a_query_runs_on_every_node_and_the_recipient_reconstructs_it() {
    let tables = stored();
    let sql = "SELECT kind, SUM(belopp) AS s, COUNT(*) AS n FROM t GROUP BY kind ORDER BY kind";
    let out = run3(Keys::Seeded(9), |p| {
        let mut mine = BTreeMap::new();
        for (name, t) in &tables[p.id()] {
            let columns = t.columns.clone();
            mine.insert(
                name.clone(),
                StoredTable {
                    schema: t.schema.clone(),
                    rows: t.rows,
                    columns,
                },
            );
        }
        let mut steps = Vec::new();
        let mut progress = |d: usize, n: usize| steps.push((d, n));
        let first = exec::run_query(p, sql, &mut mine, &mut progress)
            .map_err(|e| MpcError::Usage(e.to_string()))?
            .into_inner();
        // The tables are given back intact: the same job can run again.
        let again = exec::run_query(p, "SELECT COUNT(*) AS n FROM t", &mut mine, &mut |_, _| {})
            .map_err(|e| MpcError::Usage(e.to_string()))?
            .into_inner();
        let t = &mine["t"];
        let intact = t.rows == 4
            && t.columns.len() == 3
            && t.columns[1].len() == 16
            && t.columns[1].components() == tables[p.id()]["t"].columns[1].components();
        Ok((first.to_bytes(), again.to_bytes(), steps, intact))
    })
    .unwrap();
    let decode = |second: bool| {
        out.iter()
            .enumerate()
            .map(|(i, o)| {
                let bytes = if second { &o.1 } else { &o.0 };
                ResultShares::from_bytes(bytes, &i.to_string()).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let answer = reconstruct(&decode(false)).unwrap();
    // Hand-computed: bostadsbidrag -7 + 3 = -4 (2 rows); försörjningsstöd
    // 100 + 20 = 120 (2 rows); text sorts bytewise.
    assert_eq!(
        answer.to_csv_string().unwrap(),
        "kind,s,n\nbostadsbidrag,-4,2\nförsörjningsstöd,120,2\n"
    );
    assert_eq!(
        reconstruct(&decode(true)).unwrap().to_csv_string().unwrap(),
        "n\n4\n"
    );
    for (i, o) in out.iter().enumerate() {
        assert!(o.3, "node {i}'s tables were not given back intact");
        let (last, total) = *o.2.last().expect("progress was reported");
        assert!(total > 0 && last == total, "node {i}: progress {:?}", o.2);
    }
}

#[test]
fn a_query_that_cannot_be_planned_is_refused_before_any_protocol_step() {
    let tables = stored();
    let e = exec::check(
        &Program::Query {
            sql: "SELECT summa FROM t".into(),
            malicious: false,
        },
        &tables[0],
    )
    .unwrap_err();
    assert!(
        e.starts_with("SQL line 1, column 8: unknown column summa"),
        "{e}"
    );
    let e = exec::check(
        &Program::Query {
            sql: "SELECT pnr FROM missing".into(),
            malicious: false,
        },
        &tables[0],
    )
    .unwrap_err();
    assert!(e.contains("unknown table missing"), "{e}");
    assert!(exec::check(
        &Program::Query {
            sql: "SELECT pnr FROM t".into(),
            malicious: false,
        },
        &tables[0]
    )
    .is_ok());
}
