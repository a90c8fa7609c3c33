//! `Query::tables` names exactly the contributed tables a query reads:
//! nodes charge a differentially private output to those tables' budgets,
//! so a table missed here would be read without being charged.

use kuvert_data::Schema;
use kuvert_sql::{prepare, Catalog};

fn catalog() -> Catalog {
    let mut c = Catalog::new();
    for t in ["a", "b", "c", "d"] {
        c.add(t, Schema::parse_compact("pnr:idnr,x:int").unwrap());
    }
    c
}

fn tables(sql: &str) -> Vec<String> {
    prepare(sql, &catalog())
        .unwrap()
        .tables()
        .into_iter()
        .collect()
}

#[test]
fn every_scanned_table_is_named_once() {
    assert_eq!(tables("SELECT x FROM a"), ["a"]);
    assert_eq!(
        tables("SELECT a.x FROM a JOIN b ON a.pnr = b.pnr"),
        ["a", "b"]
    );
    assert_eq!(
        tables("SELECT COUNT(*) FROM (SELECT * FROM a UNION ALL SELECT * FROM c) u"),
        ["a", "c"]
    );
    assert_eq!(
        tables("SELECT x FROM a WHERE pnr IN (SELECT pnr FROM d)"),
        ["a", "d"]
    );
    assert_eq!(
        tables("SELECT x FROM b WHERE pnr NOT IN (SELECT pnr FROM b)"),
        ["b"]
    );
}
