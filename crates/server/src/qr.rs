//! QR codes drawn by the server (PNG and SVG), so no client needs a QR library or a CDN.

use qrcode::QrCode;
use qrcode::render::svg;

const QUIET_ZONE: usize = 4;
const SCALE: usize = 8;

/// A grayscale PNG, 8 pixels per module, with the standard 4-module quiet zone.
pub fn png(data: &str) -> Vec<u8> {
    let code = QrCode::new(data.as_bytes()).expect("QR payloads are short");
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x0, y0) = ((index % width + QUIET_ZONE) * SCALE, (index / width + QUIET_ZONE) * SCALE);
        for y in y0..y0 + SCALE {
            pixels[y * side + x0..y * side + x0 + SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("writing to memory");
        writer.write_image_data(&pixels).expect("writing to memory");
    }
    out
}

pub fn svg(data: &str) -> String {
    let code = QrCode::new(data.as_bytes()).expect("QR payloads are short");
    code.render::<svg::Color>().min_dimensions(264, 264).quiet_zone(true).build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_png_and_svg() {
        let png = super::png("2@abc,def,ghi,jkl");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = super::svg("2@abc,def,ghi,jkl");
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
}
