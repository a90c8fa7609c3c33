//! The HTML report of an [`Evaluation`]: self-contained (inline SVG, no
//! scripts, no external resources), in the look of `kuvert risk`'s report,
//! with the acceptance decision first, in plain English.

use crate::eval::{ColumnReport, CriterionResult, Evaluation, PairReport};
use kuvert_deid::attacks::AttackResult;
use kuvert_deid::report::band;
use std::fmt::Write;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(x: f64) -> String {
    if x.is_infinite() {
        return "∞".to_string();
    }
    format!("{:.1}%", x * 100.0)
}

const REAL: &str = "#1565c0";
const SYN: &str = "#ef6c00";

fn fmt_crit(name: &str, v: f64) -> String {
    if name.contains("corr_diff") {
        format!("{v:.3}")
    } else {
        pct(v)
    }
}

fn criteria_table(s: &mut String, crit: &[CriterionResult]) {
    s.push_str("<table class=\"crit\"><tr><th>Requirement</th><th>Required</th><th>Measured</th><th>Result</th></tr>");
    for c in crit {
        let (word, color) = if c.passed {
            ("PASS", "#2e7d32")
        } else {
            ("FAIL", "#c62828")
        };
        let key = match &c.column {
            Some(col) => format!("{} [{}]", c.name, col),
            None => c.name.clone(),
        };
        let _ = write!(
            s,
            r#"<tr><td>{}<br><small><code>{}</code>{}</small></td><td>{} {}</td><td>{}</td><td style="color:{color}"><b>{word}</b></td></tr>"#,
            esc(&c.description),
            esc(&key),
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", esc(&c.detail))
            },
            if c.comparison == "<=" {
                "at most"
            } else {
                "at least"
            },
            fmt_crit(&c.name, c.threshold),
            c.value
                .map(|v| fmt_crit(&c.name, v))
                .unwrap_or_else(|| "not measured".to_string()),
        );
    }
    s.push_str("</table>");
}

/// Horizontal paired bars of a column's shares, real vs synthetic.
fn column_chart(c: &ColumnReport) -> String {
    let (w, left, row) = (600.0, 200.0, 22.0);
    let h = row * c.bars.len() as f64 + 30.0;
    let max = c
        .bars
        .iter()
        .map(|b| b.real.max(b.synthetic))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let scale = w - left - 60.0;
    let mut s = format!(
        r#"<svg width="{w}" height="{h}" role="img" aria-label="shares of {} in real and synthetic data" xmlns="http://www.w3.org/2000/svg"><style>text{{font:11px sans-serif}}</style>"#,
        esc(&c.name)
    );
    for (i, b) in c.bars.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let mut label = b.label.clone();
        if label.chars().count() > 30 {
            label = label.chars().take(29).collect::<String>() + "…";
        }
        if label.trim().is_empty() {
            label = "(empty)".to_string();
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 13.0,
            esc(&label)
        );
        for (k, (v, color)) in [(b.real, REAL), (b.synthetic, SYN)].iter().enumerate() {
            let _ = write!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="8" fill="{color}"/>"#,
                y + 2.0 + k as f64 * 9.0,
                v / max * scale
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{} / {}</text>"#,
            left + b.real.max(b.synthetic) / max * scale + 4.0,
            y + 13.0,
            pct(b.real),
            pct(b.synthetic)
        );
    }
    let y = h - 8.0;
    let _ = write!(
        s,
        r#"<rect x="{left}" y="{:.1}" width="10" height="8" fill="{REAL}"/><text x="{:.1}" y="{y:.1}">real (training data)</text><rect x="{:.1}" y="{:.1}" width="10" height="8" fill="{SYN}"/><text x="{:.1}" y="{y:.1}">synthetic</text></svg>"#,
        y - 8.0,
        left + 14.0,
        left + 140.0,
        y - 8.0,
        left + 154.0
    );
    s
}

