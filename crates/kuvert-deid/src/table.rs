//! A columnar, dictionary-encoded table: each column is a dictionary of
//! distinct strings plus one `u32` code per row. Grouping rows by
//! quasi-identifiers then works on small integers, never on strings.

use crate::error::{DeidError, Result};
use std::collections::HashMap;
use std::path::Path;

/// One dictionary-encoded column.
#[derive(Debug, Clone, Default)]
pub struct Column {
    /// Distinct values; `codes` index into it.
    pub dict: Vec<String>,
    /// One code per row.
    pub codes: Vec<u32>,
}

impl Column {
    /// Build a column from strings.
    pub fn from_values<I: IntoIterator<Item = S>, S: AsRef<str>>(values: I) -> Column {
        let mut b = ColumnBuilder::default();
        for v in values {
            b.push(v.as_ref());
        }
        b.finish()
    }
    /// Value of row `r`.
    pub fn get(&self, r: usize) -> &str {
        &self.dict[self.codes[r] as usize]
    }
    /// Count of each code.
    pub fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.dict.len()];
        for &x in &self.codes {
            c[x as usize] += 1;
        }
        c
    }
}

/// Incremental builder that interns values.
#[derive(Debug, Default)]
pub struct ColumnBuilder {
    index: HashMap<String, u32>,
    col: Column,
}

impl ColumnBuilder {
    /// Append a value.
    pub fn push(&mut self, v: &str) {
        let code = match self.index.get(v) {
            Some(&c) => c,
            None => {
                let c = self.col.dict.len() as u32;
                self.index.insert(v.to_string(), c);
                self.col.dict.push(v.to_string());
                c
            }
        };
        self.col.codes.push(code);
    }
    /// Finish.
    pub fn finish(self) -> Column {
        self.col
    }
}

/// A table read from a file (or generated).
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Where it came from, for error messages.
    pub source: String,
    /// Column names.
    pub headers: Vec<String>,
    /// Columns, same order as `headers`.
    pub columns: Vec<Column>,
    /// File line of each row (1-based), for error messages.
    pub lines: Vec<u64>,
}

