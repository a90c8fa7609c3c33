//! The de-identification pipeline: validate, drop, suppress, randomise,
//! generalise to meet the privacy models, pseudonymise.

use crate::config::{Config, Distribution, IdnrMode, SuppressedRows};
use crate::error::{DeidError, Result};
use crate::hierarchy::{auto_spec, Hierarchy, HierarchySpec, STAR};
use crate::pseudo::{Keys, Method};
use crate::search::{Loss, Problem, Progress, SearchResult};
use crate::table::{Column, Table};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use std::collections::HashMap;

/// The chosen generalisation of one quasi-identifier.
#[derive(Debug, Clone, Serialize)]
pub struct QiLevel {
    /// Column.
    pub column: String,
    /// Chosen level (0 = original values).
    pub level: usize,
    /// Highest level (`*`).
    pub max_level: usize,
    /// Distinct values at the chosen level.
    pub distinct_values: usize,
    /// A few example labels at the chosen level.
    pub examples: Vec<String>,
    /// The hierarchy used (auto or configured).
    pub hierarchy: HierarchySpec,
}

/// What `deid` did, for the summary and `--report-json`.
#[derive(Debug, Clone, Serialize)]
pub struct DeidReport {
    /// Rows read.
    pub rows_in: usize,
    /// Rows written.
    pub rows_out: usize,
    /// Rows held out as control set (not de-identified).
    pub rows_held_out: usize,
    /// Rows removed by `suppress_records` rules.
    pub records_removed_by_rule: usize,
    /// Rows suppressed by the privacy-model search.
    pub records_suppressed: u64,
    /// Cells set to `*` by `suppress_cells` rules.
    pub cells_suppressed: usize,
    /// Columns dropped.
    pub columns_dropped: Vec<String>,
    /// Pseudonymised columns and method.
    pub pseudonymized: Vec<(String, Method)>,
    /// Identity numbers normalised before pseudonymisation.
    pub identity_numbers_normalised: usize,
    /// Columns with noise added.
    pub noise: Vec<String>,
    /// Columns swapped.
    pub swapped: Vec<String>,
    /// Privacy models.
    pub models: crate::models::Models,
    /// Largest suppression allowed (fraction).
    pub max_suppression: f64,
    /// Chosen levels.
    pub generalisation: Vec<QiLevel>,
    /// Information loss of the chosen node.
    pub loss: Option<Loss>,
    /// Loss measure minimised.
    pub loss_metric: crate::search::LossMetric,
    /// Equivalence classes in the output.
    pub classes: u64,
    /// Lattice size.
    pub lattice_size: u64,
    /// Lattice nodes evaluated with a pass over all distinct tuples.
    pub nodes_evaluated: u64,
    /// Further lattice nodes evaluated exactly by rolling up the classes of
    /// an evaluated node (see `search::SearchResult::nodes_rolled_up`).
    pub nodes_rolled_up: u64,
    /// Whether the optimum is proven (monotone models and search finished).
    pub optimal_guaranteed: bool,
    /// Whether the search stopped at its time budget (result valid, optimality not proven).
    pub search_stopped_early: bool,
    /// Seconds spent in the search.
    pub search_seconds: f64,
}

/// Output of [`run`].
pub struct DeidOutput {
    /// The released table.
    pub table: Table,
    /// The held-out control rows, if requested.
    pub holdout: Option<Table>,
    /// What was done.
    pub report: DeidReport,
}

/// Options that are not part of the configuration file.
pub struct RunOptions<'a> {
    /// Keys for pseudonymisation (required if any column is pseudonymised).
    pub keys: Option<&'a Keys>,
    /// Fraction of rows to hold out as a control set before de-identifying.
    pub holdout_fraction: f64,
    /// Progress of the lattice search.
    pub progress: &'a mut dyn FnMut(Progress),
}

fn rng_for(cfg: &Config) -> ChaCha20Rng {
    match cfg.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_rng(rand::rngs::OsRng).unwrap_or_else(|_| {
            // OsRng failing is an OS fault; fall back to fresh entropy from the thread RNG.
            ChaCha20Rng::from_seed(rand::thread_rng().gen())
        }),
    }
}

