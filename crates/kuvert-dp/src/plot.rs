//! Error-versus-ε plots as self-contained SVG, HTML with the SVG inline
//! and a table of the numbers, or PNG. No system fonts, no external files,
//! no scripts.
//!
//! The SVG and the PNG draw the same picture from one layout ([`Frame`]):
//! the PNG is rasterised here at twice the SVG's size, with the
//! public-domain 8x8 bitmap font of the `font8x8` crate scaled 2x for the
//! text, and encoded with the `png` crate.

use std::fmt::Write as _;

use crate::raster::{Anchor, Canvas};
use crate::release::CurvePoint;
use crate::DpError;

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

/// The plot's layout in SVG units: the decades shown on each log axis.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

const PW: f64 = W - LEFT - RIGHT;
const PH: f64 = H - TOP - BOTTOM;

impl Frame {
    /// The decades that hold every ε and every half-width (at least one
    /// decade each way); `None` when there is nothing to plot.
    fn of(points: &[CurvePoint]) -> Option<Frame> {
        let xs: Vec<f64> = points.iter().map(|p| p.epsilon).collect();
        let ys: Vec<f64> = points
            .iter()
            .flat_map(|p| p.errors.iter().map(|e| e.2.max(0.5)))
            .collect();
        if xs.is_empty() || ys.is_empty() {
            return None;
        }
        let lx = |v: f64| v.log10();
        let xmin = xs.iter().cloned().fold(f64::INFINITY, f64::min);
        let xmax = xs.iter().cloned().fold(0.0, f64::max);
        let ymin = ys.iter().cloned().fold(f64::INFINITY, f64::min);
        let ymax = ys.iter().cloned().fold(0.0, f64::max);
        Some(Frame {
            x0: lx(xmin).floor(),
            x1: lx(xmax).ceil().max(lx(xmin).floor() + 1.0),
            y0: lx(ymin).floor(),
            y1: lx(ymax).ceil().max(lx(ymin).floor() + 1.0),
        })
    }
    fn px(&self, v: f64) -> f64 {
        LEFT + (v.log10() - self.x0) / (self.x1 - self.x0) * PW
    }
    fn py(&self, v: f64) -> f64 {
        TOP + PH - (v.max(0.5).log10() - self.y0) / (self.y1 - self.y0) * PH
    }
}

const X_LABEL: &str = "privacy parameter ε (log scale)";
const Y_LABEL: &str = "95% error half-width (log scale)";

fn names_of(points: &[CurvePoint]) -> Vec<String> {
    points
        .first()
        .map(|p| p.errors.iter().map(|e| e.0.clone()).collect())
        .unwrap_or_default()
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
    let names = names_of(points);
    let Some(fr) = Frame::of(points) else {
        s.push_str("</svg>");
        return s;
    };
    let (x0, x1, y0, y1) = (fr.x0, fr.x1, fr.y0, fr.y1);
    let (pw, ph) = (PW, PH);
    let px = |v: f64| fr.px(v);
    let py = |v: f64| fr.py(v);
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
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{X_LABEL}</text>"#,
        LEFT + pw / 2.0,
        H - 18.0
    );
    let _ = write!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{Y_LABEL}</text>"#,
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

/// Scale of the PNG relative to the SVG's units.
pub const PNG_SCALE: u32 = 2;
/// Width and height of the PNG in pixels.
pub const PNG_SIZE: (u32, u32) = (W as u32 * PNG_SCALE, H as u32 * PNG_SCALE);

fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// The same plot as [`svg`], as a PNG file (RGB, [`PNG_SIZE`] pixels).
pub fn png(points: &[CurvePoint], title: &str) -> Result<Vec<u8>, DpError> {
    let k = PNG_SCALE as f64;
    let (black, grid) = ([0u8; 3], [0xdd; 3]);
    let mut c = Canvas::new(PNG_SIZE.0, PNG_SIZE.1, [0xff; 3]);
    // the title, cut to the width of the picture
    let max_chars = (W * k / (8.0 * k)) as usize - 2;
    let title: String = if title.chars().count() > max_chars {
        let t: String = title.chars().take(max_chars - 3).collect();
        format!("{t}...")
    } else {
        title.to_string()
    };
    c.text(
        W / 2.0 * k,
        18.0 * k,
        &title,
        PNG_SCALE,
        Anchor::Middle,
        black,
    );
    let names = names_of(points);
    if let Some(fr) = Frame::of(points) {
        for d in (fr.x0 as i32)..=(fr.x1 as i32) {
            let v = 10f64.powi(d);
            let x = fr.px(v) * k;
            c.line(x, TOP * k, x, (TOP + PH) * k, 1.0, grid);
            c.text(
                x,
                (TOP + PH + 16.0) * k,
                &fmt_tick(v),
                PNG_SCALE,
                Anchor::Middle,
                black,
            );
        }
        for d in (fr.y0 as i32)..=(fr.y1 as i32) {
            let v = 10f64.powi(d);
            let y = fr.py(v) * k;
            c.line(LEFT * k, y, (LEFT + PW) * k, y, 1.0, grid);
            c.text(
                (LEFT - 6.0) * k,
                y + 4.0 * k,
                &fmt_tick(v),
                PNG_SCALE,
                Anchor::End,
                black,
            );
        }
        c.rect_outline(LEFT * k, TOP * k, (LEFT + PW) * k, (TOP + PH) * k, black);
        c.text(
            (LEFT + PW / 2.0) * k,
            (H - 18.0) * k,
            X_LABEL,
            PNG_SCALE,
            Anchor::Middle,
            black,
        );
        c.text_up(18.0 * k, (TOP + PH / 2.0) * k, Y_LABEL, PNG_SCALE, black);
        for (i, name) in names.iter().enumerate() {
            let color = rgb(COLORS[i % COLORS.len()]);
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|p| {
                    p.errors
                        .get(i)
                        .map(|e| (fr.px(p.epsilon) * k, fr.py(e.2) * k))
                })
                .collect();
            for w in pts.windows(2) {
                c.line(w[0].0, w[0].1, w[1].0, w[1].1, 2.0 * k, color);
            }
            let ly = (TOP + 14.0 + 18.0 * i as f64) * k;
            let lxp = (LEFT + PW + 12.0) * k;
            c.line(lxp, ly, lxp + 20.0 * k, ly, 2.0 * k, color);
            c.text(
                lxp + 26.0 * k,
                ly + 4.0 * k,
                name,
                PNG_SCALE,
                Anchor::Start,
                black,
            );
        }
    }
    c.encode_png()
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
