//! gated: the device daemon. Only wiring lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gated::config::{self, DeviceCheck};

/// The kiosk and gate appliance's device daemon: drives printers, scanners,
/// card readers and gates, validates tickets and syncs with the central system.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, short, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A bad config is refused before anything starts (exit 2, like a usage error).
    let mut config = match config::load(&args.config, DeviceCheck::Present) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("gated: refusing to start: fix {}", args.config.display());
            return ExitCode::from(2);
        }
    };
    config.resolve_device_id();
    gated::logging::init("gated", gated::logging::Style::Daemon);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gated::daemon::run(config)) {
        Ok(gated::daemon::Stopped::Signal) => ExitCode::SUCCESS,
        Ok(gated::daemon::Stopped::Restart) => {
            drop(runtime);
            // Same program, same arguments, same PID (systemd keeps
            // watching it); every descriptor is close-on-exec.
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            let e = std::os::unix::process::CommandExt::exec(
                std::process::Command::new(exe).args(std::env::args_os().skip(1)),
            );
            tracing::error!("cannot start again: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("gated failed to start: {e}");
            ExitCode::FAILURE
        }
    }
}
