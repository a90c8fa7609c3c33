//! Collection with local differential privacy: k-ary randomized response on
//! one categorical column of a CSV file, and the unbiased estimate of the
//! category frequencies from randomized answers.
//!
//! Each answer is replaced independently: it is kept with probability
//! e^ε/(e^ε + k − 1) and otherwise replaced by one of the k − 1 other
//! categories uniformly, sampled exactly ([`crate::sample::randomized_response`]).
//! Each row is then ε-locally-DP *for that column*; other columns are copied
//! unchanged and are not protected.

use std::path::Path;

use rand_core::{CryptoRng, RngCore};
use serde::Serialize;

use crate::sample::{randomized_response, randomized_response_estimate, Rational};
use crate::DpError;

/// What to randomize.
#[derive(Clone, Debug, PartialEq)]
pub struct RrSpec {
    /// The column holding the answer.
    pub column: String,
    /// All possible answers (public), at least two.
    pub categories: Vec<String>,
    /// ε per answer.
    pub epsilon: f64,
}

/// Estimated frequency of one category.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RrEstimate {
    /// The category.
    pub category: String,
    /// How many randomized answers were this category.
    pub observed: u64,
    /// Unbiased estimate of the true share (may fall outside [0, 1]).
    pub share: f64,
    /// Standard error of `share`.
    pub std_error: f64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DpError + '_ {
    move |e| DpError::Io {
        path: path.to_path_buf(),
        cause: e,
    }
}

