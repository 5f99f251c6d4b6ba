//! The hex-line IC-card reader through a real PTY: cards come and go.

use std::time::Duration;

use hal::DeviceState;
use hal::iccard::sim::SimIcReader;
use hal::iccard::{self, HexLines, IcEvent};
use hal::pty::Pty;

fn uid(e: &IcEvent) -> (&'static str, &str) {
    match e {
        IcEvent::Present { uid, .. } => ("present", uid),
        IcEvent::Removed { uid, .. } => ("removed", uid),
    }
}

#[tokio::test]
async fn cards_come_and_go_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ic");
    let sim = SimIcReader::start(Pty::open_at(&link).unwrap(), Duration::from_millis(20));
    let mut dev = iccard::spawn_with(
        "ic",
        &link,
        9600,
        Duration::from_millis(150),
        HexLines::default,
    );
    dev.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();

    sim.present("04a1b2c3");
    let e = dev.next().await.unwrap();
    assert_eq!(uid(&e), ("present", "04A1B2C3"));
    // The reader repeats the UID while the card lies there; the next event
    // is its removal, not a second arrival.
    sim.remove();
    assert_eq!(uid(&dev.next().await.unwrap()), ("removed", "04A1B2C3"));

    sim.present("04112233445566");
    assert_eq!(
        uid(&dev.next().await.unwrap()),
        ("present", "04112233445566")
    );
    // A different card replacing it directly.
    sim.present("AABBCCDD");
    assert_eq!(
        uid(&dev.next().await.unwrap()),
        ("removed", "04112233445566")
    );
    assert_eq!(uid(&dev.next().await.unwrap()), ("present", "AABBCCDD"));
}

#[tokio::test]
async fn an_unplugged_reader_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ic");
    let sim = SimIcReader::start(Pty::open_at(&link).unwrap(), Duration::from_millis(20));
    let mut dev = iccard::spawn("ic", &link, 9600);
    dev.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    drop(sim);
    dev.watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap();
    let sim = SimIcReader::start(Pty::open_at(&link).unwrap(), Duration::from_millis(20));
    dev.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    sim.present("01020304");
    assert_eq!(uid(&dev.next().await.unwrap()), ("present", "01020304"));
}
