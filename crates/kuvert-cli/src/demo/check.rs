//! `kuvert demo`'s checks of what the recipients opened: every output
//! against SQLite on the cleartext inputs (which only the demo machine
//! has).
//!
//! - An exact output (no `WITH PRIVACY`) must be the same row set as
//!   SQLite's answer to the template's own SQL.
//! - A differentially private output (`... WITH PRIVACY (...)`) carries
//!   distributed Skellam noise added by the nodes under MPC. SQLite runs
//!   the SQL without its clause for the exact answer; every noisy cell must
//!   lie within [`SIGMAS`] standard deviations of the exact one, the
//!   standard deviation following from ε, δ and the sensitivities
//!   (`max_rows`, `lo`, `hi`) exactly as the nodes calibrate it
//!   (`kuvert_sql::privacy::sensitivities`,
//!   `kuvert_dp::accounting::skellam_variances_for`, three nodes' noise
//!   in the released value: `DistributedSkellam::KUVERT`). And the answer
//!   must not equal the exact one in every cell (no noise at all).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use kuvert_data::{CsvOptions, Schema, Table};
use kuvert_examples::sqlite::Oracle;

/// How many standard deviations a noisy cell may be from the exact value.
///
/// Skellam noise of variance V (a difference of two Poisson variables)
/// has Bernstein tails, P(|X| ≥ t) ≤ 2·exp(−t² / (2(V + t/3))); at
/// t = 7·√V and the variances of the templates (V in the hundreds and
/// more) that is below 10⁻¹⁰ per cell, so a correct run fails this check
/// with negligible probability, while missing noise (see
/// [`Verdict::NoNoise`]) or noise of the wrong scale (off by a factor of
/// ten or more) is caught.
pub(super) const SIGMAS: f64 = 7.0;

/// One input table of the analysis, on the contributor's side.
pub(super) struct Input {
    pub table: String,
    pub contributor: String,
    pub schema: Schema,
    pub path: PathBuf,
}

/// One output as the recipient opened it: header and rows of cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Opened {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The cleartext side: SQLite over the inputs, and the same tables
/// encoded for the DP calibration.
pub(super) struct Reference {
    oracle: Oracle,
    tables: BTreeMap<String, Table>,
    catalog: kuvert_sql::Catalog,
}

/// The outcome of one output's check.
pub(super) enum Verdict {
    /// Exact output, same row set as SQLite.
    Same,
    /// Exact output that differs from SQLite.
    Differs { got: usize, want: usize },
    /// DP output within the bound; `sigma` per noisy column, the largest
    /// deviation in standard deviations.
    WithinNoise {
        sigma: Vec<(String, f64)>,
        worst: f64,
    },
    /// DP output with a cell beyond the bound, or of another shape.
    OutsideNoise(String),
    /// DP output equal to the exact answer in every cell: no noise added.
    /// `p` bounds the probability of that with correct noise.
    NoNoise { cells: usize, p: f64 },
    /// The inputs break the output's contribution bounds, so the plain SQL
    /// answer is not what the DP query computes before noise.
    BoundsBind(String),
}