fn rebuild(values: impl Iterator<Item = String>) -> Column {
    let v: Vec<String> = values.collect();
    Column::from_values(&v)
}

/// Validate identity numbers of column `c`; returns normalised values per code.
fn idnr_codes(table: &Table, c: usize, mode: IdnrMode) -> Result<Option<Vec<String>>> {
    let col = &table.columns[c];
    let use_it = match mode {
        IdnrMode::No => false,
        IdnrMode::Yes => true,
        IdnrMode::Auto => col
            .codes
            .iter()
            .map(|&x| col.dict[x as usize].trim())
            .find(|v| !v.is_empty())
            .map(crate::idnr::looks_like)
            .unwrap_or(false),
    };
    if !use_it {
        return Ok(None);
    }
    let today = crate::date::today();
    let mut out = Vec::with_capacity(col.dict.len());
    let mut bad: Vec<(usize, String)> = Vec::new();
    for (code, v) in col.dict.iter().enumerate() {
        if v.trim().is_empty() {
            out.push(String::new());
            continue;
        }
        match crate::idnr::parse_at(v, today) {
            Ok(id) => out.push(id.as_str().to_string()),
            Err(e) => {
                bad.push((code, e.to_string()));
                out.push(String::new());
            }
        }
    }
    if bad.is_empty() {
        return Ok(Some(out));
    }
    // Report the first bad row in file order, and how many more there are.
    let bad_codes: HashMap<usize, String> = bad.into_iter().collect();
    let mut rows = col
        .codes
        .iter()
        .enumerate()
        .filter(|(_, &x)| bad_codes.contains_key(&(x as usize)));
    let count = rows.clone().count();
    let (r, &x) = rows
        .next()
        .ok_or_else(|| DeidError::Config("internal: bad code without row".into()))?;
    let more = if count > 1 {
        format!(
            " ({} more invalid identity numbers in this column)",
            count - 1
        )
    } else {
        String::new()
    };
    Err(table.bad_value(
        r,
        c,
        format!(
            "`{}`: {}{more}; correct it, or set `idnr = \"no\"` for column `{}` if it does not hold identity numbers",
            col.dict[x as usize], bad_codes[&(x as usize)], table.headers[c]
        ),
    ))
}

