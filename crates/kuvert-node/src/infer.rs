//! Column types for a CSV that comes without a declared schema (`kuvert
//! run` without `--schema` and without a `.schema` file beside the CSV).
//!
//! Rules, per column, first match wins:
//! 1. `idnr` if the header is `pnr`, `personnummer`, `idnr` or
//!    `samordningsnummer` (any case);
//! 2. `text` if the column has no values (the file has no rows);
//! 3. `bool` if every value is `true` or `false` (any case);
//! 4. `date` if every value is a valid `YYYY-MM-DD` date;
//! 5. `idnr` if every value is a valid identity number written with a
//!    separator (`YYMMDD-NNNC`, `YYMMDD+NNNC` or `YYYYMMDD-NNNC`), so that
//!    plain 10- or 12-digit numbers stay integers;
//! 6. `int` if every value is a whole number that fits in 64 bits;
//! 7. `text` otherwise.
//!
//! Inference reads the values on the contributor's machine only, like the
//! validation that follows; nothing of it is sent anywhere but the schema.

use std::path::Path;

use kuvert_data::{Column, ColumnType, Date, Schema};

/// Why a schema could not be inferred or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaSourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    Csv {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("{file}: {reason}")]
    Schema { file: String, reason: String },
}

/// Header names that always mean an identity number.
pub const IDNR_HEADERS: [&str; 4] = ["pnr", "personnummer", "idnr", "samordningsnummer"];

/// Infer the schema of the CSV at `path` (see the module docs).
pub fn infer_schema(path: &Path, delimiter: u8, today: Date) -> Result<Schema, SchemaSourceError> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| SchemaSourceError::Io {
        path: file.clone(),
        source: e,
    })?;
    infer_schema_from(f, &file, delimiter, today)
}

/// [`infer_schema`] of CSV text from `input`; `file` names it in errors.
pub fn infer_schema_from<R: std::io::Read>(
    input: R,
    file: &str,
    delimiter: u8,
    today: Date,
) -> Result<Schema, SchemaSourceError> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let csv_err = |e: csv::Error| {
        SchemaSourceError::Csv {
        file: file.to_string(),
        line: e.position().map(|p| p.line()).unwrap_or(0),
        reason: match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!(
                "this line has {len} fields, the header has {expected_len}; check the delimiter and quoting"
            ),
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8; export the file as UTF-8".into(),
            _ => e.to_string(),
        },
    }
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    // Candidate types still possible per column.
    #[derive(Clone, Copy)]
    struct Possible {
        bool: bool,
        date: bool,
        idnr: bool,
        int: bool,
    }
    let mut possible = vec![
        Possible {
            bool: true,
            date: true,
            idnr: true,
            int: true,
        };
        header.len()
    ];
    let mut rows = 0u64;
    let mut rec = csv::StringRecord::new();
    while rdr.read_record(&mut rec).map_err(csv_err)? {
        rows += 1;
        for (p, v) in possible.iter_mut().zip(rec.iter()) {
            let v = v.trim();
            p.bool = p.bool && (v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"));
            p.date = p.date && kuvert_data::value::parse_date(v).is_ok();
            p.idnr = p.idnr
                && (v.contains('-') || v.contains('+'))
                && kuvert_data::idnr::parse(v, today).is_ok();
            p.int = p.int && v.parse::<i64>().is_ok();
        }
    }
    let columns = header
        .iter()
        .zip(&possible)
        .map(|(name, p)| {
            let ty = if IDNR_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                ColumnType::Idnr
            } else if rows == 0 {
                ColumnType::Text
            } else if p.bool {
                ColumnType::Bool
            } else if p.date {
                ColumnType::Date
            } else if p.idnr {
                ColumnType::Idnr
            } else if p.int {
                ColumnType::Int
            } else {
                ColumnType::Text
            };
            Column {
                name: name.clone(),
                ty,
            }
        })
        .collect();
    Schema::new(columns).map_err(|e| SchemaSourceError::Schema {
        file: file.to_string(),
        reason: format!("{e}; rename the column in the header or give --schema"),
    })
}

/// Read a schema file: the compact form `name:type,...` (over one or more
/// lines; `#` starts a comment) or TOML with `[[column]]` tables.
pub fn read_schema_file(path: &Path) -> Result<Schema, SchemaSourceError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SchemaSourceError::Io {
        path: file.clone(),
        source: e,
    })?;
    parse_schema_text(&text).map_err(|reason| SchemaSourceError::Schema { file, reason })
}

/// The text of a schema file (see [`read_schema_file`]).
pub fn parse_schema_text(text: &str) -> Result<Schema, String> {
    if text.contains("[[column]]") {
        return Schema::from_toml(text).map_err(|e| e.to_string());
    }
    let compact: Vec<&str> = text
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_end_matches(',')
        })
        .filter(|l| !l.is_empty())
        .collect();
    Schema::parse_compact(&compact.join(",")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 23,
    };

    fn infer(csv: &str) -> Result<String, String> {
        infer_schema_from(csv.as_bytes(), "t.csv", b',', TODAY)
            .map(|s| s.to_compact())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_rule_in_order() {
        assert_eq!(
            infer(
                "PNR,id,b,d,n,t,big,mixed\n\
                 123,811228-9874,TRUE,2024-02-29,-5,x,198112289874,1\n\
                 456,19121212-1212,false,1969-12-31,7,12,191212121212,true\n"
            )
            .unwrap(),
            "PNR:idnr,id:idnr,b:bool,d:date,n:int,t:text,big:int,mixed:text"
        );
        // 2023-02-29 does not exist: text, not date. A wrong check digit: text.
        assert_eq!(
            infer("d,p\n2023-02-29,811228-9875\n").unwrap(),
            "d:text,p:text"
        );
        // No rows: text, except identity-number headers.
        assert_eq!(infer("a,pnr\n").unwrap(), "a:text,pnr:idnr");
        // 0/1 are ints, not bools (bools are written true/false).
        assert_eq!(infer("a\n0\n1\n").unwrap(), "a:int");
    }

    #[test]
    fn bad_files_are_named_with_their_line() {
        assert_eq!(
            infer("a,b\n1,2\n3\n").unwrap_err(),
            "t.csv:3: this line has 1 fields, the header has 2; check the delimiter and quoting"
        );
        assert!(infer("a b\n1\n").unwrap_err().contains("give --schema"));
    }

    #[test]
    fn schema_files_compact_or_toml() {
        assert_eq!(
            parse_schema_text("# fk\npnr:idnr,\nbelopp:int # kronor\n")
                .unwrap()
                .to_compact(),
            "pnr:idnr,belopp:int"
        );
        assert_eq!(
            parse_schema_text("[[column]]\nname = \"a\"\ntype = \"date\"\n")
                .unwrap()
                .to_compact(),
            "a:date"
        );
        assert!(parse_schema_text("a:float").is_err());
    }
}
