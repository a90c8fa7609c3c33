//! Privacy models: k-anonymity, l-diversity (distinct and entropy) and
//! t-closeness, evaluated on one equivalence class at a time.

use serde::{Deserialize, Serialize};

/// Which flavour of l-diversity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LKind {
    /// At least `l` distinct sensitive values per class.
    #[default]
    Distinct,
    /// Entropy of the sensitive values per class at least `ln(l)`.
    Entropy,
}

/// Ground distance of t-closeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TDistance {
    /// Numeric if every sensitive value is a number, else equal.
    #[default]
    Auto,
    /// Every pair of distinct values is at distance 1 (EMD = total variation).
    Equal,
    /// Values ordered numerically; distance = rank difference / (m-1).
    Ordered,
}

/// The privacy models to satisfy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// k of k-anonymity (1 = none).
    #[serde(default = "one")]
    pub k: u64,
    /// l of l-diversity, if any.
    #[serde(default)]
    pub l: Option<f64>,
    /// Flavour of l-diversity.
    #[serde(default)]
    pub l_kind: LKind,
    /// t of t-closeness, if any.
    #[serde(default)]
    pub t: Option<f64>,
    /// Ground distance of t-closeness.
    #[serde(default)]
    pub t_distance: TDistance,
}

fn one() -> u64 {
    1
}

impl Default for Models {
    fn default() -> Self {
        Models {
            k: 1,
            l: None,
            l_kind: LKind::Distinct,
            t: None,
            t_distance: TDistance::Auto,
        }
    }
}

impl Models {
    /// Whether a sensitive column is needed.
    pub fn needs_sensitive(&self) -> bool {
        self.l.is_some() || self.t.is_some()
    }
    /// Whether the combination is monotone under generalisation with
    /// suppression (k-anonymity and distinct l-diversity are; entropy
    /// l-diversity and t-closeness are not, strictly).
    pub fn monotone(&self) -> bool {
        self.t.is_none() && (self.l.is_none() || self.l_kind == LKind::Distinct)
    }
}

/// Global sensitive distribution, prepared for t-closeness.
#[derive(Debug, Clone)]
pub struct SensitiveDist {
    /// Overall share of each sensitive code.
    pub q: Vec<f64>,
    /// Rank of each code in the numeric order (ordered distance), if used.
    pub rank: Option<Vec<u32>>,
}

impl SensitiveDist {
    /// Build from counts of each code and the dictionary.
    pub fn new(counts: &[u64], dict: &[String], dist: TDistance) -> SensitiveDist {
        let total: u64 = counts.iter().sum();
        let q = counts
            .iter()
            .map(|&c| c as f64 / total.max(1) as f64)
            .collect();
        let nums: Option<Vec<f64>> = dict.iter().map(|s| s.trim().parse::<f64>().ok()).collect();
        let ordered = match dist {
            TDistance::Equal => false,
            TDistance::Ordered => nums.is_some(),
            TDistance::Auto => nums.is_some(),
        };
        let rank = if ordered {
            let nums = nums.unwrap_or_default();
            let mut idx: Vec<usize> = (0..nums.len()).collect();
            idx.sort_by(|&a, &b| nums[a].total_cmp(&nums[b]));
            let mut rank = vec![0u32; nums.len()];
            for (r, &i) in idx.iter().enumerate() {
                rank[i] = r as u32;
            }
            Some(rank)
        } else {
            None
        };
        SensitiveDist { q, rank }
    }

    /// Earth mover's distance between a class histogram (code, count) and the global distribution.
    pub fn emd(&self, hist: &[(u32, u64)]) -> f64 {
        let n: u64 = hist.iter().map(|h| h.1).sum();
        let n = n.max(1) as f64;
        match &self.rank {
            None => {
                let mut present_abs = 0.0;
                let mut present_q = 0.0;
                for &(c, k) in hist {
                    let q = self.q[c as usize];
                    present_abs += (k as f64 / n - q).abs();
                    present_q += q;
                }
                0.5 * (present_abs + (1.0 - present_q).max(0.0))
            }
            Some(rank) => {
                let m = self.q.len();
                if m < 2 {
                    return 0.0;
                }
                let mut diff = vec![0.0f64; m];
                for (c, &q) in self.q.iter().enumerate() {
                    diff[rank[c] as usize] -= q;
                }
                for &(c, k) in hist {
                    diff[rank[c as usize] as usize] += k as f64 / n;
                }
                let mut cum = 0.0;
                let mut total = 0.0;
                for d in diff.iter().take(m - 1) {
                    cum += d;
                    total += cum.abs();
                }
                total / (m - 1) as f64
            }
        }
    }
}

/// Whether one class (size and sensitive histogram) satisfies the l and t models.
pub fn class_ok_sensitive(
    models: &Models,
    hist: &[(u32, u64)],
    dist: Option<&SensitiveDist>,
) -> bool {
    if let Some(l) = models.l {
        match models.l_kind {
            LKind::Distinct => {
                if (hist.len() as f64) < l {
                    return false;
                }
            }
            LKind::Entropy => {
                let n: u64 = hist.iter().map(|h| h.1).sum();
                let n = n as f64;
                let h: f64 = hist
                    .iter()
                    .map(|&(_, k)| {
                        let p = k as f64 / n;
                        -p * p.ln()
                    })
                    .sum();
                // Small tolerance for floating point at exactly ln(l).
                if h + 1e-12 < l.ln() {
                    return false;
                }
            }
        }
    }
    if let (Some(t), Some(d)) = (models.t, dist) {
        if d.emd(hist) > t + 1e-12 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emd_equal_distance_is_total_variation() {
        let d = SensitiveDist::new(&[50, 50], &["a".into(), "b".into()], TDistance::Equal);
        assert!((d.emd(&[(0, 10)]) - 0.5).abs() < 1e-12);
        assert!(d.emd(&[(0, 5), (1, 5)]).abs() < 1e-12);
    }

    #[test]
    fn emd_ordered_hand_computed() {
        // Li et al. example: salaries 3k..11k, class {3k,4k,5k}: EMD = 0.375.
        let dict: Vec<String> = (3..=11).map(|x| format!("{x}")).collect();
        let d = SensitiveDist::new(&[1; 9], &dict, TDistance::Ordered);
        let e = d.emd(&[(0, 1), (1, 1), (2, 1)]);
        assert!((e - 0.375).abs() < 1e-9, "{e}");
    }

    #[test]
    fn l_diversity() {
        let m = Models {
            k: 1,
            l: Some(2.0),
            ..Models::default()
        };
        assert!(!class_ok_sensitive(&m, &[(0, 5)], None));
        assert!(class_ok_sensitive(&m, &[(0, 5), (1, 1)], None));
        let me = Models {
            l_kind: LKind::Entropy,
            ..m
        };
        assert!(!class_ok_sensitive(&me, &[(0, 5), (1, 1)], None));
        assert!(class_ok_sensitive(&me, &[(0, 3), (1, 3)], None));
    }
}
