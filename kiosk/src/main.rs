//! kiosk: the touchscreen app. Only wiring lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kiosk::{AppWindow, screenshot};
use slint::ComponentHandle;

/// The self-service kiosk's touchscreen app (sale, pickup, query).
///
/// The display backend comes from SLINT_BACKEND: `linuxkms` on the appliance
/// (DRM/KMS and libinput, no compositor), `winit` on a desktop.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Render every screen, portrait and landscape, to PNG files in DIR and
    /// exit; needs no display.
    #[arg(long, value_name = "DIR")]
    screenshots: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.screenshots {
        Some(dir) => screenshots(&dir),
        None => run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiosk: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let ui = AppWindow::new().map_err(|e| format!("cannot open the window: {e}"))?;
    ui.run().map_err(|e| format!("UI event loop failed: {e}"))
}

fn screenshots(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let window = screenshot::init().map_err(|e| e.to_string())?;
    let ui = AppWindow::new().map_err(|e| e.to_string())?;
    for (name, size) in [
        ("portrait", screenshot::PORTRAIT),
        ("landscape", screenshot::LANDSCAPE),
    ] {
        let path = dir.join(format!("home-{name}.png"));
        screenshot::save(&window, &ui, size, &path).map_err(|e| e.to_string())?;
        println!("{}", path.display());
    }
    Ok(())
}
