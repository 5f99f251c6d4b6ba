//! The self-service kiosk's touchscreen app. UI only: every action is a
//! D-Bus call to gated, every device event a D-Bus signal from it.

/// Code generated from `ui/*.slint`.
#[allow(missing_debug_implementations, clippy::all, clippy::todo)]
mod ui {
    slint::include_modules!();
}
pub use ui::*;

pub mod app;
pub mod config;
pub mod gated;
pub mod qr;
pub mod samples;
pub mod screenshot;
