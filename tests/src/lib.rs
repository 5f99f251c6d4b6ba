//! Helpers shared by the workspace-level tests in `tests/tests/`, and
//! central-sim, the central system they (and the demo) run against.

pub mod central_sim;
pub mod fake_logind;
pub mod fake_rauc;
pub mod kiosk_device;
pub mod kiosk_screen;
pub mod latency;
pub mod offline_tickets;
pub mod procs;
pub mod proxy;

use std::path::{Path, PathBuf};

/// The repository's top folder, where `image/`, `demo/` and the README live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}
