//! `plot::png`: a valid PNG of the right size, with the curve where the
//! layout puts it (positions computed by hand here), labels drawn, and
//! empty space left white.

use kuvert_dp::plot;
use kuvert_dp::release::CurvePoint;

fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let dec = png::Decoder::new(bytes);
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    (info.width, info.height, buf)
}

/// Pixels in the box [x0, x1) x [y0, y1) that are not white.
fn inked(img: &(u32, u32, Vec<u8>), x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
    let (w, _, buf) = img;
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let i = ((y * w + x) * 3) as usize;
            if buf[i..i + 3] != [255, 255, 255] {
                n += 1;
            }
        }
    }
    n
}

fn has_color(img: &(u32, u32, Vec<u8>), cx: u32, cy: u32, r: u32, rgb: [u8; 3]) -> bool {
    let (w, _, buf) = img;
    (cy - r..=cy + r).any(|y| {
        (cx - r..=cx + r).any(|x| {
            let i = ((y * w + x) * 3) as usize;
            buf[i..i + 3] == rgb
        })
    })
}

#[test]
fn png_has_the_size_axes_labels_and_curve_where_they_belong() {
    // one measurement: half-width 100 at ε = 0.1, 10 at ε = 1, 1 at ε = 10
    let points: Vec<CurvePoint> = [(0.1, 100.0), (1.0, 10.0), (10.0, 1.0)]
        .iter()
        .map(|&(e, h)| CurvePoint {
            epsilon: e,
            errors: vec![("n".to_string(), h / 2.0, h)],
        })
        .collect();
    let bytes = plot::png(&points, "Expected error vs ε: SELECT COUNT(*) AS n FROM t").unwrap();
    let img = decode(&bytes);
    assert_eq!((img.0, img.1), (1520, 880));
    assert_eq!((img.0, img.1), plot::PNG_SIZE);
    // Layout in SVG units (x2 in pixels): plot area x 80..590, y 30..380;
    // x decades 0.1..10, y decades 1..100.
    // The curve: (0.1, 100) at (80, 30), (1, 10) at (335, 205), (10, 1) at
    // (590, 380); a point between them, e.g. (207.5, 117.5).
    let blue = [0x1f, 0x77, 0xb4];
    for (x, y) in [(335.0, 205.0), (207.5, 117.5), (462.5, 292.5), (90.0, 36.9)] {
        assert!(
            has_color(&img, (x * 2.0) as u32, (y * 2.0) as u32, 2, blue),
            "no curve at ({x}, {y})"
        );
    }
    // off the curve, inside the plot area: white (no grid line there)
    assert_eq!(inked(&img, 2 * 400, 2 * 80, 2 * 420, 2 * 100), 0);
    // the legend swatch and name right of the plot
    assert!(has_color(&img, 2 * 612, 2 * 44, 1, blue));
    assert!(inked(&img, 2 * 618, 2 * 36, 2 * 640, 2 * 48) > 10);
    // x tick labels under the axis, x axis label at the bottom, y label on
    // the left (rotated), title on top
    assert!(
        inked(&img, 2 * 70, 2 * 384, 2 * 90, 2 * 400) > 10,
        "tick 0.1"
    );
    assert!(
        inked(&img, 2 * 200, 2 * 410, 2 * 470, 2 * 425) > 200,
        "x label"
    );
    assert!(
        inked(&img, 2 * 10, 2 * 90, 2 * 20, 2 * 320) > 200,
        "y label"
    );
    assert!(inked(&img, 2 * 150, 2 * 4, 2 * 610, 2 * 20) > 200, "title");
    // the axes' box: its left edge is black all the way down
    let (w, _, buf) = &img;
    let black_rows = (2 * 40..2 * 370)
        .filter(|&y| {
            let i = ((y * w + 160) * 3) as usize;
            buf[i..i + 3] == [0, 0, 0]
        })
        .count();
    assert_eq!(black_rows, 2 * 330);
}

#[test]
fn png_of_nothing_is_a_blank_titled_picture() {
    let bytes = plot::png(&[], "empty").unwrap();
    let img = decode(&bytes);
    assert_eq!((img.0, img.1), plot::PNG_SIZE);
    assert_eq!(inked(&img, 0, 100, img.0, img.1), 0);
}
