//! Plan shapes the front end builds, and its errors with their positions.
//!
//! Plans are compared in a compact rendering (one operator per line,
//! children indented, columns as `#i`), written by hand from the rules in
//! `docs/sql.md`; the meaning of the plans is checked against SQLite in
//! `plain_vs_sqlite.rs`.

use kuvert_data::{ColumnType, Schema};
use kuvert_sql::plan::{AggFunc, BinOp, Const, Expr, Plan};
use kuvert_sql::{prepare, Catalog, Query, SqlError};

fn catalog() -> Catalog {
    let mut c = Catalog::new();
    for (name, schema) in [
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
    ] {
        c.add(name, Schema::parse_compact(schema).unwrap());
    }
    c
}

fn konst(c: &Const) -> String {
    match c.ty {
        ColumnType::Int => (c.words[0] as i64).to_string(),
        ColumnType::Bool => (c.words[0] == 1).to_string(),
        ty => format!(
            "{ty}'{}'",
            kuvert_data::value::format_cell(ty, &c.words).unwrap()
        ),
    }
}

fn expr(e: &Expr) -> String {
    match e {
        Expr::Column(i) => format!("#{i}"),
        Expr::Const(c) => konst(c),
        Expr::Binary { op, left, right } => {
            let o = match op {
                BinOp::Add => "+",
                BinOp::Sub => "-",
                BinOp::Mul => "*",
                BinOp::Eq => "=",
                BinOp::Ne => "<>",
                BinOp::Lt => "<",
                BinOp::Le => "<=",
                BinOp::Gt => ">",
                BinOp::Ge => ">=",
                BinOp::And => "AND",
                BinOp::Or => "OR",
            };
            format!("({} {o} {})", expr(left), expr(right))
        }
        Expr::Not(x) => format!("NOT {}", expr(x)),
        Expr::Neg(x) => format!("-{}", expr(x)),
        Expr::Case { whens, otherwise } => {
            let mut s = "CASE".to_string();
            for (c, v) in whens {
                s.push_str(&format!(" WHEN {} THEN {}", expr(c), expr(v)));
            }
            format!("{s} ELSE {} END", expr(otherwise))
        }
        Expr::InList {
            expr: x,
            list,
            negated,
        } => format!(
            "{} {}IN [{}]",
            expr(x),
            if *negated { "NOT " } else { "" },
            list.iter().map(konst).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn plan(p: &Plan, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let line = match p {
        Plan::Scan { table, .. } => format!("Scan {table}"),
        Plan::Filter { predicate, .. } => format!("Filter {}", expr(predicate)),
        Plan::Project { exprs, .. } => format!(
            "Project {}",
            exprs
                .iter()
                .map(|(e, n)| format!("{} AS {n}", expr(e)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Plan::UnionAll { .. } => "UnionAll".to_string(),
        Plan::Join { on, residual, .. } => format!(
            "Join on={on:?}{}",
            residual
                .as_ref()
                .map(|r| format!(" residual={}", expr(r)))
                .unwrap_or_default()
        ),
        Plan::SemiJoin {
            on, residual, anti, ..
        } => format!(
            "{} on={on:?}{}",
            if *anti { "AntiJoin" } else { "SemiJoin" },
            residual
                .as_ref()
                .map(|r| format!(" residual={}", expr(r)))
                .unwrap_or_default()
        ),
        Plan::Aggregate { group_by, aggs, .. } => format!(
            "Aggregate group={group_by:?} [{}]",
            aggs.iter()
                .map(|a| {
                    let f = match a.func {
                        AggFunc::Count => "COUNT",
                        AggFunc::CountDistinct => "COUNT_DISTINCT",
                        AggFunc::Sum => "SUM",
                        AggFunc::Min => "MIN",
                        AggFunc::Max => "MAX",
                    };
                    let arg = a.arg.map(|i| format!("#{i}")).unwrap_or("*".into());
                    format!("{f}({arg}) AS {}", a.name)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    out.push_str(&pad);
    out.push_str(&line);
    out.push('\n');
    match p {
        Plan::Scan { .. } => {}
        Plan::Filter { input, .. }
        | Plan::Project { input, .. }
        | Plan::Aggregate { input, .. } => plan(input, depth + 1, out),
        Plan::UnionAll { inputs } => inputs.iter().for_each(|i| plan(i, depth + 1, out)),
        Plan::Join { left, right, .. } => {
            plan(left, depth + 1, out);
            plan(right, depth + 1, out);
        }
        Plan::SemiJoin { probe, build, .. } => {
            plan(probe, depth + 1, out);
            plan(build, depth + 1, out);
        }
    }
}

fn render(q: &Query) -> String {
    let mut s = String::new();
    plan(&q.root, 0, &mut s);
    let f: Vec<String> = q
        .fields()
        .iter()
        .map(|f| format!("{}:{}{}", f.name, f.ty, if f.nullable { "?" } else { "" }))
        .collect();
    s.push_str(&format!("=> {}", f.join(", ")));
    for k in &q.order_by {
        s.push_str(&format!(
            " ORDER #{}{}",
            k.column,
            if k.desc { " DESC" } else { "" }
        ));
    }
    if let Some(l) = q.limit {
        s.push_str(&format!(" LIMIT {l}"));
    }
    s
}

#[track_caller]
fn shape(sql: &str, expected: &str) {
    let q = prepare(sql, &catalog()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let got = render(&q);
    let want: String = expected
        .trim()
        .lines()
        .map(|l| l.strip_prefix("        ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(got, want, "\n{sql}\n--- got:\n{got}\n");
    // Same SQL, same catalog: the same plan (every node plans alone).
    assert_eq!(prepare(sql, &catalog()).unwrap(), q);
}

#[track_caller]
fn error(sql: &str, line: u64, column: u64, message_part: &str) {
    match prepare(sql, &catalog()) {
        Ok(q) => panic!("{sql} planned:\n{}", render(&q)),
        Err(SqlError {
            message,
            line: l,
            column: c,
        }) => {
            assert!(
                message.contains(message_part),
                "{sql}\nmessage {message:?} lacks {message_part:?}"
            );
            assert_eq!((l, c), (line, column), "{sql}\n{message}");
        }
    }
}

// ---------------------------------------------------------------------------
// Shapes (the six reference analyses first)

#[test]
fn overlapping_benefits_output_a() {
    shape(
        "SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f
  WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
        "
        Aggregate group=[] [COUNT_DISTINCT(#0) AS personer, SUM(#4) AS fk_belopp]
          SemiJoin on=[(0, 0)] residual=((#6 <= #3) AND (#2 <= #7))
            Scan fk
            Scan ek
        => personer:int, fk_belopp:int?
        ",
    );
}

#[test]
fn overlapping_benefits_output_b() {
    shape(
        "SELECT DISTINCT f.pnr FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
        "
        Aggregate group=[0] []
          Project #0 AS pnr
            SemiJoin on=[(0, 0)] residual=((#6 <= #3) AND (#2 <= #7))
              Scan fk
              Scan ek
        => pnr:idnr
        ",
    );
}

#[test]
fn non_take_up() {
    shape(
        "SELECT h.hushall FROM (SELECT m.hushall AS hushall, COUNT(*) AS personer, SUM(i.belopp) AS inkomst
    FROM hushall m JOIN (SELECT pnr, SUM(inkomst) AS belopp FROM inkomst GROUP BY pnr) i ON m.pnr = i.pnr
    GROUP BY m.hushall) h
  WHERE h.inkomst < CASE WHEN h.personer = 1 THEN 150000 WHEN h.personer = 2 THEN 240000 ELSE 240000 + 60000 * (h.personer - 2) END",
        "
        Project #0 AS hushall
          Filter (#2 < CASE WHEN (#1 = 1) THEN 150000 WHEN (#1 = 2) THEN 240000 ELSE (240000 + (60000 * (#1 - 2))) END)
            Aggregate group=[1] [COUNT(*) AS personer, SUM(#3) AS inkomst]
              Join on=[(0, 0)]
                Scan hushall
                Aggregate group=[0] [SUM(#1) AS belopp]
                  Scan inkomst
        => hushall:int
        ",
    );
}

#[test]
fn double_registration() {
    shape(
        "SELECT COUNT(*) AS personer FROM reg_a a WHERE a.pnr IN (SELECT pnr FROM reg_b)",
        "
        Aggregate group=[] [COUNT(*) AS personer]
          SemiJoin on=[(0, 0)]
            Scan reg_a
            Scan reg_b
        => personer:int
        ",
    );
}

#[test]
fn opt_out() {
    shape(
        "SELECT h.rad FROM holder h WHERE h.pnr IN (SELECT pnr FROM optout)",
        "
        Project #0 AS rad
          SemiJoin on=[(1, 0)]
            Scan holder
            Scan optout
        => rad:int
        ",
    );
}

#[test]
fn parallel_assistance() {
    shape(
        "SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (
  SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2
  UNION ALL SELECT pnr, manad, 3 FROM bistand_3) b GROUP BY pnr, manad HAVING COUNT(DISTINCT kommun) >= 2",
        "
        Filter (#2 >= 2)
          Aggregate group=[0, 1] [COUNT_DISTINCT(#2) AS kommuner]
            UnionAll
              Project #0 AS pnr, #1 AS manad, 1 AS kommun
                Scan bistand_1
              Project #0 AS pnr, #1 AS manad, 2 AS 2
                Scan bistand_2
              Project #0 AS pnr, #1 AS manad, 3 AS 3
                Scan bistand_3
        => pnr:idnr, manad:int, kommuner:int
        ",
    );
}

#[test]
fn quality_indicators() {
    shape(
        "SELECT region, COUNT(*) AS patienter, SUM(vardtid) AS vardtid, SUM(CASE WHEN aterinskriven THEN 1 ELSE 0 END) AS aterinskrivna
  FROM (SELECT * FROM region_01 UNION ALL SELECT * FROM region_02) r GROUP BY region ORDER BY region",
        "
        Aggregate group=[0] [COUNT(*) AS patienter, SUM(#1) AS vardtid, SUM(#2) AS aterinskrivna]
          Project #0 AS region, #1 AS vardtid, CASE WHEN #2 THEN 1 ELSE 0 END AS arg of SUM(CASE WHEN aterinskriven THEN 1 ELSE 0 END)
            UnionAll
              Scan region_01
              Scan region_02
        => region:int, patienter:int, vardtid:int, aterinskrivna:int ORDER #0
        ",
    );
}

#[test]
fn star_is_the_scan() {
    shape(
        "SELECT * FROM t1",
        "
        Scan t1
        => k:int, g:int, v:int, d:date, b:bool, p:idnr, s:text
        ",
    );
}

#[test]
fn comma_join_equality_becomes_on_and_filters_go_down() {
    shape(
        "SELECT a.k, b.w FROM t1 a, t2 b WHERE a.p = b.p AND a.v < b.w AND a.g = 1 AND b.s = 'x' AND 1 = 1",
        "
        Project #0 AS k, #10 AS w
          Filter (1 = 1)
            Join on=[(5, 1)] residual=(#2 < #10)
              Filter (#1 = 1)
                Scan t1
              Filter (#4 = text'x')
                Scan t2
        => k:int, w:int
        ",
    );
}

#[test]
fn three_way_join_is_left_deep() {
    shape(
        "SELECT a.k, c.n FROM t1 a JOIN t2 b ON a.k = b.k JOIN t3 c ON c.p = b.p AND c.d1 <= a.d WHERE a.v > c.n",
        "
        Project #0 AS k, #15 AS n
          Join on=[(8, 0)] residual=((#13 <= #3) AND (#2 > #15))
            Join on=[(0, 0)]
              Scan t1
              Scan t2
            Scan t3
        => k:int, n:int
        ",
    );
}

#[test]
fn cross_join_keeps_a_residual() {
    shape(
        "SELECT a.k FROM t1 a, t2 b WHERE a.v > b.w",
        "
        Project #0 AS k
          Join on=[] residual=(#2 > #10)
            Scan t1
            Scan t2
        => k:int
        ",
    );
}

#[test]
fn group_by_expression_projects_below() {
    shape(
        "SELECT v * 2 AS vv, COUNT(*), SUM(v + 1), SUM(v + 1) + COUNT(*) AS x FROM t1 GROUP BY v * 2",
        "
        Project #0 AS vv, #1 AS COUNT(*), #2 AS SUM(v + 1), (#2 + #1) AS x
          Aggregate group=[0] [COUNT(*) AS COUNT(*), SUM(#1) AS SUM(v + 1)]
            Project (#2 * 2) AS vv, (#2 + 1) AS arg of SUM(v + 1)
              Scan t1
        => vv:int, COUNT(*):int, SUM(v + 1):int, x:int
        ",
    );
}

#[test]
fn having_order_by_limit() {
    shape(
        "SELECT g, COUNT(*) AS n FROM t1 GROUP BY g HAVING SUM(v) > 3 ORDER BY n DESC, 1 LIMIT 5",
        "
        Project #0 AS g, #1 AS n
          Filter (#2 > 3)
            Aggregate group=[1] [COUNT(*) AS n, SUM(#2) AS SUM(v)]
              Scan t1
        => g:int, n:int ORDER #1 DESC ORDER #0 LIMIT 5
        ",
    );
}

#[test]
fn not_in_with_expressions_projects_keys() {
    shape(
        "SELECT k FROM t1 WHERE k + 1 NOT IN (SELECT w - 1 FROM t2)",
        "
        Project #0 AS k
          AntiJoin on=[(7, 5)]
            Project #0 AS k, #1 AS g, #2 AS v, #3 AS d, #4 AS b, #5 AS p, #6 AS s, (#0 + 1) AS in_key
              Scan t1
            Project #0 AS k, #1 AS p, #2 AS d, #3 AS w, #4 AS s, (#3 - 1) AS in_key
              Scan t2
        => k:int
        ",
    );
}

#[test]
fn not_exists_correlated() {
    shape(
        "SELECT k FROM t1 a WHERE NOT EXISTS (SELECT 1 FROM t2 b WHERE b.k = a.k AND b.w > 3 AND b.d > a.d)",
        "
        Project #0 AS k
          AntiJoin on=[(0, 0)] residual=(#9 > #3)
            Scan t1
            Filter (#3 > 3)
              Scan t2
        => k:int
        ",
    );
}

#[test]
fn union_then_union_all() {
    shape(
        "SELECT k FROM t1 UNION SELECT w FROM t2 UNION ALL SELECT n FROM t3",
        "
        UnionAll
          Aggregate group=[0] []
            UnionAll
              Project #0 AS k
                Scan t1
              Project #3 AS w
                Scan t2
          Project #3 AS n
            Scan t3
        => k:int
        ",
    );
}

#[test]
fn global_aggregates_are_nullable() {
    shape(
        "SELECT SUM(v) + 1 AS s, MIN(d) FROM t1",
        "
        Project (#0 + 1) AS s, #1 AS MIN(d)
          Aggregate group=[] [SUM(#2) AS SUM(v), MIN(#3) AS MIN(d)]
            Scan t1
        => s:int?, MIN(d):date?
        ",
    );
}

#[test]
fn literals_take_the_column_type() {
    shape(
        "SELECT k FROM t1 WHERE d >= DATE '2024-01-01' AND p = '811228-9874' AND b AND s IN ('a', 'b') AND b = 0",
        "
        Project #0 AS k
          Filter (((((#3 >= date'2024-01-01') AND (#5 = idnr'198112289874')) AND #4) AND #6 IN [text'a', text'b']) AND (#4 = false))
            Scan t1
        => k:int
        ",
    );
}

#[test]
fn correlated_in_and_uncorrelated_exists() {
    shape(
        "SELECT k FROM t1 a WHERE a.k IN (SELECT b.w FROM t2 b WHERE b.s = a.s AND b.d < a.d) AND EXISTS (SELECT 1 FROM t3 GROUP BY n)",
        "
        Project #0 AS k
          SemiJoin on=[]
            SemiJoin on=[(0, 3), (6, 4)] residual=(#9 < #3)
              Scan t1
              Scan t2
            Aggregate group=[3] []
              Scan t3
        => k:int
        ",
    );
}

#[test]
fn using_is_an_equi_join_and_hides_the_right_copy() {
    shape(
        "SELECT * FROM t1 JOIN t2 USING (k, p)",
        "
        Project #0 AS k, #1 AS g, #2 AS v, #3 AS d, #4 AS b, #5 AS p, #6 AS s, #9 AS d, #10 AS w, #11 AS s
          Join on=[(0, 0), (5, 1)]
            Scan t1
            Scan t2
        => k:int, g:int, v:int, d:date, b:bool, p:idnr, s:text, d:date, w:int, s:text
        ",
    );
}

#[test]
fn same_aggregate_twice_is_computed_once_and_aliases_name_it() {
    shape(
        "SELECT g AS grupp, SUM(v) AS a, SUM(v) AS b, sum(v) FROM t1 GROUP BY g",
        "
        Project #0 AS grupp, #1 AS a, #1 AS b, #1 AS sum(v)
          Aggregate group=[1] [SUM(#2) AS a]
            Scan t1
        => grupp:int, a:int, b:int, sum(v):int
        ",
    );
}

#[test]
fn group_by_position_and_alias() {
    let a = prepare("SELECT g + 1 AS h, COUNT(*) FROM t1 GROUP BY 1", &catalog()).unwrap();
    let b = prepare("SELECT g + 1 AS h, COUNT(*) FROM t1 GROUP BY h", &catalog()).unwrap();
    let c = prepare(
        "SELECT g + 1 AS h, COUNT(*) FROM t1 GROUP BY g + 1",
        &catalog(),
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(
        render(&a),
        "Aggregate group=[0] [COUNT(*) AS COUNT(*)]\n  Project (#1 + 1) AS h\n    Scan t1\n=> h:int, COUNT(*):int"
    );
}

#[test]
fn having_may_name_a_select_alias() {
    let a = prepare(
        "SELECT g, COUNT(DISTINCT v) AS n FROM t1 GROUP BY g HAVING n >= 2",
        &catalog(),
    )
    .unwrap();
    let b = prepare(
        "SELECT g, COUNT(DISTINCT v) AS n FROM t1 GROUP BY g HAVING COUNT(DISTINCT v) >= 2",
        &catalog(),
    )
    .unwrap();
    assert_eq!(a, b);
    // A column of that name wins (as in SQLite), and is not grouped.
    error(
        "SELECT g, SUM(v) AS v FROM t1 GROUP BY g HAVING v > 1",
        1,
        49,
        "column v is neither in GROUP BY",
    );
}

#[test]
fn order_by_names_positions_and_expressions() {
    let sql = "SELECT k AS x, v + 1, s FROM t1 ORDER BY x DESC, v+1, 3, s LIMIT 7";
    let q = prepare(sql, &catalog()).unwrap();
    assert_eq!(
        render(&q).lines().last().unwrap(),
        "=> x:int, v + 1:int, s:text ORDER #0 DESC ORDER #1 ORDER #2 ORDER #2 LIMIT 7"
    );
}

// ---------------------------------------------------------------------------
// Errors: one per kind, with the exact position of the culprit.

#[test]
fn syntax_errors_carry_the_parser_position() {
    error("SELECT k FROM t1 WHERE", 1, 23, "syntax error");
    error("SELECT k FROM t1\nWHERE v > > 1", 2, 11, "syntax error");
    error(
        "SELECT k FROM t1; SELECT k FROM t2",
        1,
        19,
        "only one statement",
    );
    error("", 1, 1, "no SQL statement");
    error("DELETE FROM t1", 1, 1, "only SELECT");
}

#[test]
fn unknown_names_suggest_candidates() {
    error(
        "SELECT k FROM t9",
        1,
        15,
        "unknown table t9 (did you mean t1?)",
    );
    error(
        "SELECT k\nFROM t1\nWHERE vv > 1",
        3,
        7,
        "unknown column vv (did you mean v?)",
    );
    error(
        "SELECT a.kk FROM t1 a",
        1,
        8,
        "unknown column a.kk (did you mean k?)",
    );
    error("SELECT x.k FROM t1 a", 1, 8, "unknown table or alias x");
    error(
        "SELECT k FROM t1 a JOIN t2 b ON a.k = b.k",
        1,
        8,
        "column k is ambiguous: it could be a.k or b.k",
    );
    error("SELECT z.* FROM t1", 1, 8, "unknown table z in z.*");
}

#[test]
fn types_must_agree() {
    error(
        "SELECT k FROM t1 WHERE d = 3",
        1,
        28,
        "expected a date value here, found the number 3",
    );
    error(
        "SELECT k FROM t1 WHERE d = v",
        1,
        24,
        "comparison of date and int",
    );
    error(
        "SELECT d + 1 FROM t1",
        1,
        8,
        "arithmetic (+) needs int, this is date",
    );
    error(
        "SELECT k FROM t1 WHERE s < 'b'",
        1,
        24,
        "text can only be compared with = and <>",
    );
    error(
        "SELECT k FROM t1 WHERE d > '2024-02-30'",
        1,
        28,
        "'2024-02-30' is not a date",
    );
    error(
        "SELECT k FROM t1 WHERE p = '811228-9875'",
        1,
        28,
        "not a valid identity number",
    );
    error(
        "SELECT k FROM t1 WHERE s = 'abcdefghijklmnopqrstuvwxyz0123456789'",
        1,
        28,
        "at most 32",
    );
    error("SELECT k FROM t1 WHERE b = 2", 1, 28, "2 is not a bool");
    error(
        "SELECT k FROM t1 WHERE v",
        1,
        24,
        "a condition must be true or false",
    );
    error(
        "SELECT k FROM t1 WHERE v IN (1, 'a')",
        1,
        33,
        "expected a int value here",
    );
    error(
        "SELECT CASE WHEN b THEN v ELSE d END FROM t1",
        1,
        32,
        "CASE results must have one type",
    );
}

#[test]
fn no_nulls_in_rows() {
    error(
        "SELECT CASE WHEN b THEN 1 END FROM t1",
        1,
        8,
        "CASE needs an ELSE",
    );
    error(
        "SELECT k FROM t1 WHERE v = NULL",
        1,
        28,
        "NULL is not supported",
    );
    error(
        "SELECT k FROM t1 WHERE v IS NULL",
        1,
        24,
        "IS [NOT] NULL is not supported",
    );
    error(
        "SELECT k FROM t1 LEFT JOIN t2 ON t1.k = t2.k",
        1,
        28,
        "only inner joins are supported",
    );
}

#[test]
fn aggregates_follow_the_rules() {
    error(
        "SELECT g, v, COUNT(*) FROM t1 GROUP BY g",
        1,
        11,
        "column v is neither in GROUP BY nor inside an aggregate",
    );
    error("SELECT AVG(v) FROM t1", 1, 8, "compute SUM and COUNT");
    error(
        "SELECT SUM(b) FROM t1",
        1,
        12,
        "SUM(CASE WHEN x THEN 1 ELSE 0 END)",
    );
    error(
        "SELECT MAX(s) FROM t1",
        1,
        12,
        "MAX of text is not supported",
    );
    error(
        "SELECT k FROM t1 WHERE SUM(v) > 1",
        1,
        24,
        "filter on aggregates with HAVING",
    );
    error(
        "SELECT SUM(DISTINCT v) FROM t1",
        1,
        8,
        "only COUNT(DISTINCT ..)",
    );
    error("SELECT SUM(COUNT(v)) FROM t1", 1, 12, "cannot be nested");
    error(
        "SELECT g, COUNT(*) FROM t1 GROUP BY 3",
        1,
        37,
        "GROUP BY position 3 is out of range",
    );
}

#[test]
fn subqueries_only_as_conjuncts() {
    error(
        "SELECT k FROM t1 WHERE v > 1 OR EXISTS (SELECT 1 FROM t2)",
        1,
        41,
        "rewrite an OR of subqueries as a UNION",
    );
    error(
        "SELECT k FROM t1 WHERE k IN (SELECT k, w FROM t2)",
        1,
        30,
        "must select exactly one column",
    );
    error(
        "SELECT k FROM t1 WHERE d IN (SELECT w FROM t2)",
        1,
        24,
        "IN compares date with a subquery of int",
    );
    error(
        "SELECT k FROM (SELECT k FROM t1 ORDER BY k) x",
        1,
        42,
        "ORDER BY inside a subquery",
    );
}

#[test]
fn unsupported_sql_says_what_to_write() {
    error(
        "SELECT k FROM t1 a JOIN t2 b USING (k) JOIN t3 USING (p)",
        1,
        55,
        "several tables on the left have a column p",
    );
    error(
        "SELECT k FROM t1 JOIN t3 USING (k)",
        1,
        33,
        "the joined table has no column k",
    );
    error(
        "SELECT k FROM t1 NATURAL JOIN t2",
        1,
        31,
        "NATURAL JOIN is not supported",
    );
    error(
        "SELECT k FROM t1 JOIN t3 USING (n)",
        1,
        33,
        "no table on the left has a column n",
    );
    error(
        "SELECT v / 2 FROM t1",
        1,
        8,
        "divide after the result is released",
    );
    error(
        "SELECT abs(v) FROM t1",
        1,
        8,
        "function abs is not supported",
    );
    error("SELECT 1", 1, 1, "SELECT without FROM");
    error(
        "WITH x AS (SELECT k FROM t1) SELECT k FROM x",
        1,
        1,
        "WITH (common table expressions) is not supported",
    );
    error(
        "SELECT k FROM t1 EXCEPT SELECT k FROM t2",
        1,
        25,
        "EXCEPT is not supported",
    );
    error(
        "SELECT k FROM t1 UNION SELECT k, w FROM t2",
        1,
        24,
        "have 1 and 2 columns",
    );
    error(
        "SELECT k FROM t1 UNION SELECT d FROM t2",
        1,
        24,
        "UNION column 1 is int",
    );
    error(
        "SELECT k FROM t1 LIMIT -1",
        1,
        24,
        "non-negative whole number",
    );
    error(
        "SELECT k FROM t1 LIMIT 2 OFFSET 1",
        1,
        33,
        "OFFSET is not supported",
    );
    error(
        "SELECT k FROM t1 ORDER BY v",
        1,
        27,
        "ORDER BY v: not an output column",
    );
    error(
        "SELECT k FROM t1 ORDER BY 2",
        1,
        27,
        "ORDER BY position 2 is out of range",
    );
}

// ---------------------------------------------------------------------------
// Robustness: mutated queries never panic the front end, and whatever it
// plans is a well-typed plan that the plaintext evaluator can run.

mod mutated {
    use super::*;
    use kuvert_data::{read_csv, CsvOptions, Date, Table};
    use kuvert_sql::plan::Field;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const BASES: &[&str] = &[
        "SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
        "SELECT h.hushall FROM (SELECT m.hushall AS hushall, COUNT(*) AS personer, SUM(i.belopp) AS inkomst FROM hushall m JOIN (SELECT pnr, SUM(inkomst) AS belopp FROM inkomst GROUP BY pnr) i ON m.pnr = i.pnr GROUP BY m.hushall) h WHERE h.inkomst < CASE WHEN h.personer = 1 THEN 150000 ELSE 240000 + 60000 * (h.personer - 2) END",
        "SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2) b GROUP BY pnr, manad HAVING COUNT(DISTINCT kommun) >= 2",
        "SELECT a.k, b.w, v + 1 FROM t1 a, t2 b WHERE a.p = b.p AND a.v < b.w AND NOT a.b ORDER BY 2 DESC, a.k LIMIT 4",
        "SELECT g, SUM(v) AS s, MIN(d), MAX(p) FROM t1 WHERE k IN (SELECT w FROM t2) AND s IN ('a', 'b') GROUP BY g HAVING COUNT(*) > 1",
        "SELECT DISTINCT k, CASE WHEN b THEN d ELSE '2024-01-02' END FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t3 c WHERE c.p = t1.p AND c.n > t1.v) UNION SELECT k, d FROM t2",
    ];

    /// Replacement words: names (right and wrong), literals of every type,
    /// operators, keywords.
    const WORDS: &[&str] = &[
        "k",
        "v",
        "g",
        "d",
        "b",
        "s",
        "p",
        "a.k",
        "f.pnr",
        "e.fran",
        "h.personer",
        "pnr",
        "belopp",
        "w",
        "x",
        "1",
        "0",
        "-2",
        "'2024-01-01'",
        "'198112289874'",
        "'a'",
        "'Å'",
        "TRUE",
        "NULL",
        "=",
        "<>",
        "<",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "AND",
        "OR",
        "NOT",
        "IN",
        "(",
        ")",
        ",",
        "*",
        "COUNT(*)",
        "SUM(v)",
        "MIN(d)",
        "AVG(v)",
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "HAVING",
        "DISTINCT",
        "UNION",
        "ALL",
        "JOIN",
        "ON",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "EXISTS",
        "ORDER",
        "LIMIT",
        "AS",
        "t1",
        "t2",
        "ek",
    ];

    /// Edits on the whitespace-separated words of a query.
    #[derive(Debug, Clone)]
    enum Edit {
        Delete(usize),
        Replace(usize, usize),
        Insert(usize, usize),
        Swap(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            any::<usize>().prop_map(Edit::Delete),
            (any::<usize>(), 0..WORDS.len()).prop_map(|(a, w)| Edit::Replace(a, w)),
            (any::<usize>(), 0..WORDS.len()).prop_map(|(a, w)| Edit::Insert(a, w)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        ]
    }

    fn apply(base: &str, edits: &[Edit]) -> String {
        let mut w: Vec<&str> = base.split(' ').collect();
        for e in edits {
            let n = w.len().max(1);
            match *e {
                Edit::Delete(a) if !w.is_empty() => {
                    w.remove(a % n);
                }
                Edit::Replace(a, t) if !w.is_empty() => w[a % n] = WORDS[t],
                Edit::Insert(a, t) => w.insert(a % (w.len() + 1), WORDS[t]),
                Edit::Swap(a, b) if !w.is_empty() => w.swap(a % n, b % n),
                _ => {}
            }
        }
        w.join(" ")
    }

    fn tables() -> BTreeMap<String, Table> {
        let cat = catalog();
        let opts = CsvOptions {
            delimiter: b',',
            today: Date {
                year: 2026,
                month: 11,
                day: 23,
            },
        };
        let mut out = BTreeMap::new();
        for (name, schema) in &cat.tables {
            let mut csv = schema
                .columns()
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
                .join(",");
            csv.push('\n');
            for r in 0..4 {
                let cells: Vec<String> = schema
                    .columns()
                    .iter()
                    .map(|c| match c.ty {
                        ColumnType::Int => (r % 3).to_string(),
                        ColumnType::Bool => (r % 2 == 0).to_string(),
                        ColumnType::Date => format!("2024-01-0{}", r + 1),
                        ColumnType::Idnr => ["198112289874", "191212121212"][r % 2].to_string(),
                        ColumnType::Text => ["a", "b"][r % 2].to_string(),
                    })
                    .collect();
                csv.push_str(&cells.join(","));
                csv.push('\n');
            }
            let t = read_csv(csv.as_bytes(), name, schema, &opts).unwrap();
            out.insert(name.clone(), t);
        }
        out
    }

    fn check_expr(e: &Expr, f: &[Field]) -> Result<ColumnType, String> {
        Ok(match e {
            Expr::Column(i) => f.get(*i).ok_or(format!("column #{i} of {}", f.len()))?.ty,
            Expr::Const(c) => {
                if c.words.len() != c.ty.words() {
                    return Err(format!("constant of {} with {} words", c.ty, c.words.len()));
                }
                c.ty
            }
            Expr::Binary { op, left, right } => {
                let (l, r) = (check_expr(left, f)?, check_expr(right, f)?);
                if l != r {
                    return Err(format!("{op:?} of {l} and {r}"));
                }
                match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul if l == ColumnType::Int => ColumnType::Int,
                    BinOp::And | BinOp::Or if l == ColumnType::Bool => ColumnType::Bool,
                    BinOp::Eq | BinOp::Ne => ColumnType::Bool,
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge if l != ColumnType::Text => {
                        ColumnType::Bool
                    }
                    _ => return Err(format!("{op:?} of {l}")),
                }
            }
            Expr::Not(x) => match check_expr(x, f)? {
                ColumnType::Bool => ColumnType::Bool,
                t => return Err(format!("NOT of {t}")),
            },
            Expr::Neg(x) => match check_expr(x, f)? {
                ColumnType::Int => ColumnType::Int,
                t => return Err(format!("- of {t}")),
            },
            Expr::Case { whens, otherwise } => {
                let t = check_expr(otherwise, f)?;
                for (c, v) in whens {
                    if check_expr(c, f)? != ColumnType::Bool || check_expr(v, f)? != t {
                        return Err("ill-typed CASE".into());
                    }
                }
                t
            }
            Expr::InList { expr, list, .. } => {
                let t = check_expr(expr, f)?;
                if list.iter().any(|c| c.ty != t) {
                    return Err("IN list of another type".into());
                }
                ColumnType::Bool
            }
        })
    }

    fn check_plan(p: &Plan) -> Result<Vec<Field>, String> {
        let bool_over = |e: &Expr, f: &[Field]| match check_expr(e, f)? {
            ColumnType::Bool => Ok(()),
            t => Err(format!("condition of type {t}")),
        };
        let keys = |on: &[(usize, usize)], l: &[Field], r: &[Field]| {
            for &(a, b) in on {
                match (l.get(a), r.get(b)) {
                    (Some(x), Some(y)) if x.ty == y.ty => {}
                    _ => return Err(format!("bad key pair ({a}, {b})")),
                }
            }
            Ok(())
        };
        match p {
            Plan::Scan { .. } => {}
            Plan::Filter { input, predicate } => bool_over(predicate, &check_plan(input)?)?,
            Plan::Project { input, exprs } => {
                let f = check_plan(input)?;
                for (e, _) in exprs {
                    check_expr(e, &f)?;
                }
            }
            Plan::UnionAll { inputs } => {
                let first: Vec<ColumnType> = check_plan(&inputs[0])?.iter().map(|f| f.ty).collect();
                for i in inputs {
                    let t: Vec<ColumnType> = check_plan(i)?.iter().map(|f| f.ty).collect();
                    if t != first {
                        return Err("UNION branches differ".into());
                    }
                }
            }
            Plan::Join {
                left,
                right,
                on,
                residual,
            }
            | Plan::SemiJoin {
                probe: left,
                build: right,
                on,
                residual,
                ..
            } => {
                let (l, r) = (check_plan(left)?, check_plan(right)?);
                keys(on, &l, &r)?;
                let mut both = l;
                both.extend(r);
                if let Some(e) = residual {
                    bool_over(e, &both)?;
                }
            }
            Plan::Aggregate {
                input,
                group_by,
                aggs,
            } => {
                let f = check_plan(input)?;
                if group_by.iter().any(|&g| g >= f.len()) {
                    return Err("group column out of range".into());
                }
                for a in aggs {
                    let t = match a.arg {
                        None if a.func == AggFunc::Count => continue,
                        None => return Err(format!("{:?} without argument", a.func)),
                        Some(i) => f.get(i).ok_or("aggregate argument out of range")?.ty,
                    };
                    let ok = match a.func {
                        AggFunc::Count | AggFunc::CountDistinct => true,
                        AggFunc::Sum => t == ColumnType::Int,
                        AggFunc::Min | AggFunc::Max => t != ColumnType::Text,
                    };
                    if !ok {
                        return Err(format!("{:?} of {t}", a.func));
                    }
                }
            }
        }
        Ok(p.fields())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_and_plans_are_well_typed(
            base in 0..BASES.len(),
            edits in prop::collection::vec(edit(), 1..3),
        ) {
            let sql = apply(BASES[base], &edits);
            let planned = prepare(&sql, &catalog());
            if let Err(e) = &planned {
                // Every error points somewhere in the SQL.
                prop_assert!(e.line >= 1 && e.column >= 1, "{}: {:?}", sql, e);
                let lines: Vec<&str> = sql.split('\n').collect();
                prop_assert!(e.line as usize <= lines.len(), "{}: {:?}", sql, e);
            }
            if let Ok(q) = planned {
                let f = check_plan(&q.root).map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
                prop_assert!(q.order_by.iter().all(|k| k.column < f.len()), "{}", sql);
                let rows = kuvert_sql::plain::evaluate(&q, &tables())
                    .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
                for r in &rows {
                    prop_assert_eq!(r.len(), f.len());
                    kuvert_sql::plain::format_row(&f, r);
                }
            }
        }
    }

    #[test]
    fn the_bases_plan() {
        for b in BASES {
            let q = prepare(b, &catalog()).unwrap_or_else(|e| panic!("{b}: {e}"));
            check_plan(&q.root).unwrap();
        }
    }
}
