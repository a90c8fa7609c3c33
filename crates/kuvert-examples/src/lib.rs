//! # kuvert-examples: the six reference analyses, their data, and a plaintext oracle
//!
//! ```text
//!   examples/<name>/           README.md, <table>.schema, <output>.sql  (embedded here)
//!   lib (this file)            Analysis: tables + contributors, outputs + recipients
//!   gen                        seeded synthetic inputs for every analysis (CSV + schema)
//!   sqlite                     the plaintext reference answer: the same SQL in SQLite
//! ```
//!
//! The six analyses of the design brief (from SOU 2026:44 and its annex)
//! are kept as plain files in the repository's `examples/` directory, so an
//! analyst can read, copy and run them; this crate embeds those files with
//! `include_str!`, so the binary and the tests always see the same SQL.
//!
//! [`gen`] writes realistic, deterministic (per seed) synthetic inputs:
//! valid Swedish identity numbers, several periods per person, overlap rates
//! of a few to twenty percent. [`sqlite`] runs an output's SQL over those
//! CSV files in an in-memory SQLite database: the independent plaintext
//! answer that the MPC executor's end-to-end tests and `kuvert bench query`
//! compare against.
//!
//! Architecture invariant: **this crate never touches shares, nodes or the
//! network**; it is the cleartext side only, for tests, demos and
//! benchmarks.
//!
//! # Security
//! - The generated data is synthetic. Identity numbers are drawn at random
//!   and have valid check digits, so some of them will be the numbers of
//!   real people: never join generated data with real registers.
//! - The generators use ChaCha20 seeded from the caller's `seed`, on
//!   purpose: the same seed gives the same files (tests, benchmarks). This
//!   randomness is not secret and must never be used for keys or noise.
//! - The SQLite oracle reads every input in cleartext on one machine: that
//!   is exactly what MPC avoids. Use it only on synthetic or test data, never
//!   as a way to run an analysis on real contributors' data.

pub mod gen;
pub mod sqlite;

use std::path::PathBuf;

use kuvert_data::{DataError, Schema};

pub use gen::{generate, generate_psi, psi_ids, write_inputs, write_psi};

/// One input table of an analysis.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The table name used in the SQL's FROM.
    pub name: String,
    /// Its declared columns.
    pub schema: Schema,
    /// Who contributes it (an agency, a municipality, a region).
    pub contributor: String,
}

/// One declared output of an analysis: a query and who may read its result.
#[derive(Debug, Clone)]
pub struct Output {
    /// The output name (the `.sql` file's name without extension).
    pub name: String,
    /// The query.
    pub sql: String,
    /// Who receives the result (and nobody else).
    pub recipient: String,
}

/// A reference analysis: its tables, outputs, and the plain-language story.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The directory name under `examples/`, e.g. `overlapping-benefits`.
    pub name: String,
    /// One line.
    pub title: String,
    /// The question, in a few sentences.
    pub description: String,
    pub tables: Vec<TableSpec>,
    pub outputs: Vec<Output>,
}

impl Analysis {
    /// The output called `name`.
    pub fn output(&self, name: &str) -> Result<&Output, Error> {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| Error::UnknownOutput {
                analysis: self.name.clone(),
                output: name.to_string(),
                known: self
                    .outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// What went wrong. Variants name the culprit and say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no reference analysis is called {name:?}; the analyses are: {known}")]
    UnknownAnalysis { name: String, known: String },
    #[error("analysis {analysis:?} has no output {output:?}; its outputs are: {known}")]
    UnknownOutput {
        analysis: String,
        output: String,
        known: String,
    },
    #[error("--rows must be at least {min} for {analysis:?} (got {rows})")]
    TooFewRows {
        analysis: String,
        rows: usize,
        min: usize,
    },
    #[error("{rows} rows is more than the {max} the generator of {analysis:?} makes; ask for at most {max}")]
    TooManyRows {
        analysis: String,
        rows: usize,
        max: usize,
    },
    #[error("table {table:?}: {source}")]
    Data {
        table: String,
        #[source]
        source: DataError,
    },
    #[error("{}: {source}{hint}", path.display())]
    Io {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("table name {0:?} is not usable in SQL: use letters, digits and '_' (not first)")]
    BadTableName(String),
    #[error("SQLite could not load table {table:?}: {source}")]
    Load {
        table: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "SQLite refused the query: {source}; check the SQL and that every table it names was given"
    )]
    Query {
        #[source]
        source: rusqlite::Error,
    },
}

impl Error {
    /// True when the user's input (a name, a flag, a CSV file, the SQL) is
    /// at fault rather than the machine: the CLI exits with code 2.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Io { .. } | Error::Load { .. })
    }
}

