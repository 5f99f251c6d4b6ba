//! Frame time of each kiosk screen with the software renderer (what a panel
//! without a GPU draws): a full repaint of the screen's sample state at the
//! portrait panel size, 30 times each; the heaviest screen is reported last.
//!
//! `cargo bench -p kiosk --bench frame`

use std::time::{Duration, Instant};

use kiosk::{AppWindow, samples, screenshot};

fn main() {
    let window = screenshot::init().unwrap();
    let ui = AppWindow::new().unwrap();
    slint::select_bundled_translation("zh_CN").unwrap();
    let mut rows = Vec::new();
    for name in samples::SCREENS {
        samples::set(&ui, name);
        for (o, size) in [
            ("portrait", screenshot::PORTRAIT),
            ("landscape", screenshot::LANDSCAPE),
        ] {
            // The first render also lays out and loads glyphs: not counted.
            screenshot::render(&window, &ui, size).unwrap();
            let mut d: Vec<Duration> = (0..30)
                .map(|_| {
                    let t = Instant::now();
                    screenshot::render(&window, &ui, size).unwrap();
                    t.elapsed()
                })
                .collect();
            d.sort();
            rows.push((d[d.len() / 2], d[d.len() - 1], format!("{name} ({o})")));
        }
    }
    rows.sort();
    for (p50, max, what) in &rows {
        println!(
            "{what}: full repaint p50 {:.1} ms, max {:.1} ms",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    let (p50, max, what) = rows.last().unwrap();
    println!(
        "heaviest: {what}: p50 {:.1} ms, max {:.1} ms per 1080×1920 frame (software renderer, one core)",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}
