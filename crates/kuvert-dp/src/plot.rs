//! Error-versus-ε plots as self-contained SVG, or HTML with the SVG inline
//! and a table of the numbers. No fonts, no external files, no scripts.

use std::fmt::Write as _;

use crate::release::CurvePoint;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_tick(v: f64) -> String {
    if (0.001..10_000.0).contains(&v) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.0e}")
    }
}

/// SVG plot of the 95 % half-width of each measurement against ε, log–log.
pub fn svg(points: &[CurvePoint], title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let names: Vec<String> = points
        .first()
        .map(|p| p.errors.iter().map(|e| e.0.clone()).collect())
        .unwrap_or_default();
    let xs: Vec<f64> = points.iter().map(|p| p.epsilon).collect();
    let ys: Vec<f64> = points
        .iter()
        .flat_map(|p| p.errors.iter().map(|e| e.2.max(0.5)))
        .collect();
    if xs.is_empty() || ys.is_empty() {
        s.push_str("</svg>");
        return s;
    }
    let (xmin, xmax) = (
        xs.iter().cloned().fold(f64::INFINITY, f64::min),
        xs.iter().cloned().fold(0.0, f64::max),
    );
    let lx = |v: f64| v.log10();
    let (x0, x1) = (
        lx(xmin).floor(),
        lx(xmax).ceil().max(lx(xmin).floor() + 1.0),
    );
    let ymin = ys.iter().cloned().fold(f64::INFINITY, f64::min);
    let ymax = ys.iter().cloned().fold(0.0, f64::max);
    let (y0, y1) = (
        lx(ymin).floor(),
        lx(ymax).ceil().max(lx(ymin).floor() + 1.0),
    );
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |v: f64| LEFT + (lx(v) - x0) / (x1 - x0) * pw;
    let py = |v: f64| TOP + ph - (lx(v.max(0.5)) - y0) / (y1 - y0) * ph;
    // Grid and ticks at decades.
    for d in (x0 as i32)..=(x1 as i32) {
        let v = 10f64.powi(d);
        let x = px(v);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + ph
        );
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph + 16.0,
            fmt_tick(v)
        );
    }
    for d in (y0 as i32)..=(y1 as i32) {
        let v = 10f64.powi(d);
        let y = py(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + pw
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
    }
    let _ = write!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">privacy parameter ε (log scale)</text>"#,
        LEFT + pw / 2.0,
        H - 18.0
    );
    let _ = write!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">95% error half-width (log scale)</text>"#,
        TOP + ph / 2.0
    );
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = points
            .iter()
            .filter_map(|p| {
                p.errors
                    .get(i)
                    .map(|e| format!("{:.1},{:.1}", px(p.epsilon), py(e.2)))
            })
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let lxp = LEFT + pw + 12.0;
        let _ = write!(
            s,
            r#"<line x1="{lxp:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/>"#,
            lxp + 20.0
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lxp + 26.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// A self-contained HTML page: the SVG and a table of the numbers.
pub fn html(points: &[CurvePoint], title: &str, explain: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}pre{{background:#f6f6f6;padding:1em}}</style>\
         </head><body><h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
    s.push_str(&svg(points, title));
    s.push_str("\n<p>Each line is the half-width of the interval that holds the noise with 95% probability, \
                for a release that spends the whole ε on this query. Nothing is released by drawing this plot: it \
                depends only on the query, the bounds and ε.</p>\n<table><tr><th>ε</th>");
    if let Some(p) = points.first() {
        for e in &p.errors {
            let _ = write!(s, "<th>{} std</th><th>{} 95% ±</th>", esc(&e.0), esc(&e.0));
        }
    }
    s.push_str("</tr>\n");
    for p in points {
        let _ = write!(s, "<tr><td>{:.4}</td>", p.epsilon);
        for e in &p.errors {
            let _ = write!(s, "<td>{:.3}</td><td>{}</td>", e.1, e.2);
        }
        s.push_str("</tr>\n");
    }
    let _ = write!(s, "</table>\n<pre>{}</pre>\n</body></html>\n", esc(explain));
    s
}