struct Def {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    tables: &'static [(&'static str, &'static str, &'static str)],
    outputs: &'static [(&'static str, &'static str, &'static str)],
}

macro_rules! ex {
    ($dir:literal, $file:literal) => {
        include_str!(concat!("../../../examples/", $dir, "/", $file))
    };
}

const REGION_SCHEMA: &str = ex!("quality-indicators", "region_01.schema");

/// The 21 Swedish regions in the order of their county codes (länskod):
/// table `region_NN` is contributed by `REGIONS[NN - 1]`, and its `region`
/// column holds that region's county code.
pub const REGIONS: [(u8, &str); 21] = [
    (1, "Region Stockholm"),
    (3, "Region Uppsala"),
    (4, "Region Sörmland"),
    (5, "Region Östergötland"),
    (6, "Region Jönköpings län"),
    (7, "Region Kronoberg"),
    (8, "Region Kalmar län"),
    (9, "Region Gotland"),
    (10, "Region Blekinge"),
    (12, "Region Skåne"),
    (13, "Region Halland"),
    (14, "Västra Götalandsregionen"),
    (17, "Region Värmland"),
    (18, "Region Örebro län"),
    (19, "Region Västmanland"),
    (20, "Region Dalarna"),
    (21, "Region Gävleborg"),
    (22, "Region Västernorrland"),
    (23, "Region Jämtland Härjedalen"),
    (24, "Region Västerbotten"),
    (25, "Region Norrbotten"),
];

