//! Declared table schemas.
//!
//! Two spellings, the same meaning:
//!
//! ```text
//! compact:  pnr:idnr,from:date,amount:int,active:bool,kind:text
//! TOML:     [[column]]
//!           name = "pnr"
//!           type = "idnr"
//! ```
//!
//! In a larger TOML file (an analysis), a schema may be given either way:
//! `schema = "pnr:idnr,amount:int"` or `schema = [{ name = "pnr", type = "idnr" }]`
//! ([`Schema`] implements `Deserialize` for both).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The type of a column, and so how its cells are validated and encoded in
/// the ring Z_2^64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// A signed 64-bit integer, encoded in two's complement.
    Int,
    /// A calendar date `YYYY-MM-DD`, encoded as days since 1970-01-01
    /// (negative before, in two's complement).
    Date,
    /// `true`/`false` (or `1`/`0`), encoded as 1/0.
    Bool,
    /// A Swedish personnummer or samordningsnummer, validated and encoded as
    /// the 12-digit number `YYYYMMDDNNNC`.
    Idnr,
    /// UTF-8 text of at most 32 bytes, encoded as 4 words (big-endian,
    /// zero-padded).
    Text,
}

impl ColumnType {
    /// Ring words per cell: 4 for `text`, 1 otherwise.
    pub fn words(self) -> usize {
        match self {
            ColumnType::Text => crate::value::TEXT_WORDS,
            _ => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Date => "date",
            ColumnType::Bool => "bool",
            ColumnType::Idnr => "idnr",
            ColumnType::Text => "text",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColumnType {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<ColumnType, SchemaError> {
        Ok(match s.trim() {
            "int" => ColumnType::Int,
            "date" => ColumnType::Date,
            "bool" => ColumnType::Bool,
            "idnr" => ColumnType::Idnr,
            "text" => ColumnType::Text,
            other => return Err(SchemaError::UnknownType(other.to_string())),
        })
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// What is wrong with a schema declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown column type {0:?}; use int, date, bool, idnr or text")]
    UnknownType(String),
    #[error("column declaration {0:?} is not of the form name:type")]
    BadDeclaration(String),
    #[error("invalid column name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("column {0:?} is declared twice")]
    Duplicate(String),
    #[error("the schema declares no columns")]
    Empty,
    #[error("schema TOML: {0}")]
    Toml(String),
}

/// An ordered list of uniquely named, typed columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schema {
    columns: Vec<Column>,
}

impl Schema {
    /// Check names (1 to 64 characters of letters, digits and `_`, not
    /// starting with a digit) and uniqueness.
    pub fn new(columns: Vec<Column>) -> Result<Schema, SchemaError> {
        if columns.is_empty() {
            return Err(SchemaError::Empty);
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &columns {
            validate_name(&c.name)?;
            if !seen.insert(c.name.as_str()) {
                return Err(SchemaError::Duplicate(c.name.clone()));
            }
        }
        Ok(Schema { columns })
    }

    /// Parse `name:type,name:type,...` (spaces around items are ignored).
    pub fn parse_compact(s: &str) -> Result<Schema, SchemaError> {
        let mut columns = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let (name, ty) = item
                .split_once(':')
                .ok_or_else(|| SchemaError::BadDeclaration(item.to_string()))?;
            columns.push(Column {
                name: name.trim().to_string(),
                ty: ty.parse()?,
            });
        }
        Schema::new(columns)
    }

    /// Parse a TOML document with `[[column]]` tables (`name`, `type`).
    pub fn from_toml(s: &str) -> Result<Schema, SchemaError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            column: Vec<Column>,
        }
        let doc: Doc = toml::from_str(s).map_err(|e| SchemaError::Toml(e.to_string()))?;
        Schema::new(doc.column)
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Position of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The compact form, `name:type,...`.
    pub fn to_compact(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("{}:{}", c.name, c.ty))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compact())
    }
}

impl FromStr for Schema {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Schema, SchemaError> {
        Schema::parse_compact(s)
    }
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schema, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Compact(String),
            List(Vec<Column>),
        }
        let schema = match Repr::deserialize(d)? {
            Repr::Compact(s) => Schema::parse_compact(&s),
            Repr::List(cols) => Schema::new(cols),
        };
        schema.map_err(serde::de::Error::custom)
    }
}

fn validate_name(name: &str) -> Result<(), SchemaError> {
    let bad = |reason| {
        Err(SchemaError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("use 1 to 64 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("use only letters a-z, A-Z, digits and '_'");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return bad("must not start with a digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_toml_agree() {
        let a =
            Schema::parse_compact("pnr:idnr, from:date,amount:int,active:bool,kind:text").unwrap();
        let b = Schema::from_toml(
            r#"
            [[column]]
            name = "pnr"
            type = "idnr"
            [[column]]
            name = "from"
            type = "date"
            [[column]]
            name = "amount"
            type = "int"
            [[column]]
            name = "active"
            type = "bool"
            [[column]]
            name = "kind"
            type = "text"
            "#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.to_compact(),
            "pnr:idnr,from:date,amount:int,active:bool,kind:text"
        );
        assert_eq!(a.index_of("amount"), Some(2));
    }

    #[test]
    fn embedded_in_a_larger_toml_either_way() {
        #[derive(Deserialize)]
        struct T {
            schema: Schema,
        }
        let a: T = toml::from_str(r#"schema = "pnr:idnr,amount:int""#).unwrap();
        let b: T = toml::from_str(
            r#"schema = [{ name = "pnr", type = "idnr" }, { name = "amount", type = "int" }]"#,
        )
        .unwrap();
        assert_eq!(a.schema, b.schema);
        assert!(toml::from_str::<T>(r#"schema = "pnr:money""#).is_err());
    }

    #[test]
    fn bad_declarations_say_why() {
        assert_eq!(
            Schema::parse_compact("a:int,a:date"),
            Err(SchemaError::Duplicate("a".into()))
        );
        assert_eq!(
            Schema::parse_compact("a:float"),
            Err(SchemaError::UnknownType("float".into()))
        );
        assert!(matches!(
            Schema::parse_compact("a"),
            Err(SchemaError::BadDeclaration(_))
        ));
        assert!(matches!(
            Schema::parse_compact("1a:int"),
            Err(SchemaError::BadName { .. })
        ));
        assert!(matches!(
            Schema::parse_compact("a b:int"),
            Err(SchemaError::BadName { .. })
        ));
        assert!(matches!(
            Schema::from_toml("[[column]]\nname = \"x\"\n"),
            Err(SchemaError::Toml(_))
        ));
    }
}
