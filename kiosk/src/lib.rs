//! The self-service kiosk's touchscreen app. UI only: every action will be a
//! D-Bus call to gated, every device event a D-Bus signal from it.

/// Code generated from `ui/*.slint`.
#[allow(missing_debug_implementations)]
mod ui {
    slint::include_modules!();
}
pub use ui::*;

pub mod screenshot;
