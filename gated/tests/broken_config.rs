//! gated refuses each kind of broken configuration before anything starts:
//! exit code 2, and a message with the file, line, key and what is wrong.
//! `gatectl config check` prints the same problems.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GOOD: &str = r#"role = "lane"
device_id = "lane-7"

[central]
url = "https://central.example.com/api/v1"

[devices.scanners.qr]
port = "/dev/null"

[devices.gates.g1]
modbus = "tcp://127.0.0.1:1502"

[lanes.east]
direction = "entry"
group = "east"
gate = "g1"
scanners = ["qr"]
"#;

struct Case {
    name: &'static str,
    /// The broken file: GOOD with one replacement.
    from: &'static str,
    to: &'static str,
    /// What stderr must say: `FILE:LINE:COL: KEY: ...` prefix and a message part.
    line: Option<usize>,
    key: &'static str,
    says: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "toml syntax error",
        from: "group = \"east\"",
        to: "group = \"east",
        line: Some(15),
        key: "",
        says: "invalid basic string",
    },
    Case {
        name: "unknown key",
        from: "port = \"/dev/null\"",
        to: "port = \"/dev/null\"\nbaudrate = 9600",
        line: Some(9),
        key: "devices.scanners.qr.baudrate",
        says: "unknown key `baudrate`, expected one of `port`, `baud`, `evdev`",
    },
    Case {
        name: "wrong type",
        from: "modbus = \"tcp://127.0.0.1:1502\"",
        to: "modbus = \"tcp://127.0.0.1:1502\"\nunit = \"one\"",
        line: Some(12),
        key: "devices.gates.g1.unit",
        says: "invalid type: string \"one\", expected u8",
    },
    Case {
        name: "missing required key",
        from: "url = \"https://central.example.com/api/v1\"",
        to: "",
        line: None,
        key: "central.url",
        says: "required key is missing",
    },
    Case {
        name: "device path that does not exist",
        from: "port = \"/dev/null\"",
        to: "port = \"/dev/ttyUSB-gone\"",
        line: Some(8),
        key: "devices.scanners.qr.port",
        says: "/dev/ttyUSB-gone does not exist",
    },
    Case {
        name: "unknown role",
        from: "role = \"lane\"",
        to: "role = \"gateway\"",
        line: Some(1),
        key: "role",
        says: "unknown variant `gateway`, expected `kiosk` or `lane`",
    },
    Case {
        name: "lane refers to a device that is not configured",
        from: "gate = \"g1\"",
        to: "gate = \"g2\"",
        line: Some(16),
        key: "lanes.east.gate",
        says: "no device named `g2` in [devices.gates]",
    },
    Case {
        name: "malformed modbus address",
        from: "tcp://127.0.0.1:1502",
        to: "tcp://127.0.0.1",
        line: Some(11),
        key: "devices.gates.g1.modbus",
        says: "is not tcp://HOST:PORT",
    },
    Case {
        name: "plain http to a remote central",
        from: "https://central",
        to: "http://central",
        line: Some(5),
        key: "central.url",
        says: "plain http is only allowed to a loopback address",
    },
];

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("gated.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn gated(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gated"))
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn gatectl_check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatectl"))
        .args(["config", "check"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn each_broken_config_is_refused_with_a_precise_error() {
    let dir = tempfile::tempdir().unwrap();
    for case in CASES {
        assert!(GOOD.contains(case.from), "{}: bad test case", case.name);
        let path = write(dir.path(), &GOOD.replacen(case.from, case.to, 1));
        let out = gated(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", case.name);

        let mut prefix = format!("error: {}", path.display());
        if let Some(line) = case.line {
            prefix += &format!(":{line}:");
        }
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&prefix),
            "{}: {first:?} should start with {prefix:?}",
            case.name
        );
        if !case.key.is_empty() {
            assert!(
                first.contains(&format!(": {}: ", case.key)),
                "{}: {first:?} should name key {}",
                case.name,
                case.key
            );
        }
        assert!(
            stderr.contains(case.says),
            "{}: {stderr:?} should say {:?}",
            case.name,
            case.says
        );
        assert!(
            stderr.contains("refusing to start"),
            "{}: {stderr}",
            case.name
        );

        // The engineer's check reports exactly the same problems.
        let check = gatectl_check(&path);
        assert_eq!(check.status.code(), Some(2), "{}", case.name);
        let check_err = String::from_utf8_lossy(&check.stderr);
        let problems = |s: &str| {
            s.lines()
                .take_while(|l| !l.starts_with("gated:"))
                .filter(|l| !l.contains("problem(s)"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(problems(&check_err), problems(&stderr), "{}", case.name);
    }
}

#[test]
fn missing_file_is_refused() {
    let out = gated(Path::new("/nonexistent/gated.toml"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: /nonexistent/gated.toml: cannot read the configuration file: No such file"
        ),
        "{stderr}"
    );
}

#[test]
fn good_config_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), GOOD);
    let out = gatectl_check(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(stdout.contains("lane-7"), "{stdout}");
}
