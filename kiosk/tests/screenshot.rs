//! The window renders headless, with its Chinese title actually drawn (a
//! missing CJK font draws nothing, which this catches).

use kiosk::{AppWindow, screenshot};

/// Pixels that differ between two renders of the same size.
fn differing(a: &image::RgbaImage, b: &image::RgbaImage) -> usize {
    a.pixels().zip(b.pixels()).filter(|(x, y)| x != y).count()
}

#[test]
fn home_renders_in_both_orientations_with_cjk_text() {
    let window = screenshot::init().unwrap();
    let ui = AppWindow::new().unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&out).unwrap();

    for (name, size) in [
        ("portrait", screenshot::PORTRAIT),
        ("landscape", screenshot::LANDSCAPE),
    ] {
        ui.set_title_zh("景区票务自助终端".into());
        let with_title = screenshot::render(&window, &ui, size).unwrap();
        assert_eq!(with_title.dimensions(), size, "{name}");
        with_title
            .save(out.join(format!("home-{name}.png")))
            .unwrap();

        // Ideographic spaces: same font and line metrics, no ink.
        ui.set_title_zh("\u{3000}".repeat(8).into());
        let without_title = screenshot::render(&window, &ui, size).unwrap();
        // The Chinese title is large: its glyphs cover thousands of pixels.
        let ink = differing(&with_title, &without_title);
        assert!(
            ink > 2_000,
            "{name}: the Chinese title drew only {ink} pixels (no CJK font?)"
        );
    }
}
