//! A small RGB rasteriser for the PNG plots: filled squares along lines,
//! rectangle outlines, and text in the public-domain 8x8 bitmap font of the
//! `font8x8` crate (Basic Latin, Latin-1 and Greek, so `ε` and `ä` draw),
//! scaled by an integer factor. Everything outside the canvas is clipped.

use font8x8::UnicodeFonts;

use crate::DpError;

/// Horizontal alignment of text at its anchor point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The text starts at the point.
    Start,
    /// The text is centred on the point.
    Middle,
    /// The text ends at the point.
    End,
}

/// An RGB picture, row by row.
#[derive(Debug, Clone)]
pub struct Canvas {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

/// The 8x8 glyph of `c` (row by row, bit 0 leftmost); `?` when the font
/// has none.
fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .or_else(|| font8x8::GREEK_FONTS.get(c))
        .or_else(|| font8x8::BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

impl Canvas {
    /// A `w` x `h` canvas filled with `bg`.
    pub fn new(w: u32, h: u32, bg: [u8; 3]) -> Canvas {
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        for _ in 0..(w as usize * h as usize) {
            rgb.extend_from_slice(&bg);
        }
        Canvas { w, h, rgb }
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.w, self.h)
    }

    /// The colour at (x, y), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        (x < self.w && y < self.h).then(|| {
            let i = (y as usize * self.w as usize + x as usize) * 3;
            [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
        })
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u64) < self.w as u64 && (y as u64) < self.h as u64 {
            let i = (y as usize * self.w as usize + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fill the pixels whose centres lie in [x0, x1) x [y0, y1).
    pub fn fill(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
        let (xa, xb) = (x0.round() as i64, x1.round() as i64);
        let (ya, yb) = (y0.round() as i64, y1.round() as i64);
        for y in ya..yb {
            for x in xa..xb {
                self.set(x, y, c);
            }
        }
    }

    /// A line `width` pixels wide from (x0, y0) to (x1, y1): a square of
    /// that size stamped every half pixel along it.
    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, width: f64, c: [u8; 3]) {
        let w = width.max(1.0);
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) * 2.0).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            self.fill(x - w / 2.0, y - w / 2.0, x + w / 2.0, y + w / 2.0, c);
        }
    }

    /// The outline of a rectangle, one pixel wide.
    pub fn rect_outline(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
        self.line(x0, y0, x1, y0, 1.0, c);
        self.line(x1, y0, x1, y1, 1.0, c);
        self.line(x1, y1, x0, y1, 1.0, c);
        self.line(x0, y1, x0, y0, 1.0, c);
    }

    /// Text whose baseline is at `y` (as in SVG), aligned at `x`.
    pub fn text(&mut self, x: f64, y: f64, s: &str, scale: u32, anchor: Anchor, c: [u8; 3]) {
        let k = scale.max(1) as i64;
        let width = s.chars().count() as i64 * 8 * k;
        let left = match anchor {
            Anchor::Start => x.round() as i64,
            Anchor::Middle => x.round() as i64 - width / 2,
            Anchor::End => x.round() as i64 - width,
        };
        // the font's baseline is under its 7th row
        let top = y.round() as i64 - 7 * k;
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        for dy in 0..k {
                            for dx in 0..k {
                                self.set(
                                    left + (i as i64 * 8 + col) * k + dx,
                                    top + row as i64 * k + dy,
                                    c,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Text rotated a quarter turn anticlockwise (reading upwards), centred
    /// on (x, y) along its length, its baseline at `x` on the right.
    pub fn text_up(&mut self, x: f64, y: f64, s: &str, scale: u32, c: [u8; 3]) {
        let k = scale.max(1) as i64;
        let length = s.chars().count() as i64 * 8 * k;
        let bottom = y.round() as i64 + length / 2;
        let left = x.round() as i64 - 7 * k;
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        // along the text = up; the glyph's rows go right
                        let u = (i as i64 * 8 + col) * k;
                        let v = row as i64 * k;
                        for du in 0..k {
                            for dv in 0..k {
                                self.set(left + v + dv, bottom - 1 - (u + du), c);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The canvas as a PNG file (8-bit RGB).
    pub fn encode_png(&self) -> Result<Vec<u8>, DpError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.w, self.h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc
                .write_header()
                .map_err(|e| DpError::Encode(e.to_string()))?;
            w.write_image_data(&self.rgb)
                .map_err(|e| DpError::Encode(e.to_string()))?;
            w.finish().map_err(|e| DpError::Encode(e.to_string()))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_the_glyph_bits_where_expected() {
        let mut c = Canvas::new(40, 20, [255; 3]);
        c.text(2.0, 9.0, "I", 1, Anchor::Start, [0; 3]);
        // font8x8 'I' is 0x1E in its first row: bits 1..4 set
        let top = 9 - 7;
        let row: Vec<bool> = (0..8)
            .map(|x| c.pixel(2 + x, top).unwrap() == [0; 3])
            .collect();
        assert_eq!(
            row,
            vec![false, true, true, true, true, false, false, false]
        );
        // nothing drawn right of the glyph
        assert!((10..40).all(|x| (0..20).all(|y| c.pixel(x, y).unwrap() == [255; 3])));
    }

    #[test]
    fn rotated_text_is_taller_than_wide() {
        let mut c = Canvas::new(100, 200, [255; 3]);
        c.text_up(50.0, 100.0, "abcdef", 2, [0; 3]);
        let dark: Vec<(u32, u32)> = (0..100)
            .flat_map(|x| (0..200).map(move |y| (x, y)))
            .filter(|&(x, y)| c.pixel(x, y).unwrap() == [0; 3])
            .collect();
        let (xmin, xmax) = dark
            .iter()
            .fold((u32::MAX, 0), |a, p| (a.0.min(p.0), a.1.max(p.0)));
        let (ymin, ymax) = dark
            .iter()
            .fold((u32::MAX, 0), |a, p| (a.0.min(p.1), a.1.max(p.1)));
        assert!(
            ymax - ymin > 5 * (xmax - xmin),
            "{xmin}..{xmax} x {ymin}..{ymax}"
        );
        assert!(ymin >= 100 - 48 && ymax < 100 + 48);
    }
}
