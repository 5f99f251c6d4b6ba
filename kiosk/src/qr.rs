//! The payment QR as a Slint image: whole pixels per module and a quiet
//! zone, so the screen shows it sharp (the UI draws it `pixelated`).

use qrcode::{Color, QrCode};
use slint::{Image, Rgba8Pixel, SharedPixelBuffer};

/// Modules of white around the code (the standard asks for 4).
const QUIET: usize = 4;

/// Renders `text` with `scale` pixels per module.
pub fn image(text: &str, scale: usize) -> Result<Image, qrcode::types::QrError> {
    let code = QrCode::new(text.as_bytes())?;
    let n = code.width();
    let colors = code.to_colors();
    let side = (n + 2 * QUIET) * scale;
    let mut buf = SharedPixelBuffer::<Rgba8Pixel>::new(side as u32, side as u32);
    let px = buf.make_mut_slice();
    px.fill(Rgba8Pixel::new(255, 255, 255, 255));
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (mx, my) = (i % n + QUIET, i / n + QUIET);
            for y in my * scale..(my + 1) * scale {
                px[y * side + mx * scale..y * side + (mx + 1) * scale]
                    .fill(Rgba8Pixel::new(0, 0, 0, 255));
            }
        }
    }
    Ok(Image::from_rgba8(buf))
}
