//! gatectl's help reads as an engineer needs it, and `--json` is JSON.

use std::process::{Command, Output};

fn gatectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatectl"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn help_names_every_command_and_the_exit_codes() {
    let out = gatectl(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("Field engineer's tool"), "{help}");
    assert!(help.contains("config"), "{help}");
    assert!(help.contains("--json"), "{help}");
    assert!(
        help.contains("Exit codes: 0 success, 1 failure, 2 invalid configuration"),
        "{help}"
    );

    let out = gatectl(&["config", "check", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("exactly as gated does at start"), "{help}");
    assert!(help.contains("--skip-devices"), "{help}");
    assert!(help.contains("[default: /etc/gated/gated.toml]"), "{help}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = gatectl(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}

#[test]
fn config_check_json_parses_for_good_and_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../image/etc/gated/gated.toml");

    let out = gatectl(&["config", "check", "--skip-devices", "--json", shipped]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["role"], "lane");
    assert_eq!(v["lanes"][0]["name"], "main");
    assert_eq!(v["lanes"][0]["direction"], "entry");
    // What the lane does when mains is lost, and where that is learnt.
    assert_eq!(v["lanes"][0]["power_fail_mode"], "free");
    assert!(
        v["power"]
            .as_str()
            .unwrap()
            .starts_with("NUT 127.0.0.1:3493/ups: fallback after 2000 ms"),
        "{}",
        v["power"]
    );
    assert!(
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["family"] == "gate")
    );

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "role = \"lane\"\ndevice_id = 7\n").unwrap();
    let out = gatectl(&["--json", "config", "check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["valid"], false);
    let p = &v["problems"][0];
    assert_eq!(p["key"], "device_id");
    assert_eq!(p["line"], 2);
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("invalid type: integer `7`"),
        "{p}"
    );
}

#[test]
fn provision_takes_the_code_or_a_file_holding_it() {
    let out = gatectl(&["provision"]);
    assert_eq!(out.status.code(), Some(2), "a code is required");
    let out = gatectl(&["provision", "--code", "1", "--code-file", "x"]);
    assert_eq!(out.status.code(), Some(2), "not both");
    let out = gatectl(&["provision", "--code-file", "/nonexistent/pairing-code"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pairing code file /nonexistent/pairing-code: No such file"),
        "{err}"
    );
}

#[test]
fn status_without_a_running_gated_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../image/etc/gated/gated.toml"
    ))
    .unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("gated.toml");
    let text = shipped.replace(
        "state_dir = \"/var/lib/gated\"",
        &format!("state_dir = \"{}\"", state.display()),
    );
    assert_ne!(text, shipped, "the shipped config names its state_dir");
    std::fs::write(&config, text).unwrap();
    // gated alone reads its database: without it, status says so and fails.
    let status = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gatectl"))
            .args(args)
            .args(["status", "--config", config.to_str().unwrap()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .output()
            .unwrap()
    };
    let out = status(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["gated_running"], false, "{v}");
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("gated         NOT RUNNING"), "{text}");
    assert!(text.contains("gatectl probe"), "{text}");
}
