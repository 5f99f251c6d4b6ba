//! The layout check: every screen, in every state that changes what it
//! shows, in every bundled language, both panel orientations and both text
//! sizes, laid out by Slint (the software renderer's real fonts) and then
//! measured element by element:
//!
//! - every text, picture and button lies fully inside the window (inside a
//!   scrolling list, inside it across, since it scrolls only up and down);
//! - no text is cut or elided (`Label` reports when its preferred size is
//!   larger than its box);
//! - no two buttons overlap (a modal layer, an element with the id
//!   `modal`, covers what is under it: its buttons are compared among
//!   themselves; a list's buttons where the list shows them);
//! - every button is at least [`MIN_TARGET_PX`] each way.
//!
//! A finding names the screen, the state and the element.

use std::collections::BTreeSet;

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementQuery};
use kiosk::{AppWindow, Ui, samples, screenshot};
use slint::ComponentHandle;
use slint::platform::software_renderer::MinimalSoftwareWindow;

/// The smallest touch target: 12 mm on the smallest panel the kiosk ships
/// with (15.6", 1080 px on the short side: 0.179 mm a pixel), 17 mm on the
/// 21.5" one.
const MIN_TARGET_PX: f32 = 67.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

impl Rect {
    fn of(e: &ElementHandle) -> Rect {
        let (p, s) = (e.absolute_position(), e.size());
        Rect {
            x: p.x,
            y: p.y,
            w: s.width,
            h: s.height,
        }
    }

    fn inside(&self, o: &Rect) -> bool {
        const SLACK: f32 = 0.5;
        self.x >= o.x - SLACK
            && self.y >= o.y - SLACK
            && self.x + self.w <= o.x + o.w + SLACK
            && self.y + self.h <= o.y + o.h + SLACK
    }

    fn overlap(&self, o: &Rect) -> f32 {
        let w = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let h = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        w.max(0.0) * h.max(0.0)
    }

    fn empty(&self) -> bool {
        self.w < 1.0 || self.h < 1.0
    }

    fn clipped_to(&self, o: &Rect) -> Rect {
        let (x, y) = (self.x.max(o.x), self.y.max(o.y));
        Rect {
            x,
            y,
            w: ((self.x + self.w).min(o.x + o.w) - x).max(0.0),
            h: ((self.y + self.h).min(o.y + o.h) - y).max(0.0),
        }
    }
}

/// What one element is, for a finding.
fn name(e: &ElementHandle) -> String {
    let label: String = e
        .accessible_label()
        .map(|l| l.replace('\n', " ").chars().take(48).collect())
        .unwrap_or_default();
    let r = Rect::of(e);
    format!(
        "{} {label:?} at ({:.0}, {:.0}) {:.0}×{:.0}",
        e.type_name().unwrap_or_default(),
        r.x,
        r.y,
        r.w,
        r.h
    )
}

