//! One CSV table with a header row, column types inferred from the values:
//! integer (i64), boolean (`true`/`false`), date (`YYYY-MM-DD`), else text.
//! An empty field is NULL.

use std::path::Path;

use crate::DpError;

/// A column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit signed integer.
    Integer,
    /// `true` / `false`.
    Boolean,
    /// Calendar date `YYYY-MM-DD`.
    Date,
    /// Anything else.
    Text,
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnType::Integer => "integer",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::Text => "text",
        })
    }
}

/// A typed value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// Missing.
    Null,
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Text.
    Text(String),
}

impl Value {
    /// The value as it would be written in the CSV.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) => (*i).into(),
            Value::Bool(b) => (*b).into(),
            Value::Date(d) => format_date(*d).into(),
            Value::Text(s) => s.clone().into(),
        }
    }
}

/// Column names and types.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// (name, type) per column, in file order.
    pub columns: Vec<(String, ColumnType)>,
}

impl Schema {
    /// Index and type of `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<(usize, ColumnType)> {
        self.columns
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|i| (i, self.columns[i].1))
    }
}

/// A loaded table.
#[derive(Clone, Debug)]
pub struct Table {
    /// Its schema.
    pub schema: Schema,
    /// Rows of typed values.
    pub rows: Vec<Vec<Value>>,
}

/// Days since 1970-01-01 of a civil date, and back: kuvert-data's
/// encoding, shared by every crate.
pub use kuvert_data::value::{days_from_ymd as days_from_civil, ymd_from_days as civil_from_days};

/// Parses `YYYY-MM-DD` strictly (valid month and day), as contributors'
/// dates are parsed everywhere in Kuvert.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = kuvert_data::value::parse_date(s).ok()?;
    Some(kuvert_data::value::days_from_civil(d) as i32)
}

/// `YYYY-MM-DD` of days since 1970-01-01.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 UTC time of a Unix timestamp in seconds.
pub fn format_rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let s = unix_seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses one field as the given type.
pub fn parse_value(s: &str, ty: ColumnType) -> Option<Value> {
    if s.is_empty() {
        return Some(Value::Null);
    }
    match ty {
        ColumnType::Integer => s.trim().parse().ok().map(Value::Int),
        ColumnType::Boolean => parse_bool(s.trim()).map(Value::Bool),
        ColumnType::Date => parse_date(s.trim()).map(Value::Date),
        ColumnType::Text => Some(Value::Text(s.to_string())),
    }
}

/// Reads only the header and infers types from all rows (no values are
/// kept). Used by planning, which must not depend on the data.
pub fn read_schema(path: &Path) -> Result<Schema, DpError> {
    load(path).map(|t| t.schema)
}

/// Loads a CSV file with a header row.
pub fn load(path: &Path) -> Result<Table, DpError> {
    // Two passes over the file: the first infers column types (keeping only
    // one candidate set per column), the second parses. Nothing but the
    // typed rows is held in memory.
    let columns = {
        let (header, mut rdr) = open_csv(path)?;
        const CANDIDATES: [ColumnType; 3] =
            [ColumnType::Integer, ColumnType::Boolean, ColumnType::Date];
        let mut possible = vec![[true; 3]; header.len()];
        for rec in rdr.records() {
            let (_, rec) = checked_record(path, rec, header.len())?;
            for (c, field) in rec.iter().enumerate() {
                for (t, ty) in CANDIDATES.iter().enumerate() {
                    if possible[c][t] && parse_value(field, *ty).is_none() {
                        possible[c][t] = false;
                    }
                }
            }
        }
        header
            .into_iter()
            .zip(possible)
            .map(|(name, p)| {
                let ty = (0..3)
                    .find(|&t| p[t])
                    .map_or(ColumnType::Text, |t| CANDIDATES[t]);
                (name, ty)
            })
            .collect::<Vec<_>>()
    };
    let (_, mut rdr) = open_csv(path)?;
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let (line, rec) = checked_record(path, rec, columns.len())?;
        let row = columns
            .iter()
            .zip(rec.iter())
            .enumerate()
            .map(|(c, ((_, ty), field))| {
                parse_value(field, *ty).ok_or_else(|| DpError::Csv {
                    path: path.to_path_buf(),
                    line,
                    column: c as u64 + 1,
                    message: format!(
                        "cannot read '{field}' as {ty} (the file changed while reading?)"
                    ),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
    }
    Ok(Table {
        schema: Schema { columns },
        rows,
    })
}

fn open_csv(path: &Path) -> Result<(Vec<String>, csv::Reader<std::fs::File>), DpError> {
    let file = std::fs::File::open(path).map_err(|e| DpError::Io {
        path: path.to_path_buf(),
        cause: e,
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file);
    let bad_header = |message: String| DpError::Csv {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message,
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| bad_header(e.to_string()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    if header.is_empty() || header.iter().any(|h| h.is_empty()) {
        return Err(bad_header("the header row must name every column".into()));
    }
    Ok((header, rdr))
}

fn checked_record(
    path: &Path,
    rec: Result<csv::StringRecord, csv::Error>,
    width: usize,
) -> Result<(u64, csv::StringRecord), DpError> {
    let err = |line: u64, column: u64, message: String| DpError::Csv {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let rec = rec.map_err(|e| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        err(line, 1, e.to_string())
    })?;
    let line = rec.position().map(|p| p.line()).unwrap_or(0);
    if rec.len() != width {
        return Err(err(
            line,
            rec.len().min(width) as u64 + 1,
            format!("expected {width} fields, found {}", rec.len()),
        ));
    }
    Ok((line, rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(format_date(19_782), "2024-02-29");
        assert_eq!(format_rfc3339(86_400 + 3_661), "1970-01-02T01:01:01Z");
    }

    #[test]
    fn infers_types_and_reports_ragged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(
            &p,
            "id,amount,flag,day,name\n1,10,true,2024-01-02,a\n2,,false,2024-01-03,b\n",
        )
        .unwrap();
        let t = load(&p).unwrap();
        let tys: Vec<ColumnType> = t.schema.columns.iter().map(|c| c.1).collect();
        use ColumnType::*;
        assert_eq!(tys, vec![Integer, Integer, Boolean, Date, Text]);
        assert_eq!(t.rows[1][1], Value::Null);
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.ends_with("t.csv:3:2: expected 2 fields, found 1"), "{e}");
    }
}