/// Run the pipeline on `table`.
pub fn run(mut table: Table, cfg: &Config, opts: RunOptions<'_>) -> Result<DeidOutput> {
    let rows_in = table.nrows();
    let mut rng = rng_for(cfg);
    // Check every named column exists, and that roles do not collide.
    for name in cfg
        .quasi
        .iter()
        .chain(cfg.sensitive.iter())
        .chain(cfg.drop.iter())
        .chain(cfg.pseudonymize.iter().map(|p| &p.column))
        .chain(cfg.suppress_cells.iter().map(|p| &p.column))
        .chain(cfg.suppress_records.iter().map(|p| &p.column))
        .chain(cfg.noise.iter().map(|p| &p.column))
        .chain(cfg.swap.iter().map(|p| &p.column))
        .chain(cfg.hierarchy.keys())
    {
        table.col_index(name)?;
    }
    for p in &cfg.pseudonymize {
        if cfg.quasi.contains(&p.column) || cfg.sensitive.as_ref() == Some(&p.column) {
            return Err(DeidError::Config(format!(
                "column `{}` is both pseudonymised and a quasi-identifier/sensitive column; a pseudonym is a direct identifier, so pseudonymise it or generalise it, not both",
                p.column
            )));
        }
        if cfg.drop.contains(&p.column) {
            return Err(DeidError::Config(format!(
                "column `{}` is both dropped and pseudonymised",
                p.column
            )));
        }
    }
    for d in &cfg.drop {
        if cfg.quasi.contains(d) || cfg.sensitive.as_ref() == Some(d) {
            return Err(DeidError::Config(format!(
                "column `{d}` is both dropped and a quasi-identifier/sensitive column"
            )));
        }
    }
    if cfg.models.needs_sensitive() && cfg.sensitive.is_none() {
        return Err(DeidError::Config(
            "l-diversity and t-closeness need a sensitive column (--sensitive COL)".into(),
        ));
    }
    if let Some(l) = cfg.models.l {
        if l < 1.0 {
            return Err(DeidError::Config(format!("l must be at least 1, got {l}")));
        }
    }
    if let Some(t) = cfg.models.t {
        if !(0.0..=1.0).contains(&t) {
            return Err(DeidError::Config(format!(
                "t must be between 0 and 1, got {t}"
            )));
        }
    }
    if !cfg.pseudonymize.is_empty() && opts.keys.is_none() {
        return Err(DeidError::Config(
            "pseudonymisation needs a key file: create one with `kuvert deid keygen --out FILE` and pass --key-file FILE".into(),
        ));
    }
    // 1. Validate identity numbers before anything else.
    let mut idnr_norm: HashMap<usize, Vec<String>> = HashMap::new();
    for p in &cfg.pseudonymize {
        let c = table.col_index(&p.column)?;
        if let Some(v) = idnr_codes(&table, c, p.idnr)? {
            idnr_norm.insert(c, v);
        }
    }
    // 2. Hold out a control set.
    let mut holdout = None;
    if opts.holdout_fraction > 0.0 {
        if opts.holdout_fraction >= 1.0 {
            return Err(DeidError::Config(
                "the hold-out fraction must be below 1".into(),
            ));
        }
        let keep: Vec<bool> = (0..table.nrows())
            .map(|_| rng.gen::<f64>() >= opts.holdout_fraction)
            .collect();
        let mut h = table.clone();
        h.filter_rows(&keep.iter().map(|k| !k).collect::<Vec<_>>());
        table.filter_rows(&keep);
        holdout = Some(h);
    }
    let rows_held_out = holdout.as_ref().map(|h| h.nrows()).unwrap_or(0);
    // 3. Record suppression by rule.
    let mut keep = vec![true; table.nrows()];
    for rule in &cfg.suppress_records {
        let c = table.col_index(&rule.column)?;
        let col = &table.columns[c];
        let bad: Vec<bool> = col
            .dict
            .iter()
            .map(|v| rule.values.iter().any(|x| x == v))
            .collect();
        for (k, &x) in keep.iter_mut().zip(&col.codes) {
            if bad[x as usize] {
                *k = false;
            }
        }
    }
    let records_removed_by_rule = keep.iter().filter(|k| !**k).count();
    if records_removed_by_rule > 0 {
        table.filter_rows(&keep);
    }
    // 4. Randomisation.
    for spec in &cfg.noise {
        if !(spec.scale.is_finite() && spec.scale >= 0.0) {
            return Err(DeidError::Config(format!(
                "noise scale for `{}` must be a non-negative number",
                spec.column
            )));
        }
        let c = table.col_index(&spec.column)?;
        let col = &table.columns[c];
        let mut nums = Vec::with_capacity(col.dict.len());
        for (i, v) in col.dict.iter().enumerate() {
            if v.trim().is_empty() || v.trim() == STAR {
                nums.push(None);
                continue;
            }
            match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => nums.push(Some(x)),
                _ => {
                    let r = col.codes.iter().position(|&x| x as usize == i).unwrap_or(0);
                    return Err(table.bad_value(
                        r,
                        c,
                        format!(
                            "`{v}` is not a number, but noise is configured for column `{}`",
                            spec.column
                        ),
                    ));
                }
            }
        }
        let factor = 10f64.powi(spec.decimals as i32);
        let codes = col.codes.clone();
        let dict = col.dict.clone();
        let new = rebuild(codes.iter().map(|&x| match nums[x as usize] {
            None => dict[x as usize].clone(),
            Some(v) => {
                let e = match spec.distribution {
                    Distribution::Laplace => {
                        let u: f64 = rng.gen::<f64>() - 0.5;
                        -spec.scale * u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln()
                    }
                    Distribution::Gaussian => {
                        let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
                        let u2: f64 = rng.gen();
                        spec.scale
                            * (-2.0 * u1.ln()).sqrt()
                            * (2.0 * std::f64::consts::PI * u2).cos()
                    }
                };
                let y = ((v + e) * factor).round() / factor;
                format!("{:.*}", spec.decimals as usize, y)
            }
        }));
        table.columns[c] = new;
    }
    for spec in &cfg.swap {
        if !(0.0..=1.0).contains(&spec.fraction) {
            return Err(DeidError::Config(format!(
                "swap fraction for `{}` must be between 0 and 1",
                spec.column
            )));
        }
        let c = table.col_index(&spec.column)?;
        let n = table.nrows();
        let mut idx: Vec<usize> = (0..n).collect();
        // Choose the rows that take part, then permute their values.
        for i in 0..n {
            let j = rng.gen_range(i..n);
            idx.swap(i, j);
        }
        let m = ((spec.fraction * n as f64).round() as usize).min(n);
        let chosen = &idx[..m];
        let vals: Vec<u32> = chosen.iter().map(|&r| table.columns[c].codes[r]).collect();
        let mut perm: Vec<usize> = (0..m).collect();
        for i in 0..m {
            let j = rng.gen_range(i..m);
            perm.swap(i, j);
        }
        for (k, &r) in chosen.iter().enumerate() {
            table.columns[c].codes[r] = vals[perm[k]];
        }
    }
    // 5. Cell suppression.
    let mut cells_suppressed = 0usize;
    for rule in &cfg.suppress_cells {
        let c = table.col_index(&rule.column)?;
        let col = &table.columns[c];
        let counts = col.counts();
        let bad: Vec<bool> = col
            .dict
            .iter()
            .zip(&counts)
            .map(|(v, &k)| rule.values.iter().any(|x| x == v) || k < rule.min_count)
            .collect();
        cells_suppressed += col.codes.iter().filter(|&&x| bad[x as usize]).count();
        let new = rebuild(col.codes.iter().map(|&x| {
            if bad[x as usize] {
                STAR.to_string()
            } else {
                col.dict[x as usize].clone()
            }
        }));
        table.columns[c] = new;
    }
    // 6. Privacy models by generalisation and suppression.
    let mut report_gen = Vec::new();
    let mut search: Option<SearchResult> = None;
    let mut search_seconds = 0.0;
    if !cfg.quasi.is_empty() {
        let qcols: Vec<usize> = cfg
            .quasi
            .iter()
            .map(|q| table.col_index(q))
            .collect::<Result<_>>()?;
        let mut specs = Vec::new();
        let mut hier = Vec::new();
        for &c in &qcols {
            let spec = cfg
                .hierarchy
                .get(&table.headers[c])
                .cloned()
                .unwrap_or_else(|| auto_spec(&table.columns[c]));
            hier.push(Hierarchy::build(&table, c, &spec, &cfg.base_dir)?);
            specs.push(spec);
        }
        let sens = match &cfg.sensitive {
            Some(s) => Some(table.col_index(s)?),
            None => None,
        };
        let codes: Vec<&[u32]> = qcols
            .iter()
            .map(|&c| table.columns[c].codes.as_slice())
            .collect();
        let sensitive = sens.map(|s| {
            (
                table.columns[s].codes.as_slice(),
                table.columns[s].dict.as_slice(),
            )
        });
        let t0 = std::time::Instant::now();
        let problem = Problem::new(
            &hier,
            &codes,
            sensitive,
            cfg.models.clone(),
            cfg.max_suppression,
        )?;
        let res = problem.search(cfg.loss, cfg.max_search_seconds, opts.progress)?;
        search_seconds = t0.elapsed().as_secs_f64();
        // Apply: generalise the quasi-identifiers, then suppress.
        for (qi, ((&c, h), spec)) in qcols.iter().zip(&hier).zip(specs).enumerate() {
            let l = res.levels[qi];
            let col = &table.columns[c];
            let new = Column {
                dict: h.labels[l].clone(),
                codes: col.codes.iter().map(|&x| h.maps[l][x as usize]).collect(),
            };
            report_gen.push(QiLevel {
                column: table.headers[c].clone(),
                level: l,
                max_level: h.levels() - 1,
                distinct_values: h.cardinality(l),
                examples: h.labels[l].iter().take(3).cloned().collect(),
                hierarchy: spec,
            });
            table.columns[c] = new;
        }
        match cfg.suppressed_rows {
            SuppressedRows::Remove => table.filter_rows(&res.row_kept),
            SuppressedRows::Mask => {
                for &c in &qcols {
                    let col = &mut table.columns[c];
                    let star = match col.dict.iter().position(|d| d == STAR) {
                        Some(i) => i as u32,
                        None => {
                            col.dict.push(STAR.to_string());
                            (col.dict.len() - 1) as u32
                        }
                    };
                    for (x, &k) in col.codes.iter_mut().zip(&res.row_kept) {
                        if !k {
                            *x = star;
                        }
                    }
                }
            }
        }
        search = Some(res);
    }
    // 7. Pseudonymisation.
    let mut pseudonymized = Vec::new();
    let mut identity_numbers_normalised = 0;
    for p in &cfg.pseudonymize {
        let keys = opts
            .keys
            .ok_or_else(|| DeidError::Config("pseudonymisation needs --key-file".into()))?;
        let c = table.col_index(&p.column)?;
        let col = &table.columns[c];
        let norm = idnr_norm.get(&c);
        if norm.is_some() {
            identity_numbers_normalised += col.codes.len();
        }
        let dict: Vec<String> = col
            .dict
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let v = norm.map(|n| n[i].as_str()).unwrap_or(v.as_str());
                if v.is_empty() {
                    String::new()
                } else {
                    keys.pseudonymize(p.method, &p.domain, v)
                }
            })
            .collect();
        // Different written forms of one number share a pseudonym: re-intern.
        let new = rebuild(col.codes.iter().map(|&x| dict[x as usize].clone()));
        table.columns[c] = new;
        pseudonymized.push((p.column.clone(), p.method));
    }
    // 8. Drop columns.
    for d in &cfg.drop {
        let c = table.col_index(d)?;
        table.drop_column(c);
    }
    let report = DeidReport {
        rows_in,
        rows_out: table.nrows(),
        rows_held_out,
        records_removed_by_rule,
        records_suppressed: search.as_ref().map(|s| s.suppressed).unwrap_or(0),
        cells_suppressed,
        columns_dropped: cfg.drop.clone(),
        pseudonymized,
        identity_numbers_normalised,
        noise: cfg.noise.iter().map(|n| n.column.clone()).collect(),
        swapped: cfg.swap.iter().map(|n| n.column.clone()).collect(),
        models: cfg.models.clone(),
        max_suppression: cfg.max_suppression,
        generalisation: report_gen,
        loss: search.as_ref().map(|s| s.loss),
        loss_metric: cfg.loss,
        classes: search.as_ref().map(|s| s.classes).unwrap_or(0),
        lattice_size: search.as_ref().map(|s| s.lattice_size).unwrap_or(0),
        nodes_evaluated: search.as_ref().map(|s| s.nodes_evaluated).unwrap_or(0),
        nodes_rolled_up: search.as_ref().map(|s| s.nodes_rolled_up).unwrap_or(0),
        optimal_guaranteed: search
            .as_ref()
            .map(|s| s.optimal_guaranteed)
            .unwrap_or(true),
        search_stopped_early: search.as_ref().map(|s| s.stopped_early).unwrap_or(false),
        search_seconds,
    };
    Ok(DeidOutput {
        table,
        holdout,
        report,
    })
}

/// Decrypt the SIV pseudonyms of `column` in place (`kuvert deid reidentify`).
pub fn reidentify(table: &mut Table, column: &str, domain: &str, keys: &Keys) -> Result<()> {
    let c = table.col_index(column)?;
    let col = &table.columns[c];
    let mut dict = Vec::with_capacity(col.dict.len());
    for (i, v) in col.dict.iter().enumerate() {
        if v.is_empty() {
            dict.push(String::new());
            continue;
        }
        match keys.decrypt(domain, v) {
            Some(p) => dict.push(p),
            None => {
                let r = col.codes.iter().position(|&x| x as usize == i).unwrap_or(0);
                return Err(DeidError::Decrypt {
                    path: table.source.clone(),
                    line: table.lines.get(r).copied().unwrap_or(0),
                    column: c + 1,
                });
            }
        }
    }
    table.columns[c] = rebuild(col.codes.iter().map(|&x| dict[x as usize].clone()));
    Ok(())
}
