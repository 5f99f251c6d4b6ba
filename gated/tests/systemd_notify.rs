//! gated speaks systemd's notify protocol: READY=1 once started, WATCHDOG=1
//! while running, STOPPING=1 on SIGTERM, then a clean exit. The test plays the
//! service manager: it owns the notify socket and sends the signal.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A bound on waiting for a message, so a broken gated fails the test instead
/// of hanging it. Generous: it is not what the test measures.
const PATIENCE: Duration = Duration::from_secs(30);

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("gated.toml");
    std::fs::write(
        &path,
        format!(
            r#"role = "lane"
device_id = "notify-test"
state_dir = "{}"
[central]
url = "http://127.0.0.1:1/api/v1"
[devices.scanners.qr]
port = "/dev/null"
[devices.gates.g]
modbus = "tcp://127.0.0.1:1502"
[lanes.a]
direction = "entry"
group = "main"
gate = "g"
scanners = ["qr"]
"#,
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

fn spawn(config: &Path, socket: &Path, watchdog_usec: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gated"))
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", watchdog_usec)
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("no notification from gated within the bound");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn ready_watchdog_and_stopping_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let child = spawn(&config(dir.path()), &socket, "200000");

    let first = recv(&sock);
    assert!(
        first.lines().any(|l| l == "READY=1"),
        "first message: {first:?}"
    );
    assert!(
        first.contains("STATUS=role lane, device notify-test, 1 lane(s)"),
        "{first:?}"
    );

    // Two pings prove it is periodic, not a one-off.
    for _ in 0..2 {
        let msg = recv(&sock);
        assert_eq!(msg.trim_end(), "WATCHDOG=1");
    }

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    // A watchdog ping may be in flight; STOPPING=1 must follow.
    let stopping = loop {
        let msg = recv(&sock);
        if msg.trim_end() != "WATCHDOG=1" {
            break msg;
        }
    };
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");

    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "gated exited with {:?}: {stderr}",
        out.status
    );
    assert!(stderr.contains("gated ready: role lane"), "{stderr}");
    assert!(stderr.contains("SIGTERM received, stopping"), "{stderr}");
    assert!(stderr.contains("gated stopped"), "{stderr}");
}

#[test]
fn no_watchdog_pings_unless_systemd_armed_one() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gated"))
        .arg("--config")
        .arg(config(dir.path()))
        .env("NOTIFY_SOCKET", &socket)
        .env_remove("WATCHDOG_USEC")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(recv(&sock).contains("READY=1"));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    // The next message is STOPPING, with no watchdog ping before it.
    assert!(recv(&sock).starts_with("STOPPING=1"));
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_second_gated_on_the_same_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let config = config(dir.path());
    let mut first = spawn(&config, &socket, "0");
    assert!(recv(&sock).contains("READY=1"));

    let second = Command::new(env!("CARGO_BIN_EXE_gated"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is in use by another gated"), "{stderr}");

    kill(Pid::from_raw(first.id() as i32), Signal::SIGTERM).unwrap();
    assert!(first.wait().unwrap().success());
}