const DEFS: &[Def] = &[
    Def {
        name: "overlapping-benefits",
        title: "Overlapping benefits: social insurance and economic assistance for the same period",
        description:
            "Försäkringskassan (the Social Insurance Agency) pays benefits for periods; a \
            municipality pays economic assistance (ekonomiskt bistånd) for periods. Which persons \
            received both for overlapping periods, and how much did the agency pay them? Both \
            agencies learn the number of such persons and the agency's sum; only the control \
            unit learns who they are.",
        tables: &[
            (
                "fk",
                ex!("overlapping-benefits", "fk.schema"),
                "Försäkringskassan (Social Insurance Agency)",
            ),
            (
                "ek",
                ex!("overlapping-benefits", "ek.schema"),
                "a municipality (economic assistance register)",
            ),
        ],
        outputs: &[
            (
                "persons",
                ex!("overlapping-benefits", "persons.sql"),
                "both agencies",
            ),
            (
                "ids",
                ex!("overlapping-benefits", "ids.sql"),
                "the control unit only",
            ),
        ],
    },
    Def {
        name: "non-take-up",
        title: "Non-take-up: households entitled to a benefit they do not claim",
        description: "Agency A knows who lives in which household; agency B knows everyone's \
            incomes. Sum the incomes per household and compare them with a public norm that \
            depends on the household's size (150 000 SEK for one person, 240 000 for two, \
            60 000 more per further member). Agency A learns only which of its households are \
            below the norm, so it can tell them about the benefit; B learns nothing.",
        tables: &[
            (
                "hushall",
                ex!("non-take-up", "hushall.schema"),
                "agency A (household membership)",
            ),
            (
                "inkomst",
                ex!("non-take-up", "inkomst.schema"),
                "agency B (incomes, several rows per person)",
            ),
        ],
        outputs: &[(
            "households",
            ex!("non-take-up", "households.sql"),
            "agency A",
        )],
    },
    Def {
        name: "double-registration",
        title: "Double registration: persons in two population registers",
        description: "Two population registers (for example of two countries, as in Eurostat's \
            JOCONDE test) each list their residents once. How many persons are registered in \
            both? Both register keepers learn only that number.",
        tables: &[
            (
                "reg_a",
                ex!("double-registration", "reg_a.schema"),
                "register keeper A",
            ),
            (
                "reg_b",
                ex!("double-registration", "reg_b.schema"),
                "register keeper B",
            ),
        ],
        outputs: &[(
            "count",
            ex!("double-registration", "count.sql"),
            "both register keepers",
        )],
    },
    Def {
        name: "opt-out",
        title: "Opt-out: drop the rows of people who opted out of secondary use",
        description: "A registry holds the identity numbers of people who opted out of secondary \
            use of their health data (as in the European Health Data Space); a data holder has a \
            table to release. The holder learns which of its own rows to drop, by row number; \
            the registry learns nothing, not even whether any of its people are in the table.",
        tables: &[
            (
                "optout",
                ex!("opt-out", "optout.schema"),
                "the opt-out registry",
            ),
            ("holder", ex!("opt-out", "holder.schema"), "the data holder"),
        ],
        outputs: &[("rows", ex!("opt-out", "rows.sql"), "the data holder")],
    },
    Def {
        name: "parallel-assistance",
        title: "Parallel assistance: economic assistance from two municipalities in one month",
        description: "Three municipalities each pay economic assistance per person and month. \
            Which persons received assistance from two or more of them in the same month? The \
            control unit learns those persons and months (and from how many municipalities); \
            nobody learns anything about the other recipients.",
        tables: &[
            (
                "bistand_1",
                ex!("parallel-assistance", "bistand_1.schema"),
                "municipality 1",
            ),
            (
                "bistand_2",
                ex!("parallel-assistance", "bistand_2.schema"),
                "municipality 2",
            ),
            (
                "bistand_3",
                ex!("parallel-assistance", "bistand_3.schema"),
                "municipality 3",
            ),
        ],
        outputs: &[(
            "months",
            ex!("parallel-assistance", "months.sql"),
            "the control unit",
        )],
    },
    Def {
        name: "quality-indicators",
        title: "Quality indicators: per-region and national aggregates over 21 regions",
        description: "All 21 regions contribute one row per patient episode: the region's county \
            code, the length of stay in days and whether the patient was readmitted. Output the \
            number of patients, total length of stay and readmissions per region and nationally, \
            to the national quality registry (in production with differential-privacy noise \
            added inside the MPC). No region learns another's patient-level data.",
        tables: &[], // filled from REGIONS
        outputs: &[
            (
                "regions",
                ex!("quality-indicators", "regions.sql"),
                "the national quality registry",
            ),
            (
                "national",
                ex!("quality-indicators", "national.sql"),
                "the national quality registry and all regions",
            ),
        ],
    },
];

fn schema(s: &str) -> Schema {
    // The embedded schema files are part of this crate and checked by its
    // tests; a failure here is a bug in the repository, not user input.
    Schema::parse_compact(s.trim()).expect("embedded example schema is valid")
}

fn build(d: &Def) -> Analysis {
    let mut tables: Vec<TableSpec> = d
        .tables
        .iter()
        .map(|(name, s, who)| TableSpec {
            name: name.to_string(),
            schema: schema(s),
            contributor: who.to_string(),
        })
        .collect();
    if d.name == "quality-indicators" {
        tables = REGIONS
            .iter()
            .enumerate()
            .map(|(i, (_, who))| TableSpec {
                name: format!("region_{:02}", i + 1),
                schema: schema(REGION_SCHEMA),
                contributor: who.to_string(),
            })
            .collect();
    }
    Analysis {
        name: d.name.to_string(),
        title: d.title.to_string(),
        description: d
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        tables,
        outputs: d
            .outputs
            .iter()
            .map(|(name, sql, who)| Output {
                name: name.to_string(),
                sql: sql.trim().to_string(),
                recipient: who.to_string(),
            })
            .collect(),
    }
}

/// The names of the six analyses, in the brief's order.
pub fn names() -> Vec<&'static str> {
    DEFS.iter().map(|d| d.name).collect()
}

/// All six reference analyses, in the brief's order.
pub fn all() -> Vec<Analysis> {
    DEFS.iter().map(build).collect()
}

/// The analysis called `name` (its directory name under `examples/`).
pub fn get(name: &str) -> Result<Analysis, Error> {
    DEFS.iter()
        .find(|d| d.name == name)
        .map(build)
        .ok_or_else(|| Error::UnknownAnalysis {
            name: name.to_string(),
            known: names().join(", "),
        })
}