fn csv_error(path: &Path, line: u64, column: u64, message: String) -> DpError {
    DpError::Csv {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

fn check_spec(spec: &RrSpec) -> Result<(), DpError> {
    crate::accounting::check_eps_delta(spec.epsilon, 0.0)?;
    if spec.categories.len() < 2 {
        return Err(DpError::InvalidParameter(
            "randomized response needs at least two --categories".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in &spec.categories {
        if !seen.insert(c) {
            return Err(DpError::InvalidParameter(format!(
                "category '{c}' is listed twice"
            )));
        }
    }
    Ok(())
}

/// Open a CSV file and find `column` in its header.
fn open_column(
    input: &Path,
    column: &str,
) -> Result<(csv::Reader<std::fs::File>, csv::StringRecord, usize), DpError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::fs::File::open(input).map_err(io(input))?);
    let header = rdr
        .headers()
        .map_err(|e| csv_error(input, 1, 1, e.to_string()))?
        .clone();
    let col = header
        .iter()
        .position(|h| h.trim() == column)
        .ok_or_else(|| csv_error(input, 1, 1, format!("no column '{column}' in the header")))?;
    Ok((rdr, header, col))
}

/// Reads `input`, randomizes `spec.column` in every row and writes `output`
/// atomically (temporary file + rename). Returns the number of rows.
/// A value outside the categories is an error naming file:line:column.
pub fn randomize_csv<R: RngCore + CryptoRng + ?Sized>(
    input: &Path,
    output: &Path,
    spec: &RrSpec,
    rng: &mut R,
) -> Result<u64, DpError> {
    check_spec(spec)?;
    let eps = Rational::from_f64(spec.epsilon)?;
    let (mut rdr, header, col) = open_column(input, &spec.column)?;
    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut w = csv::Writer::from_path(&tmp).map_err(|e| DpError::Io {
            path: tmp.clone(),
            cause: e.into(),
        })?;
        let werr = |e: csv::Error| DpError::Io {
            path: tmp.clone(),
            cause: e.into(),
        };
        w.write_record(&header).map_err(werr)?;
        let mut n = 0u64;
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                csv_error(input, line, 1, e.to_string())
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let value = rec.get(col).unwrap_or("").trim();
            let truth = spec
                .categories
                .iter()
                .position(|c| c == value)
                .ok_or_else(|| {
                    csv_error(
                        input,
                        line,
                        col as u64 + 1,
                        format!(
                            "'{value}' is not one of the declared categories ({})",
                            spec.categories.join(", ")
                        ),
                    )
                })?;
            let out = randomized_response(rng, truth, spec.categories.len(), &eps)?;
            let fields: Vec<&str> = rec
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if i == col {
                        spec.categories[out].as_str()
                    } else {
                        f
                    }
                })
                .collect();
            w.write_record(&fields).map_err(werr)?;
            n += 1;
        }
        w.flush().map_err(io(&tmp))?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            std::fs::rename(&tmp, output).map_err(io(output))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Counts the randomized answers in `input` and returns the unbiased share
/// of each category with its standard error
/// √(π̂(1−π̂)/n)/(p − r), where π̂ is the observed share.
pub fn estimate_csv(input: &Path, spec: &RrSpec) -> Result<Vec<RrEstimate>, DpError> {
    check_spec(spec)?;
    let (mut rdr, _, col) = open_column(input, &spec.column)?;
    let mut counts = vec![0u64; spec.categories.len()];
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            csv_error(input, line, 1, e.to_string())
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let value = rec.get(col).unwrap_or("").trim();
        let i = spec
            .categories
            .iter()
            .position(|c| c == value)
            .ok_or_else(|| {
                csv_error(
                    input,
                    line,
                    col as u64 + 1,
                    format!("'{value}' is not one of the declared categories"),
                )
            })?;
        counts[i] += 1;
    }
    let n: u64 = counts.iter().sum();
    let k = counts.len() as f64;
    let e = spec.epsilon.exp();
    let (p, r) = (e / (e + k - 1.0), 1.0 / (e + k - 1.0));
    let shares = randomized_response_estimate(&counts, spec.epsilon);
    Ok(spec
        .categories
        .iter()
        .zip(counts.iter().zip(shares))
        .map(|(c, (&obs, share))| {
            let pi = if n == 0 { 0.0 } else { obs as f64 / n as f64 };
            let se = if n == 0 {
                f64::NAN
            } else {
                (pi * (1.0 - pi) / n as f64).sqrt() / (p - r)
            };
            RrEstimate {
                category: c.clone(),
                observed: obs,
                share,
                std_error: se,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn randomize_then_estimate_recovers_shares() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        let output = dir.path().join("out.csv");
        let mut text = String::from("id,answer\n");
        // true shares: yes 0.6, no 0.3, unsure 0.1
        for i in 0..20_000 {
            let a = match i % 10 {
                0..=5 => "yes",
                6..=8 => "no",
                _ => "unsure",
            };
            text.push_str(&format!("{i},{a}\n"));
        }
        std::fs::write(&input, text).unwrap();
        let spec = RrSpec {
            column: "answer".into(),
            categories: vec!["yes".into(), "no".into(), "unsure".into()],
            epsilon: 1.0,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        assert_eq!(
            randomize_csv(&input, &output, &spec, &mut rng).unwrap(),
            20_000
        );
        let out = std::fs::read_to_string(&output).unwrap();
        // Ids are copied; about e/(e+2) ≈ 57.6 % of answers are kept.
        let kept = out
            .lines()
            .skip(1)
            .zip(std::fs::read_to_string(&input).unwrap().lines().skip(1))
            .filter(|(a, b)| a == b)
            .count() as f64
            / 20_000.0;
        assert!(
            (kept - 1f64.exp() / (1f64.exp() + 2.0)).abs() < 0.02,
            "{kept}"
        );
        let est = estimate_csv(&output, &spec).unwrap();
        for (e, truth) in est.iter().zip([0.6, 0.3, 0.1]) {
            let z = (e.share - truth) / e.std_error;
            assert!(z.abs() < 5.0, "{e:?}");
        }
        // The raw randomized shares are biased towards uniform; the estimate is not.
        assert!((est[0].observed as f64 / 20_000.0) < 0.5);
    }

    #[test]
    fn undeclared_values_are_reported_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "id,answer\n1,yes\n2,maybe\n").unwrap();
        let spec = RrSpec {
            column: "answer".into(),
            categories: vec!["yes".into(), "no".into()],
            epsilon: 1.0,
        };
        let out = dir.path().join("out.csv");
        let e = randomize_csv(&input, &out, &spec, &mut ChaCha20Rng::seed_from_u64(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("in.csv:3:2") && e.contains("'maybe'"), "{e}");
        assert!(!out.exists(), "no partial output");
    }
}
