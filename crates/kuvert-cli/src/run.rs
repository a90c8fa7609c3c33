//! `kuvert run`: one SQL query over CSV files, answered by three local TLS
//! nodes under MPC. The work is in `kuvert_node::local` (nodes, upload,
//! query, reconstruction), `kuvert_node::infer` (column types) and
//! `kuvert_sql` (planning, EXPLAIN).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kuvert_data::{CsvOptions, Schema, Table};
use kuvert_node::local::LocalCluster;
use kuvert_node::wire::JobState;

/// `kuvert run --table NAME=PATH.csv ... --sql "SELECT ..."`
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuvert run --table fk=fk.csv --table ek=ek.csv \\
      --sql \"SELECT COUNT(*) AS n FROM fk WHERE pnr IN (SELECT pnr FROM ek)\"
  kuvert run --table a=a.csv --schema a=pnr:idnr,belopp:int \\
      --sql \"SELECT SUM(belopp) AS s FROM a\" --explain
  kuvert run --table a=a.csv --explain --sql \"SELECT kommun, COUNT(*) AS n FROM a GROUP BY kommun \\
      WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, groups = (1, 2, 3))\"

Exit status: 0 on success, 2 for bad input (SQL, CSV, schema, flags),
1 for anything else (the nodes' logs are shown).")]
#[derive(Clone)]
pub struct RunArgs {
    /// A table: its name in the SQL (a-z, 0-9, '_', '-') and its CSV file
    /// (header line first). Repeat for more tables.
    #[arg(
        long = "table",
        value_name = "NAME=PATH.csv",
        required_unless_present = "example"
    )]
    tables: Vec<String>,
    /// The query (Kuvert's SQL dialect, see docs/sql.md). End it with
    /// `WITH PRIVACY (epsilon = E, delta = D, person = COL[, max_rows = K]
    /// [, lo = L, hi = H][, groups = (KEY, ...)])` for COUNT/SUM answers with
    /// differential-privacy noise added under MPC; a GROUP BY needs its public
    /// keys in `groups` (see docs/dp.md).
    #[arg(long, default_value = "", required_unless_present = "example")]
    sql: String,
    /// Instead of --table and --sql: run one of the six reference analyses
    /// (`kuvert example list`) on freshly generated inputs, every output in
    /// turn, and check each answer against SQLite on the same CSVs. E.g.
    /// --example overlapping-benefits.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["tables", "sql", "explain", "out"])]
    example: Option<String>,
    /// Rows of the main generated table for --example.
    #[arg(long, default_value_t = 10_000, requires = "example")]
    rows: usize,
    /// Write the answer's CSV here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the plan, each operator's estimated rounds and bytes, and what
    /// the query reveals to whom; start no nodes and run nothing.
    #[arg(long)]
    explain: bool,
    /// Column types of a table, e.g. fk=pnr:idnr,fran:date,belopp:int
    /// (types: int, date, bool, idnr, text). Without it: the file
    /// PATH.schema beside the CSV if it exists, else inferred from the CSV
    /// (rules in docs/run.md).
    #[arg(long = "schema", value_name = "NAME=COLUMNS")]
    schemas: Vec<String>,
    /// CSV field delimiter (';' for Swedish spreadsheet exports).
    #[arg(long, default_value = ",")]
    delimiter: char,
    /// Run secure against one node that deviates from the protocol
    /// (security with abort): every AND gate is proven, every product
    /// MAC-checked and every open verified before a result leaves the
    /// nodes; the shuffle carries MACs through its passes, and DP noise
    /// is drawn by pairs of nodes so none can bias it. A failed check stops
    /// the run at every node, prints which check failed and no answer, and
    /// exits 1. Costs more: see `kuvert bench query --malicious` and
    /// docs/protocols.md.
    #[arg(long)]
    malicious: bool,
}

/// Bad user input: printed, exit status 2.
struct UserError(String);

/// Set by the Ctrl-C handler before it stops the nodes.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From here on the nodes run; Ctrl-C must not leave them behind. The
/// handler stops them and exits 130; the main thread, which then sees its
/// nodes vanish, waits for that exit instead of reporting the vanished
/// nodes as the error (see [`run`]).
fn stop_nodes_on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        kuvert_node::local::abort_all();
        eprintln!("interrupted; the local nodes were stopped and their files deleted");
        std::process::exit(130);
    });
}

