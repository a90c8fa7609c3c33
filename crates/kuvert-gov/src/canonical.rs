//! The canonical JSON encoding that analysis ids, audit hashes and receipt
//! signatures are computed over.
//!
//! For the documents Kuvert hashes (objects, arrays, strings, booleans,
//! null and non-negative integers; never floating-point numbers) this is the
//! JSON Canonicalization Scheme of RFC 8785: object members sorted by key
//! (all keys are ASCII, so byte order and UTF-16 order agree), no whitespace,
//! strings in UTF-8 with only `"`, `\` and control characters escaped
//! (`\b \f \n \r \t`, others as `\u00xx`), integers in plain decimal. Anyone
//! can recompute an id with any RFC 8785 implementation.

use serde_json::Value;

/// Write `v` canonically. Floating-point numbers are written as serde_json
/// writes them; callers never put one in a hashed document (ε and δ are
/// carried as decimal strings).
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // serde_json's scalar output is already the canonical one.
            out.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map keeps insertion order when
            // another crate in the build enables `preserve_order`.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write(&map[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn sorted_compact_escaped() {
        let v = json!({"b": [1, true, null], "a": {"z": "x\ny\"\u{1}", "c": "å"}});
        assert_eq!(
            super::to_string(&v),
            "{\"a\":{\"c\":\"å\",\"z\":\"x\\ny\\\"\\u0001\"},\"b\":[1,true,null]}"
        );
    }
}
