//! Reading a contributor's CSV file into ring-encoded columns, validating
//! everything before anything is shared or sent.

use std::fmt;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroize;

use crate::schema::{ColumnType, Schema};
use crate::value::{self, Date};

/// At most this many cell errors are collected before reading stops.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// One invalid cell, with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// The file name as given by the user (or a label such as `<stdin>`).
    pub file: String,
    /// 1-based line of the record in the file.
    pub line: u64,
    /// 1-based column (field) in the file.
    pub column: usize,
    /// What is wrong, quoting the value.
    pub reason: String,
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.reason
        )
    }
}

/// Why a table could not be read. Nothing has been shared or sent when one
/// of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    Header {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("{file}:{line}: {reason}")]
    Csv {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("{}", format_cells(.errors, *.more))]
    Cells {
        /// The first [`MAX_REPORTED_ERRORS`] invalid cells, in file order.
        errors: Vec<CellError>,
        /// True if reading stopped with more errors possibly to come.
        more: bool,
    },
    #[error("{0}")]
    Shape(String),
}

fn format_cells(errors: &[CellError], more: bool) -> String {
    let mut s = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    if more {
        s.push_str(&format!(
            "\n(stopped after {} errors; fix these and run again)",
            errors.len()
        ));
    }
    s
}

/// Options of the CSV reader.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Field delimiter: `b','` (default) or e.g. `b';'` for Swedish Excel
    /// exports.
    pub delimiter: u8,
    /// The date that decides the century of 10-digit identity numbers
    /// (default: today, UTC).
    pub today: Date,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            today: Date::today_utc(),
        }
    }
}

/// One encoded column. Cell `r` of a column with `w` words per cell is the
/// words `data[k * rows + r]` for `k` in `0..w` ("word planes"), so a
/// 4-word text column splits into four 1-word columns of `rows` elements.
/// Wiped on drop; `Debug` prints no values.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedColumn {
    pub name: String,
    pub ty: ColumnType,
    pub data: Vec<u64>,
}

impl fmt::Debug for EncodedColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EncodedColumn {{ name: {:?}, ty: {}, words: {} }}",
            self.name,
            self.ty,
            self.data.len()
        )
    }
}

impl Drop for EncodedColumn {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}

/// A validated table in cleartext, encoded in the ring: the contributor's
/// side only. Columns are in schema order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Table {
    schema: Schema,
    rows: usize,
    columns: Vec<EncodedColumn>,
}