/// The findings on the screen as it is laid out now in a window of `size`.
fn check(ui: &AppWindow, size: (u32, u32)) -> Vec<String> {
    let window = Rect {
        x: 0.0,
        y: 0.0,
        w: size.0 as f32,
        h: size.1 as f32,
    };
    let all = ElementQuery::from_root(ui).match_descendants().find_all();
    let inside_of = |e: &ElementHandle| -> BTreeSet<String> {
        e.query_descendants()
            .match_descendants()
            .find_all()
            .iter()
            .map(name)
            .collect()
    };
    // A modal layer (the calendar, "please wait"): the one on top.
    let modal: Option<BTreeSet<String>> = all
        .iter()
        .rfind(|e| e.id().is_some_and(|id| id.ends_with("::modal")) && !Rect::of(e).empty())
        .map(inside_of);
    // Scrolling lists: what is inside one may lie below or above the window.
    let lists: Vec<(Rect, BTreeSet<String>)> = all
        .iter()
        .filter(|e| {
            e.type_name().as_deref() == Some("Flickable")
                || e.bases().is_some_and(|mut b| b.any(|b| b == "Flickable"))
        })
        .map(|f| (Rect::of(f), inside_of(f)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut findings = Vec::new();
    // Buttons that can be tapped: where they show, on the top layer.
    let mut buttons: Vec<(Rect, String)> = Vec::new();
    for e in &all {
        let role = e.accessible_role();
        let leaf = matches!(
            role,
            Some(AccessibleRole::Button | AccessibleRole::Text | AccessibleRole::Image)
        ) || e.type_name().as_deref() == Some("Image");
        let r = Rect::of(e);
        let what = name(e);
        if !leaf || r.empty() || !seen.insert(what.clone()) {
            continue;
        }
        // Where it can be seen: a list shows part of what it holds.
        let shown = match lists.iter().find(|(_, inside)| inside.contains(&what)) {
            Some((list, _)) => {
                if r.x < list.x - 0.5 || r.x + r.w > list.x + list.w + 0.5 {
                    findings.push(format!("{what}: wider than its scrolling list"));
                }
                r.clipped_to(list)
            }
            None => {
                if !r.inside(&window) {
                    findings.push(format!("{what}: not inside the window"));
                }
                r
            }
        };
        if e.accessible_description().as_deref() == Some("does not fit") {
            findings.push(format!("{what}: its text does not fit (cut or elided)"));
        }
        if role == Some(AccessibleRole::Button) {
            if r.w < MIN_TARGET_PX || r.h < MIN_TARGET_PX {
                findings.push(format!("{what}: a touch target under {MIN_TARGET_PX} px"));
            }
            let on_top = modal.as_ref().is_none_or(|m| m.contains(&what));
            if shown.empty() || !on_top {
                continue;
            }
            for (other, other_name) in &buttons {
                if shown.overlap(other) > 1.0 {
                    findings.push(format!("{what}: overlaps the button {other_name}"));
                }
            }
            buttons.push((shown, what));
        }
    }
    findings
}

fn lay_out(window: &MinimalSoftwareWindow, ui: &AppWindow, size: (u32, u32)) {
    window.set_size(slint::PhysicalSize::new(size.0, size.1));
    ui.show().unwrap();
}

/// Every language the kiosk bundles (code for Slint, code for the UI).
fn languages() -> Vec<(String, &'static str)> {
    kiosk::app::languages()
        .iter()
        .map(|l| {
            let code = l.code.to_string();
            let short = if code.starts_with("zh") { "zh" } else { "en" };
            (code, short)
        })
        .collect()
}

#[test]
fn no_screen_hides_what_a_visitor_needs() {
    let window = screenshot::init().unwrap();
    let ui = AppWindow::new().unwrap();
    let mut findings = Vec::new();
    let mut checked = 0;
    for (state, apply) in samples::states() {
        for (code, short) in languages() {
            kiosk::app::show_language(&ui, &code);
            for size in [screenshot::PORTRAIT, screenshot::LANDSCAPE] {
                for large in [false, true] {
                    apply(&ui);
                    assert_eq!(ui.global::<Ui>().get_lang(), short);
                    ui.global::<Ui>().set_large_text(large);
                    lay_out(&window, &ui, size);
                    checked += 1;
                    let text = if large { "large text" } else { "normal text" };
                    let found = check(&ui, size);
                    // To look at what a finding means: the layouts as PNG.
                    if let Some(dir) = std::env::var_os("KIOSK_LAYOUT_SHOTS")
                        && !found.is_empty()
                    {
                        let file = format!(
                            "{state}-{short}-{}x{}-{}.png",
                            size.0,
                            size.1,
                            if large { "large" } else { "normal" }
                        );
                        screenshot::save(
                            &window,
                            &ui,
                            size,
                            &std::path::Path::new(&dir).join(file),
                        )
                        .unwrap();
                    }
                    for f in found {
                        findings.push(format!(
                            "{state} ({short}, {}×{}, {text}): {f}",
                            size.0, size.1
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} layouts checked");
    assert!(
        findings.is_empty(),
        "{} findings in {checked} layouts:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

/// The check itself: a scenic-area name long enough to push the last home
/// button below the window is found, by name.
#[test]
fn the_check_finds_a_button_pushed_off_the_window() {
    let window = screenshot::init().unwrap();
    let ui = AppWindow::new().unwrap();
    slint::select_bundled_translation("en").unwrap();
    samples::set(&ui, "home");
    lay_out(&window, &ui, screenshot::PORTRAIT);
    assert_eq!(check(&ui, screenshot::PORTRAIT), Vec::<String>::new());
    ui.global::<Ui>()
        .set_scenic_area("Green Hills Scenic Area and Lake ".repeat(12).into());
    lay_out(&window, &ui, screenshot::PORTRAIT);
    let found = check(&ui, screenshot::PORTRAIT);
    assert!(
        found
            .iter()
            .any(|f| f.contains("\"Check a ticket\"") && f.contains("not inside the window")),
        "{found:#?}"
    );
}
