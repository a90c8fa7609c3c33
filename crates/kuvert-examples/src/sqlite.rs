//! The plaintext oracle: run an analysis' SQL in an in-memory SQLite
//! database over the cleartext CSV files.
//!
//! Each CSV is read and validated with `kuvert-data`'s reader (the same one
//! contributors use), so identity numbers are normalised to 12 digits
//! before SQLite sees them. Column types in SQLite:
//!
//! | kuvert type | SQLite                     |
//! |-------------|----------------------------|
//! | `int`       | INTEGER                    |
//! | `bool`      | INTEGER 0 / 1              |
//! | `date`      | TEXT `YYYY-MM-DD` (sorts and compares as dates) |
//! | `idnr`      | TEXT, 12 digits            |
//! | `text`      | TEXT                       |
//!
//! Every `idnr` column gets an index (created while loading, so not part
//! of a query's time), as a register keyed by identity number would have;
//! without one SQLite evaluates the analyses' correlated `EXISTS` / `IN`
//! as a nested loop.
//!
//! Result cells are strings: integers in decimal, reals as Rust prints
//! them, text as is, NULL as the empty string. Rows come in the order
//! SQLite returns them; compare with [`sorted`] when the SQL has no
//! ORDER BY.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kuvert_data::value::format_cell;
use kuvert_data::{ColumnType, CsvOptions, DataError, Schema, Table};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use crate::Error;

/// A query's result: column names, rows of formatted cells, and the time
/// SQLite took to run it (loading excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub elapsed: Duration,
}

impl Answer {
    /// Write the answer as CSV: a header row, then the rows (fields with a
    /// comma, quote or line break are quoted).
    pub fn write_csv<W: std::io::Write>(&self, mut w: W) -> std::io::Result<()> {
        let line = |cells: &[String]| cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
        writeln!(w, "{}", line(&self.columns))?;
        for r in &self.rows {
            writeln!(w, "{}", line(r))?;
        }
        w.flush()
    }
}

fn quote(c: &str) -> String {
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// An in-memory SQLite database holding cleartext tables.
pub struct Oracle {
    conn: Connection,
}

impl std::fmt::Debug for Oracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Oracle { .. }")
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::BadTableName(name.to_string()))
    }
}

impl Oracle {
    /// An empty in-memory database.
    pub fn new() -> Result<Oracle, Error> {
        let conn = Connection::open_in_memory().map_err(|e| Error::Load {
            table: String::new(),
            source: e,
        })?;
        Ok(Oracle { conn })
    }

    /// Read and validate the CSV at `path` under `schema` (with the
    /// default reader options: comma, today's date for 10-digit identity
    /// numbers), then load it as table `name`. Returns the row count.
    pub fn load_csv(&mut self, name: &str, schema: &Schema, path: &Path) -> Result<usize, Error> {
        self.load_csv_with(name, schema, path, &CsvOptions::default())
    }

    /// [`Oracle::load_csv`] with explicit reader options.
    pub fn load_csv_with(
        &mut self,
        name: &str,
        schema: &Schema,
        path: &Path,
        opts: &CsvOptions,
    ) -> Result<usize, Error> {
        check_name(name)?;
        let table =
            kuvert_data::read_csv_file(path, schema, opts).map_err(|source| Error::Data {
                table: name.to_string(),
                source,
            })?;
        self.load_table(name, &table)?;
        Ok(table.rows())
    }