impl Table {
    /// Assemble a table from encoded columns (checked against the schema).
    pub fn from_columns(
        schema: Schema,
        rows: usize,
        columns: Vec<EncodedColumn>,
    ) -> Result<Table, DataError> {
        if columns.len() != schema.len() {
            return Err(DataError::Shape(format!(
                "{} columns given, the schema has {}",
                columns.len(),
                schema.len()
            )));
        }
        for (c, d) in schema.columns().iter().zip(&columns) {
            if c.name != d.name || c.ty != d.ty || d.data.len() != rows * c.ty.words() {
                return Err(DataError::Shape(format!(
                    "column {:?} ({}, {} words) does not fit the schema column {:?} ({}) with {rows} rows",
                    d.name,
                    d.ty,
                    d.data.len(),
                    c.name,
                    c.ty
                )));
            }
        }
        Ok(Table {
            schema,
            rows,
            columns,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn columns(&self) -> &[EncodedColumn] {
        &self.columns
    }

    /// The words of cell (`row`, `col`).
    pub fn cell(&self, row: usize, col: usize) -> Vec<u64> {
        let c = &self.columns[col];
        (0..c.ty.words())
            .map(|k| c.data[k * self.rows + row])
            .collect()
    }

    /// Write the table as CSV (header, then one line per row) with values
    /// formatted back: dates `YYYY-MM-DD`, identity numbers as 12 digits.
    pub fn write_csv<W: std::io::Write>(&self, out: W) -> Result<(), DataError> {
        let mut w = csv::Writer::from_writer(out);
        let io = |e: csv::Error| DataError::Io {
            path: "<output>".into(),
            source: std::io::Error::other(e.to_string()),
        };
        w.write_record(self.schema.columns().iter().map(|c| c.name.as_str()))
            .map_err(io)?;
        for r in 0..self.rows {
            let mut rec = Vec::with_capacity(self.columns.len());
            for (ci, c) in self.columns.iter().enumerate() {
                let s = value::format_cell(c.ty, &self.cell(r, ci)).map_err(|e| {
                    DataError::Shape(format!("row {}, column {:?}: {e}", r + 1, c.name))
                })?;
                rec.push(s);
            }
            w.write_record(&rec).map_err(io)?;
            rec.zeroize();
        }
        w.flush().map_err(|e| DataError::Io {
            path: "<output>".into(),
            source: e,
        })
    }
}

/// Read and validate a CSV file against `schema`.
pub fn read_csv_file(path: &Path, schema: &Schema, opts: &CsvOptions) -> Result<Table, DataError> {
    let f = std::fs::File::open(path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    read_csv(f, &path.display().to_string(), schema, opts)
}

/// Read and validate CSV from `input`; `source` names it in messages.
///
/// The first record is the header. Every schema column must appear exactly
/// once (in any order); a column the schema does not declare is refused,
/// so that no undeclared data is ever shared. Every cell is checked; up to
/// [`MAX_REPORTED_ERRORS`] errors are reported together, each as
/// `source:line:column: reason`.
pub fn read_csv<R: Read>(
    input: R,
    source: &str,
    schema: &Schema,
    opts: &CsvOptions,
) -> Result<Table, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        let reason = match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!(
                "this line has {len} fields, the header has {expected_len}; check the delimiter and quoting"
            ),
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8; export the file as UTF-8".to_string(),
            _ => e.to_string(),
        };
        DataError::Csv {
            file: source.to_string(),
            line,
            reason,
        }
    };
    let header = rdr.headers().map_err(csv_err)?.clone();
    let header_err = |reason: String| DataError::Header {
        file: source.to_string(),
        line: 1,
        reason,
    };
    // file column index for each schema column
    let mut at = vec![usize::MAX; schema.len()];
    for (i, h) in header.iter().enumerate() {
        let h = h.trim().trim_start_matches('\u{feff}');
        match schema.index_of(h) {
            Some(s) if at[s] != usize::MAX => {
                return Err(header_err(format!("column {h:?} appears twice in the header")))
            }
            Some(s) => at[s] = i,
            None => {
                return Err(header_err(format!(
                    "column {h:?} (column {}) is not declared in the schema ({schema}); remove it from the file or declare it",
                    i + 1
                )))
            }
        }
    }
    if let Some(s) = at.iter().position(|&i| i == usize::MAX) {
        let c = &schema.columns()[s];
        return Err(header_err(format!(
            "the schema declares column {:?} ({}), but the header has no such column",
            c.name, c.ty
        )));
    }

    // Row-major staging, one Vec per schema column of `words` per row.
    let mut staged: Vec<Vec<u64>> = vec![Vec::new(); schema.len()];
    let mut errors = Vec::new();
    let mut more = false;
    let mut rows = 0usize;
    let mut rec = csv::StringRecord::new();
    let mut cell = [0u64; value::TEXT_WORDS];
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // Report the cells collected so far too.
                if errors.is_empty() {
                    return Err(csv_err(e));
                }
                more = true;
                break;
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        for (s, col) in schema.columns().iter().enumerate() {
            let raw = rec.get(at[s]).unwrap_or("");
            let words = &mut cell[..col.ty.words()];
            match value::encode_cell(col.ty, raw, opts.today, words) {
                Ok(()) => staged[s].extend_from_slice(words),
                Err(reason) => {
                    errors.push(CellError {
                        file: source.to_string(),
                        line,
                        column: at[s] + 1,
                        reason,
                    });
                    staged[s].extend(std::iter::repeat_n(0, col.ty.words()));
                }
            }
        }
        rows += 1;
        if errors.len() >= MAX_REPORTED_ERRORS {
            more = true;
            break;
        }
    }
    cell.zeroize();
    if !errors.is_empty() {
        for s in &mut staged {
            s.zeroize();
        }
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(DataError::Cells { errors, more });
    }
    // Row-major staging to word planes.
    let mut columns = Vec::with_capacity(schema.len());
    for (s, col) in schema.columns().iter().enumerate() {
        let w = col.ty.words();
        let mut data = vec![0u64; rows * w];
        for r in 0..rows {
            for k in 0..w {
                data[k * rows + r] = staged[s][r * w + k];
            }
        }
        staged[s].zeroize();
        columns.push(EncodedColumn {
            name: col.name.clone(),
            ty: col.ty,
            data,
        });
    }
    Ok(Table {
        schema: schema.clone(),
        rows,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 23,
    };

    fn opts() -> CsvOptions {
        CsvOptions {
            delimiter: b',',
            today: TODAY,
        }
    }

    fn schema() -> Schema {
        Schema::parse_compact("pnr:idnr,from:date,amount:int,ok:bool,kind:text").unwrap()
    }

    #[test]
    fn reads_valid_file_in_any_column_order() {
        let csv = "\u{feff}amount,pnr,kind,from,ok\n\
                   -5,811228-9874,försörjningsstöd,2024-02-29,true\n\
                   100,19121212-1212,\"a,b\",1969-12-31,0\n";
        let t = read_csv(csv.as_bytes(), "a.csv", &schema(), &opts()).unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.cell(0, 0), vec![198112289874]);
        assert_eq!(t.cell(1, 1), vec![(-1i64) as u64]);
        assert_eq!(t.cell(0, 2), vec![(-5i64) as u64]);
        assert_eq!(t.cell(1, 3), vec![0]);
        let mut out = Vec::new();
        t.write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pnr,from,amount,ok,kind\n\
             198112289874,2024-02-29,-5,true,försörjningsstöd\n\
             191212121212,1969-12-31,100,false,\"a,b\"\n"
        );
    }

    #[test]
    fn reports_file_line_column_and_reason() {
        let csv = "pnr,from,amount,ok,kind\n\
                   811228-9874,2024-01-01,1,true,x\n\
                   19121212-1213,2024-02-30,1,true,x\n\
                   811228-9874,2024-01-01,12kr,maybe,x\n";
        let e = read_csv(csv.as_bytes(), "inputs/a.csv", &schema(), &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inputs/a.csv:3:1: invalid identity number \"19121212-1213\": check digit should be 2\n\
             inputs/a.csv:3:2: invalid date \"2024-02-30\": February 2024 has 29 days\n\
             inputs/a.csv:4:3: invalid int \"12kr\": expected a whole number from -9223372036854775808 to 9223372036854775807, without spaces or separators\n\
             inputs/a.csv:4:4: invalid bool \"maybe\": expected true, false, 1 or 0"
        );
    }

    #[test]
    fn header_problems_are_named() {
        let s = schema();
        let e = read_csv("pnr,from,amount,ok\n".as_bytes(), "a.csv", &s, &opts()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a.csv:1: the schema declares column \"kind\""),
            "{e}"
        );
        let e = read_csv(
            "pnr,from,amount,ok,kind,secret\n".as_bytes(),
            "a.csv",
            &s,
            &opts(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("column \"secret\" (column 6) is not declared"),
            "{e}"
        );
        let e = read_csv(
            "pnr,pnr,from,amount,ok,kind\n".as_bytes(),
            "a.csv",
            &s,
            &opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let e = read_csv(
            "pnr,from,amount,ok,kind\n811228-9874,2024-01-01,1,true\n".as_bytes(),
            "a.csv",
            &s,
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.csv:2: this line has 4 fields, the header has 5; check the delimiter and quoting"
        );
    }

    #[test]
    fn semicolons_and_error_cap() {
        let s = Schema::parse_compact("n:int").unwrap();
        let o = CsvOptions {
            delimiter: b';',
            today: TODAY,
        };
        let t = read_csv("n\n1\n2\n".as_bytes(), "x", &s, &o).unwrap();
        assert_eq!(t.columns()[0].data, vec![1, 2]);
        let many = format!("n\n{}", "x\n".repeat(50));
        match read_csv(many.as_bytes(), "x", &s, &o).unwrap_err() {
            DataError::Cells { errors, more } => {
                assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
                assert!(more);
            }
            e => panic!("{e}"),
        }
    }
}
