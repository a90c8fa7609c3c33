//! A self-contained HTML report (inline SVG, no scripts) of the
//! re-identification risk and the attack tests, written for readers who are
//! not specialists, e.g. for a data protection impact assessment.

use crate::attacks::{AttackReport, AttackResult};
use crate::risk::ReidRisk;
use std::fmt::Write;

/// What the report describes.
#[derive(Debug, Clone)]
pub struct ReportContext {
    /// Original file.
    pub original: String,
    /// Released file.
    pub released: String,
    /// Control file, if any.
    pub control: Option<String>,
    /// Quasi-identifiers.
    pub quasi: Vec<String>,
    /// Sensitive column.
    pub sensitive: Option<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Plain-language band for a risk value. The bands are this report's convention, not a legal threshold.
pub fn band(x: f64) -> (&'static str, &'static str) {
    if x < 0.05 {
        ("low", "#2e7d32")
    } else if x < 0.2 {
        ("moderate", "#ef6c00")
    } else {
        ("high", "#c62828")
    }
}

fn class_size_chart(r: &ReidRisk) -> String {
    let (w, h, left, bottom) = (560.0, 220.0, 50.0, 30.0);
    let max = r
        .class_size_histogram
        .iter()
        .map(|x| x.1)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let bw = (w - left - 10.0) / 11.0;
    let mut s = format!(
        r#"<svg width="{w}" height="{h}" role="img" aria-label="records by class size" xmlns="http://www.w3.org/2000/svg"><style>text{{font:11px sans-serif}}</style>"#
    );
    let k_limit = (1.0 / r.threshold).ceil() as u64;
    for (i, &(size, recs)) in r.class_size_histogram.iter().enumerate() {
        let bh = (recs as f64 / max) * (h - bottom - 20.0);
        let x = left + i as f64 * bw;
        let y = h - bottom - bh;
        let color = if size < k_limit { "#c62828" } else { "#2e7d32" };
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"/>"#,
            x + 2.0,
            bw - 4.0
        );
        let label = if size == 11 {
            "11+".to_string()
        } else {
            size.to_string()
        };
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            x + bw / 2.0,
            h - bottom + 14.0
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{recs}</text>"#,
            x + bw / 2.0,
            y - 3.0
        );
    }
    let _ = write!(
        s,
        r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="dimgray"/><text x="{:.1}" y="{:.1}" text-anchor="middle">records sharing their combination of quasi-identifiers with this many records (class size)</text></svg>"#,
        h - bottom,
        w - 10.0,
        h - bottom,
        (w + left) / 2.0,
        h - 2.0
    );
    s
}

fn attack_chart(a: &AttackResult) -> String {
    let rows: Vec<(&str, f64, f64, &str)> = [
        Some((
            "attack on the original",
            a.attack_rate.value,
            a.attack_rate.error,
            "#c62828",
        )),
        a.control_rate
            .map(|c| ("same attack on the control", c.value, c.error, "#1565c0")),
        Some((
            "random guessing (baseline)",
            a.baseline_rate.value,
            a.baseline_rate.error,
            "#757575",
        )),
        Some((
            "privacy risk",
            a.risk,
            (a.risk_ci.1 - a.risk_ci.0) / 2.0,
            "#000000",
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    interval_bars(&rows, 560.0, 170.0)
}

/// Horizontal bars with error whiskers for rates in [0, 1], one row per
/// `(label, value, half-width of the interval, colour)`, as inline SVG
/// (`w` wide, labels right-aligned left of `left`). Labels are
/// written as given: pass only fixed text.
pub fn interval_bars(rows: &[(&str, f64, f64, &str)], w: f64, left: f64) -> String {
    let h = 26.0 * rows.len() as f64 + 26.0;
    let scale = w - left - 60.0;
    let mut s = format!(
        r#"<svg width="{w}" height="{h}" role="img" xmlns="http://www.w3.org/2000/svg"><style>text{{font:11px sans-serif}}</style>"#
    );
    for (i, (label, v, e, color)) in rows.iter().enumerate() {
        let y = 8.0 + i as f64 * 26.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            left - 6.0,
            y + 13.0
        );
        let _ = write!(
            s,
            r#"<rect x="{left}" y="{y:.1}" width="{:.1}" height="16" fill="{color}" opacity="0.75"/>"#,
            v.clamp(0.0, 1.0) * scale
        );
        let (lo, hi) = ((v - e).clamp(0.0, 1.0), (v + e).clamp(0.0, 1.0));
        let _ = write!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
            left + lo * scale,
            y + 8.0,
            left + hi * scale,
            y + 8.0,
            left + lo * scale,
            y + 3.0,
            left + lo * scale,
            y + 13.0,
            left + hi * scale,
            y + 3.0,
            left + hi * scale,
            y + 13.0
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            left + hi * scale + 4.0,
            y + 13.0,
            pct(*v)
        );
    }
    let y = h - 14.0;
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{y:.1}" text-anchor="middle">{}</text>"#,
            left + t * scale,
            pct(t)
        );
    }
    s.push_str("</svg>");
    s
}

