//! Every screen renders headless in both languages and orientations, with
//! its Chinese text actually drawn (a missing CJK font draws nothing, which
//! this catches).

use kiosk::{AppWindow, Screen, Ui, samples, screenshot};
use slint::ComponentHandle;

/// Pixels that differ between two renders of the same size.
fn differing(a: &image::RgbaImage, b: &image::RgbaImage) -> usize {
    a.pixels().zip(b.pixels()).filter(|(x, y)| x != y).count()
}

#[test]
fn every_screen_renders_in_both_languages_and_orientations_with_cjk_text() {
    let window = screenshot::init().unwrap();
    let ui = AppWindow::new().unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&out).unwrap();
    // Every bundled translation is offered, Chinese first.
    let codes: Vec<String> = kiosk::app::languages()
        .iter()
        .map(|l| l.code.to_string())
        .collect();
    assert_eq!(codes, ["zh_CN", "en"]);
    let written = samples::render_all(&window, &ui, &out).unwrap();
    assert_eq!(written.len(), samples::SCREENS.len() * 2 * 2);

    // The home screen in Chinese: its title drawn, then ideographic spaces
    // (same font and line metrics, no ink).
    slint::select_bundled_translation("zh_CN").unwrap();
    ui.global::<Ui>().set_lang("zh".into());
    samples::set(&ui, "home");
    assert_eq!(ui.global::<Ui>().get_screen(), Screen::Home);
    for size in [screenshot::PORTRAIT, screenshot::LANDSCAPE] {
        ui.global::<Ui>().set_scenic_area("青山景区".into());
        let with_title = screenshot::render(&window, &ui, size).unwrap();
        assert_eq!(with_title.dimensions(), size);
        ui.global::<Ui>()
            .set_scenic_area("\u{3000}".repeat(4).into());
        let without_title = screenshot::render(&window, &ui, size).unwrap();
        let ink = differing(&with_title, &without_title);
        assert!(
            ink > 2_000,
            "{size:?}: the Chinese title drew only {ink} pixels (no CJK font?)"
        );
    }
}