/// After an error: if Ctrl-C caused it, let the handler finish (it exits 130).
fn wait_if_interrupted() {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

fn user<T>(msg: impl Into<String>) -> Result<T, UserError> {
    Err(UserError(msg.into()))
}

/// One `--table` after its schema is known.
struct Input {
    name: String,
    path: PathBuf,
    schema: Schema,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let r = run_inner(args);
    if !matches!(&r, Ok(c) if *c == ExitCode::SUCCESS) {
        wait_if_interrupted();
    }
    r
}

fn run_inner(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.example {
        return run_example(name, args.rows, args.malicious);
    }
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(UserError(m)) => {
            eprintln!("error: {m}");
            return Ok(ExitCode::from(2));
        }
    };
    let (query, tables) = prepared;
    if args.explain {
        let sizes: BTreeMap<String, usize> =
            tables.iter().map(|(n, t)| (n.clone(), t.rows())).collect();
        let text = explain_text(&query, &sizes);
        write_output(args.out.as_deref(), text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // From here on the nodes run; Ctrl-C must not leave them behind.
    stop_nodes_on_ctrl_c();
    let exe = std::env::current_exe().context("cannot find the kuvert executable")?;
    let bar = crate::bench::progress_bar(0);
    bar.set_message("starting three local nodes (TLS on 127.0.0.1)");
    bar.enable_steady_tick(Duration::from_millis(120));
    let cluster = LocalCluster::start(&exe)?;
    bar.set_message("sharing and uploading the tables");
    cluster.upload("run", &tables)?;
    drop(tables);
    bar.set_message("computing");
    let run = cluster.query_secure("run", &args.sql, args.malicious, |st| {
        if let Some(p) = st.iter().filter_map(|s| s.progress).min_by_key(|p| p.done) {
            bar.set_length(p.total);
            bar.set_position(p.done);
            bar.set_message(format!("operator {} of {}", p.done, p.total));
        } else if st.iter().all(|s| matches!(s.state, JobState::Done { .. })) {
            bar.set_message("fetching the result shares");
        }
    });
    bar.finish_and_clear();
    drop(cluster);
    let run = match run {
        Err(kuvert_node::local::LocalError::QueryRefused(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        other => other?,
    };
    let csv = run.answer.to_csv_string()?;
    write_output(args.out.as_deref(), csv.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `kuvert run --example NAME`: generate the analysis' inputs, start three
/// local nodes once, upload every table as its contributor would, answer
/// every output as its recipient would, and compare with SQLite.
fn run_example(name: &str, rows: usize, malicious: bool) -> anyhow::Result<ExitCode> {
    let analysis = match kuvert_examples::get(name) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}; `kuvert example list` shows the six analyses");
            return Ok(ExitCode::from(2));
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("kuvert-example-")
        .tempdir()?;
    match kuvert_examples::write_inputs(name, rows, 1, dir.path()) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    println!(
        "# {}

{}
",
        analysis.title,
        analysis.description.trim()
    );
    let table_args: Vec<String> = analysis
        .tables
        .iter()
        .map(|t| {
            format!(
                "{}={}",
                t.name,
                dir.path().join(format!("{}.csv", t.name)).display()
            )
        })
        .collect();
    let base = RunArgs {
        tables: table_args,
        sql: String::new(),
        out: None,
        explain: false,
        schemas: vec![],
        delimiter: ',',
        example: None,
        rows,
        malicious,
    };
    // Check every output locally before any node starts.
    let mut prepared = Vec::new();
    for o in &analysis.outputs {
        let args = RunArgs {
            sql: o.sql.clone(),
            ..base.clone()
        };
        match prepare(&args) {
            Ok(p) => prepared.push(p),
            Err(UserError(m)) => {
                eprintln!("error in output {}: {m}", o.name);
                return Ok(ExitCode::from(2));
            }
        }
    }
    let tables = prepared
        .first()
        .map(|(_, t)| t)
        .expect("an analysis has outputs");
    println!(
        "Generated inputs (seed 1; deleted at the end) in {}:",
        dir.path().display()
    );
    for (t, (n, table)) in analysis.tables.iter().zip(tables) {
        println!("  {n:<12} {:>9} rows  from {}", table.rows(), t.contributor);
    }
    stop_nodes_on_ctrl_c();
    let exe = std::env::current_exe().context("cannot find the kuvert executable")?;
    let bar = crate::bench::progress_bar(0);
    bar.set_message("starting three local nodes (TLS on 127.0.0.1)");
    bar.enable_steady_tick(Duration::from_millis(120));
    let cluster = LocalCluster::start(&exe)?;
    bar.set_message("sharing and uploading the tables (each contributor shares its own)");
    cluster.upload("example", tables)?;
    bar.finish_and_clear();
    let mut all_agree = true;
    for o in &analysis.outputs {
        println!(
            "\n## Output {:?} (recipient: {})\n\n{}\n",
            o.name,
            o.recipient,
            o.sql.trim()
        );
        let bar = crate::bench::progress_bar(0);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("computing under MPC");
        let run = cluster.query_secure("example", &o.sql, malicious, |st| {
            if let Some(p) = st.iter().filter_map(|s| s.progress).min_by_key(|p| p.done) {
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
        });
        bar.finish_and_clear();
        let run = run?;
        let csv = run.answer.to_csv_string()?;
        let shown: Vec<&str> = csv.lines().collect();
        for l in shown.iter().take(11) {
            println!("  {l}");
        }
        if shown.len() > 11 {
            println!("  ... ({} rows in all)", shown.len() - 1);
        }
        let (rounds, sent) = run
            .stats
            .iter()
            .flatten()
            .fold((0, 0), |(r, b), s| (r.max(s.rounds), b.max(s.bytes_sent)));
        let reference = kuvert_examples::sqlite::reference(name, &o.name, dir.path())?;
        let mut want = reference.rows.clone();
        let mut got: Vec<Vec<String>> = shown[1..]
            .iter()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        if !o.sql.to_ascii_uppercase().contains("ORDER BY") {
            want.sort();
            got.sort();
        }
        let agree = got == want;
        all_agree &= agree;
        println!(
            "\n  {:.2} s under MPC, {rounds} rounds, {:.1} MB sent by the busiest node; SQLite on the cleartext CSVs: {}",
            run.elapsed.as_secs_f64(),
            sent as f64 / 1e6,
            if agree { "same answer" } else { "DIFFERENT ANSWER" }
        );
    }
    drop(cluster);
    println!(
        "\nThe nodes saw only shares and the table sizes; each answer was reconstructed by its recipient alone.\n\
         Next: `kuvert run --explain --table ... --sql ...` shows the plan and what it reveals;\n\
         `kuvert example gen {name} --out DIR` keeps the inputs; docs/sql.md and examples/{name}/README.md explain more."
    );
    Ok(if all_agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Everything that can be checked on this machine before any node starts:
/// flags, schemas, the SQL against the schemas, and every CSV cell.
fn prepare(args: &RunArgs) -> Result<(kuvert_sql::Query, Vec<(String, Table)>), UserError> {
    let delimiter = u8::try_from(args.delimiter)
        .ok()
        .filter(|d| d.is_ascii())
        .map_or_else(
            || {
                user(format!(
                    "--delimiter {:?} is not one ASCII character",
                    args.delimiter
                ))
            },
            Ok,
        )?;
    let opts = CsvOptions {
        delimiter,
        ..CsvOptions::default()
    };
    // --schema NAME=COLUMNS
    let mut declared: BTreeMap<String, Schema> = BTreeMap::new();
    for s in &args.schemas {
        let Some((name, cols)) = s.split_once('=') else {
            return user(format!("--schema must be NAME=name:type,..., got {s:?}"));
        };
        let schema =
            Schema::parse_compact(cols).or_else(|e| user(format!("--schema {name}: {e}")))?;
        if declared.insert(name.to_string(), schema).is_some() {
            return user(format!("--schema {name} is given twice"));
        }
    }
    // --table NAME=PATH.csv and each table's schema
    let mut inputs: Vec<Input> = Vec::new();
    for t in &args.tables {
        let Some((name, path)) = t.split_once('=') else {
            return user(format!("--table must be NAME=PATH.csv, got {t:?}"));
        };
        kuvert_node::wire::check_name("table name", name).or_else(user)?;
        if inputs.iter().any(|i| i.name == name) {
            return user(format!("--table {name} is given twice"));
        }
        let path = PathBuf::from(path);
        if !path.is_file() {
            return user(format!(
                "{}: no such file (from --table {t})",
                path.display()
            ));
        }
        let schema = match declared.remove(name) {
            Some(s) => s,
            None => {
                let beside = path.with_extension("schema");
                if beside.is_file() {
                    kuvert_node::infer::read_schema_file(&beside)
                        .or_else(|e| user(e.to_string()))?
                } else {
                    kuvert_node::infer::infer_schema(&path, delimiter, opts.today)
                        .or_else(|e| user(e.to_string()))?
                }
            }
        };
        inputs.push(Input {
            name: name.to_string(),
            path,
            schema,
        });
    }
    if let Some(name) = declared.keys().next() {
        return user(format!("--schema {name} names no --table"));
    }
    // The SQL against the schemas, before reading the data.
    let mut catalog = kuvert_sql::Catalog::new();
    for i in &inputs {
        catalog.add(&i.name, i.schema.clone());
    }
    let query = kuvert_sql::prepare(&args.sql, &catalog).or_else(|e| user(e.to_string()))?;
    // Every cell, with file:line:column for each bad one.
    let mut tables = Vec::with_capacity(inputs.len());
    for i in inputs {
        let t = kuvert_data::read_csv_file(&i.path, &i.schema, &opts).or_else(|e| {
            user(format!(
                "{e}\n(table {} read as {}; nothing was shared)",
                i.name, i.schema
            ))
        })?;
        tables.push((i.name, t));
    }
    Ok((query, tables))
}

/// The plan, estimated costs and leakage, as `kuvert run --explain` prints.
fn explain_text(query: &kuvert_sql::Query, sizes: &BTreeMap<String, usize>) -> String {
    kuvert_sql::explain::explain(query, sizes)
}

fn write_output(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes)?;
            o.flush()?;
            Ok(())
        }
    }
}
