//! Frame time of each kiosk screen with the software renderer (what a panel
//! without a GPU draws): a full repaint of the screen's sample state at both
//! panel sizes, in normal and large text, 30 times each; the heaviest screen
//! is reported last, and the heaviest in large text.
//!
//! `cargo bench -p kiosk --bench frame`

use std::time::{Duration, Instant};

use kiosk::{AppWindow, Ui, samples, screenshot};
use slint::ComponentHandle;

fn main() {
    let window = screenshot::init().unwrap();
    let ui = AppWindow::new().unwrap();
    slint::select_bundled_translation("zh_CN").unwrap();
    let mut rows = Vec::new();
    for (name, large) in samples::SCREENS
        .iter()
        .flat_map(|n| [(n, false), (n, true)])
    {
        samples::set(&ui, name);
        ui.global::<Ui>().set_large_text(large);
        let text = if large { ", large text" } else { "" };
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
            rows.push((
                d[d.len() / 2],
                d[d.len() - 1],
                format!("{name} ({o}{text})"),
            ));
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
    let heaviest = |label: &str, (p50, max, what): &(Duration, Duration, String)| {
        println!(
            "{label}: {what}: p50 {:.1} ms, max {:.1} ms per frame (software renderer, one core)",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        )
    };
    heaviest("heaviest", rows.last().unwrap());
    let large = rows.iter().rev().find(|r| r.2.contains("large text"));
    heaviest("heaviest in large text", large.unwrap());
}