impl Verdict {
    pub fn agrees(&self) -> bool {
        matches!(self, Verdict::Same | Verdict::WithinNoise { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Verdict::Same => "same as SQLite on the cleartext inputs".into(),
            Verdict::Differs { got, want } => format!(
                "DIFFERS FROM SQLite ({got} rows opened, SQLite has {want}; both sorted and compared row by row)"
            ),
            Verdict::WithinNoise { sigma, worst } => format!(
                "within the noise bound of SQLite's exact answer (every cell within {SIGMAS} σ; σ {}; \
                 largest deviation {worst:.2} σ)",
                sigma
                    .iter()
                    .map(|(c, s)| format!("{c} {s:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Verdict::OutsideNoise(why) => format!("OUTSIDE THE NOISE BOUND: {why}"),
            Verdict::NoNoise { cells, p } => format!(
                "NO NOISE: all {cells} noisy cells equal SQLite's exact answer (probability at most \
                 {p:.1e} with the declared noise); the nodes did not add the WITH PRIVACY noise"
            ),
            Verdict::BoundsBind(why) => format!(
                "NOT CHECKED: the inputs break the output's contribution bounds ({why}); generate \
                 inputs within max_rows, lo and hi (kuvert_examples::gen::generate_with_pnr keeps them)"
            ),
        }
    }
}

impl Reference {
    /// Load every input into SQLite and (encoded) for the DP calibration.
    pub fn load(inputs: &[Input]) -> anyhow::Result<Reference> {
        let list: Vec<(String, Schema, PathBuf)> = inputs
            .iter()
            .map(|i| (i.table.clone(), i.schema.clone(), i.path.clone()))
            .collect();
        let oracle = kuvert_examples::sqlite::load(&list)?;
        let mut tables = BTreeMap::new();
        let mut catalog = kuvert_sql::Catalog::new();
        for i in inputs {
            let t = kuvert_data::read_csv_file(&i.path, &i.schema, &CsvOptions::default())
                .with_context(|| {
                    format!("reading {} for the reference answer", i.path.display())
                })?;
            tables.insert(i.table.clone(), t);
            catalog.add(&i.table, i.schema.clone());
        }
        Ok(Reference {
            oracle,
            tables,
            catalog,
        })
    }

    /// Check `got`, the recipient's opened answer of the output with `sql`.
    pub fn check(&self, sql: &str, got: &Opened) -> anyhow::Result<Verdict> {
        match privacy_clause(sql) {
            None => {
                let want = self.oracle.query(sql)?.rows;
                let (mut want, mut have) = (want, got.rows.clone());
                want.sort();
                have.sort();
                Ok(if want == have {
                    Verdict::Same
                } else {
                    Verdict::Differs {
                        got: have.len(),
                        want: want.len(),
                    }
                })
            }
            Some(at) => self.check_private(sql, &sql[..at], got),
        }
    }

    fn check_private(&self, sql: &str, body: &str, got: &Opened) -> anyhow::Result<Verdict> {
        // SQLite's exact answer of the query without its clause.
        let exact = self.oracle.query(body)?.rows;
        // The nodes' view of the query: the clause's parameters, the
        // aggregates' sensitivities, the calibrated variances.
        let q = kuvert_sql::prepare(sql, &self.catalog)
            .map_err(|e| anyhow!("the template's DP output does not plan: {e}"))?;
        let pv = q
            .privacy
            .as_ref()
            .ok_or_else(|| anyhow!("WITH PRIVACY was not recognised in {sql:?}"))?;
        let sens = kuvert_sql::privacy::sensitivities(&q, pv);
        let names = kuvert_sql::privacy::aggregate_names(&q);
        let mus = kuvert_dp::accounting::skellam_variances_for(pv.epsilon, pv.delta, &sens)?;
        let overhead = kuvert_dp::distributed::DistributedSkellam::KUVERT.variance_overhead();
        let variances: Vec<f64> = mus.iter().map(|mu| mu * overhead).collect();
        let fields = q.fields();
        let n_aggs = sens.len();
        if n_aggs == 0 || fields.len() < n_aggs {
            return Ok(Verdict::OutsideNoise(
                "the DP query has no COUNT or SUM aggregate to check".into(),
            ));
        }
        let n_keys = fields.len() - n_aggs;
        // The capped and clamped answer before noise (one row per declared
        // group). The generated inputs keep the bounds, so it must be
        // SQLite's answer, with 0 for the groups SQLite has no row for.
        let bounded: Vec<Vec<String>> = kuvert_sql::plain::evaluate(&q, &self.tables)
            .map_err(|e| anyhow!("the DP output's noiseless answer: {e}"))?
            .iter()
            .map(|r| kuvert_sql::plain::format_row(&fields, r))
            .collect();
        let zero = |c: &String| {
            if c.is_empty() {
                "0".to_string()
            } else {
                c.clone()
            }
        };
        let sqlite: BTreeMap<Vec<String>, Vec<String>> = exact
            .iter()
            .map(|r| (r[..n_keys].to_vec(), r[n_keys..].iter().map(zero).collect()))
            .collect();
        let mut matched = 0;
        for r in &bounded {
            let key = r[..n_keys].to_vec();
            let aggs: Vec<String> = r[n_keys..].to_vec();
            match sqlite.get(&key) {
                Some(s) if *s == aggs => matched += 1,
                None if aggs.iter().all(|c| c == "0") => {}
                other => {
                    return Ok(Verdict::BoundsBind(format!(
                        "group {key:?}: SQLite {:?}, capped and clamped {aggs:?}",
                        other.cloned().unwrap_or_default()
                    )))
                }
            }
        }
        if matched != sqlite.len() {
            return Ok(Verdict::BoundsBind(format!(
                "SQLite has {} groups, of which {} are among the declared ones",
                sqlite.len(),
                matched
            )));
        }
        // The opened answer: the same groups in the same order, each noisy
        // cell within the bound.
        if got.rows.len() != bounded.len() {
            return Ok(Verdict::OutsideNoise(format!(
                "{} rows opened, the query declares {}",
                got.rows.len(),
                bounded.len()
            )));
        }
        let mut worst = 0f64;
        let mut identical = 0;
        for (g, w) in got.rows.iter().zip(&bounded) {
            if g.len() != w.len() || g[..n_keys] != w[..n_keys] {
                return Ok(Verdict::OutsideNoise(format!(
                    "row {g:?} opened where the group {:?} was expected",
                    &w[..n_keys]
                )));
            }
            for j in 0..n_aggs {
                let parse = |s: &str| {
                    s.parse::<i64>()
                        .map_err(|_| anyhow!("cell {s:?} of {} is no integer", names[j]))
                };
                let (noisy, exact) = (parse(&g[n_keys + j])?, parse(&w[n_keys + j])?);
                let sigma = variances[j].sqrt();
                let dev = (noisy - exact).abs() as f64 / sigma;
                worst = worst.max(dev);
                if dev > SIGMAS {
                    return Ok(Verdict::OutsideNoise(format!(
                        "{} = {noisy} in row {:?}, exact {exact}: {dev:.1} σ off (σ = {sigma:.1})",
                        names[j],
                        &g[..n_keys]
                    )));
                }
                if noisy == exact {
                    identical += 1;
                }
            }
        }
        let cells = got.rows.len() * n_aggs;
        if cells > 0 && identical == cells {
            // A Skellam variable of variance V is 0 with probability
            // e^{-V}·I₀(V) ≤ 1/√(πV) (√V·e^{-V}·I₀(V) peaks at about 0.47
            // near V = 1, below 1/√π ≈ 0.56), independently per cell, so
            // correct noise leaves every cell exact with probability at
            // most the product below: for the templates' variances (the
            // smallest, a COUNT's, is in the hundreds) and three or more
            // cells, under 10⁻³.
            let p: f64 = (0..cells)
                .map(|c| (1.0 / (std::f64::consts::PI * variances[c % n_aggs]).sqrt()).min(1.0))
                .product();
            return Ok(Verdict::NoNoise { cells, p });
        }
        Ok(Verdict::WithinNoise {
            sigma: names
                .iter()
                .zip(&variances)
                .map(|(n, v)| (n.clone(), v.sqrt()))
                .collect(),
            worst,
        })
    }
}

/// Where the `WITH PRIVACY` clause of `sql` starts, if it has one.
pub(super) fn privacy_clause(sql: &str) -> Option<usize> {
    let upper = sql.to_ascii_uppercase();
    let mut from = upper.len();
    // The last WITH followed (after white space) by PRIVACY.
    while let Some(at) = upper[..from].rfind("WITH") {
        if upper[at + 4..].trim_start().starts_with("PRIVACY") {
            return Some(at);
        }
        from = at;
    }
    None
}

/// Split a recipient's result file (`kuvert result`'s CSV) into its
/// outputs: one table as plain CSV, several each after `# output NAME`.
pub(super) fn split_outputs(
    text: &str,
    outputs: &[String],
) -> anyhow::Result<BTreeMap<String, Opened>> {
    let mut out = BTreeMap::new();
    if outputs.len() == 1 {
        out.insert(outputs[0].clone(), parse_csv(text)?);
        return Ok(out);
    }
    let mut name: Option<String> = None;
    let mut section = String::new();
    let mut flush = |name: &Option<String>, section: &mut String| -> anyhow::Result<()> {
        if let Some(n) = name {
            out.insert(n.clone(), parse_csv(section)?);
        }
        section.clear();
        Ok(())
    };
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("# output ") {
            flush(&name, &mut section)?;
            name = Some(n.trim().to_string());
        } else {
            section.push_str(line);
            section.push('\n');
        }
    }
    flush(&name, &mut section)?;
    for o in outputs {
        if !out.contains_key(o) {
            anyhow::bail!("the result has no output {o:?} (no `# output {o}` line)");
        }
    }
    Ok(out)
}

/// CSV with a header (quoted fields allowed, as `kuvert result` writes
/// text with a comma, quote or line break).
fn parse_csv(text: &str) -> anyhow::Result<Opened> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut rec: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => rec.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                rec.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut rec));
                any = false;
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        anyhow::bail!("the result CSV ends inside a quoted field");
    }
    if any {
        rec.push(cell);
        records.push(rec);
    }
    let mut it = records.into_iter();
    let header = it
        .next()
        .ok_or_else(|| anyhow!("the result CSV is empty (not even a header)"))?;
    Ok(Opened {
        header,
        rows: it.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's inputs, generated as the demo does, and the SQL of
    /// `output`.
    fn setup(template: &str, rows: usize, output: &str) -> (tempfile::TempDir, Reference, String) {
        let spec = kuvert_gov::templates::spec(template).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let inputs = super::super::write_template_inputs(&spec, rows, 3, tmp.path()).unwrap();
        let sql = spec
            .recipients
            .iter()
            .flat_map(|r| &r.outputs)
            .find(|o| o.name == output)
            .unwrap()
            .sql
            .clone();
        (tmp, Reference::load(&inputs).unwrap(), sql)
    }

    fn opened(r: &Reference, sql: &str) -> Opened {
        let a = r.oracle.query(sql).unwrap();
        Opened {
            header: a.columns,
            rows: a.rows,
        }
    }

    #[test]
    fn exact_outputs_must_be_sqlites_rows() {
        let (_tmp, r, sql) = setup("opt-out", 300, "rows");
        let mut got = opened(&r, &sql);
        assert!(got.rows.len() > 2);
        got.rows.reverse();
        assert!(matches!(r.check(&sql, &got).unwrap(), Verdict::Same));
        got.rows.pop();
        let v = r.check(&sql, &got).unwrap();
        assert!(!v.agrees() && v.describe().contains("DIFFERS"));
    }

    #[test]
    fn private_outputs_must_be_noisy_and_within_the_bound() {
        for output in ["national", "regions"] {
            let (_tmp, r, sql) = setup("quality-indicators", 200, output);
            let at = privacy_clause(&sql).unwrap();
            let exact = opened(&r, &sql[..at]);
            // Every region has episodes at 200 rows: SQLite's answer has
            // a row per declared group, like the nodes'.
            assert_eq!(exact.rows.len(), if output == "regions" { 21 } else { 1 });
            // No noise at all: refused.
            let v = r.check(&sql, &exact).unwrap();
            assert!(
                matches!(v, Verdict::NoNoise { p, .. } if p < 1e-3),
                "{}",
                v.describe()
            );
            // Less than one standard deviation on each noisy cell: within.
            let shift = |by: i64, only_first: bool| {
                let mut got = exact.clone();
                let keys = got.header.len() - 3;
                for (i, row) in got.rows.iter_mut().enumerate() {
                    for (c, cell) in row.iter_mut().enumerate().skip(keys) {
                        if only_first && (i > 0 || c > keys) {
                            continue;
                        }
                        let x: i64 = cell.parse().unwrap();
                        *cell = (x + by).to_string();
                    }
                }
                got
            };
            let v = r.check(&sql, &shift(20, false)).unwrap();
            assert!(v.agrees(), "{}", v.describe());
            // The count's σ is tens (ε ≤ 1, max_rows = 3): 1000 is far
            // beyond 7 σ.
            let v = r.check(&sql, &shift(1000, true)).unwrap();
            assert!(matches!(v, Verdict::OutsideNoise(_)), "{}", v.describe());
            // A missing row.
            let mut short = shift(20, false);
            short.rows.pop();
            assert!(!r.check(&sql, &short).unwrap().agrees());
        }
    }

    #[test]
    fn clause_and_outputs() {
        let sql =
            "SELECT COUNT(*) FROM t\n  WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr);";
        assert_eq!(
            &sql[..privacy_clause(sql).unwrap()],
            "SELECT COUNT(*) FROM t\n  "
        );
        assert_eq!(privacy_clause("WITH x AS (SELECT 1) SELECT * FROM x"), None);
        let one = split_outputs("a,b\n1,\"x,\"\"y\"\n", &["o".into()]).unwrap();
        assert_eq!(one["o"].header, vec!["a", "b"]);
        assert_eq!(one["o"].rows, vec![vec!["1".to_string(), "x,\"y".into()]]);
        let two = split_outputs(
            "# output r\nk,n\n1,5\n3,7\n# output n\nn\n12\n",
            &["r".into(), "n".into()],
        )
        .unwrap();
        assert_eq!(two["r"].rows.len(), 2);
        assert_eq!(two["n"].rows, vec![vec!["12".to_string()]]);
        assert!(split_outputs("# output r\nk\n", &["r".into(), "n".into()]).is_err());
        let empty = split_outputs("pnr\n", &["ids".into()]).unwrap();
        assert!(empty["ids"].rows.is_empty());
    }
}