    /// Load an already validated table as `name`.
    pub fn load_table(&mut self, name: &str, table: &Table) -> Result<(), Error> {
        check_name(name)?;
        let load = |source| Error::Load {
            table: name.to_string(),
            source,
        };
        let cols = table.schema().columns();
        let decl = cols
            .iter()
            .map(|c| {
                let ty = match c.ty {
                    ColumnType::Int | ColumnType::Bool => "INTEGER",
                    ColumnType::Date | ColumnType::Idnr | ColumnType::Text => "TEXT",
                };
                format!("\"{}\" {ty}", c.name)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let tx = self.conn.transaction().map_err(load)?;
        tx.execute(&format!("CREATE TABLE \"{name}\" ({decl})"), [])
            .map_err(load)?;
        {
            let marks = vec!["?"; cols.len()].join(",");
            let mut ins = tx
                .prepare(&format!("INSERT INTO \"{name}\" VALUES ({marks})"))
                .map_err(load)?;
            let mut row: Vec<Value> = Vec::with_capacity(cols.len());
            for r in 0..table.rows() {
                row.clear();
                for (ci, c) in cols.iter().enumerate() {
                    let words = table.cell(r, ci);
                    row.push(match c.ty {
                        ColumnType::Int | ColumnType::Bool => Value::Integer(words[0] as i64),
                        _ => Value::Text(format_cell(c.ty, &words).map_err(|e| Error::Data {
                            table: name.to_string(),
                            source: DataError::Shape(format!(
                                "row {}, column {:?}: {e}",
                                r + 1,
                                c.name
                            )),
                        })?),
                    });
                }
                ins.execute(rusqlite::params_from_iter(row.iter()))
                    .map_err(load)?;
            }
        }
        // An index on every identity-number column, as a register would
        // have: without it SQLite runs the correlated EXISTS / IN of the
        // analyses as a nested loop, quadratic in the rows.
        for c in cols.iter().filter(|c| c.ty == ColumnType::Idnr) {
            tx.execute(
                &format!(
                    "CREATE INDEX \"{name}_{col}\" ON \"{name}\" (\"{col}\")",
                    col = c.name
                ),
                [],
            )
            .map_err(load)?;
        }
        tx.commit().map_err(load)
    }

    /// Run `sql` and format every cell. `elapsed` covers preparing, running
    /// and reading the result, not loading.
    pub fn query(&self, sql: &str) -> Result<Answer, Error> {
        let q = |source| Error::Query { source };
        let start = Instant::now();
        let mut stmt = self.conn.prepare(sql).map_err(q)?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut rows = Vec::new();
        let mut it = stmt.query([]).map_err(q)?;
        while let Some(r) = it.next().map_err(q)? {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match r.get_ref(i).map_err(q)? {
                    ValueRef::Null => String::new(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
                });
            }
            rows.push(out);
        }
        Ok(Answer {
            columns,
            rows,
            elapsed: start.elapsed(),
        })
    }
}

/// Load `tables` (name, schema, CSV path) into a fresh database.
pub fn load(tables: &[(String, Schema, PathBuf)]) -> Result<Oracle, Error> {
    let mut o = Oracle::new()?;
    for (name, schema, path) in tables {
        o.load_csv(name, schema, path)?;
    }
    Ok(o)
}

/// The plaintext answer of `sql` over `tables` (name, schema, CSV path):
/// rows of formatted cells, in SQLite's order.
pub fn answer(sql: &str, tables: &[(String, Schema, PathBuf)]) -> Result<Vec<Vec<String>>, Error> {
    Ok(load(tables)?.query(sql)?.rows)
}

/// [`answer`] and the time SQLite took for the query alone (loading
/// excluded): the baseline of `kuvert bench query`.
pub fn answer_timed(
    sql: &str,
    tables: &[(String, Schema, PathBuf)],
) -> Result<(Vec<Vec<String>>, Duration), Error> {
    let a = load(tables)?.query(sql)?;
    Ok((a.rows, a.elapsed))
}

/// The rows in lexicographic order, for comparing results of SQL without
/// ORDER BY.
pub fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

/// The tables of `analysis` as found in `dir` (`dir/<table>.csv`), with the
/// analysis' schemas: ready for [`answer`].
pub fn tables_in(analysis: &crate::Analysis, dir: &Path) -> Vec<(String, Schema, PathBuf)> {
    analysis
        .tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.schema.clone(),
                dir.join(format!("{}.csv", t.name)),
            )
        })
        .collect()
}

/// The plaintext reference answer of output `output` of analysis
/// `analysis` over the CSV files in `dir` (as `kuvert example sqlite`
/// computes it): the one call an end-to-end test needs.
pub fn reference(analysis: &str, output: &str, dir: &Path) -> Result<Answer, Error> {
    let a = crate::get(analysis)?;
    let sql = &a.output(output)?.sql;
    load(&tables_in(&a, dir))?.query(sql)
}