fn attack_section(title: &str, what: &str, a: &AttackResult) -> String {
    format!(
        "<h3>{title}</h3><p>{what}</p>{}",
        attack_verdict(a, &attack_chart(a))
    )
}

/// One attack's verdict for a report: the risk with its interval and band
/// (judged on the upper end), then `chart`, then the attack's warnings.
pub fn attack_verdict(a: &AttackResult, chart: &str) -> String {
    let (b, color) = band(a.risk_ci.1);
    let mut s = format!(
        r#"<p class="verdict" style="border-color:{color}">Risk <b>{}</b> (95% interval {} to {}): <b style="color:{color}">{b}</b> by the upper end of the interval. {} attacks.</p>"#,
        pct(a.risk),
        pct(a.risk_ci.0),
        pct(a.risk_ci.1),
        a.n_attacks
    );
    s.push_str(chart);
    for w in &a.warnings {
        let _ = write!(s, r#"<p class="warn">Note: {}</p>"#, esc(w));
    }
    s
}

/// Render the report.
pub fn render(ctx: &ReportContext, risk: &ReidRisk, attacks: &AttackReport) -> String {
    let mut s = String::new();
    s.push_str(r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Re-identification risk report</title><style>
body{font:15px/1.5 sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.verdict{border-left:6px solid;padding:4px 10px;background:#f7f7f7}.warn{color:#8a4b00}
h2{border-bottom:1px solid #ccc;margin-top:2em}code{background:#f2f2f2;padding:0 3px}
</style></head><body>"#);
    s.push_str("<h1>Re-identification risk report</h1>");
    let _ = write!(
        s,
        "<p>Released table <code>{}</code> ({} records) measured against the original <code>{}</code> ({} records){}. Quasi-identifiers (what an attacker is assumed to know about a person): <b>{}</b>.{}</p>",
        esc(&ctx.released),
        risk.records,
        esc(&ctx.original),
        risk.population_records,
        ctx.control.as_ref().map(|c| format!(" with the control set <code>{}</code>", esc(c))).unwrap_or_default(),
        esc(&ctx.quasi.join(", ")),
        ctx.sensitive.as_ref().map(|c| format!(" Sensitive column (what the attacker wants to learn): <b>{}</b>.", esc(c))).unwrap_or_default()
    );
    // Summary.
    s.push_str("<h2>Summary</h2><table><tr><th>Question</th><th>Answer</th></tr>");
    let (pb, pc) = band(risk.prosecutor.max);
    let _ = write!(
        s,
        r#"<tr><td>Worst case: can someone who knows a person is in the release pick out their record?</td><td style="color:{pc}"><b>{}</b> chance for the most exposed record ({pb})</td></tr>"#,
        pct(risk.prosecutor.max)
    );
    let _ = write!(
        s,
        "<tr><td>Share of records in groups smaller than {} (above the {} risk threshold)</td><td><b>{}</b></td></tr>",
        (1.0 / risk.threshold).ceil(),
        pct(risk.threshold),
        pct(risk.prosecutor.records_at_risk)
    );
    let _ = write!(
        s,
        "<tr><td>Records that are unique in the release / unique in the original population</td><td><b>{}</b> / <b>{}</b></td></tr>",
        pct(risk.sample_uniqueness),
        pct(risk.population_uniqueness)
    );
    for (name, a) in [
        ("Singling out", Some(&attacks.singling_out)),
        ("Linkability", attacks.linkability.as_ref()),
        ("Inference", attacks.inference.as_ref()),
    ] {
        if let Some(a) = a {
            let (b, c) = band(a.risk_ci.1);
            let _ = write!(
                s,
                r#"<tr><td>{name} attack risk</td><td style="color:{c}"><b>{}</b> ({} to {}, {b})</td></tr>"#,
                pct(a.risk),
                pct(a.risk_ci.0),
                pct(a.risk_ci.1)
            );
        }
    }
    if let Some(r) = attacks.membership.risk {
        let (b, c) = band(r);
        let _ = write!(
            s,
            r#"<tr><td>Membership inference advantage</td><td style="color:{c}"><b>{}</b> ({b})</td></tr>"#,
            pct(r)
        );
    }
    s.push_str("</table><p>Bands used in this report: below 5% low, 5 to 20% moderate, 20% or more high. They are a reading aid, not a legal threshold; the controller decides what is acceptable for the purpose and context.</p>");

    s.push_str("<h2>Attacker assumptions</h2><ul>");
    s.push_str("<li>The attacker has the whole released table.</li>");
    let _ = write!(s, "<li>For the people they target, the attacker knows the true values of the quasi-identifiers (<b>{}</b>), for example from a population register, social media or personal acquaintance.</li>", esc(&ctx.quasi.join(", ")));
    s.push_str("<li><b>Prosecutor</b> scenario: the attacker knows the target is in the release. <b>Journalist</b>: the attacker only knows the target is in the original population. <b>Marketer</b>: the attacker tries to link everyone and counts the hits.</li>");
    s.push_str("<li>The attack tests follow the three criteria of the Article 29 Working Party (Opinion 05/2014): <b>singling out</b> (isolating one person), <b>linkability</b> (joining two records of the same person) and <b>inference</b> (deducing a value), measured as in Anonymeter (Giomi et al. 2023).</li>");
    if attacks.control {
        s.push_str("<li>Each attack is also run against a <b>control set</b>: records of the same kind that were <i>not</i> used for the release. What the attacker achieves on them is what the data teach about people in general; only the excess on the original is counted as risk.</li>");
    } else {
        s.push_str(r#"<li class="warn">No control set was given, so the attack risks are the raw success rates: they also count what the data teach about everyone, and overstate the leak (upper bounds). Hold out records before de-identification (<code>kuvert deid --holdout-fraction</code>) and pass them with <code>--control</code>.</li>"#);
    }
    s.push_str("<li>Not covered: attackers with other background knowledge (other columns, other releases), and the security of the pseudonymisation key.</li></ul>");

    s.push_str("<h2>Re-identification risk</h2>");
    s.push_str("<p>Records that share the same combination of quasi-identifiers form a <i>class</i>. In a class of size 1 the record is unique and can be singled out; in a class of 5 an attacker's best guess is right 1 time in 5.</p>");
    s.push_str(&class_size_chart(risk));
    s.push_str("<table><tr><th>Measure</th><th>Value</th><th>Meaning</th></tr>");
    let rows = [
        ("Prosecutor risk, highest", pct(risk.prosecutor.max), "1 / size of the smallest class: the chance to re-identify the most exposed record when the attacker knows the person is in the release."),
        ("Prosecutor risk, average", pct(risk.prosecutor.avg), "Number of classes / number of records: expected share re-identified if every record is attacked."),
        ("Records at risk (prosecutor)", pct(risk.prosecutor.records_at_risk), "Share of records whose risk exceeds the threshold."),
        ("Journalist risk, highest", pct(risk.journalist.max), "1 / smallest number of original records that match a released class: the attacker does not know who is in the release."),
        ("Journalist risk, average", pct(risk.journalist.avg), "Number of classes / number of matching original records."),
        ("Records at risk (journalist)", pct(risk.journalist.records_at_risk), "Share of records whose journalist risk exceeds the threshold."),
        ("Marketer risk", pct(risk.marketer), "Expected share of records an attacker links correctly when linking all of them."),
        ("Sample uniques", format!("{} ({})", risk.sample_uniques, pct(risk.sample_uniqueness)), "Records alone in their class in the release."),
        ("Population uniques", format!("{} ({})", risk.population_uniques, pct(risk.population_uniqueness)), "Released records that match exactly one original record."),
        ("Population uniqueness, model estimate", format!("{:.1} ({})", risk.population_uniques_estimate, pct(risk.population_uniqueness_estimate)), "Estimated (Zayatz) population uniques among the sample uniques if the original is itself a sample."),
    ];
    for (m, v, e) in rows {
        let _ = write!(s, "<tr><td>{m}</td><td><b>{v}</b></td><td>{e}</td></tr>");
    }
    let _ = write!(s, "<tr><td>Sampling fraction</td><td>{:.3}</td><td>Share of the population in the release, used by the model estimate.</td></tr></table>", risk.sampling_fraction);

    s.push_str("<h2>Attack tests</h2><p>Bars show how often each attack succeeded, with the 95% confidence interval as a whisker. The privacy risk (black) is the success on the original in excess of the success on the control set, scaled so that 100% means every attack that could succeed did.</p>");
    s.push_str(&attack_section(
        "Singling out",
        "The attacker writes conditions such as “age between 30 and 35, postcode 114**, born in Finland” that fit exactly one released record, and checks whether they also fit exactly one person in the original.",
        &attacks.singling_out,
    ));
    if let Some(a) = &attacks.linkability {
        s.push_str(&attack_section(
            "Linkability",
            "The attacker holds two sources about the same people, each with half of the quasi-identifiers, and uses the release to join them: success when both halves lead to the same released record.",
            a,
        ));
    }
    if let Some(a) = &attacks.inference {
        s.push_str(&attack_section(
            "Attribute inference",
            "The attacker knows a person's quasi-identifiers, finds the most similar released record and guesses the person's sensitive value from it (numbers within 5% count as right).",
            a,
        ));
    }
    let m = &attacks.membership;
    s.push_str("<h3>Membership inference (distance to closest record)</h3><p>Can the attacker tell whether a person was in the original data by how close the nearest released record is? Distance 0 means an exact copy of the person's values in the release.</p><table>");
    let _ = write!(
        s,
        "<tr><td>Exact copies, people in the original</td><td><b>{}</b> of {}</td></tr>",
        pct(m.exact_copies_members),
        m.members
    );
    if let Some(x) = m.exact_copies_non_members {
        let _ = write!(s, "<tr><td>Exact copies, people not in the original (control)</td><td><b>{}</b> of {}</td></tr>", pct(x), m.non_members);
    }
    let _ = write!(
        s,
        "<tr><td>Median distance to closest record, members</td><td>{:.3}</td></tr>",
        m.median_dcr_members
    );
    if let (Some(auc), Some(ci), Some(r)) = (m.auc, m.auc_ci, m.risk) {
        let _ = write!(
            s,
            "<tr><td>Median distance, non-members</td><td>{:.3}</td></tr><tr><td>Chance that a member is closer than a non-member (AUC; 50% = no signal)</td><td><b>{}</b> ({} to {})</td></tr><tr><td>Membership advantage (2·AUC − 1)</td><td><b>{}</b></td></tr>",
            m.median_dcr_non_members.unwrap_or(0.0),
            pct(auc),
            pct(ci.0),
            pct(ci.1),
            pct(r)
        );
    } else {
        s.push_str(
            "<tr><td>Membership advantage</td><td>not measured: needs a control set</td></tr>",
        );
    }
    s.push_str("</table><p class=\"small\">Distances: numbers are compared relative to the column's range, other values as equal or not (a generalised value such as <code>[30,40)</code> or <code>114**</code> counts as equal to the values it covers); the distance is the sum over columns.</p>");
    s.push_str("<p>Produced by <code>kuvert risk</code>. The numbers are estimates under the assumptions above; low values are evidence, not proof, that the data are anonymous.</p></body></html>\n");
    s
}
