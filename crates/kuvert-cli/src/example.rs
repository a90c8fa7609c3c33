//! `kuvert example ...`: the six reference analyses of the design brief.
//! List them, generate seeded synthetic inputs, and compute the plaintext
//! reference answer in SQLite. The work is in the `kuvert-examples` crate;
//! this module parses flags and maps errors to exit codes (2: bad input).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kuvert_examples::{sqlite, Error};

#[derive(Subcommand, Debug)]
pub enum ExampleCommand {
    /// List the analyses: name, title, tables (and who contributes them),
    /// outputs (and who receives them).
    List,
    /// Print the SQL of one output of an analysis, e.g. for
    /// `kuvert run --sql "$(kuvert example sql opt-out rows)"`.
    Sql {
        /// The analysis, e.g. overlapping-benefits (see `kuvert example list`).
        name: String,
        /// The output (default: the analysis' first output).
        output: Option<String>,
    },
    /// Generate synthetic inputs: DIR/<table>.csv and DIR/<table>.schema for
    /// every table of the analysis. Prints the CSV paths on stdout and, on
    /// stderr, a ready-to-paste `kuvert run` line per output.
    ///
    /// The data is synthetic but realistic: valid personnummer and
    /// samordningsnummer, several periods per person, a few to twenty
    /// percent of persons overlapping. The same --rows and --seed give the
    /// same files.
    Gen(GenArgs),
    /// The plaintext reference answer: run an output's SQL in SQLite over
    /// DIR/<table>.csv (validated with the analysis' schemas) and print the
    /// result as CSV with a header. Only for synthetic or test data: this
    /// reads every table in cleartext.
    Sqlite(SqliteArgs),
}

#[derive(Args, Debug)]
pub struct GenArgs {
    /// The analysis, e.g. overlapping-benefits (see `kuvert example list`).
    name: String,
    /// Rows of the main table(s); the other tables are scaled from it (see
    /// examples/README.md).
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// Directory to write into (created if missing; files are overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator (ChaCha20): same seed, same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
pub struct SqliteArgs {
    /// The analysis, e.g. overlapping-benefits (see `kuvert example list`).
    name: String,
    /// Directory holding <table>.csv for every table of the analysis (as
    /// written by `kuvert example gen`).
    #[arg(long)]
    dir: PathBuf,
    /// The output whose SQL to run (default: the analysis' first output).
    #[arg(long)]
    output: Option<String>,
    /// Print SQLite's query time (loading excluded) on stderr.
    #[arg(long)]
    time: bool,
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    if let Error::Data {
        source: kuvert_data::DataError::Io { .. },
        ..
    } = e
    {
        eprintln!("hint: write the inputs first with `kuvert example gen NAME --out DIR`");
    }
    ExitCode::from(if e.is_user_error() { 2 } else { 1 })
}

pub fn run(cmd: ExampleCommand) -> anyhow::Result<ExitCode> {
    let result = match cmd {
        ExampleCommand::List => {
            list();
            Ok(())
        }
        ExampleCommand::Sql { name, output } => kuvert_examples::get(&name).and_then(|a| {
            let o = match &output {
                Some(o) => a.output(o)?,
                None => &a.outputs[0],
            };
            println!("{}", o.sql);
            Ok(())
        }),
        ExampleCommand::Gen(a) => gen(a),
        ExampleCommand::Sqlite(a) => reference(a),
    };
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    })
}

fn list() {
    for a in kuvert_examples::all() {
        println!("{}: {}", a.name, a.title);
        let tables: Vec<String> = if a.tables.len() > 3 {
            let first = &a.tables[0];
            let last = &a.tables[a.tables.len() - 1];
            vec![format!(
                "{}..{} ({}; one per region, each from its region)",
                first.name, last.name, first.schema
            )]
        } else {
            a.tables
                .iter()
                .map(|t| format!("{} ({}) from {}", t.name, t.schema, t.contributor))
                .collect()
        };
        for t in tables {
            println!("  table  {t}");
        }
        for o in &a.outputs {
            println!("  output {} to {}", o.name, o.recipient);
        }
    }
}

/// A spinner on stderr when it is a terminal (hidden otherwise).
fn spinner(msg: String) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let s = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        s.set_style(style);
    }
    s.set_message(msg);
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    s
}

fn gen(a: GenArgs) -> Result<(), Error> {
    let analysis = kuvert_examples::get(&a.name)?;
    let sp = spinner(format!("generating {} rows of {}", a.rows, a.name));
    let paths = kuvert_examples::write_inputs(&a.name, a.rows, a.seed, &a.out);
    sp.finish_and_clear();
    let paths = paths?;
    for p in &paths {
        println!("{}", p.display());
    }
    let tables: Vec<String> = analysis
        .tables
        .iter()
        .zip(&paths)
        .map(|(t, p)| {
            format!(
                "--table {}={}",
                t.name,
                shell_quote(&p.display().to_string())
            )
        })
        .collect();
    eprintln!("# run an output under MPC (from the repository root):");
    for o in &analysis.outputs {
        eprintln!(
            "kuvert run {} --sql \"$(cat examples/{}/{}.sql)\"",
            tables.join(" "),
            analysis.name,
            o.name
        );
    }
    eprintln!("# and the plaintext reference answer:");
    for o in &analysis.outputs {
        eprintln!(
            "kuvert example sqlite {} --dir {} --output {}",
            analysis.name,
            shell_quote(&a.out.display().to_string()),
            o.name
        );
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-=+:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn reference(a: SqliteArgs) -> Result<(), Error> {
    let analysis = kuvert_examples::get(&a.name)?;
    let output = match &a.output {
        Some(o) => analysis.output(o)?,
        None => &analysis.outputs[0],
    };
    let mut oracle = sqlite::Oracle::new()?;
    for (name, schema, path) in sqlite::tables_in(&analysis, &a.dir) {
        let sp = spinner(format!("loading {}", path.display()));
        let loaded = oracle.load_csv(&name, &schema, &path);
        sp.finish_and_clear();
        loaded?;
    }
    let sp = spinner(format!("running {}/{}.sql", analysis.name, output.name));
    let answer = oracle.query(&output.sql);
    sp.finish_and_clear();
    let answer = answer?;
    match answer.write_csv(std::io::stdout().lock()) {
        // `| head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.map_err(|e| Error::Io {
            path: "<stdout>".into(),
            hint: "",
            source: e,
        })?,
    }
    if a.time {
        eprintln!(
            "sqlite: {} rows in {:.3} ms (query only)",
            answer.rows.len(),
            answer.elapsed.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