/// Heat map of a symmetric measure over the column pairs.
fn heat_map(
    names: &[String],
    pairs: &[PairReport],
    value: &dyn Fn(&PairReport) -> f64,
    scale_max: f64,
    what: &str,
) -> String {
    let n = names.len();
    if n < 2 {
        return "<p>Fewer than two evaluated columns: no pairs.</p>".to_string();
    }
    let cell = (480.0 / n as f64).clamp(8.0, 36.0);
    let left = 150.0;
    let top = 110.0;
    let w = left + cell * n as f64 + 20.0;
    let h = top + cell * n as f64 + 40.0;
    let max = pairs
        .iter()
        .map(value)
        .fold(0.0f64, f64::max)
        .max(scale_max);
    let pos = |name: &str| names.iter().position(|x| x == name).unwrap_or(0);
    let mut s = format!(
        r#"<svg width="{w:.0}" height="{h:.0}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><style>text{{font:10px sans-serif}}</style>"#,
        esc(what)
    );
    let short = |x: &str| {
        if x.chars().count() > 22 {
            x.chars().take(21).collect::<String>() + "…"
        } else {
            x.to_string()
        }
    };
    for (i, nm) in names.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 4.0,
            top + cell * (i as f64 + 0.5) + 3.0,
            esc(&short(nm))
        );
        let x = left + cell * (i as f64 + 0.5);
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" transform="rotate(-50 {x:.1} {:.1})">{}</text>"#,
            top - 4.0,
            top - 4.0,
            esc(&short(nm))
        );
    }
    for p in pairs {
        let v = value(p);
        let t = (v / max).clamp(0.0, 1.0);
        // White to dark red.
        let (r, g, b) = (255.0 - 57.0 * t, 255.0 - 215.0 * t, 255.0 - 215.0 * t);
        for (i, j) in [(pos(&p.a), pos(&p.b)), (pos(&p.b), pos(&p.a))] {
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{cell:.1}" height="{cell:.1}" fill="rgb({:.0},{:.0},{:.0})" stroke="#ddd"><title>{} × {}: {:.3}</title></rect>"##,
                left + cell * j as f64,
                top + cell * i as f64,
                r,
                g,
                b,
                esc(&p.a),
                esc(&p.b),
                v
            );
            if cell >= 30.0 {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{}">{:.2}</text>"#,
                    left + cell * (j as f64 + 0.5),
                    top + cell * (i as f64 + 0.5) + 3.0,
                    if t > 0.6 { "white" } else { "black" },
                    v
                );
            }
        }
    }
    for i in 0..n {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{cell:.1}" height="{cell:.1}" fill="#eee" stroke="#ddd"/>"##,
            left + cell * i as f64,
            top + cell * i as f64
        );
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{:.1}">{}: white 0, dark red {:.2} or more</text></svg>"#,
        h - 12.0,
        esc(what),
        max
    );
    s
}

fn ml_chart(e: &Evaluation) -> String {
    let Some(m) = &e.ml else { return String::new() };
    let (w, left) = (600.0, 260.0);
    let rows = [
        ("trained on real, accuracy", m.real.accuracy, REAL),
        ("trained on synthetic, accuracy", m.synthetic.accuracy, SYN),
        (
            "most frequent class, accuracy",
            m.majority.accuracy,
            "#9e9e9e",
        ),
        ("trained on real, macro-F1", m.real.macro_f1, REAL),
        ("trained on synthetic, macro-F1", m.synthetic.macro_f1, SYN),
        (
            "most frequent class, macro-F1",
            m.majority.macro_f1,
            "#9e9e9e",
        ),
    ];
    let h = rows.len() as f64 * 24.0 + 10.0;
    let scale = w - left - 60.0;
    let mut s = format!(
        r#"<svg width="{w}" height="{h}" role="img" aria-label="ML efficacy" xmlns="http://www.w3.org/2000/svg"><style>text{{font:11px sans-serif}}</style>"#
    );
    for (i, (label, v, color)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * 24.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text><rect x="{left}" y="{y:.1}" width="{:.1}" height="16" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left - 6.0,
            y + 12.0,
            v.clamp(0.0, 1.0) * scale,
            left + v.clamp(0.0, 1.0) * scale + 4.0,
            y + 12.0,
            pct(*v)
        );
    }
    s.push_str("</svg>");
    s
}

