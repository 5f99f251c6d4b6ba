//! Every configuration file the repository ships is one its program accepts
//! (gated, or the kiosk app for its kiosk.toml files).

use gated::config::{self, DeviceCheck, Role};
use tests::repo_root;

#[test]
fn image_default_config_is_valid() {
    // Its device nodes are udev names of the appliance; they do not exist here.
    let c = config::load(
        &repo_root().join("image/etc/gated/gated.toml"),
        DeviceCheck::Skip,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.role, Role::Lane);
    assert_eq!(c.state_dir.get_ref().to_str(), Some("/var/lib/gated"));
    assert!(!c.lanes.is_empty());
}

#[test]
fn demo_configs_are_valid() {
    let demo = repo_root().join("demo");
    let mut seen = 0;
    for entry in std::fs::read_dir(&demo).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "kiosk-ui.toml") {
            // The kiosk app's own settings.
            kiosk::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        } else if path.extension().is_some_and(|e| e == "toml") {
            // The demo creates the device nodes when it runs.
            config::load(&path, DeviceCheck::Skip).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen > 0, "no demo config in {}", demo.display());
}

#[test]
fn image_kiosk_config_is_valid() {
    let c = kiosk::config::Config::load(&repo_root().join("image/etc/kiosk/kiosk.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.language, "zh");
}
