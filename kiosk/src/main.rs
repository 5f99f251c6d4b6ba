//! kiosk: the touchscreen app. Only wiring lives here.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kiosk::app::App;
use kiosk::config::{self, Config};
use kiosk::{AppWindow, samples, screenshot};
use sd_notify::NotifyState;
use slint::{ComponentHandle, Timer, TimerMode};

/// The self-service kiosk's touchscreen app (sale, pickup, query), a client
/// of gated on the system bus (or DBUS_SYSTEM_BUS_ADDRESS).
///
/// The display backend comes from SLINT_BACKEND: `linuxkms` on the appliance
/// (DRM/KMS and libinput, no compositor), `winit` on a desktop.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The kiosk's settings (service PIN, inactivity timeout, sale horizon).
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Render every screen, in both languages and both orientations, to PNG
    /// files in DIR and exit; needs no display and no gated.
    #[arg(long, value_name = "DIR")]
    screenshots: Option<PathBuf>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    let result = match &args.screenshots {
        Some(dir) => screenshots(dir),
        None => Config::load(&args.config).and_then(|c| run(c, started)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiosk: {e}");
            ExitCode::FAILURE
        }
    }
}

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

fn run(config: Config, started: Instant) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the D-Bus thread: {e}"))?;
    let ui = AppWindow::new().map_err(|e| format!("cannot open the window: {e}"))?;
    // Answers from gated wake the event loop, which runs them here.
    let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(|| {
        let _ = slint::invoke_from_event_loop(|| {
            if let Some(app) = APP.with(|a| a.borrow().clone()) {
                app.pump();
            }
        });
    });
    let app = App::new(ui, config, None, rt.handle().clone(), wake);
    APP.with(|a| *a.borrow_mut() = Some(app.clone()));
    app.ui()
        .show()
        .map_err(|e| format!("cannot show the window: {e}"))?;
    // The first turn of the event loop comes after the first frame.
    Timer::single_shot(Duration::ZERO, move || {
        eprintln!(
            "kiosk: home screen shown {} ms after start",
            started.elapsed().as_millis()
        );
        notify(&[NotifyState::Ready]);
    });
    // The watchdog is fed from the UI's event loop: a frozen UI gets restarted.
    let watchdog = Timer::default();
    if let Some(every) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) {
        watchdog.start(TimerMode::Repeated, every / 2, || {
            notify(&[NotifyState::Watchdog])
        });
    }
    slint::run_event_loop().map_err(|e| format!("UI event loop failed: {e}"))?;
    APP.with(|a| a.borrow_mut().take());
    Ok(())
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        eprintln!("kiosk: cannot notify systemd: {e}");
    }
}

fn screenshots(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let window = screenshot::init().map_err(|e| e.to_string())?;
    let ui = AppWindow::new().map_err(|e| e.to_string())?;
    for path in samples::render_all(&window, &ui, dir).map_err(|e| e.to_string())? {
        println!("{}", path.display());
    }
    Ok(())
}