fn attack_chart(a: &AttackResult) -> String {
    let mut rows = vec![(
        "attack on the real training people",
        a.attack_rate.value,
        a.attack_rate.error,
        "#c62828",
    )];
    if let Some(c) = a.control_rate {
        rows.push(("same attack on held-out people", c.value, c.error, REAL));
    }
    rows.push((
        "random guessing (baseline)",
        a.baseline_rate.value,
        a.baseline_rate.error,
        "#757575",
    ));
    rows.push((
        "privacy risk",
        a.risk,
        (a.risk_ci.1 - a.risk_ci.0) / 2.0,
        "#000000",
    ));
    kuvert_deid::report::interval_bars(&rows, 600.0, 190.0)
}

fn attack_section(
    s: &mut String,
    title: &str,
    what: &str,
    synthetic_meaning: &str,
    a: &AttackResult,
) {
    let _ = write!(
        s,
        r#"<h3>{title}</h3><p>{what}</p><p><i>For synthetic data:</i> {synthetic_meaning}</p>{}"#,
        kuvert_deid::report::attack_verdict(a, &attack_chart(a))
    );
}

/// Render the report. `title` heads the page (e.g. the name of the release).
pub fn render_html(e: &Evaluation, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>
body{{font:15px/1.5 sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
.verdict{{border-left:6px solid;padding:4px 10px;background:#f7f7f7}}.warn{{color:#8a4b00}}
.notdp{{border:2px solid #c62828;padding:8px 12px;background:#fff5f5}}
h2{{border-bottom:1px solid #ccc;margin-top:2em}}code{{background:#f2f2f2;padding:0 3px}}small{{color:#555}}
</style></head><body>"#,
        esc(title)
    );
    let _ = write!(s, "<h1>{}</h1>", esc(title));
    let _ = write!(
        s,
        r#"<div class="notdp"><b>This report is not differentially private.</b> {}</div>"#,
        esc(crate::eval::DISCLOSURE)
    );
    let i = &e.inputs;
    let _ = write!(
        s,
        "<p>Synthetic data <code>{}</code> ({} records) compared with the real data it was made from, <code>{}</code> ({} records){}.</p>",
        esc(&i.synthetic),
        i.synthetic_rows,
        esc(&i.train),
        i.train_rows,
        match &i.holdout {
            Some(h) => format!(", and with real records that were kept out of the synthesis, <code>{}</code> ({} records)", esc(h), i.holdout_rows),
            None => ". No held-out real records were given, so the prediction test and the attack tests are weaker (see below)".to_string(),
        }
    );

    // Decision.
    s.push_str("<h2>Acceptance decision</h2>");
    if e.criteria.is_empty() {
        s.push_str("<p class=\"verdict\" style=\"border-color:#757575\">No acceptance criteria were given: nothing to pass or fail. The measures below describe the data; set thresholds in an acceptance file (<code>--accept ACCEPT.toml</code>) to get a decision.</p>");
    } else {
        let failed = e.criteria.iter().filter(|c| !c.passed).count();
        let (word, color) = if e.passed {
            ("PASSED", "#2e7d32")
        } else {
            ("FAILED", "#c62828")
        };
        let _ = write!(
            s,
            r#"<p class="verdict" style="border-color:{color}">The synthetic data <b style="color:{color}">{word}</b> the acceptance criteria: {} of {} requirements met{}.</p>"#,
            e.criteria.len() - failed,
            e.criteria.len(),
            if failed > 0 {
                format!("; {failed} not met (marked FAIL). The controller should not release the data as it is")
            } else {
                String::new()
            }
        );
        criteria_table(&mut s, &e.criteria);
        s.push_str("<p><small>A requirement that could not be measured counts as not met. Privacy requirements are judged on the upper end of the 95% interval of the attack's result, so chance cannot make them pass.</small></p>");
    }

    // Key measures.
    s.push_str(
        "<h2>Key measures</h2><table><tr><th>Measure</th><th>Value</th><th>Meaning</th></tr>",
    );
    let mut row = |m: &str, v: String, mean: &str| {
        let _ = write!(s, "<tr><td>{m}</td><td><b>{v}</b></td><td>{mean}</td></tr>");
    };
    row(
        "Largest difference in one column (1-way TVD)",
        format!(
            "{}{}",
            pct(e.tvd_1way_max),
            e.tvd_1way_max_column.as_ref().map(|c| format!(" ({})", esc(c))).unwrap_or_default()
        ),
        "Share of records that would have to change value for the synthetic column to match the real one. 0% is identical.",
    );
    row(
        "Average difference per column",
        pct(e.tvd_1way_mean),
        "Mean of the above over the columns.",
    );
    row(
        "Largest difference in a pair of columns (2-way TVD)",
        format!(
            "{}{}",
            pct(e.tvd_2way_max),
            e.tvd_2way_max_pair.as_ref().map(|(a, b)| format!(" ({} × {})", esc(a), esc(b))).unwrap_or_default()
        ),
        "The same for the combination of two columns: it shows whether relationships between columns survive.",
    );
    row(
        "Average difference per pair",
        pct(e.tvd_2way_mean),
        "Mean over all pairs.",
    );
    row(
        "Largest change in the strength of a relationship",
        format!(
            "{:.3}{}",
            e.corr_diff_max,
            e.corr_diff_max_pair.as_ref().map(|(a, b)| format!(" ({} × {})", esc(a), esc(b))).unwrap_or_default()
        ),
        "Absolute difference of Pearson's correlation (two numeric columns, −1 to 1) or Cramér's V (other pairs, 0 to 1) between real and synthetic data.",
    );
    row(
        "Average change in strength",
        format!("{:.3}", e.corr_diff_mean),
        "Mean over all pairs.",
    );
    if let Some(m) = &e.ml {
        row(
            "ML efficacy",
            pct(m.efficacy),
            "How well a model trained on the synthetic data predicts real records, relative to a model trained on the real data (macro-F1 ratio; 100% is as good).",
        );
    }
    if let Some(c) = e.category_coverage_min {
        row("Lowest category coverage", pct(c), "Share of the real categories of a column that occur in the synthetic data (worst column).");
    }
    if let Some(c) = e.range_coverage_min {
        row("Lowest range coverage", pct(c), "Share of the real range of a numeric or date column that the synthetic values span (worst column).");
    }
    row(
        "Synthetic records identical to a real record",
        format!(
            "{}{}",
            pct(e.exact_copies),
            e.exact_copies_holdout.map(|h| format!(" (held-out real records: {})", pct(h))).unwrap_or_default()
        ),
        "Exact copies on all evaluated columns. The held-out share shows how often different real people share all values anyway.",
    );
    s.push_str("</table><p><small>TVD is the total variation distance: half the sum over categories (or bins) of the absolute difference in shares. Numbers and dates are cut into bins fitted to the real data (see the method notes at the end). Where held-out records were given, each table also shows the distance between two real samples: a synthetic distance of the same size is as close as a fresh sample gets.</small></p>");
    for n in &e.notes {
        let _ = write!(s, r#"<p class="warn">Note: {}</p>"#, esc(n));
    }

    // Columns.
    s.push_str("<h2>Columns</h2><table><tr><th>Column</th><th>Kind</th><th>1-way TVD</th><th>Real vs held-out</th><th>Coverage</th><th>Values not in the real data</th><th>Missing (real / synthetic)</th><th>Range (real / synthetic)</th></tr>");
    for c in &e.columns {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}{}</td><td><b>{}</b></td><td>{}</td><td>{} {} ({} of {})</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            esc(&c.name),
            c.kind.as_str(),
            if c.kind_inferred { "" } else { " (set)" },
            pct(c.tvd),
            c.tvd_holdout.map(pct).unwrap_or_else(|| "–".into()),
            pct(c.coverage),
            if c.coverage_kind == "range" { "of the range" } else { "of the categories" },
            c.real_categories_covered,
            c.real_categories,
            if c.coverage_kind == "range" {
                format!("{} outside the real range", pct(c.synthetic_only_share))
            } else {
                format!("{} new values, {} of records", c.synthetic_only_values, pct(c.synthetic_only_share))
            },
            pct(c.missing_real),
            pct(c.missing_synthetic),
            match (&c.real_min, &c.real_max) {
                (Some(a), Some(b)) => format!(
                    "{} to {} / {} to {}",
                    esc(a),
                    esc(b),
                    esc(c.synthetic_min.as_deref().unwrap_or("–")),
                    esc(c.synthetic_max.as_deref().unwrap_or("–"))
                ),
                _ => "–".into(),
            }
        );
    }
    s.push_str("</table><p><small>Coverage: for a categorical column, the share of real categories that occur in the synthetic data; for numbers and dates, the share of the real range [min, max] spanned by the synthetic values. Values the real data never had are allowed (a differentially private synthesizer may produce them) and are reported for information. The real minimum and maximum are values of single people: this is one reason the report is confidential.</small></p>");
    if !e.identity.is_empty() {
        s.push_str("<h3>Identity numbers</h3><p>Columns of Swedish identity numbers are not compared as distributions. They are checked for two things: that synthetic numbers are valid (real date, correct check digit), and that none equals a real person's number.</p><table><tr><th>Column</th><th>Synthetic values</th><th>Valid</th><th>Equal to a real person's</th></tr>");
        for d in &e.identity {
            let color = if d.equal_real == 0 {
                "#2e7d32"
            } else {
                "#c62828"
            };
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td style="color:{color}"><b>{} ({})</b></td></tr>"#,
                esc(&d.name),
                d.synthetic_values,
                pct(d.valid_share),
                d.equal_real,
                pct(d.equal_real_share)
            );
        }
        s.push_str("</table>");
    }
    if !e.ignored_columns.is_empty() {
        let _ = write!(
            s,
            "<p>Not evaluated (kind <code>ignore</code>): {}.</p>",
            esc(&e.ignored_columns.join(", "))
        );
    }
    for c in &e.columns {
        let _ = write!(
            s,
            "<h3>{}</h3><p>{}, {} bins; difference {}.</p>",
            esc(&c.name),
            c.kind.as_str(),
            c.bins,
            pct(c.tvd)
        );
        s.push_str(&column_chart(c));
    }

    // Pairs.
    let names: Vec<String> = e.columns.iter().map(|c| c.name.clone()).collect();
    s.push_str("<h2>Pairs of columns</h2><h3>Difference of the combined distribution (2-way TVD)</h3><p>Each cell compares the real and synthetic distribution of a pair of columns. Darker cells mark relationships the synthetic data reproduce less well.</p>");
    s.push_str(&heat_map(&names, &e.pairs, &|p| p.tvd, 0.1, "2-way TVD"));
    s.push_str("<h3>Change in the strength of relationships</h3><p>Each cell is the absolute difference, between real and synthetic data, of Pearson's correlation (both columns numeric or dates) or of Cramér's V (any other pair, on categories and bins).</p>");
    s.push_str(&heat_map(
        &names,
        &e.pairs,
        &|p| p.diff,
        0.1,
        "association difference",
    ));
    let mut worst: Vec<&PairReport> = e.pairs.iter().collect();
    worst.sort_by(|a, b| b.tvd.total_cmp(&a.tvd));
    if !worst.is_empty() {
        s.push_str("<table><tr><th>Pair (10 largest 2-way TVD)</th><th>2-way TVD</th><th>Real vs held-out</th><th>Measure</th><th>Real</th><th>Synthetic</th><th>Difference</th></tr>");
        for p in worst.iter().take(10) {
            let _ = write!(
                s,
                "<tr><td>{} × {}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(&p.a),
                esc(&p.b),
                pct(p.tvd),
                p.tvd_holdout.map(pct).unwrap_or_else(|| "–".into()),
                if p.measure == "pearson" { "Pearson r" } else { "Cramér's V" },
                p.real,
                p.synthetic,
                p.diff
            );
        }
        s.push_str("</table>");
    }

    // ML.
    s.push_str("<h2>Usefulness for prediction (ML efficacy)</h2>");
    match &e.ml {
        Some(m) => {
            let _ = write!(
                s,
                "<p>A classifier (multinomial logistic regression) learns to predict <b>{}</b> from the other columns. One copy learns from the real training data, one from the synthetic data; both are tested on {} real records ({}). ML efficacy is the synthetic-trained model's macro-F1 divided by the real-trained model's: <b>{}</b> (accuracy ratio {}). Always guessing the most frequent class is shown for comparison.</p>",
                esc(&m.target),
                m.test_rows,
                if m.test_set == "holdout" { "held out of the synthesis" } else { "split off the training data" },
                pct(m.efficacy),
                pct(m.accuracy_ratio)
            );
            s.push_str(&ml_chart(e));
            for n in &m.notes {
                let _ = write!(s, r#"<p class="warn">Note: {}</p>"#, esc(n));
            }
        }
        None => s.push_str("<p>Not measured.</p>"),
    }

    // Privacy.
    s.push_str("<h2>Privacy tests</h2>");
    match &e.privacy {
        None => s.push_str("<p>The attack tests did not run.</p>"),
        Some(p) => {
            let a = &p.attacks;
            s.push_str("<p>These are the attack tests of <code>kuvert risk</code>, run with the synthetic data as the released table. Synthetic records are not real people, so an attack &ldquo;succeeds&rdquo; when what it concludes from the synthetic data is true of a real person. The same attack is run against real people who were <i>not</i> used for the synthesis: what works on them is what the data teach about people in general (the purpose of the release); only the excess on the training people is counted as a privacy risk.</p>");
            s.push_str("<h3>Attacker assumptions</h3><ul><li>The attacker has the whole synthetic table.</li>");
            let _ = write!(
                s,
                "<li>For the people they target, the attacker knows the true values of <b>{}</b>{}.</li>",
                esc(&p.quasi.join(", ")),
                if p.quasi_default { " (by default every evaluated column except the sensitive one: a strong attacker)" } else { "" }
            );
            if let Some(sv) = &p.sensitive {
                let _ = write!(
                    s,
                    "<li>The attacker wants to learn <b>{}</b>.</li>",
                    esc(sv)
                );
            }
            if a.control {
                s.push_str("<li>The held-out real records serve as the control set.</li>");
            } else {
                s.push_str(r#"<li class="warn">No held-out records were given: the risks are raw attack success rates and overstate the leak (upper bounds), and membership cannot be tested.</li>"#);
            }
            s.push_str("<li>Not covered: attackers with other background knowledge, other releases, or access to the synthesizer's model. A low risk here is evidence, not proof; the formal guarantee is the synthesizer's differential privacy (its ε), not these tests.</li></ul>");
            attack_section(
                &mut s,
                "Singling out",
                "The attacker writes conditions (such as &ldquo;age at least 87, postcode 114**&rdquo;) that fit exactly one synthetic record, and checks whether they fit exactly one real person.",
                "a synthetic record that is unusual in the same way as one real person points at that person; a synthesizer that copies rare combinations fails here.",
                &a.singling_out,
            );
            if let Some(l) = &a.linkability {
                attack_section(
                    &mut s,
                    "Linkability",
                    "The attacker holds two sources about the same people, each with half of the known columns, and uses the synthetic data to join them.",
                    "if both halves of a real person lead to the same synthetic record, the synthetic data behave like a copy of that person.",
                    l,
                );
            }
            if let Some(inf) = &a.inference {
                attack_section(
                    &mut s,
                    "Attribute inference",
                    "From a person's known columns the attacker finds the most similar synthetic record and guesses the sensitive value from it.",
                    "some success is expected and legitimate (the data are meant to teach relationships); only success on training people beyond held-out people is a leak.",
                    inf,
                );
            }
            let m = &a.membership;
            s.push_str("<h3>Membership inference (distance to closest record)</h3><p>Can the attacker tell whether a person was in the training data by how close the nearest synthetic record is? For synthetic data, training people being systematically closer than held-out people means the synthesizer memorised them.</p><table>");
            let _ = write!(
                s,
                "<tr><td>Training people with an exact copy in the synthetic data</td><td><b>{}</b> of {}</td></tr>",
                pct(m.exact_copies_members),
                m.members
            );
            if let Some(x) = m.exact_copies_non_members {
                let _ = write!(s, "<tr><td>Held-out people with an exact copy (chance)</td><td><b>{}</b> of {}</td></tr>", pct(x), m.non_members);
            }
            let _ = write!(s, "<tr><td>Median distance to the closest synthetic record, training people</td><td>{:.3}</td></tr>", m.median_dcr_members);
            if let (Some(auc), Some(ci), Some(r)) = (m.auc, m.auc_ci, m.risk) {
                let (b, c) = band((2.0 * ci.1 - 1.0).clamp(0.0, 1.0));
                let _ = write!(
                    s,
                    r#"<tr><td>Median distance, held-out people</td><td>{:.3}</td></tr><tr><td>Chance that a training person is closer than a held-out one (AUC; 50% = no signal)</td><td><b>{}</b> ({} to {})</td></tr><tr><td>Membership advantage (2·AUC − 1)</td><td style="color:{c}"><b>{}</b> ({b})</td></tr>"#,
                    m.median_dcr_non_members.unwrap_or(0.0),
                    pct(auc),
                    pct(ci.0),
                    pct(ci.1),
                    pct(r)
                );
            } else {
                s.push_str("<tr><td>Membership advantage</td><td>not measured: needs held-out records</td></tr>");
            }
            s.push_str("</table><p>Bands: below 5% low, 5 to 20% moderate, 20% or more high, judged on the upper end of the interval. They are a reading aid, not a legal threshold.</p>");
        }
    }

    // Method.
    s.push_str("<h2>Method notes</h2><ul>");
    s.push_str("<li><b>Bins.</b> Numbers and dates are cut into bins on the real training data: by default at quantiles (each bin holds about the same share of real records), or equally spaced; a column with few distinct values gets one bin per value. Extra bins hold missing values and values below the real minimum or above the real maximum.</li>");
    s.push_str("<li><b>TVD</b> = ½ Σ |real share − synthetic share| over the categories or bins (1-way) or over the cells of the two-column table (2-way).</li>");
    s.push_str("<li><b>Relationship strength.</b> Pearson's r for two numeric or date columns; Cramér's V, √(χ²/(n·(min(rows, columns) − 1))), for every other pair. The reported difference is |real − synthetic|; its maximum and mean over pairs are the criteria <code>max_corr_diff</code> and <code>max_mean_corr_diff</code>.</li>");
    s.push_str("<li><b>ML efficacy.</b> Multinomial logistic regression on one-hot categories and bins plus standardised numbers, trained by mini-batch Adam with a fixed seed. Macro-F1 is the mean over the real classes of 2·TP/(2·TP + FP + FN).</li>");
    let _ = write!(s, "<li>Evaluation time: {:.2} s.</li></ul>", e.seconds);
    s.push_str("<p>Produced by <code>kuvert synth evaluate</code>. This report contains statistics of the real data and is not differentially private: review it before publishing.</p></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