impl Table {
    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.lines.len()
    }

    /// Build from named string columns (all the same length).
    pub fn from_columns(source: &str, cols: Vec<(String, Vec<String>)>) -> Table {
        let n = cols.first().map(|c| c.1.len()).unwrap_or(0);
        Table {
            source: source.to_string(),
            headers: cols.iter().map(|c| c.0.clone()).collect(),
            columns: cols.iter().map(|c| Column::from_values(&c.1)).collect(),
            lines: (0..n as u64).map(|i| i + 2).collect(),
        }
    }

    /// Index of a column by name.
    pub fn col_index(&self, name: &str) -> Result<usize> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DeidError::NoSuchColumn {
                path: self.source.clone(),
                column: name.to_string(),
                available: self.headers.join(", "),
            })
    }

    /// Error located at row `r`, column `c`.
    pub fn bad_value(&self, r: usize, c: usize, message: impl Into<String>) -> DeidError {
        DeidError::BadValue {
            path: self.source.clone(),
            line: self.lines.get(r).copied().unwrap_or(0),
            column: c + 1,
            message: message.into(),
        }
    }

    /// Keep only the rows where `keep[r]` is true.
    pub fn filter_rows(&mut self, keep: &[bool]) {
        for col in &mut self.columns {
            let mut i = 0;
            col.codes.retain(|_| {
                let k = keep[i];
                i += 1;
                k
            });
        }
        let mut i = 0;
        self.lines.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
    }

    /// Remove a column.
    pub fn drop_column(&mut self, c: usize) {
        self.headers.remove(c);
        self.columns.remove(c);
    }

    /// Read a table; the format is chosen by the file extension
    /// (`.csv`, `.tsv`; anything else is refused with a hint).
    pub fn read(path: &Path) -> Result<Table> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "txt" => Self::read_delimited(path, b','),
            "tsv" => Self::read_delimited(path, b'\t'),
            "parquet" | "pq" => Self::read_parquet(path),
            _ => Err(DeidError::Config(format!(
                "{}: unknown file type `.{ext}`; use a .csv, .tsv or .parquet file",
                path.display()
            ))),
        }
    }

    /// Read a Parquet file (flat schema). Every value becomes text: numbers
    /// as written by Rust, dates as `YYYY-MM-DD`, nulls as empty cells. The
    /// "line" of a row in error messages is its 1-based row number.
    pub fn read_parquet(path: &Path) -> Result<Table> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;
        let source = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| DeidError::Io {
            path: source.clone(),
            source: e,
        })?;
        let perr = |e: parquet::errors::ParquetError, row: u64| DeidError::Csv {
            path: source.clone(),
            line: row,
            message: format!("cannot read Parquet: {e}"),
        };
        let reader = SerializedFileReader::new(file).map_err(|e| perr(e, 0))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let headers: Vec<String> = schema
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let mut builders: Vec<ColumnBuilder> =
            headers.iter().map(|_| ColumnBuilder::default()).collect();
        let mut lines = Vec::new();
        let rows = reader.get_row_iter(None).map_err(|e| perr(e, 0))?;
        for (i, row) in rows.enumerate() {
            let line = i as u64 + 1;
            let row = row.map_err(|e| perr(e, line))?;
            let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
            if fields.len() != builders.len() {
                return Err(DeidError::Csv {
                    path: source,
                    line,
                    message: "nested Parquet columns are not supported; flatten the schema".into(),
                });
            }
            for (b, f) in builders.iter_mut().zip(fields) {
                let text = match f {
                    Field::Null => String::new(),
                    Field::Str(s) => s.clone(),
                    Field::Bytes(b) => String::from_utf8_lossy(b.data()).into_owned(),
                    Field::Date(d) => {
                        let (y, m, dd) = crate::date::civil_from_days(*d as i64);
                        format!("{y:04}-{m:02}-{dd:02}")
                    }
                    Field::Float(x) => format!("{x}"),
                    Field::Double(x) => format!("{x}"),
                    Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
                        return Err(DeidError::Csv {
                            path: source,
                            line,
                            message: "nested Parquet columns are not supported; flatten the schema"
                                .into(),
                        })
                    }
                    other => other.to_string(),
                };
                b.push(&text);
            }
            lines.push(line);
        }
        Ok(Table {
            source,
            headers,
            columns: builders.into_iter().map(ColumnBuilder::finish).collect(),
            lines,
        })
    }

    /// Read a delimited text file with a header row.
    pub fn read_delimited(path: &Path, delimiter: u8) -> Result<Table> {
        let source = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| DeidError::Io {
            path: source.clone(),
            source: e,
        })?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(false)
            .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
        let csv_err = |e: csv::Error, source: &str| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            DeidError::Csv {
                path: source.to_string(),
                line,
                message: e.to_string(),
            }
        };
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| csv_err(e, &source))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        {
            let mut seen = std::collections::HashSet::new();
            for h in &headers {
                if !seen.insert(h) {
                    return Err(DeidError::Csv {
                        path: source,
                        line: 1,
                        message: format!("column name `{h}` appears twice; names must be unique"),
                    });
                }
            }
        }
        let mut builders: Vec<ColumnBuilder> =
            headers.iter().map(|_| ColumnBuilder::default()).collect();
        let mut lines = Vec::new();
        let mut rec = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut rec) {
                Ok(true) => {
                    lines.push(rec.position().map(|p| p.line()).unwrap_or(0));
                    for (b, v) in builders.iter_mut().zip(rec.iter()) {
                        b.push(v);
                    }
                }
                Ok(false) => break,
                Err(e) => return Err(csv_err(e, &source)),
            }
        }
        Ok(Table {
            source,
            headers,
            columns: builders.into_iter().map(ColumnBuilder::finish).collect(),
            lines,
        })
    }

    /// Write as CSV.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| DeidError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
        let map = |e: csv::Error| DeidError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        };
        w.write_record(&self.headers).map_err(map)?;
        let mut row: Vec<&str> = Vec::with_capacity(self.columns.len());
        for r in 0..self.nrows() {
            row.clear();
            row.extend(self.columns.iter().map(|c| c.get(r)));
            w.write_record(&row).map_err(map)?;
        }
        w.flush().map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_is_read_by_extension() {
        use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
        use parquet::file::writer::SerializedFileWriter;
        use std::sync::Arc;
        let dir = std::env::temp_dir().join(format!("kuvert-deid-pq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.parquet");
        let schema = Arc::new(
            parquet::schema::parser::parse_message_type(
                "message m { required int32 age; required binary town (UTF8); optional int32 d (DATE); }",
            )
            .unwrap(),
        );
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(&p).unwrap(),
            schema,
            Default::default(),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int32Type>()
            .write_batch(&[34, 51, 34], None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        let towns: Vec<ByteArray> = ["Kiruna", "Visby", "Kiruna"]
            .iter()
            .map(|s| ByteArray::from(*s))
            .collect();
        c.typed::<ByteArrayType>()
            .write_batch(&towns, None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        // Two dates and a null; 19723 days = 2024-01-01.
        c.typed::<Int32Type>()
            .write_batch(&[19723, 19724], Some(&[1, 0, 1]), None)
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
        w.close().unwrap();
        let t = Table::read(&p).unwrap();
        assert_eq!(t.headers, vec!["age", "town", "d"]);
        assert_eq!(t.nrows(), 3);
        assert_eq!(t.columns[0].get(1), "51");
        assert_eq!(t.columns[1].get(2), "Kiruna");
        assert_eq!(t.columns[2].get(0), "2024-01-01");
        assert_eq!(t.columns[2].get(1), "");
        assert_eq!(t.columns[2].get(2), "2024-01-02");
    }

    #[test]
    fn read_write_round_trip() {
        let dir = std::env::temp_dir().join(format!("kuvert-deid-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.csv");
        std::fs::write(&p, "a,b\n1,x\n2,\"y,z\"\n1,x\n").unwrap();
        let t = Table::read(&p).unwrap();
        assert_eq!(t.nrows(), 3);
        assert_eq!(t.columns[0].dict, vec!["1", "2"]);
        assert_eq!(t.columns[1].get(1), "y,z");
        assert_eq!(t.lines, vec![2, 3, 4]);
        let q = dir.join("b.csv");
        t.write_csv(&q).unwrap();
        assert_eq!(
            std::fs::read_to_string(&q).unwrap(),
            "a,b\n1,x\n2,\"y,z\"\n1,x\n"
        );
        std::fs::write(&p, "a,b\n1\n").unwrap();
        let e = Table::read(&p).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{e}");
    }
}
