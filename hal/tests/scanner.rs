//! Serial scanners through a real PTY: codes, line endings, garbage and
//! unplugging.

use hal::DeviceState;
use hal::pty::Pty;
use hal::scanner::sim::{SimScanner, Suffix};
use hal::scanner::{self, ScannerPort};

async fn wait_state(
    dev: &hal::Device<scanner::Scan>,
    f: impl Fn(&DeviceState) -> bool,
) -> DeviceState {
    let mut rx = dev.watch_state();
    rx.wait_for(|s| f(s)).await.unwrap().clone()
}

#[tokio::test]
async fn codes_arrive_with_any_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
    let mut dev = scanner::spawn(
        "entry-qr",
        ScannerPort::Serial {
            path: sim.pty.path().to_owned(),
            baud: 9600,
        },
    );
    wait_state(&dev, |s| *s == DeviceState::Connected).await;

    for (suffix, code) in [
        (Suffix::Cr, "T1.AAA"),
        (Suffix::Lf, "SN-0002"),
        (Suffix::CrLf, "票ABC"),
    ] {
        sim.suffix = suffix;
        sim.scan(code).await.unwrap();
        let scan = dev.next().await.unwrap();
        assert_eq!(scan.text, code);
        assert_eq!(scan.source, "entry-qr");
    }
}

#[tokio::test]
async fn empty_lines_are_ignored_and_split_writes_join() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
    let mut dev = scanner::spawn(
        "s",
        ScannerPort::Serial {
            path: sim.pty.path().to_owned(),
            baud: 9600,
        },
    );
    wait_state(&dev, |s| *s == DeviceState::Connected).await;
    sim.raw(b"\r\n\r\nAB").await.unwrap();
    sim.raw(b"CD\r").await.unwrap();
    assert_eq!(dev.next().await.unwrap().text, "ABCD");
}

#[tokio::test]
async fn an_unplugged_scanner_reconnects_and_keeps_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    let sim = SimScanner::new(Pty::open_at(&link).unwrap());
    let mut dev = scanner::spawn(
        "s",
        ScannerPort::Serial {
            path: link.clone(),
            baud: 9600,
        },
    );
    wait_state(&dev, |s| *s == DeviceState::Connected).await;
    sim.scan("before").await.unwrap();
    assert_eq!(dev.next().await.unwrap().text, "before");

    // Half a code, then the cable is pulled: the half code is not a scan.
    sim.raw(b"PARTIAL").await.unwrap();
    drop(sim);
    let lost = wait_state(&dev, |s| matches!(s, DeviceState::Reconnecting { .. })).await;
    assert!(
        lost.to_string().starts_with("reconnecting (attempt 1)"),
        "{lost}"
    );

    let sim = SimScanner::new(Pty::open_at(&link).unwrap());
    wait_state(&dev, |s| *s == DeviceState::Connected).await;
    sim.scan("after").await.unwrap();
    assert_eq!(dev.next().await.unwrap().text, "after");
}

#[tokio::test]
async fn a_missing_port_is_reported_by_name() {
    let dev = scanner::spawn(
        "s",
        ScannerPort::Serial {
            path: "/dev/no-such-scanner".into(),
            baud: 9600,
        },
    );
    let s = wait_state(&dev, |s| matches!(s, DeviceState::Reconnecting { .. })).await;
    assert!(
        s.to_string()
            .contains("/dev/no-such-scanner: no such device"),
        "{s}"
    );
}
